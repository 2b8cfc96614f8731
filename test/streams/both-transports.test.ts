// One handler object, every call kind, both transports (issue 12): the generated code (real buf,
// ts-proto and protoc-gen-grabbit) for a service with a unary, a server-streaming, a client-streaming
// and a bidirectional method, served at once on a grpc-js server on loopback and on the shared
// RabbitMQ, and called through the generated client over each. Every case runs on both transports and
// expects the same: results, response headers and trailers, the caller's cancellation reaching the
// handler's signal, the server failing mid-stream, and a deadline mid-stream.
import { writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError, type CallOptions, type Metadata } from "@grabbit/runtime";
import {
  AmqpConnection,
  type AmqpRpcServer,
  type AmqpRpcServerOptions,
  type AmqpRpcTransportOptions,
} from "@grabbit/runtime/amqp";
import { GrpcServer } from "@grabbit/runtime/grpc";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { bufGenerate, protoModule, REPO, typeCheck } from "../support/buf.js";
import { eventually } from "../amqp-rpc/fixture.js";
import {
  CALL_HEADER,
  CallLog,
  HEADERS_HEADER,
  tallyHandlers,
  tallyProto,
  type Ask,
  type Item,
  type TallyClient,
} from "./tally.js";

/** The generated module's exports the test uses (checked against the generated code in beforeAll). */
interface TallyModule {
  createTallyGrpcClient(address: string): TallyClient;
  createTallyAmqpClient(connection: AmqpConnection, options?: AmqpRpcTransportOptions): TallyClient;
  addTallyGrpcService(server: GrpcServer, handlers: ReturnType<typeof tallyHandlers>): GrpcServer;
  serveTallyAmqp(
    connection: AmqpConnection,
    handlers: ReturnType<typeof tallyHandlers>,
    options?: AmqpRpcServerOptions,
  ): Promise<AmqpRpcServer>;
}

const TRANSPORTS = ["grpc", "amqp"] as const;
type TransportName = (typeof TRANSPORTS)[number];
const KINDS = ["unary", "server", "client", "bidi"] as const;
type Kind = (typeof KINDS)[number];

const requestQueue = uniqueName("grabbit.test.tally");
const log = new CallLog();
const handlers = tallyHandlers(log);
const grpcServer = new GrpcServer();
const clients = {} as Record<TransportName, TallyClient>;
let connection: AmqpConnection | undefined;
let amqpServer: AmqpRpcServer | undefined;

beforeAll(async () => {
  const dir = protoModule({ "tally/v1/tally.proto": tallyProto(requestQueue) });
  const generated = bufGenerate(
    dir,
    `version: v2
plugins:
  - local: protoc-gen-ts_proto
    out: gen
    strategy: all
    opt: [outputServices=none, esModuleInterop=true, importSuffix=.js, env=node]
  - local: ["node", "${REPO}/bin/protoc-gen-grabbit.js"]
    out: gen
    strategy: all
`,
  );
  expect(generated.stderr).toBe("");
  const out = join(dir, "gen");
  // The generated code compiles (strict, NodeNext), the handler object is a full TallyHandlers, and
  // the module has the shape the test imports it as.
  const tally = relative(out, join(REPO, "test/streams/tally.js"));
  writeFileSync(
    join(out, "check.ts"),
    `import * as generated from "./tally/v1/tally.grabbit.js";
import type { TallyHandlers } from "./tally/v1/tally.grabbit.js";
import { CallLog, tallyHandlers, type TallyClient } from "${tally}";
export const full: TallyHandlers = tallyHandlers(new CallLog());
export const client: TallyClient = generated.createTallyGrpcClient("127.0.0.1:1");
export const helpers: [typeof generated.addTallyGrpcService, typeof generated.serveTallyAmqp] = [generated.addTallyGrpcService, generated.serveTallyAmqp];
`,
  );
  expect(typeCheck(out, { files: ["check.ts"] })).toBe("");

  const g = (await import(
    pathToFileURL(join(out, "tally/v1/tally.grabbit.ts")).href
  )) as TallyModule;
  g.addTallyGrpcService(grpcServer, handlers);
  const port = await grpcServer.listen("127.0.0.1:0");
  connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "streams-both-transports" });
  amqpServer = await g.serveTallyAmqp(connection, handlers);
  clients.grpc = g.createTallyGrpcClient(`127.0.0.1:${port}`);
  clients.amqp = g.createTallyAmqpClient(connection);
});

afterAll(async () => {
  await Promise.allSettled(Object.values(clients).map((c) => c.close()));
  await amqpServer?.close();
  await grpcServer.close({ graceMs: 1000 });
  if (connection !== undefined) {
    const channel = await (await connection.waitForSession()).createChannel();
    await channel.deleteQueue(requestQueue).catch(() => {});
    await channel.deleteQueue(`${requestQueue}.dlq`).catch(() => {});
    await channel.close().catch(() => {});
    await connection.close();
  }
});

// ---- calling any kind the same way ------------------------------------------------------------

