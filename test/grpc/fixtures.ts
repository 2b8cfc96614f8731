// Hand-built descriptors and a test service for the gRPC transport tests: messages are JSON bytes,
// so the tests need no generated code and still exercise real encode/decode on both sides.
import type {
  MessageType,
  MethodDesc,
  MethodKind,
  ServiceDesc,
  HandlerContext,
} from "@grabbit/runtime";
import { Code, StatusError } from "@grabbit/runtime";
import {
  GrpcServer,
  GrpcTransport,
  type GrpcServerOptions,
  type GrpcTransportOptions,
} from "@grabbit/runtime/grpc";

export function jsonType<T>(typeName: string): MessageType<T> {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  return {
    typeName,
    encode: (message) => encoder.encode(JSON.stringify(message)),
    decode: (bytes) => JSON.parse(decoder.decode(bytes)) as T,
  };
}

export interface Req {
  text?: string;
  n?: number;
  /** For `fail`: the status code to throw. */
  code?: number;
}
export interface Res {
  text?: string;
  n?: number;
  /** Request metadata the handler saw. */
  metadata?: Record<string, string>;
  deadline?: number | null;
  peer?: string;
  values?: Record<string, unknown>;
}

const ReqType = jsonType<Req>("test.v1.Req");
const ResType = jsonType<Res>("test.v1.Res");

/** A method of `service` (a full name such as "test.v1.Test") taking Req and answering Res, both JSON. */
export function jsonMethod(
  service: string,
  name: string,
  kind: MethodKind,
  timeoutMs?: number,
): MethodDesc<Req, Res> {
  return {
    name,
    path: `/${service}/${name}`,
    kind,
    input: ReqType,
    output: ResType,
    idempotent: false,
    ...(timeoutMs ? { timeoutMs } : {}),
  };
}

function method(name: string, kind: MethodKind, timeoutMs?: number): MethodDesc<Req, Res> {
  return jsonMethod("test.v1.Test", name, kind, timeoutMs);
}

export const TestService = {
  typeName: "test.v1.Test",
  transports: ["grpc"],
  methods: {
    echo: method("Echo", "unary"),
    fail: method("Fail", "unary"),
    wait: method("Wait", "unary"),
    waitShort: method("WaitShort", "unary", 1000),
    missing: method("Missing", "unary"),
    count: method("Count", "server_streaming"),
    sum: method("Sum", "client_streaming"),
    chat: method("Chat", "bidi_streaming"),
    failStream: method("FailStream", "server_streaming"),
  },
} satisfies ServiceDesc;

export type TestMethods = typeof TestService.methods;

/** Resolves when something happens on the server, so tests wait for events rather than for time. */
export class Probe<T = unknown> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  constructor() {
    this.promise = new Promise((resolve) => (this.resolve = resolve));
  }
}

/** Handlers whose side effects the tests observe through probes. */
export function testHandlers() {
  const probes = {
    waitStarted: new Probe<HandlerContext>(),
    waitAborted: new Probe<unknown>(),
    countStopped: new Probe<boolean>(),
  };
  const handlers = {
    async echo(req: Req, ctx: HandlerContext): Promise<Res> {
      ctx.responseMetadata["x-echo"] = req.text ?? "";
      const values: Record<string, unknown> = {};
      for (const [k, v] of ctx.values) if (typeof k === "string") values[k] = v;
      return {
        text: req.text,
        n: req.n,
        metadata: ctx.metadata,
        deadline: ctx.deadline ?? null,
        peer: ctx.peer,
        values,
      };
    },
    async fail(req: Req, ctx: HandlerContext): Promise<Res> {
      ctx.responseMetadata["x-before-fail"] = "yes";
      if (req.code === undefined) throw new Error(req.text ?? "plain failure");
      throw new StatusError(req.code, req.text ?? "failed", {
        metadata: {
          "x-reason": "because",
          "x-blob-bin": Buffer.from([0, 1, 2, 255]).toString("base64"),
        },
        details: [
          {
            typeUrl: "type.googleapis.com/google.rpc.ErrorInfo",
            value: new Uint8Array([10, 3, 102, 111, 111]),
          },
          { typeUrl: "type.googleapis.com/test.v1.Empty", value: new Uint8Array(0) },
        ],
      });
    },
    async wait(_req: Req, ctx: HandlerContext): Promise<Res> {
      probes.waitStarted.resolve(ctx);
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) return resolve();
        ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      probes.waitAborted.resolve(ctx.signal.reason);
      throw ctx.signal.reason;
    },
    async waitShort(req: Req, ctx: HandlerContext): Promise<Res> {
      return handlers.wait(req, ctx);
    },
    async *count(req: Req, ctx: HandlerContext): AsyncIterable<Res> {
      try {
        for (let i = 0; i < (req.n ?? 0); i++) {
          if (ctx.signal.aborted) return;
          yield { n: i };
        }
        ctx.responseMetadata["x-count"] = String(req.n);
        probes.countStopped.resolve(false);
      } finally {
        probes.countStopped.resolve(true);
      }
    },
    async sum(reqs: AsyncIterable<Req>, ctx: HandlerContext): Promise<Res> {
      let total = 0;
      let count = 0;
      for await (const r of reqs) {
        total += r.n ?? 0;
        count++;
      }
      ctx.responseMetadata["x-count"] = String(count);
      return { n: total, metadata: ctx.metadata };
    },
    async *chat(reqs: AsyncIterable<Req>, ctx: HandlerContext): AsyncIterable<Res> {
      for await (const r of reqs) {
        if (r.text === "boom")
          throw new StatusError(Code.ABORTED, "chat aborted", {
            metadata: { "x-last": String(r.n) },
          });
        yield { text: `re: ${r.text}`, n: r.n };
      }
      ctx.responseMetadata["x-chat"] = "done";
    },
    async *failStream(req: Req): AsyncIterable<Res> {
      for (let i = 0; i < (req.n ?? 0); i++) yield { n: i };
      throw new StatusError(Code.RESOURCE_EXHAUSTED, "no more", {
        metadata: { "x-sent": String(req.n) },
      });
    },
  };
  // `missing` is deliberately not implemented.
  return { handlers, probes };
}

export interface Harness {
  server: GrpcServer;
  port: number;
  address: string;
  client: GrpcTransport;
  probes: ReturnType<typeof testHandlers>["probes"];
  close(): Promise<void>;
}

export async function startHarness(
  options: { server?: GrpcServerOptions; client?: GrpcTransportOptions } = {},
): Promise<Harness> {
  const { handlers, probes } = testHandlers();
  const server = new GrpcServer(options.server).add(TestService, handlers);
  const port = await server.listen();
  const address = `127.0.0.1:${port}`;
  const client = new GrpcTransport(address, options.client);
  return {
    server,
    port,
    address,
    client,
    probes,
    async close() {
      client.close();
      await server.close({ graceMs: 1000 });
    },
  };
}

export async function* fromArray<T>(items: T[]): AsyncIterable<T> {
  for (const item of items) yield item;
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** The StatusError a promise rejects with (fails the test if it resolves or rejects otherwise). */
export async function statusOf(promise: Promise<unknown>): Promise<StatusError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof StatusError) return err;
    throw new Error(`expected a StatusError, got ${String(err)}`, { cause: err });
  }
  throw new Error("expected the call to fail");
}
