// A small hand-written service for the RPC tests: real protobuf encoding (via @bufbuild/protobuf's
// wire codec), unique names per test so files sharing the broker never see each other's queues.
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import amqp from "amqplib";
import { afterAll, afterEach, beforeAll } from "vitest";
import type { MessageType, MethodDesc, ServiceDesc } from "@grabbit/runtime";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { AMQP_URL, uniqueName } from "../support/broker.js";

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

export function echoMethod(
  service: string,
  name: string,
  kind: MethodDesc["kind"] = "unary",
): MethodDesc<Echo, Echo> {
  return {
    name,
    path: `/${service}/${name}`,
    kind,
    input: EchoType,
    output: EchoType,
    idempotent: false,
  };
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

export type StreamService = ServiceDesc<{
  count: MethodDesc<Echo, Echo>;
  sum: MethodDesc<Echo, Echo>;
  chat: MethodDesc<Echo, Echo>;
  echo: MethodDesc<Echo, Echo>;
}>;

/** A service with one method of each kind (server, client and bidi streaming, unary), its name unique to the test. */
export function streamService(prefix = "grabbit.test.Streams"): StreamService {
  const typeName = uniqueName(prefix);
  return {
    typeName,
    transports: ["amqp"],
    amqp: { requestQueue: typeName, prefetch: 8 },
    methods: {
      count: echoMethod(typeName, "Count", "server_streaming"),
      sum: echoMethod(typeName, "Sum", "client_streaming"),
      chat: echoMethod(typeName, "Chat", "bidi_streaming"),
      echo: echoMethod(typeName, "Echo"),
    },
  };
}

/**
 * What an RPC test file shares, set up by vitest hooks it registers: a server and a client
 * connection, a raw amqplib connection for inspection, request queues to delete (with their DLQs)
 * after the file, and things to close after each test.
 */
export interface RpcTestBed {
  readonly serverConn: AmqpConnection;
  readonly clientConn: AmqpConnection;
  readonly admin: amqp.ChannelModel;
  readonly queues: string[];
  readonly closables: { close(): Promise<void> }[];
}

export function rpcTestBed(name: string): RpcTestBed {
  const bed = { queues: [] as string[], closables: [] as { close(): Promise<void> }[] } as {
    -readonly [K in keyof RpcTestBed]: RpcTestBed[K];
  };
  beforeAll(async () => {
    bed.serverConn = await AmqpConnection.connect({ urls: AMQP_URL, name: `${name}-server` });
    bed.clientConn = await AmqpConnection.connect({ urls: AMQP_URL, name: `${name}-client` });
    bed.admin = await amqp.connect(AMQP_URL);
  });
  afterEach(async () => {
    await Promise.allSettled(bed.closables.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    const ch = await bed.admin.createChannel();
    for (const q of bed.queues) {
      await ch.deleteQueue(q).catch(() => {});
      await ch.deleteQueue(`${q}.dlq`).catch(() => {});
    }
    await bed.admin.close();
    await bed.clientConn.close();
    await bed.serverConn.close();
  });
  return bed;
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
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  limitMs = 20_000,
): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
