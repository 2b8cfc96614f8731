// What a client puts on the wire to start a call (docs/wire-contract.md): the body, the headers
// (`rpc-method`, `rpc-timeout-ms`, and for a stream's `open` its frame, credit and keepalive) and the
// message properties. Pure: a message the input type cannot encode is INTERNAL, a body over the
// limit RESOURCE_EXHAUSTED, both returned, never thrown; nothing is published here.

import type { Options } from "amqplib";
import type { MessageType } from "../../codec.js";
import type { Metadata } from "../../metadata.js";
import { Code, StatusError, messageOf } from "../../status.js";
import { CONTENT_TYPE_PROTOBUF, metadataToHeaders } from "../headers.js";
import {
  FRAME,
  HEADER_CREDIT,
  HEADER_FRAME,
  HEADER_KEEPALIVE,
  HEADER_METHOD,
  HEADER_TIMEOUT,
} from "./wire.js";

/** A message's protobuf bytes as a Buffer (no copy). */
export function encodeBody<T>(type: MessageType<T>, message: T): Buffer {
  const bytes = type.encode(message);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The request body of `path`'s call, or the status the caller gets instead. */
export function encodeRequest(
  path: string,
  type: MessageType<unknown>,
  message: unknown,
  maxMessageBytes: number,
): Buffer | StatusError {
  let body: Buffer;
  try {
    body = encodeBody(type, message);
  } catch (cause) {
    return new StatusError(
      Code.INTERNAL,
      `could not encode the ${type.typeName} request: ${messageOf(cause)}`,
      { cause },
    );
  }
  if (body.length > maxMessageBytes) {
    return new StatusError(
      Code.RESOURCE_EXHAUSTED,
      `${path}: the request is ${body.length} bytes, over the limit of ${maxMessageBytes} (maxMessageBytes)`,
    );
  }
  return body;
}

/** What a stream's `open` says besides a unary request's headers. */
export interface OpenFrame {
  /** Messages the client takes before it gives more credit. */
  readonly credit: number;
  readonly keepaliveMs: number;
}

/**
 * A request's headers: the caller's metadata (reserved names dropped), `rpc-method`, for a stream's
 * open `rpc-frame`, `rpc-credit` and `rpc-keepalive-ms`, then `rpc-timeout-ms` when it has a deadline.
 */
export function requestHeaders(
  metadata: Metadata,
  path: string,
  timeoutMs: number | undefined,
  open?: OpenFrame,
): Record<string, unknown> {
  const headers = metadataToHeaders(metadata);
  headers[HEADER_METHOD] = path;
  if (open !== undefined) {
    headers[HEADER_FRAME] = FRAME.open;
    headers[HEADER_CREDIT] = open.credit;
    headers[HEADER_KEEPALIVE] = open.keepaliveMs;
  }
  if (timeoutMs !== undefined) headers[HEADER_TIMEOUT] = timeoutMs;
  return headers;
}

export interface RequestPropertiesInit {
  /** The call's id: its correlation id and message id. */
  readonly id: string;
  /** Where the answer goes: direct reply-to for a unary call, the client's inbox for a stream. */
  readonly replyTo: string;
  /** The request's full type name; undefined for an open that carries no request. */
  readonly type: string | undefined;
  readonly headers: Record<string, unknown>;
  readonly userId: string | undefined;
  /** How long the request may wait in the queue, in ms (the deadline, or a stream's accept wait). */
  readonly expirationMs: number | undefined;
}

/** A request's AMQP properties: mandatory, so a queue that does not exist comes back as a return. */
export function requestProperties(init: RequestPropertiesInit): Options.Publish {
  return {
    correlationId: init.id,
    messageId: init.id,
    replyTo: init.replyTo,
    contentType: CONTENT_TYPE_PROTOBUF,
    type: init.type,
    headers: init.headers,
    mandatory: true,
    ...(init.userId !== undefined ? { userId: init.userId } : {}),
    ...(init.expirationMs !== undefined ? { expiration: String(init.expirationMs) } : {}),
  };
}
