// Response headers (gRPC initial metadata) and trailers: gRPC's interop `custom_metadata` case
// against a server built on the runtime, then every call kind through grabbit's client
// (onHeaders / onTrailers), sendHeaders ahead of a stream's first message, and its misuse.
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Code,
  currentCallContext,
  StatusError,
  type CallOptions,
  type HandlerContext,
  type Interceptor,
  type Metadata,
  type ServiceDesc,
} from "@grabbit/runtime";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import { collect, fromArray, jsonMethod, Probe, statusOf, type Req, type Res } from "./fixtures.js";
import {
  ECHO_INITIAL,
  ECHO_TRAILING_BIN,
  InteropTestService,
  interopHandlers,
  SimpleRequestType,
  SimpleResponseType,
  StreamingOutputCallRequestType,
  StreamingOutputCallResponseType,
  type SimpleResponse,
  type StreamingOutputCallResponse,
} from "./interop.js";

describe("interop custom_metadata, raw grpc-js client against a grabbit server", () => {
  const INITIAL_VALUE = "test_initial_metadata_value";
  const TRAILING_VALUE = Buffer.from([0xab, 0xab, 0xab]);
  let server: GrpcServer;
  let client: grpc.Client;

  beforeAll(async () => {
    server = new GrpcServer().add(InteropTestService, interopHandlers);
    client = new grpc.Client(
      `127.0.0.1:${await server.listen()}`,
      grpc.credentials.createInsecure(),
    );
  });
  afterAll(async () => {
    client.close();
    await server.close({ graceMs: 1000 });
  });

  function echoMetadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set(ECHO_INITIAL, INITIAL_VALUE);
    metadata.set(ECHO_TRAILING_BIN, TRAILING_VALUE);
    return metadata;
  }

  const serialize = (codec: { encode(m: never): Uint8Array }) => (value: unknown) =>
    Buffer.from(codec.encode(value as never));

  it("echoes the initial value as a header and the binary one as a trailer on UnaryCall", async () => {
    let headers: grpc.Metadata | undefined;
    let response: SimpleResponse | undefined;
    const status = await new Promise<grpc.StatusObject>((resolve, reject) => {
      const call = client.makeUnaryRequest(
        InteropTestService.methods.unaryCall.path,
        serialize(SimpleRequestType),
        (bytes: Buffer) => SimpleResponseType.decode(bytes),
        { responseSize: 314159, payload: { type: 0, body: new Uint8Array(271828) } },
        echoMetadata(),
        (err, value) => {
          if (err) reject(err);
          response = value;
        },
      );
      call.on("metadata", (md) => (headers = md));
      call.on("status", resolve);
    });
    expect(status.code).toBe(grpc.status.OK);
    expect(response?.payload?.body.length).toBe(314159);
    expect(headers?.get(ECHO_INITIAL)).toEqual([INITIAL_VALUE]);
    expect(headers?.get(ECHO_TRAILING_BIN)).toEqual([]);
    expect(status.metadata.get(ECHO_TRAILING_BIN)).toEqual([TRAILING_VALUE]);
    expect(status.metadata.get(ECHO_INITIAL)).toEqual([]);
  });

  it("echoes both on FullDuplexCall, the headers before any request is written", async () => {
    const call = client.makeBidiStreamRequest(
      InteropTestService.methods.fullDuplexCall.path,
      serialize(StreamingOutputCallRequestType),
      (bytes: Buffer) => StreamingOutputCallResponseType.decode(bytes),
      echoMetadata(),
    );
    const responses: StreamingOutputCallResponse[] = [];
    call.on("data", (message: StreamingOutputCallResponse) => responses.push(message));
    const statusArrived = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("error", () => {}); // the status event carries the same failure
    // The handler calls sendHeaders() before reading: they arrive with nothing written yet.
    const headers = await new Promise<grpc.Metadata>((resolve) => call.once("metadata", resolve));
    expect(headers.get(ECHO_INITIAL)).toEqual([INITIAL_VALUE]);
    call.write({ responseSizes: [314159], payload: { type: 0, body: new Uint8Array(271828) } });
    call.end();
    const status = await statusArrived;
    expect(status.code).toBe(grpc.status.OK);
    expect(responses.map((r) => r.payload?.body.length)).toEqual([314159]);
    expect(status.metadata.get(ECHO_TRAILING_BIN)).toEqual([TRAILING_VALUE]);
  });
});