/** The items a client sends for `ask`: n = 1..count (or on and on), item `failAfter + 1` asking the handler to fail. */
async function* itemsFor(ask: Ask, gapMs = 0): AsyncGenerator<Item> {
  for (let n = 1; ask.endless || n <= ask.count; n++) {
    yield { n, text: `item ${n}`, fail: ask.failAfter > 0 && n === ask.failAfter + 1 };
    if (gapMs > 0 || ask.endless) await new Promise((r) => setTimeout(r, Math.max(gapMs, 5)));
  }
}

interface Outcome {
  /** The unary or client-streaming response, or the stream's messages. */
  result: unknown;
  /** What the caller saw, in order: "headers", "message" per stream message, "trailers". */
  events: string[];
  headers: Metadata | undefined;
  trailers: Metadata | undefined;
  error: StatusError | undefined;
}

/**
 * Makes one call of `kind` with `ask` through `client`, recording the callbacks and messages in
 * order. `onMessage` sees each stream message as it arrives (to cancel mid-stream).
 */
async function call(
  client: TallyClient,
  kind: Kind,
  ask: Ask,
  options: CallOptions = {},
  onMessage?: (count: number) => void,
): Promise<Outcome> {
  const outcome: Outcome = {
    result: undefined,
    events: [],
    headers: undefined,
    trailers: undefined,
    error: undefined,
  };
  const opts: CallOptions = {
    ...options,
    onHeaders: (m) => {
      outcome.events.push("headers");
      outcome.headers = m;
    },
    onTrailers: (m) => {
      outcome.events.push("trailers");
      outcome.trailers = m;
    },
  };
  const messages: Item[] = [];
  const read = async (stream: AsyncIterable<Item>) => {
    outcome.result = messages;
    for await (const m of stream) {
      outcome.events.push("message");
      messages.push(m);
      onMessage?.(messages.length);
    }
  };
  try {
    if (kind === "unary") outcome.result = await client.get(ask, opts);
    else if (kind === "server") await read(client.count(ask, opts));
    else if (kind === "client") outcome.result = await client.sum(itemsFor(ask), opts);
    else await read(client.chat(itemsFor(ask), opts));
  } catch (err) {
    outcome.error =
      err instanceof StatusError
        ? err
        : new StatusError(Code.UNKNOWN, `not a StatusError: ${String(err)}`);
  }
  return outcome;
}

/** CallOptions that name the call for the handlers' log. */
function named(id: string, extra: CallOptions = {}): CallOptions {
  return { ...extra, metadata: { ...extra.metadata, [CALL_HEADER]: id } };
}

const plain: Ask = { count: 0, failAfter: 0, endless: false };

/** What each kind answers to count = 5, as the handlers compute it. */
function expectedResult(kind: Kind): unknown {
  const items = [1, 2, 3, 4, 5];
  switch (kind) {
    case "unary":
      return { n: 5, text: "got 5", fail: false };
    case "server":
      return items.map((n) => ({ n, text: `item ${n}`, fail: false }));
    case "client":
      return { count: 5, sum: 15, texts: items.map((n) => `item ${n}`).join(",") };
    case "bidi":
      return items.map((n) => ({ n: n * 2, text: `ITEM ${n}`, fail: false }));
  }
}

// ---- the cases ----------------------------------------------------------------------------------

describe("every call kind gives the same results on both transports", () => {
  it.each(KINDS)("%s", async (kind) => {
    const outcomes: Record<string, Outcome> = {};
    for (const transport of TRANSPORTS) {
      const id = uniqueName(`${kind}-${transport}`);
      outcomes[transport] = await call(clients[transport], kind, { ...plain, count: 5 }, named(id));
      expect(outcomes[transport]!.error, transport).toBeUndefined();
      expect(outcomes[transport]!.result, transport).toEqual(expectedResult(kind));
      // The same handler object served both: its log names the transport of each call.
      expect(log.get(id)?.transport).toBe(transport);
      expect(
        log.get(id)?.aborted,
        `${transport}: a call that ended well does not abort its handler`,
      ).toBeUndefined();
    }
    expect(outcomes.amqp!.result).toEqual(outcomes.grpc!.result);
  });

  it.each(TRANSPORTS)("%s: a long server stream arrives whole and in order", async (transport) => {
    const outcome = await call(
      clients[transport],
      "server",
      { ...plain, count: 2_000 },
      named(uniqueName("long")),
    );
    expect(outcome.error).toBeUndefined();
    expect((outcome.result as Item[]).map((m) => m.n)).toEqual(
      Array.from({ length: 2_000 }, (_, i) => i + 1),
    );
  });
});

