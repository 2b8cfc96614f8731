// A small hand-written service for the RPC tests: real protobuf encoding (via @bufbuild/protobuf's
// wire codec), unique names per test so files sharing the broker never see each other's queues.
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { MessageType, MethodDesc, ServiceDesc } from "@grabbit/runtime";
import { uniqueName } from "../support/broker.js";

/** message Echo { string text = 1; int32 delay_ms = 2; } */
export interface Echo {
  text: string;
  delayMs: number;
}

export const EchoType: MessageType<Echo> = {
  typeName: "grabbit.test.v1.Echo",
  encode(m) {
    const w = new BinaryWriter();
    if (m.text) w.tag(1, WireType.LengthDelimited).string(m.text);
    if (m.delayMs) w.tag(2, WireType.Varint).int32(m.delayMs);
    return w.finish();
  },
  decode(bytes) {
    const r = new BinaryReader(bytes);
    const m: Echo = { text: "", delayMs: 0 };
    while (r.pos < r.len) {
      const [field, wireType] = r.tag();
      if (field === 1 && wireType === WireType.LengthDelimited) m.text = r.string();
      else if (field === 2 && wireType === WireType.Varint) m.delayMs = r.int32();
      else r.skip(wireType, field);
    }
    return m;
  },
};

export function echoMethod(service: string, name: string, kind: MethodDesc["kind"] = "unary"): MethodDesc<Echo, Echo> {
  return { name, path: `/${service}/${name}`, kind, input: EchoType, output: EchoType, idempotent: false };
}

export type EchoService = ServiceDesc<{
  echo: MethodDesc<Echo, Echo>;
  fail: MethodDesc<Echo, Echo>;
  slow: MethodDesc<Echo, Echo>;
  missing: MethodDesc<Echo, Echo>;
  watch: MethodDesc<Echo, Echo>;
}>;

/**
 * A service whose name is unique to the test; its request queue is the default (its full name)
 * unless `queue` is given.
 */
export function echoService(queue?: string): EchoService {
  const typeName = uniqueName("grabbit.test.Echo");
  return {
    typeName,
    transports: ["amqp"],
    amqp: { requestQueue: queue ?? typeName, prefetch: 16 },
    methods: {
      echo: echoMethod(typeName, "Echo"),
      fail: echoMethod(typeName, "Fail"),
      slow: echoMethod(typeName, "Slow"),
      missing: echoMethod(typeName, "Missing"),
      watch: echoMethod(typeName, "Watch", "server_streaming"),
    },
  };
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Polls `check` until it is true (no timing assertions: it only bounds how long a test waits). */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, limitMs = 20_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
