// A small hand-written message type (what a ts-proto codec does, without a build step), shared by
// the AMQP tests and the benches: { id = 1 (string), region = 2 (string), amount = 3 (int32) }.
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import type { MessageType } from "../../runtime/src/codec.js";

export interface Order {
  id: string;
  region: string;
  amount: number;
}

export function orderType(typeName: string): MessageType<Order> {
  return {
    typeName,
    encode(m) {
      const w = new BinaryWriter();
      if (m.id) w.uint32(10).string(m.id);
      if (m.region) w.uint32(18).string(m.region);
      if (m.amount) w.uint32(24).int32(m.amount);
      return w.finish();
    },
    decode(bytes) {
      const r = new BinaryReader(bytes);
      const m: Order = { id: "", region: "", amount: 0 };
      while (r.pos < r.len) {
        const [field, wire] = r.tag();
        if (field === 1) m.id = r.string();
        else if (field === 2) m.region = r.string();
        else if (field === 3) m.amount = r.int32();
        else r.skip(wire);
      }
      return m;
    },
  };
}