describe("response headers and trailers on every call kind", () => {
  for (const transport of TRANSPORTS) {
    for (const kind of KINDS) {
      it(`${transport} ${kind}: responseHeaders go with the first message, trailers with the end`, async () => {
        const outcome = await call(
          clients[transport],
          kind,
          { ...plain, count: 3 },
          named(uniqueName("headers")),
        );
        expect(outcome.error).toBeUndefined();
        expect(outcome.headers).toMatchObject({ "x-kind": kind });
        expect(outcome.headers).not.toHaveProperty("x-early");
        expect(outcome.trailers).toMatchObject({ "x-seen": "3" });
        expectOrder(kind, outcome.events);
      });

      it(`${transport} ${kind}: sendHeaders() sends them before anything else`, async () => {
        const outcome = await call(
          clients[transport],
          kind,
          { ...plain, count: 3 },
          named(uniqueName("early"), { metadata: { [HEADERS_HEADER]: "early" } }),
        );
        expect(outcome.error).toBeUndefined();
        expect(outcome.headers).toMatchObject({ "x-kind": kind, "x-early": "1" });
        expect(outcome.trailers).toMatchObject({ "x-seen": "3" });
        expectOrder(kind, outcome.events);
      });
    }
  }
});

/**
 * Headers once, before any message; the messages (3 on a stream); the trailers once. Not when the
 * trailers come against the messages: neither transport waits for the reader to take the last
 * message before it reports them (grpc-js reports the status when it arrives, as AMQP does the
 * `end` frame), so a slow reader may see them first on either.
 */
function expectOrder(kind: Kind, events: string[]): void {
  const messages = kind === "server" || kind === "bidi" ? 3 : 0;
  expect(events[0]).toBe("headers");
  expect(events.filter((e) => e === "headers")).toHaveLength(1);
  expect(events.filter((e) => e === "message")).toHaveLength(messages);
  expect(events.filter((e) => e === "trailers")).toHaveLength(1);
}

describe("the caller cancels mid-call: the handler's signal aborts", () => {
  // Over gRPC a cancelling grpc-js client half-closes before it resets the stream: the server
  // confirms a half-close before the handler's loop ends (runtime/src/grpc/half-close.ts).
  for (const transport of TRANSPORTS) {
    for (const kind of KINDS) {
      it(`${transport} ${kind}`, async () => {
        const id = uniqueName("cancel");
        const controller = new AbortController();
        // Cancel once the call is well under way: the handler running (unary), messages flowing.
        const underWay = () => {
          const record = log.get(id);
          return record !== undefined && (kind === "unary" || record.progress >= 3);
        };
        const watcher =
          kind === "unary" || kind === "client"
            ? eventually(underWay, `the ${kind} call under way`).then(() => controller.abort())
            : undefined;
        const outcome = await call(
          clients[transport],
          kind,
          { ...plain, endless: true },
          named(id, { signal: controller.signal, timeoutMs: 60_000 }),
          (count) => {
            if (count === 3) controller.abort();
          },
        );
        await watcher;
        expect(outcome.error?.code, outcome.error?.message).toBe(Code.CANCELLED);
        await eventually(
          () => log.get(id)?.aborted !== undefined,
          `the ${transport} ${kind} handler's signal to abort`,
          10_000,
        );
        expect(log.get(id)!.aborted).toMatchObject({ code: Code.CANCELLED });
      });
    }
  }
});

describe("the server fails mid-stream: the caller gets its status and trailers after what was sent", () => {
  for (const transport of TRANSPORTS) {
    for (const kind of KINDS) {
      it(`${transport} ${kind}`, async () => {
        const outcome = await call(
          clients[transport],
          kind,
          { count: 5, failAfter: 2, endless: false },
          named(uniqueName("fail")),
        );
        expect(outcome.error?.code, outcome.error?.message).toBe(Code.FAILED_PRECONDITION);
        expect(outcome.error?.rawMessage).toBe(
          `stopped as planned at message ${kind === "unary" ? 0 : 3}`,
        );
        expect(outcome.trailers).toMatchObject({ "x-why": "planned" });
        if (kind === "server") expect((outcome.result as Item[]).map((m) => m.n)).toEqual([1, 2]);
        if (kind === "bidi") expect((outcome.result as Item[]).map((m) => m.n)).toEqual([2, 4]);
        expect(outcome.events.filter((e) => e === "trailers")).toHaveLength(1);
      });
    }
  }
});

describe("a deadline mid-stream: DEADLINE_EXCEEDED for the caller, the handler's signal aborts", () => {
  for (const transport of TRANSPORTS) {
    for (const kind of KINDS) {
      it(`${transport} ${kind}`, async () => {
        const id = uniqueName("deadline");
        const outcome = await call(
          clients[transport],
          kind,
          { ...plain, endless: true },
          named(id, { timeoutMs: 700 }),
        );
        expect(outcome.error?.code, outcome.error?.message).toBe(Code.DEADLINE_EXCEEDED);
        // Mid-stream: messages had gone through before the deadline.
        if (kind === "server" || kind === "bidi")
          expect((outcome.result as Item[]).length).toBeGreaterThan(0);
        await eventually(
          () => log.get(id)?.aborted !== undefined,
          `the ${transport} ${kind} handler's signal to abort`,
          10_000,
        );
        if (kind !== "unary") expect(log.get(id)!.progress).toBeGreaterThan(0);
        expect(log.get(id)!.aborted).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
      });
    }
  }
});
