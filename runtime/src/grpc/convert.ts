// Conversions between grpc-js shapes and the runtime's transport-neutral ones.
//
// Metadata: the runtime's Metadata is a plain object of strings. Keys ending in "-bin" are binary in
// gRPC; they travel through the runtime as base64 text (standard alphabet), both ways, so nothing is
// lost and other languages see real binary headers. Only the first value of a repeated key is kept.
// HTTP/2 and gRPC protocol headers (content-type, date, grpc-status, grpc-timeout...) are not user
// metadata: they are neither sent from nor copied into the runtime's Metadata.

import * as grpc from "@grpc/grpc-js";
import type { TextMapGetter, TextMapSetter } from "@opentelemetry/api";
import { Code, StatusError } from "../status.js";
import { hasKeys, type Metadata } from "../metadata.js";
import { decodeRpcStatus, encodeRpcStatus, STATUS_DETAILS_KEY } from "../status-details.js";

/** Headers that belong to HTTP/2 or the gRPC protocol itself, not to the application. */
const PROTOCOL_HEADERS = new Set([
  "content-type",
  "date",
  "te",
  "grpc-status",
  "grpc-message",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "accept-encoding",
  STATUS_DETAILS_KEY, // surfaced as StatusError.details instead
]);

export function toGrpcMetadata(metadata: Metadata | undefined): grpc.Metadata {
  const out = new grpc.Metadata();
  if (metadata === undefined) return out;
  for (const key in metadata) {
    const value = metadata[key];
    if (value === undefined || PROTOCOL_HEADERS.has(key.toLowerCase())) continue;
    try {
      if (key.endsWith("-bin")) out.set(key, Buffer.from(value, "base64"));
      else out.set(key, value);
    } catch (err) {
      // grpc-js rejects keys and values HTTP/2 cannot carry; say which one.
      throw new StatusError(
        Code.INVALID_ARGUMENT,
        `metadata "${key}" cannot be sent over gRPC: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  return out;
}

/** Copies grpc-js metadata into `into` (later calls overwrite earlier keys: trailers over headers). */
export function fromGrpcMetadata(
  metadata: grpc.Metadata | null | undefined,
  into: Metadata = {},
): Metadata {
  if (!metadata) return into;
  const map = metadata.getMap();
  for (const key in map) {
    if (PROTOCOL_HEADERS.has(key)) continue;
    const value = map[key]!;
    into[key] = typeof value === "string" ? value : value.toString("base64");
  }
  return into;
}

/** A finished call's non-OK status as the error clients reject with. */
export function statusErrorFromGrpc(status: {
  code: number;
  details: string;
  metadata: grpc.Metadata | null;
}): StatusError {
  const metadata = fromGrpcMetadata(status.metadata);
  let details: StatusError["details"] = [];
  const raw = status.metadata?.get(STATUS_DETAILS_KEY)[0];
  if (raw instanceof Uint8Array) {
    try {
      details = decodeRpcStatus(raw).details;
    } catch {
      // A peer sent a malformed details trailer: keep the code and message, drop the details.
    }
  }
  return new StatusError(status.code as Code, status.details, { metadata, details });
}

/** What grpc-js needs to send a failed status: a handler's error plus the response metadata. */
export function grpcStatusFromError(err: unknown, responseMetadata: Metadata): grpc.StatusObject {
  const error = StatusError.from(err);
  let trailers: grpc.Metadata;
  try {
    trailers = toGrpcMetadata(
      hasKeys(error.metadata) ? { ...responseMetadata, ...error.metadata } : responseMetadata,
    );
  } catch (metaErr) {
    return {
      code: grpc.status.INTERNAL,
      details: (metaErr as Error).message,
      metadata: new grpc.Metadata(),
    };
  }
  // OK is not an error; a handler throwing it is a bug, reported as UNKNOWN rather than a silent success.
  const code = error.code === Code.OK ? Code.UNKNOWN : error.code;
  if (error.details.length > 0) {
    trailers.set(
      STATUS_DETAILS_KEY,
      Buffer.from(encodeRpcStatus({ code, message: error.rawMessage, details: error.details })),
    );
  }
  return { code: code as number as grpc.status, details: error.rawMessage, metadata: trailers };
}

/** grpc-js serializers must return a Buffer; wrap the codec's bytes without copying. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** How the trace context goes into grpc-js metadata: straight in, without a copy of the caller's metadata. */
export const GRPC_METADATA_SETTER: TextMapSetter<grpc.Metadata> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

/**
 * How the trace context is read from grpc-js metadata: the first value of a key, as the runtime's
 * Metadata keeps it, without converting the whole metadata first.
 */
export const GRPC_METADATA_GETTER: TextMapGetter<grpc.Metadata> = {
  keys(carrier) {
    return Object.keys(carrier.getMap());
  },
  get(carrier, key) {
    const value = carrier.get(key)[0];
    return value === undefined
      ? undefined
      : typeof value === "string"
        ? value
        : value.toString("base64");
  },
};
