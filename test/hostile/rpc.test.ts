// Hostile traffic at both ends of RPC over RabbitMQ, sent with plain amqplib so nothing tidies it:
// - at the server: random bodies, unknown/missing/mistyped rpc-method, nonsense rpc-timeout-ms,
//   missing reply_to or correlation_id, oversized bodies, handlers that throw;
// - at the client: replies with bogus rpc-status values, missing or wrong correlation ids,
//   undecodable or oversized bodies (an unmatched reply is followed by the real one, which must win).
// Every request must end as the status the wire contract gives it (or in the DLQ when it has no
// reply_to); every call must settle with a decoded reply or a clear StatusError, none may hang.
import amqp from "amqplib";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import { AmqpConnection, AmqpRpcTransport, serveAmqp, HEADER_ERROR } from "@grabbit/runtime/amqp";
import { AMQP_URL } from "../support/broker.js";
import { EchoType, echoService, type Echo } from "../amqp-rpc/fixture.js";
import { runs, tally } from "./support.js";

const LIMIT = 2048;
let conn: AmqpConnection;
let raw: amqp.ChannelModel;
const queues: string[] = [];
const errors: Error[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({
    urls: AMQP_URL,
    name: "hostile-rpc-test",
    onError: (e) => errors.push(e),
  });
  raw = await amqp.connect(AMQP_URL);
  raw.on("error", () => {});
});
afterAll(async () => {
  const ch = await raw.createChannel();
  for (const q of queues) await ch.deleteQueue(q).catch(() => {});
  await raw.close();
  await conn.close();
});

const codeArb = fc.integer({ min: 1, max: 16 });
const body = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        fc.string({ maxLength: 30 }),
        fc.constant("throw"),
        codeArb.map((c) => `fail:${c}`),
      )
      .map((text) => EchoType.encode({ text, delayMs: 0 })),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: LIMIT + 1, max: LIMIT * 3 })
      .map((n) => EchoType.encode({ text: "x".repeat(n), delayMs: 0 })),
  },
);

/** A timeout header and what the server makes of it. */
const timeout = fc.oneof(
  fc.constantFrom<[unknown, "none" | "late" | "fine"]>(
    [undefined, "none"],
    ["abc", "none"],
    ["", "none"],
    [true, "none"],
    [Buffer.from("5000"), "none"],
    [{ ms: 5 }, "none"],
  ),
  fc.constantFrom<[unknown, "none" | "late" | "fine"]>(
    [0, "late"],
    [-5, "late"],
    ["-1", "late"],
    ["0", "late"],
    [-1e9, "late"],
  ),
  fc.constantFrom<[unknown, "none" | "late" | "fine"]>(
    [600_000, "fine"],
    ["900000", "fine"],
    [2 ** 40, "fine"],
  ),
);

function requestSpec(path: string, others: string[]) {
  return fc.record({
    body,
    method: fc.oneof(
      { weight: 5, arbitrary: fc.constant<unknown>(path) },
      fc.constantFrom<unknown>(...others, undefined, 42, "", "/", path.toUpperCase(), `${path}/`),
      fc.string({ maxLength: 40 }),
    ),
    timeout,
    replyTo: fc.oneof({ weight: 8, arbitrary: fc.constant(true) }, fc.constant(false)),
    correlated: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, fc.constant(false)),
  });
}
type RequestSpec = ReturnType<typeof requestSpec> extends fc.Arbitrary<infer S> ? S : never;

/** The status the wire contract gives a request, or "dlq". */
function expectedStatus(r: RequestSpec, path: string): Code | "dlq" {
  if (!r.replyTo) return "dlq";
  const method =
    typeof r.method === "string"
      ? r.method
      : typeof r.method === "number"
        ? String(r.method)
        : undefined;
  if (method !== path) return Code.UNIMPLEMENTED;
  if (r.timeout[1] === "late") return Code.DEADLINE_EXCEEDED;
  if (r.body.length > LIMIT) return Code.RESOURCE_EXHAUSTED;
  let req: Echo;
  try {
    req = EchoType.decode(r.body);
  } catch {
    return Code.INVALID_ARGUMENT;
  }
  if (req.text === "throw") return Code.UNKNOWN;
  if (req.text.startsWith("fail:")) return Number(req.text.slice(5)) as Code;
  return Code.OK;
}