// A service whose every method sets the response header `x-kind` and the trailer `x-end`.
const SERVICE = "test.v1.Headers";
const HeadersService = {
  typeName: SERVICE,
  transports: ["grpc"],
  methods: {
    get: jsonMethod(SERVICE, "Get", "unary"),
    list: jsonMethod(SERVICE, "List", "server_streaming"),
    collect: jsonMethod(SERVICE, "Collect", "client_streaming"),
    chat: jsonMethod(SERVICE, "Chat", "bidi_streaming"),
    fail: jsonMethod(SERVICE, "Fail", "unary"),
    failStream: jsonMethod(SERVICE, "FailStream", "server_streaming"),
    early: jsonMethod(SERVICE, "Early", "server_streaming"),
    twice: jsonMethod(SERVICE, "Twice", "unary"),
    late: jsonMethod(SERVICE, "Late", "server_streaming"),
    badHeader: jsonMethod(SERVICE, "BadHeader", "unary"),
    keep: jsonMethod(SERVICE, "Keep", "unary"),
  },
} satisfies ServiceDesc;
const M = HeadersService.methods;

function mark(ctx: HandlerContext, kind: string): void {
  ctx.responseHeaders["x-kind"] = kind;
  ctx.responseMetadata["x-end"] = kind;
}

function describeError(err: unknown): string {
  return err instanceof StatusError ? `${Code[err.code]}: ${err.rawMessage}` : String(err);
}

const gates = new Map<string, Probe<void>>();
/** The contexts of finished Keep calls, by request text. */
const kept = new Map<string, Probe<HandlerContext>>();

const handlers = {
  async get(req: Req, ctx: HandlerContext): Promise<Res> {
    mark(ctx, "unary");
    return { text: req.text };
  },
  async *list(req: Req, ctx: HandlerContext): AsyncIterable<Res> {
    mark(ctx, "server");
    for (let n = 0; n < (req.n ?? 0); n++) yield { n };
  },
  async collect(reqs: AsyncIterable<Req>, ctx: HandlerContext): Promise<Res> {
    mark(ctx, "client");
    let n = 0;
    for await (const _ of reqs) n++;
    return { n };
  },
  async *chat(reqs: AsyncIterable<Req>, ctx: HandlerContext): AsyncIterable<Res> {
    mark(ctx, "bidi");
    for await (const req of reqs) yield { text: req.text };
  },
  async fail(req: Req, ctx: HandlerContext): Promise<Res> {
    if (req.text !== "bare") mark(ctx, "fail");
    throw new StatusError(Code.ABORTED, "refused", { metadata: { "x-reason": "because" } });
  },
  async *failStream(_req: Req, ctx: HandlerContext): AsyncIterable<Res> {
    mark(ctx, "failStream");
    yield { n: 0 };
    throw new StatusError(Code.DATA_LOSS, "lost the rest");
  },
  async *early(req: Req, ctx: HandlerContext): AsyncIterable<Res> {
    ctx.sendHeaders({ "x-early": "now" });
    await gates.get(req.text!)!.promise;
    yield { n: 0 };
  },
  async twice(_req: Req, ctx: HandlerContext): Promise<Res> {
    ctx.sendHeaders({ "x-first": "1" });
    try {
      ctx.sendHeaders({ "x-second": "2" });
      return { text: "the second sendHeaders passed" };
    } catch (err) {
      return { text: describeError(err) };
    }
  },
  async *late(_req: Req, ctx: HandlerContext): AsyncIterable<Res> {
    ctx.responseHeaders["x-before"] = "yes";
    yield { n: 0 };
    // Too late for both: the headers went out with the message above.
    ctx.responseHeaders["x-after"] = "ignored";
    try {
      ctx.sendHeaders();
      yield { text: "sendHeaders after a message passed" };
    } catch (err) {
      yield { text: describeError(err) };
    }
  },
  async badHeader(req: Req, ctx: HandlerContext): Promise<Res> {
    if (req.text === "send") {
      try {
        ctx.sendHeaders({ "not a header": "x" });
        return { text: "sent" };
      } catch (err) {
        // Nothing was sent: the headers can still go out with the response.
        ctx.responseHeaders["x-fixed"] = "yes";
        return { text: describeError(err) };
      }
    }
    ctx.responseHeaders["not a header"] = "x";
    return { text: "unreachable" };
  },
  async keep(req: Req, ctx: HandlerContext): Promise<Res> {
    kept.get(req.text!)!.resolve(ctx);
    return {};
  },
};

