// The end of a request stream on the gRPC server: a client's half-close ends the handler's loop
// cleanly; a cancellation or a deadline (which a grpc-js client sends as END_STREAM followed by
// RST_STREAM) makes the loop throw CANCELLED or DEADLINE_EXCEEDED and aborts ctx.signal, never
// passes for a complete upload. Real grpc-js client and server on loopback; the tests wait for
// events, never for time.
import { afterEach, describe, expect, it } from "vitest";
import { Code, StatusError, type HandlerContext, type ServiceDesc } from "@grabbit/runtime";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import { jsonMethod, Probe, statusOf, type Req, type Res } from "./fixtures.js";

const HalfCloseService = {
  typeName: "test.v1.HalfClose",
  transports: ["grpc"],
  methods: {
    upload: jsonMethod("test.v1.HalfClose", "Upload", "client_streaming"),
    talk: jsonMethod("test.v1.HalfClose", "Talk", "bidi_streaming"),
  },
} satisfies ServiceDesc;
const M = HalfCloseService.methods;

/** What one call's handler saw, keyed by the x-id request header. */
interface CallRecord {
  /** Resolves once the handler has read three requests. */
  readonly three: Probe<void>;
  /** How the handler's loop over its requests came out. */
  readonly loop: Probe<
    { ended: true; count: number } | { ended: false; error: unknown; count: number }
  >;
  /** The reason ctx.signal aborted with. */
  readonly aborted: Probe<unknown>;
}

function newRecord(): CallRecord {
  return { three: new Probe(), loop: new Probe(), aborted: new Probe() };
}

function handlers(records: Map<string, CallRecord>) {
  /** Reads every request, telling the record how the loop ended. */
  async function readAll(
    requests: AsyncIterable<Req>,
    ctx: HandlerContext,
    onEach: (req: Req) => void,
  ): Promise<number> {
    const id = ctx.metadata["x-id"] ?? "";
    const record = records.get(id) ?? newRecord();
    records.set(id, record);
    ctx.signal.addEventListener("abort", () => record.aborted.resolve(ctx.signal.reason), {
      once: true,
    });
    let count = 0;
    try {
      for await (const req of requests) {
        count++;
        onEach(req);
        if (count === 3) record.three.resolve();
      }
    } catch (error) {
      record.loop.resolve({ ended: false, error, count });
      throw error;
    }
    record.loop.resolve({ ended: true, count });
    return count;
  }
  return {
    async upload(requests: AsyncIterable<Req>, ctx: HandlerContext): Promise<Res> {
      let sum = 0;
      const count = await readAll(requests, ctx, (req) => (sum += req.n ?? 0));
      return { n: sum, text: String(count) };
    },
    async *talk(requests: AsyncIterable<Req>, ctx: HandlerContext): AsyncIterable<Res> {
      // Echoes after the loop: what matters here is how the loop ends, not the replies' timing.
      const seen: number[] = [];
      await readAll(requests, ctx, (req) => seen.push(req.n ?? 0));
      for (const n of seen) yield { n };
    },
  };
}

/** Sends `count` requests, then holds the request stream open (no half-close) until `release` settles. */
async function* holdOpen(count: number, release: Promise<unknown>): AsyncIterable<Req> {
  for (let n = 1; n <= count; n++) yield { n };
  await release.catch(() => undefined);
}

async function* upTo(count: number): AsyncIterable<Req> {
  for (let n = 1; n <= count; n++) yield { n };
}

let server: GrpcServer | undefined;
let client: GrpcTransport | undefined;

afterEach(async () => {
  client?.close();
  await server?.close({ graceMs: 1000 });
  server = undefined;
  client = undefined;
});

async function start(): Promise<{ records: Map<string, CallRecord>; client: GrpcTransport }> {
  const records = new Map<string, CallRecord>();
  server = new GrpcServer().add(HalfCloseService, handlers(records));
  const port = await server.listen();
  client = new GrpcTransport(`127.0.0.1:${port}`);
  return { records, client };
}

/** The record of call `id`, made before the call so that a test can wait on it at once. */
function recordFor(records: Map<string, CallRecord>, id: string): CallRecord {
  const record = newRecord();
  records.set(id, record);
  return record;
}