describe("RPC server under hostile requests", () => {
  it("every request gets the status the contract gives it, or goes to the DLQ without reply_to", async () => {
    const service = echoService();
    const q = service.amqp!.requestQueue;
    queues.push(q, `${q}.dlq`);
    const server = await serveAmqp(
      conn,
      service,
      {
        async echo(req: Echo) {
          if (req.text === "throw") throw new Error("boom");
          if (req.text.startsWith("fail:"))
            throw new StatusError(Number(req.text.slice(5)), "asked to fail");
          return req;
        },
      },
      { maxMessageBytes: LIMIT, onError: (e) => errors.push(e) },
    );
    const ch = await raw.createChannel();
    const replyQueue = (await ch.assertQueue("", { exclusive: true })).queue;
    const replies = new Map<string, amqp.ConsumeMessage>();
    const uncorrelated: amqp.ConsumeMessage[] = [];
    await ch.consume(
      replyQueue,
      (m) => {
        if (!m) return;
        if (m.properties.correlationId === undefined) uncorrelated.push(m);
        else replies.set(m.properties.correlationId, m);
      },
      { noAck: true },
    );
    const dead = new Map<string, string>();
    await ch.consume(`${q}.dlq`, (m) => {
      if (!m) return;
      dead.set(String(m.properties.messageId), String(m.properties.headers?.[HEADER_ERROR]));
      ch.ack(m);
    });

    const path = service.methods.echo.path;
    const others = [service.methods.fail.path, service.methods.watch.path, "/other.v1.Svc/Echo"];
    const byStatus: Record<string, number> = {};
    let seq = 0;
    let sent = 0;
    let uncorrelatedSent = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(requestSpec(path, others), { minLength: 1, maxLength: 20 }),
        async (batch) => {
          const ids: [string, RequestSpec][] = [];
          for (const r of batch) {
            const id = `r${seq++}`;
            ids.push([id, r]);
            const headers: Record<string, unknown> = {};
            if (r.method !== undefined) headers["rpc-method"] = r.method;
            if (r.timeout[0] !== undefined) headers["rpc-timeout-ms"] = r.timeout[0];
            ch.sendToQueue(q, Buffer.from(r.body), {
              messageId: id,
              headers,
              contentType: "application/x-protobuf",
              ...(r.replyTo ? { replyTo: replyQueue } : {}),
              ...(r.correlated ? { correlationId: id } : {}),
            });
            if (r.replyTo && !r.correlated) uncorrelatedSent++;
          }
          sent += batch.length;
          const settled = ([id, r]: [string, RequestSpec]) =>
            !r.replyTo ? dead.has(id) : !r.correlated || replies.has(id);
          const until = Date.now() + 30_000;
          while (!ids.every(settled) || uncorrelated.length < uncorrelatedSent) {
            if (Date.now() > until)
              throw new Error(
                `no answer for ${ids
                  .filter((x) => !settled(x))
                  .map(([id]) => id)
                  .join(", ")} (errors: ${errors.map((e) => e.message).join("; ")})`,
              );
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          for (const [id, r] of ids) {
            const want = expectedStatus(r, path);
            if (want === "dlq") {
              expect(dead.get(id)).toMatch(/no reply_to/);
              byStatus.dlq = (byStatus.dlq ?? 0) + 1;
              continue;
            }
            if (!r.correlated) continue;
            const reply = replies.get(id)!;
            const status = reply.properties.headers?.["rpc-status"];
            expect({ id, status }).toEqual({ id, status: want });
            if (want === Code.OK)
              expect(EchoType.decode(reply.content)).toEqual(EchoType.decode(r.body));
            else expect(String(reply.properties.headers?.["rpc-message"] ?? "")).not.toBe("");
            byStatus[Code[want]] = (byStatus[Code[want]] ?? 0) + 1;
          }
        },
      ),
      { ...runs(60), endOnFailure: true },
    );
    // Requests without a correlation id still got a reply each, with a status code in it.
    for (const m of uncorrelated)
      expect(Number.isInteger(m.properties.headers?.["rpc-status"])).toBe(true);
    byStatus.uncorrelated = uncorrelated.length;
    await server.close();
    tally("RPC server requests", sent, byStatus);
    expect(errors).toEqual([]);
  });
});

describe("RPC server: a request without reply_to whose headers cannot be copied", () => {
  it("still goes to the DLQ, with the reason and without its headers", async () => {
    const service = echoService();
    const q = service.amqp!.requestQueue;
    queues.push(q, `${q}.dlq`);
    const server = await serveAmqp(
      conn,
      service,
      { echo: async (r: Echo) => r },
      { onError: (e) => errors.push(e) },
    );
    const ch = await raw.createChannel();
    const headers = (n: number) => ({
      "rpc-method": service.methods.echo.path,
      "x-pad": "p".repeat(n),
    });
    // The largest padding amqplib will encode (its header table tops out at 64 KB): the server's copy
    // adds the reason to it, and so cannot be encoded. A failed try sends nothing.
    let lo = 60_000;
    let hi = 66_000;
    while (lo + 1 < hi) {
      const mid = (lo + hi) >> 1;
      try {
        ch.sendToQueue(`${q}.nobody-${mid}`, Buffer.alloc(0), { headers: headers(mid) });
        lo = mid;
      } catch {
        hi = mid;
      }
    }
    ch.sendToQueue(q, Buffer.from(EchoType.encode({ text: "x", delayMs: 0 })), {
      messageId: "big",
      headers: headers(lo),
    });
    const dead = await new Promise<amqp.ConsumeMessage>((resolve) => {
      void ch.consume(
        `${q}.dlq`,
        (m) => {
          if (m) resolve(m);
        },
        { noAck: true },
      );
    });
    expect(dead.properties.messageId).toBe("big");
    expect(String(dead.properties.headers?.[HEADER_ERROR])).toMatch(
      /no reply_to.*; its headers could not be copied and were dropped/,
    );
    await server.close();
    expect(errors).toEqual([]);
  });
});

