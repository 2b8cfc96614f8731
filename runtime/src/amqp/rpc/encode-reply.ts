// What a server puts on the wire to answer (docs/wire-contract.md): the response body, the status
// headers (`rpc-status`, `rpc-message`, `rpc-status-details-bin`, the trailers as headers) and the
// reply's properties. Pure: a response that cannot be encoded or is over the limit comes back as
// the status to reply instead; nothing is published here.

import type { Options } from "amqplib";
import type { MethodDesc } from "../../descriptors.js";
import type { Metadata } from "../../metadata.js";
import { encodeRpcStatus } from "../../status-details.js";
import { Code, StatusError, messageOf, type ErrorDetail } from "../../status.js";
import { CONTENT_TYPE_PROTOBUF, metadataToHeaders } from "../headers.js";
import { encodeBody } from "./encode-request.js";
import {
  FRAME,
  HEADER_FRAME,
  HEADER_MESSAGE,
  HEADER_STATUS,
  HEADER_STATUS_DETAILS,
  readFrame,
} from "./wire.js";

/** A reply's or an `end` frame's headers: the trailers, the status, its text and details (not OK only). */
export function statusHeaders(
  code: Code,
  message: string,
  metadata: Metadata | undefined,
  details: readonly ErrorDetail[] | undefined,
): Record<string, unknown> {
  const headers = metadataToHeaders(metadata);
  headers[HEADER_STATUS] = code;
  if (code !== Code.OK) headers[HEADER_MESSAGE] = message;
  if (code !== Code.OK && details !== undefined && details.length > 0) {
    headers[HEADER_STATUS_DETAILS] = Buffer.from(encodeRpcStatus({ code, message, details }));
  }
  return headers;
}

/**
 * The headers of the answer to a request with `requestHeaders`: statusHeaders, and when the request
 * was a stream's `open` (refused before the stream started) marked as that stream's `end` frame.
 */
export function replyHeaders(
  requestHeaders: Record<string, unknown> | undefined,
  code: Code,
  message: string,
  metadata: Metadata | undefined,
  details: readonly ErrorDetail[] | undefined,
): Record<string, unknown> {
  const headers = statusHeaders(code, message, metadata, details);
  if (readFrame(requestHeaders) === FRAME.open) headers[HEADER_FRAME] = FRAME.end;
  return headers;
}

/**
 * The headers sent instead when amqplib cannot encode the full ones (a table over 64 KB...): the
 * status alone, with a note in the text that the metadata and details were dropped.
 */
export function strippedReplyHeaders(
  code: Code,
  message: string,
  note: string,
): Record<string, unknown> {
  return {
    [HEADER_STATUS]: code,
    ...(code !== Code.OK ? { [HEADER_MESSAGE]: `${message} (${note})` } : {}),
  };
}

/** A reply's properties: the request's correlation id, and for OK the response's full type name. */
export function replyProperties(
  correlationId: unknown,
  code: Code,
  method: MethodDesc | undefined,
  headers: Record<string, unknown>,
): Options.Publish {
  return {
    correlationId: correlationId as string | undefined,
    contentType: CONTENT_TYPE_PROTOBUF,
    ...(code === Code.OK && method ? { type: method.output.typeName } : {}),
    headers,
  };
}

/** The response body of `method`, or the status to reply instead (INTERNAL, RESOURCE_EXHAUSTED). */
export function encodeResponse(
  method: MethodDesc,
  message: unknown,
  maxMessageBytes: number,
): Buffer | StatusError {
  let body: Buffer;
  try {
    body = encodeBody(method.output, message);
  } catch (err) {
    return new StatusError(
      Code.INTERNAL,
      `could not encode the ${method.output.typeName} response: ${messageOf(err)}`,
    );
  }
  if (body.length > maxMessageBytes) {
    return new StatusError(
      Code.RESOURCE_EXHAUSTED,
      `${method.path}: the response is ${body.length} bytes, over the limit of ${maxMessageBytes}`,
    );
  }
  return body;
}

/**
 * How amqplib refuses properties it cannot write (a header table over 64 KB, a value of no AMQP type);
 * the publisher passes that on as INVALID_ARGUMENT.
 */
export function cannotEncode(err: unknown): boolean {
  return (
    err instanceof RangeError ||
    err instanceof TypeError ||
    (err instanceof StatusError && err.code === Code.INVALID_ARGUMENT)
  );
}