/** Runs a bidi call to its end: the replies, or the status it failed with. */
async function talk(
  client: GrpcTransport,
  requests: AsyncIterable<Req>,
  options: Parameters<GrpcTransport["bidiStream"]>[2],
): Promise<{ replies: number[]; error?: StatusError }> {
  const replies: number[] = [];
  try {
    for await (const res of client.bidiStream(M.talk, requests, options))
      replies.push((res as Res).n ?? 0);
    return { replies };
  } catch (err) {
    return { replies, error: StatusError.from(err) };
  }
}

describe("the client half-closes: the handler's loop ends cleanly", () => {
  it("client streaming: every request read, the result sent, the signal never aborted", async () => {
    const { records, client } = await start();
    const record = recordFor(records, "up-half");
    const res = await client.clientStream(M.upload, upTo(5), { metadata: { "x-id": "up-half" } });
    expect(res).toEqual({ n: 15, text: "5" });
    expect(await record.loop.promise).toEqual({ ended: true, count: 5 });
    expect(await Promise.race([record.aborted.promise, "not aborted"])).toBe("not aborted");
  });

  it("bidi: every request read, the replies and an OK status sent", async () => {
    const { records, client } = await start();
    const record = recordFor(records, "bidi-half");
    const outcome = await talk(client, upTo(4), { metadata: { "x-id": "bidi-half" } });
    expect(outcome.error).toBeUndefined();
    expect(outcome.replies).toEqual([1, 2, 3, 4]);
    expect(await record.loop.promise).toEqual({ ended: true, count: 4 });
  });

  it("many calls half-closing at once on one connection all end cleanly", async () => {
    const { records, client } = await start();
    const ids = Array.from({ length: 16 }, (_, i) => `many-${i}`);
    for (const id of ids) recordFor(records, id);
    const results = await Promise.all(
      ids.map((id, i) => client.clientStream(M.upload, upTo(i + 1), { metadata: { "x-id": id } })),
    );
    expect(results.map((r) => r.n)).toEqual(ids.map((_, i) => ((i + 1) * (i + 2)) / 2));
    for (const id of ids) expect((await records.get(id)!.loop.promise).ended).toBe(true);
  });
});

describe("the client cancels mid-stream: the handler's loop throws CANCELLED and its signal aborts", () => {
  it("client streaming", async () => {
    const { records, client } = await start();
    const record = recordFor(records, "up-cancel");
    const controller = new AbortController();
    void record.three.promise.then(() => controller.abort());
    const err = await statusOf(
      client.clientStream(M.upload, holdOpen(3, record.loop.promise), {
        metadata: { "x-id": "up-cancel" },
        signal: controller.signal,
      }),
    );
    expect(err.code).toBe(Code.CANCELLED);
    const loop = await record.loop.promise;
    expect(loop.ended).toBe(false);
    expect(loop.ended ? undefined : StatusError.from(loop.error).code).toBe(Code.CANCELLED);
    expect(await record.aborted.promise).toMatchObject({ code: Code.CANCELLED });
  });

  it("bidi", async () => {
    const { records, client } = await start();
    const record = recordFor(records, "bidi-cancel");
    const controller = new AbortController();
    void record.three.promise.then(() => controller.abort());
    const outcome = await talk(client, holdOpen(3, record.loop.promise), {
      metadata: { "x-id": "bidi-cancel" },
      signal: controller.signal,
    });
    expect(outcome.error?.code).toBe(Code.CANCELLED);
    const loop = await record.loop.promise;
    expect(loop.ended).toBe(false);
    expect(loop.ended ? undefined : StatusError.from(loop.error).code).toBe(Code.CANCELLED);
    expect(await record.aborted.promise).toMatchObject({ code: Code.CANCELLED });
  });
});

describe("the deadline passes mid-stream: the handler's loop throws DEADLINE_EXCEEDED and its signal aborts", () => {
  for (const kind of ["client streaming", "bidi"] as const) {
    it(kind, async () => {
      const { records, client } = await start();
      const id = `deadline-${kind}`;
      const record = recordFor(records, id);
      const options = { metadata: { "x-id": id }, timeoutMs: 1500 };
      const requests = holdOpen(3, record.loop.promise);
      const error =
        kind === "bidi"
          ? (await talk(client, requests, options)).error
          : await statusOf(client.clientStream(M.upload, requests, options));
      expect(error?.code).toBe(Code.DEADLINE_EXCEEDED);
      const loop = await record.loop.promise;
      expect(loop.ended).toBe(false);
      expect(loop.count).toBe(3);
      expect(loop.ended ? undefined : StatusError.from(loop.error).code).toBe(
        Code.DEADLINE_EXCEEDED,
      );
      expect(await record.aborted.promise).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
    });
  }
});