/** A reply the raw server sends, and what the client must make of it. */
const replySpec = fc.record({
  correlation: fc.oneof(
    { weight: 8, arbitrary: fc.constant("right" as const) },
    fc.constantFrom("missing" as const, "wrong" as const),
  ),
  status: fc.oneof(
    fc.constantFrom<unknown>(
      undefined,
      -1,
      2.5,
      "abc",
      "",
      true,
      { code: 0 },
      Buffer.from("0"),
      [0],
    ),
    { weight: 4, arbitrary: fc.constant<unknown>(0) },
    fc.constant<unknown>("0"),
    codeArb,
    codeArb.map(String),
    fc.integer({ min: 17, max: 100_000 }),
  ),
  message: fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.constantFrom<unknown>(undefined, 7, { a: 1 }, Buffer.from("bytes")),
  ),
  body: body,
});
type ReplySpec = typeof replySpec extends fc.Arbitrary<infer S> ? S : never;

function expectedCall(r: ReplySpec): Code {
  if (r.correlation !== "right") return Code.ABORTED;
  const s = r.status;
  const n = typeof s === "number" ? s : typeof s === "string" && s !== "" ? Number(s) : NaN;
  if (!Number.isInteger(n) || n < 0) return Code.INTERNAL;
  if (n > 16) return Code.UNKNOWN;
  if (n !== 0) return n as Code;
  if (r.body.length > LIMIT) return Code.RESOURCE_EXHAUSTED;
  try {
    EchoType.decode(r.body);
  } catch {
    return Code.INTERNAL;
  }
  return Code.OK;
}

describe("RPC client under hostile replies", () => {
  it("every call settles with the reply or a clear status; bogus replies never hang or crash it", async () => {
    const service = echoService();
    const q = service.amqp!.requestQueue;
    queues.push(q);
    const ch = await raw.createChannel();
    await ch.assertQueue(q, { durable: false, autoDelete: true });
    const specs = new Map<string, ReplySpec>();
    await ch.consume(q, (m) => {
      if (!m) return;
      const spec = specs.get(EchoType.decode(m.content).text)!;
      const headers: Record<string, unknown> = {};
      if (spec.status !== undefined) headers["rpc-status"] = spec.status;
      if (spec.message !== undefined) headers["rpc-message"] = spec.message;
      const correlationId =
        spec.correlation === "right"
          ? m.properties.correlationId
          : spec.correlation === "wrong"
            ? "not-a-call-of-yours"
            : undefined;
      ch.sendToQueue(m.properties.replyTo, Buffer.from(spec.body), {
        headers,
        ...(correlationId !== undefined ? { correlationId } : {}),
      });
      // After a reply the client cannot match, the real one: the call must have ignored the first.
      if (spec.correlation !== "right") {
        ch.sendToQueue(m.properties.replyTo, Buffer.alloc(0), {
          correlationId: m.properties.correlationId,
          headers: { "rpc-status": Code.ABORTED, "rpc-message": "after a bogus reply" },
        });
      }
      ch.ack(m);
    });
    const client = new AmqpRpcTransport(conn, { maxMessageBytes: LIMIT, timeoutMs: 30_000 });
    const byStatus: Record<string, number> = {};
    let seq = 0;
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(replySpec, { minLength: 1, maxLength: 20 }), async (batch) => {
        const calls = batch.map(async (spec) => {
          const key = `c${seq++}`;
          specs.set(key, spec);
          try {
            const res = await client.unary(service.methods.echo, { text: key, delayMs: 0 });
            return { spec, code: Code.OK, res, message: "" };
          } catch (err) {
            expect(err).toBeInstanceOf(StatusError);
            return {
              spec,
              code: (err as StatusError).code,
              res: undefined,
              message: (err as StatusError).message,
            };
          }
        });
        for (const { spec, code, res, message } of await Promise.all(calls)) {
          const want = expectedCall(spec);
          expect({ code: Code[code], message }).toMatchObject({ code: Code[want] });
          if (want === Code.OK) expect(res).toEqual(EchoType.decode(spec.body));
          // INTERNAL of our own making (not a server's code 13) says what was wrong with the reply.
          if (want === Code.INTERNAL && !/^13$/.test(String(spec.status)))
            expect(message).toMatch(
              /rpc-status that is not a status code|no rpc-status header|could not decode/,
            );
          if (want === Code.UNKNOWN && Number(spec.status) > 16)
            expect(message).toMatch(/unknown status code/);
          if (spec.correlation !== "right") expect(message).toMatch(/after a bogus reply/);
          byStatus[Code[want]] = (byStatus[Code[want]] ?? 0) + 1;
        }
        tried += batch.length;
      }),
      { ...runs(60), endOnFailure: true },
    );
    expect(client.inFlight).toBe(0);
    await client.close();
    tally("RPC client replies", tried, byStatus);
    expect(errors).toEqual([]);
  }, 180_000);
});
