// The contract and the one handler object of test/streams/both-transports.test.ts: a service with
// every call kind, served over gRPC and RabbitMQ. The message and client types below mirror what
// ts-proto and protoc-gen-grabbit generate for the proto; the test type-checks the generated code
// against them (and this handler object against the generated TallyHandlers), so the dynamic import
// of the generated module is typed soundly.
import { Code, StatusError, type CallOptions, type HandlerContext } from "@grabbit/runtime";
import { sleep } from "../amqp-rpc/fixture.js";

/** The proto, with a request queue unique to the run so that runs sharing the broker never meet. */
export function tallyProto(requestQueue: string): string {
  return `syntax = "proto3";
package tally.v1;
import "grabbit/v1/options.proto";

// What the server side of a call does: send or expect \`count\` messages, fail after \`fail_after\`
// of them (0: never), or go on until the call ends (\`endless\`).
message Ask {
  uint32 count = 1;
  uint32 fail_after = 2;
  bool endless = 3;
}
// One message of a stream; \`fail\` asks the handler to fail when it reads this one.
message Item {
  uint32 n = 1;
  string text = 2;
  bool fail = 3;
}
message Total {
  uint32 count = 1;
  uint32 sum = 2;
  string texts = 3;
}

service Tally {
  option (grabbit.v1.service) = {
    transports: [TRANSPORT_GRPC, TRANSPORT_AMQP]
    request_queue: "${requestQueue}"
    queue_type: QUEUE_TYPE_CLASSIC
  };
  rpc Get(Ask) returns (Item);
  rpc Count(Ask) returns (stream Item);
  rpc Sum(stream Item) returns (Total);
  rpc Chat(stream Item) returns (stream Item);
}
`;
}

export interface Ask {
  count: number;
  failAfter: number;
  endless: boolean;
}
export interface Item {
  n: number;
  text: string;
  fail: boolean;
}
export interface Total {
  count: number;
  sum: number;
  texts: string;
}

/** The generated TallyClient, as the tests use it. */
export interface TallyClient {
  get(request: Ask, options?: CallOptions): Promise<Item>;
  count(request: Ask, options?: CallOptions): AsyncIterable<Item>;
  sum(requests: AsyncIterable<Item>, options?: CallOptions): Promise<Total>;
  chat(requests: AsyncIterable<Item>, options?: CallOptions): AsyncIterable<Item>;
  close(): Promise<void>;
}

/** Request metadata the handlers read: which call this is (for the log), and how to send headers. */
export const CALL_HEADER = "x-call";
export const HEADERS_HEADER = "x-headers";

/** What the handlers saw of one call, by the test's call id. */
export interface CallRecord {
  transport: string;
  /** Messages the handler sent (server, bidi) or read (client, bidi). */
  progress: number;
  /** The handler's signal's reason, once it aborted. */
  aborted: unknown;
}

export class CallLog {
  private readonly calls = new Map<string, CallRecord>();

  /** Starts the record of the call `ctx` serves (its id is the x-call header). */
  start(ctx: HandlerContext): CallRecord {
    const id = ctx.metadata[CALL_HEADER] ?? "";
    const record: CallRecord = { transport: ctx.transport, progress: 0, aborted: undefined };
    this.calls.set(id, record);
    ctx.signal.addEventListener("abort", () => (record.aborted = ctx.signal.reason), {
      once: true,
    });
    return record;
  }

  get(id: string): CallRecord | undefined {
    return this.calls.get(id);
  }
}

/**
 * Response headers on every call kind: `x-kind` always, through responseHeaders (sent with the first
 * message, or with the status when there is none), and `x-early` through an explicit sendHeaders()
 * when the caller asks with `x-headers: early`.
 */
function headers(ctx: HandlerContext, kind: string): void {
  ctx.responseHeaders["x-kind"] = kind;
  if (ctx.metadata[HEADERS_HEADER] === "early") ctx.sendHeaders({ "x-early": "1" });
}

function planned(at: number): StatusError {
  return new StatusError(Code.FAILED_PRECONDITION, `stopped as planned at message ${at}`, {
    metadata: { "x-why": "planned" },
  });
}

/** Resolves when `signal` aborts (never rejects). */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) =>
    signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true }),
  );
}

/** The one handler object both transports serve. Its type is checked against the generated TallyHandlers. */
export function tallyHandlers(log: CallLog) {
  return {
    async get(ask: Ask, ctx: HandlerContext): Promise<Item> {
      const record = log.start(ctx);
      headers(ctx, "unary");
      if (ask.endless) {
        await aborted(ctx.signal);
        throw ctx.signal.reason;
      }
      if (ask.failAfter > 0) throw planned(0);
      record.progress = 1;
      ctx.responseMetadata["x-seen"] = String(ask.count);
      return { n: ask.count, text: `got ${ask.count}`, fail: false };
    },

    async *count(ask: Ask, ctx: HandlerContext): AsyncGenerator<Item> {
      const record = log.start(ctx);
      headers(ctx, "server");
      for (let i = 1; ask.endless || i <= ask.count; i++) {
        if (ask.failAfter > 0 && i > ask.failAfter) throw planned(i);
        yield { n: i, text: `item ${i}`, fail: false };
        record.progress = i;
        if (ask.endless) await sleep(5, ctx.signal);
      }
      ctx.responseMetadata["x-seen"] = String(record.progress);
    },

    async sum(items: AsyncIterable<Item>, ctx: HandlerContext): Promise<Total> {
      const record = log.start(ctx);
      headers(ctx, "client");
      const total: Total = { count: 0, sum: 0, texts: "" };
      const texts: string[] = [];
      for await (const item of items) {
        record.progress++;
        if (item.fail) throw planned(item.n);
        total.count++;
        total.sum += item.n;
        texts.push(item.text);
      }
      total.texts = texts.join(",");
      ctx.responseMetadata["x-seen"] = String(total.count);
      return total;
    },

    async *chat(items: AsyncIterable<Item>, ctx: HandlerContext): AsyncGenerator<Item> {
      const record = log.start(ctx);
      headers(ctx, "bidi");
      for await (const item of items) {
        if (item.fail) throw planned(item.n);
        yield { n: item.n * 2, text: item.text.toUpperCase(), fail: false };
        record.progress++;
      }
      ctx.responseMetadata["x-seen"] = String(record.progress);
    },
  };
}
