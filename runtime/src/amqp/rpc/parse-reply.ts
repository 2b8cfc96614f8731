// Reading a reply (a unary reply, or a stream's `end` frame) as the wire contract defines it
// (docs/wire-contract.md): `rpc-status`, `rpc-message`, `rpc-status-details-bin` and the trailers.
// Pure: headers and bytes in, a response or a StatusError out, never a throw. A reply that breaks
// the contract (no status, a status that is no code) is INTERNAL; an unknown code is UNKNOWN.

import type { MethodDesc } from "../../descriptors.js";
import type { UnaryCallResponse } from "../../interceptor.js";
import type { Metadata } from "../../metadata.js";
import { Code, StatusError, messageOf } from "../../status.js";
import { headersToMetadata } from "../headers.js";
import { HEADER_MESSAGE, HEADER_STATUS, readDetails, readStatus, readText } from "./wire.js";

/** The highest status code gRPC defines (UNAUTHENTICATED). */
const MAX_CODE = Code.UNAUTHENTICATED;

/** Errors built from a reply's status carry the server's metadata; local ones (timeouts, losses) do not. */
const fromReply = new WeakSet<StatusError>();

/** True when `err` is the status a server replied with (its metadata is the reply's trailers). */
export function isReplyStatus(err: StatusError): boolean {
  return fromReply.has(err);
}

/** A header value shown in an error, bounded: it came from the network. */
export function describeHeader(value: unknown): string {
  let text: string;
  try {
    text =
      typeof value === "string"
        ? JSON.stringify(value)
        : Buffer.isBuffer(value)
          ? `${value.length} bytes`
          : typeof value === "bigint"
            ? `${value}`
            : (JSON.stringify(value) ?? String(value));
  } catch {
    text = typeof value;
  }
  return text.length > 64 ? `${text.slice(0, 64)}...` : text;
}

/** The error a reply or `end` frame carries; undefined when it says OK. */
export function replyStatusError(
  headers: Record<string, unknown> | undefined,
  path: string,
  metadata: Metadata,
): StatusError | undefined {
  const code = readStatus(headers);
  if (code === undefined) {
    const raw = headers?.[HEADER_STATUS];
    const what =
      raw === undefined
        ? "has no rpc-status header"
        : `has an rpc-status that is not a status code (${describeHeader(raw)})`;
    return new StatusError(Code.INTERNAL, `the reply to ${path} ${what}`, { metadata });
  }
  if (code === Code.OK) return undefined;
  const text = readText(headers, HEADER_MESSAGE) ?? "";
  const err =
    code > MAX_CODE
      ? // As gRPC does with codes it does not know: UNKNOWN, keeping the number in the text.
        new StatusError(
          Code.UNKNOWN,
          `the server replied with unknown status code ${code}: ${text}`,
          { metadata, details: readDetails(headers) },
        )
      : new StatusError(code, text, { metadata, details: readDetails(headers) });
  fromReply.add(err);
  return err;
}

/**
 * A unary reply as the caller gets it: the decoded response with the reply's headers as metadata,
 * or the error: the status the server sent, a body over `maxMessageBytes` (RESOURCE_EXHAUSTED,
 * not decoded), a body the output type cannot decode (INTERNAL).
 */
export function parseReply(
  method: MethodDesc,
  headers: Record<string, unknown> | undefined,
  body: Uint8Array,
  maxMessageBytes: number,
): UnaryCallResponse | StatusError {
  const metadata = headersToMetadata(headers);
  const err = replyStatusError(headers, method.path, metadata);
  if (err !== undefined) return err;
  if (body.length > maxMessageBytes) {
    return new StatusError(
      Code.RESOURCE_EXHAUSTED,
      `${method.path}: the reply is ${body.length} bytes, over the limit of ${maxMessageBytes} (maxMessageBytes)`,
      { metadata },
    );
  }
  try {
    return { stream: false, message: method.output.decode(body), metadata };
  } catch (cause) {
    return new StatusError(
      Code.INTERNAL,
      `could not decode the ${method.output.typeName} response: ${messageOf(cause)}`,
      { cause, metadata },
    );
  }
}
