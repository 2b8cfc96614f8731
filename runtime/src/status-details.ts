// google.rpc.Status on the wire: the `grpc-status-details-bin` trailer on gRPC, the
// `rpc-status-details-bin` reply header on AMQP. The codec is protobuf-es's, from the schema generated
// out of runtime/proto/google/rpc/status.proto (src/gen/); this file only maps it to the runtime's
// plain `RpcStatus` (details as type URL and bytes, left for the caller to unpack).

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";
import type { ErrorDetail } from "./status.js";

/** The trailer gRPC implementations use for rich error details. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

export interface RpcStatus {
  code: number;
  message: string;
  details: ErrorDetail[];
}

export function encodeRpcStatus(
  status: Omit<RpcStatus, "details"> & { details: readonly ErrorDetail[] },
): Uint8Array {
  const details = status.details.map((d) =>
    create(AnySchema, { typeUrl: d.typeUrl, value: d.value }),
  );
  return toBinary(
    StatusSchema,
    create(StatusSchema, { code: status.code, message: status.message, details }),
  );
}

/** Throws on malformed input; callers decide whether a bad trailer matters. */
export function decodeRpcStatus(bytes: Uint8Array): RpcStatus {
  const status = fromBinary(StatusSchema, bytes);
  // Copy each value: the decoder may hand out views into the whole trailer buffer.
  const details = status.details.map((d) => ({ typeUrl: d.typeUrl, value: d.value.slice() }));
  return { code: status.code, message: status.message, details };
}
