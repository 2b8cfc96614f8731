// google.rpc.Status coded by hand, so that the runtime needs no generated google/rpc types: the
// `grpc-status-details-bin` trailer on gRPC, the `rpc-status-details-bin` reply header on AMQP.
// Status { int32 code = 1; string message = 2; repeated Any details = 3; } and
// Any { string type_url = 1; bytes value = 2; }.

import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { ErrorDetail } from "./status.js";

/** The trailer gRPC implementations use for rich error details. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

export interface RpcStatus {
  code: number;
  message: string;
  details: ErrorDetail[];
}

export function encodeRpcStatus(status: Omit<RpcStatus, "details"> & { details: readonly ErrorDetail[] }): Uint8Array {
  const w = new BinaryWriter();
  if (status.code !== 0) w.tag(1, WireType.Varint).int32(status.code);
  if (status.message !== "") w.tag(2, WireType.LengthDelimited).string(status.message);
  for (const detail of status.details) {
    w.tag(3, WireType.LengthDelimited).fork();
    if (detail.typeUrl !== "") w.tag(1, WireType.LengthDelimited).string(detail.typeUrl);
    if (detail.value.length > 0) w.tag(2, WireType.LengthDelimited).bytes(detail.value);
    w.join();
  }
  return w.finish();
}

/** Throws on malformed input; callers decide whether a bad trailer matters. */
export function decodeRpcStatus(bytes: Uint8Array): RpcStatus {
  const r = new BinaryReader(bytes);
  const status: RpcStatus = { code: 0, message: "", details: [] };
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.Varint) status.code = r.int32();
    else if (field === 2 && wire === WireType.LengthDelimited) status.message = r.string();
    else if (field === 3 && wire === WireType.LengthDelimited) status.details.push(decodeAny(r.bytes()));
    else r.skip(wire, field);
  }
  return status;
}

function decodeAny(bytes: Uint8Array): ErrorDetail {
  const r = new BinaryReader(bytes);
  let typeUrl = "";
  let value: Uint8Array = new Uint8Array(0);
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) typeUrl = r.string();
    // Copy: the reader hands out a view into the whole trailer buffer.
    else if (field === 2 && wire === WireType.LengthDelimited) value = r.bytes().slice();
    else r.skip(wire, field);
  }
  return { typeUrl, value };
}