/** CallOptions whose hooks record what arrives, in order. */
function recorder() {
  const events: string[] = [];
  const seen: { headers?: Metadata; trailers?: Metadata; merged?: Metadata } = {};
  const options: CallOptions = {
    onHeaders: (md) => {
      events.push("headers");
      seen.headers = md;
    },
    onTrailers: (md) => {
      events.push("trailers");
      seen.trailers = md;
    },
    onResponseMetadata: (md) => (seen.merged = md),
  };
  return { events, seen, options };
}

/** Reads a stream, noting each message among the recorder's events. */
async function drain<T>(stream: AsyncIterable<T>, events: string[]): Promise<T[]> {
  const out: T[] = [];
  for await (const message of stream) {
    events.push("message");
    out.push(message);
  }
  return out;
}

// A server interceptor may add response headers through the call context (it runs inside it);
// a client interceptor that passes on a spread copy of the request keeps the caller's hooks.
const headerFromInterceptor: Interceptor = (next) => async (req) => {
  currentCallContext()!.responseHeaders["x-interceptor"] = req.method.name;
  return next(req);
};
const copyRequest: Interceptor = (next) => (req) => next({ ...req });

for (const config of [
  { name: "without interceptors", server: {}, client: {} },
  {
    name: "with interceptors",
    server: { interceptors: [headerFromInterceptor] },
    client: { interceptors: [copyRequest] },
  },
]) {
  describe(`response headers and trailers, ${config.name}`, () => {
    let server: GrpcServer;
    let client: GrpcTransport;
    const intercepted = config.name === "with interceptors";

    beforeAll(async () => {
      server = new GrpcServer(config.server).add(HeadersService, handlers);
      client = new GrpcTransport(`127.0.0.1:${await server.listen()}`, config.client);
    });
    afterAll(async () => {
      client.close();
      await server.close({ graceMs: 1000 });
    });

    /** The headers carry x-kind (and the interceptor's), never the trailer; the trailers the reverse. */
    function expectSplit(
      seen: ReturnType<typeof recorder>["seen"],
      kind: string,
      method: string,
    ): void {
      expect(seen.headers?.["x-kind"]).toBe(kind);
      expect(seen.headers?.["x-end"]).toBeUndefined();
      expect(seen.headers?.["x-interceptor"]).toBe(intercepted ? method : undefined);
      expect(seen.trailers?.["x-end"]).toBe(kind);
      expect(seen.trailers?.["x-kind"]).toBeUndefined();
    }

    it("unary", async () => {
      const { events, seen, options } = recorder();
      expect((await client.unary(M.get, { text: "hi" }, options)).text).toBe("hi");
      expect(events).toEqual(["headers", "trailers"]);
      expectSplit(seen, "unary", "Get");
      // onResponseMetadata keeps seeing both, merged.
      expect(seen.merged).toMatchObject({ "x-kind": "unary", "x-end": "unary" });
    });

    it("server streaming: the headers before the first message", async () => {
      const { events, seen, options } = recorder();
      expect(await drain(client.serverStream(M.list, { n: 3 }, options), events)).toHaveLength(3);
      expect(events[0]).toBe("headers");
      expect(events.filter((e) => e === "headers")).toHaveLength(1);
      expect(events.filter((e) => e === "trailers")).toHaveLength(1);
      expectSplit(seen, "server", "List");
      expect(seen.merged).toMatchObject({ "x-kind": "server", "x-end": "server" });
    });

    it("client streaming", async () => {
      const { events, seen, options } = recorder();
      expect((await client.clientStream(M.collect, fromArray<Req>([{}, {}]), options)).n).toBe(2);
      expect(events).toEqual(["headers", "trailers"]);
      expectSplit(seen, "client", "Collect");
    });

    it("bidirectional streaming", async () => {
      const { events, seen, options } = recorder();
      const replies = await drain(
        client.bidiStream(M.chat, fromArray<Req>([{ text: "a" }, { text: "b" }]), options),
        events,
      );
      expect(replies.map((r) => r.text)).toEqual(["a", "b"]);
      expect(events[0]).toBe("headers");
      expect(events.filter((e) => e === "trailers")).toHaveLength(1);
      expectSplit(seen, "bidi", "Chat");
    });

    it("a failed unary call still delivers its headers, and its trailers with the error's", async () => {
      const { events, seen, options } = recorder();
      const err = await statusOf(client.unary(M.fail, {}, options));
      expect(err.code).toBe(Code.ABORTED);
      expect(events).toEqual(["headers", "trailers"]);
      expectSplit(seen, "fail", "Fail");
      expect(seen.trailers?.["x-reason"]).toBe("because");
      expect(err.metadata["x-end"]).toBe("fail");
    });

    it("a failed stream delivers its headers first and its trailers with the status", async () => {
      const { events, seen, options } = recorder();
      const err = await statusOf(drain(client.serverStream(M.failStream, {}, options), events));
      expect(err.code).toBe(Code.DATA_LOSS);
      expect(events).toEqual(["headers", "message", "trailers"]);
      expectSplit(seen, "failStream", "FailStream");
    });

    it("a status without any headers (trailers-only) calls onTrailers alone", async () => {
      const { events, seen, options } = recorder();
      const err = await statusOf(client.unary(M.fail, { text: "bare" }, options));
      expect(err.code).toBe(Code.ABORTED);
      if (intercepted) {
        // The interceptor's header makes the server send headers before the status.
        expect(events).toEqual(["headers", "trailers"]);
      } else {
        expect(events).toEqual(["trailers"]);
      }
      expect(seen.trailers?.["x-reason"]).toBe("because");
    });

    it("sendHeaders before a long stream: the headers arrive before the first message is produced", async () => {
      const gate = new Probe<void>();
      const id = `early-${config.name}`;
      gates.set(id, gate);
      const headersArrived = new Probe<Metadata>();
      const stream = client
        .serverStream(M.early, { text: id }, { onHeaders: (md) => headersArrived.resolve(md) })
        [Symbol.asyncIterator]();
      const first = stream.next(); // starts the call
      // The handler waits at the gate until the test has seen the headers: they cannot ride on a message.
      expect((await headersArrived.promise)["x-early"]).toBe("now");
      gate.resolve();
      expect((await first).value).toEqual({ n: 0 });
      expect((await stream.next()).done).toBe(true);
    });

    it("a second sendHeaders throws FAILED_PRECONDITION and sends nothing more", async () => {
      const { seen, options } = recorder();
      const res = await client.unary(M.twice, {}, options);
      expect(res.text).toMatch(
        /^FAILED_PRECONDITION: sendHeaders was already called for \/test\.v1\.Headers\/Twice/,
      );
      expect(seen.headers?.["x-first"]).toBe("1");
      expect(seen.headers?.["x-second"]).toBeUndefined();
    });

    it("sendHeaders after the first message throws FAILED_PRECONDITION; later header changes are ignored", async () => {
      const { events, seen, options } = recorder();
      const replies = await drain(client.serverStream(M.late, {}, options), events);
      expect(replies[1]?.text).toMatch(
        /^FAILED_PRECONDITION: the response headers of \/test\.v1\.Headers\/Late went out with its first response message/,
      );
      expect(seen.headers?.["x-before"]).toBe("yes");
      expect(seen.headers?.["x-after"]).toBeUndefined();
    });

    it("sendHeaders after the call ended throws FAILED_PRECONDITION", async () => {
      const id = `keep-${config.name}`;
      kept.set(id, new Probe());
      await client.unary(M.keep, { text: id });
      const ctx = await kept.get(id)!.promise;
      let error: unknown;
      try {
        ctx.sendHeaders({ "x-too-late": "1" });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(StatusError);
      expect((error as StatusError).code).toBe(Code.FAILED_PRECONDITION);
      expect((error as StatusError).rawMessage).toMatch(/has ended/);
    });

    it("headers gRPC cannot carry fail the call with INTERNAL, or throw from sendHeaders before anything is sent", async () => {
      const err = await statusOf(client.unary(M.badHeader, {}));
      expect(err.code).toBe(Code.INTERNAL);
      expect(err.rawMessage).toMatch(
        /response headers of \/test\.v1\.Headers\/BadHeader cannot be sent.*not a header/,
      );
      const { seen, options } = recorder();
      const res = await client.unary(M.badHeader, { text: "send" }, options);
      expect(res.text).toMatch(/^INTERNAL: the response headers .* cannot be sent/);
      expect(seen.headers?.["x-fixed"]).toBe("yes");
    });

    it("a hook that throws fails the call with its error", async () => {
      const err = await statusOf(
        client.unary(
          M.get,
          {},
          {
            onHeaders: () => {
              throw new StatusError(Code.FAILED_PRECONDITION, "unexpected headers");
            },
          },
        ),
      );
      expect(err.code).toBe(Code.FAILED_PRECONDITION);
      expect(err.rawMessage).toBe("unexpected headers");
      const streamErr = await statusOf(
        collect(
          client.serverStream(
            M.list,
            { n: 2 },
            {
              onTrailers: () => {
                throw new Error("bad trailers");
              },
            },
          ),
        ),
      );
      expect(streamErr.rawMessage).toBe("bad trailers");
    });
  });
}
