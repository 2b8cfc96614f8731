// Typed RPC over a real RabbitMQ: outcomes, status codes, deadlines, cancellation, metadata and
// interceptors. No mocks; every assertion is about results, never about how long something took.
import amqp from "amqplib";
import { describe, expect, it } from "vitest";
import { Code, StatusError, type HandlerContext, type Interceptor } from "@grabbit/runtime";
import { AmqpRpcTransport, serveAmqp } from "@grabbit/runtime/amqp";
import { uniqueName } from "../support/broker.js";
import {
  EchoType,
  echoMethod,
  echoService,
  eventually,
  rpcTestBed,
  sleep,
  type Echo,
  type EchoService,
} from "./fixture.js";

const bed = rpcTestBed("rpc-test");
const { queues, closables } = bed;

type Handlers = Partial<
  Record<keyof EchoService["methods"], (req: Echo, ctx: HandlerContext) => unknown>
>;

async function serve(
  handlers: Handlers,
  options: Parameters<typeof serveAmqp>[3] = {},
  service = echoService(),
) {
  queues.push(service.amqp!.requestQueue);
  const server = await serveAmqp(bed.serverConn, service, handlers, options);
  closables.push(server);
  return { service, server };
}

function client(options: ConstructorParameters<typeof AmqpRpcTransport>[1] = {}) {
  const transport = new AmqpRpcTransport(bed.clientConn, options);
  closables.push(transport);
  return transport;
}

/** Consumes direct reply-to on a raw channel; the function returns the next reply. */
async function rawReplies(ch: amqp.Channel): Promise<() => Promise<amqp.ConsumeMessage>> {
  const queue: amqp.ConsumeMessage[] = [];
  let wake: (() => void) | undefined;
  await ch.consume(
    "amq.rabbitmq.reply-to",
    (m) => {
      if (!m) return;
      queue.push(m);
      wake?.();
    },
    { noAck: true },
  );
  return async () => {
    while (queue.length === 0) await new Promise<void>((r) => (wake = r));
    return queue.shift()!;
  };
}

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StatusError);
    return err as StatusError;
  }
  throw new Error("expected the call to fail");
}

describe("AMQP RPC", () => {
  it("calls a handler and returns its typed response", async () => {
    const { service } = await serve({
      echo: (req) => ({ text: `echo: ${req.text}`, delayMs: req.delayMs + 1 }),
    });
    const t = client();
    const res = await t.unary(service.methods.echo, { text: "hello", delayMs: 41 });
    expect(res).toEqual({ text: "echo: hello", delayMs: 42 });
    // Many at once, each gets its own reply.
    const many = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        t.unary(service.methods.echo, { text: `n${i}`, delayMs: i }),
      ),
    );
    expect(many.map((r) => r.text)).toEqual(Array.from({ length: 50 }, (_, i) => `echo: n${i}`));
    expect(t.inFlight).toBe(0);
  });

  it("carries metadata both ways", async () => {
    let seen: Record<string, string> = {};
    const { service } = await serve({
      echo: (req, ctx) => {
        seen = { ...ctx.metadata };
        ctx.responseMetadata["x-served-by"] = "server-1";
        ctx.responseMetadata["rpc-status"] = "7"; // reserved: must not override the real status
        return req;
      },
    });
    const t = client();
    let response: Record<string, string> | undefined;
    const res = await t.unary(
      service.methods.echo,
      { text: "m", delayMs: 0 },
      {
        metadata: { "X-Tenant": "acme", traceparent: "00-abc-def-01", "rpc-method": "/evil/Path" },
        onResponseMetadata: (md) => (response = md),
      },
    );
    expect(res.text).toBe("m");
    expect(seen).toEqual({ "x-tenant": "acme", traceparent: "00-abc-def-01" });
    expect(response).toEqual({ "x-served-by": "server-1" });
  });

  it("propagates a StatusError's code, message and metadata", async () => {
    const { service } = await serve({
      fail: (req, ctx) => {
        ctx.responseMetadata["x-from-ctx"] = "yes";
        throw new StatusError(Code.NOT_FOUND, `no order ${req.text}`, {
          metadata: { "x-reason": "gone" },
        });
      },
    });
    const t = client();
    let md: Record<string, string> | undefined;
    const err = await rejection(
      t.unary(
        service.methods.fail,
        { text: "7", delayMs: 0 },
        { onResponseMetadata: (m) => (md = m) },
      ),
    );
    expect(err.code).toBe(Code.NOT_FOUND);
    expect(err.rawMessage).toBe("no order 7");
    expect(err.metadata).toEqual({ "x-reason": "gone", "x-from-ctx": "yes" });
    expect(md).toEqual({ "x-reason": "gone", "x-from-ctx": "yes" });
  });

  it("turns other errors into UNKNOWN with the message and no stack", async () => {
    const { service } = await serve({
      fail: () => {
        throw new Error("database on fire");
      },
    });
    const err = await rejection(client().unary(service.methods.fail, { text: "", delayMs: 0 }));
    expect(err.code).toBe(Code.UNKNOWN);
    expect(err.rawMessage).toBe("database on fire");
    expect(err.rawMessage).not.toMatch(/\n\s+at /);
  });

  it("answers UNIMPLEMENTED for unknown methods and missing handlers, streaming ones too", async () => {
    const { service } = await serve({ echo: (req) => req });
    const t = client();
    const unknown = await rejection(
      t.unary(echoMethod(service.typeName, "NoSuchMethod"), { text: "", delayMs: 0 }),
    );
    expect(unknown.code).toBe(Code.UNIMPLEMENTED);
    expect(unknown.rawMessage).toContain("NoSuchMethod");
    const missing = await rejection(t.unary(service.methods.missing, { text: "", delayMs: 0 }));
    expect(missing.code).toBe(Code.UNIMPLEMENTED);
    // A streaming method the server object lacks: the stream's open is answered with an `end` frame.
    const iter = t
      .serverStream(service.methods.watch, { text: "", delayMs: 0 })
      [Symbol.asyncIterator]();
    await expect(iter.next()).rejects.toMatchObject({ code: Code.UNIMPLEMENTED });
    // Calling a method as another kind than its descriptor's is the caller's bug, refused before anything is sent.
    await expect(
      t.clientStream(service.methods.watch, (async function* () {})()),
    ).rejects.toMatchObject({ code: Code.INTERNAL });
    await expect(
      rejection(t.unary(service.methods.watch, { text: "", delayMs: 0 })),
    ).resolves.toMatchObject({ code: Code.INTERNAL });
  });

  it("enforces the deadline on the client: DEADLINE_EXCEEDED when no reply comes", async () => {
    // A raw consumer takes the request and never answers.
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const ch = await bed.admin.createChannel();
    await ch.assertQueue(service.amqp!.requestQueue, {
      durable: true,
      arguments: { "x-queue-type": "quorum" },
    });
    let received: amqp.ConsumeMessage | undefined;
    await ch.consume(service.amqp!.requestQueue, (m) => (received = m ?? undefined), {
      noAck: true,
    });
    const t = client();
    const err = await rejection(
      t.unary(service.methods.echo, { text: "x", delayMs: 0 }, { timeoutMs: 300 }),
    );
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    expect(received).toBeDefined();
    // The deadline travelled with the request.
    const carried = Number(received!.properties.headers!["rpc-timeout-ms"]);
    expect(carried).toBeGreaterThan(0);
    expect(carried).toBeLessThanOrEqual(300);
    expect(Number(received!.properties.expiration)).toBe(carried);
    expect(t.inFlight).toBe(0);
    await ch.close();
  });

  it("discards a reply that arrives after the call gave up", async () => {
    const service = echoService();
    queues.push(service.amqp!.requestQueue);
    const ch = await bed.admin.createChannel();
    await ch.assertQueue(service.amqp!.requestQueue, {
      durable: true,
      arguments: { "x-queue-type": "quorum" },
    });
    const held: amqp.ConsumeMessage[] = [];
    await ch.consume(
      service.amqp!.requestQueue,
      (m) => {
        if (!m) return;
        const text = EchoType.decode(m.content).text;
        if (text === "slow") held.push(m);
        else
          ch.publish(
            "",
            m.properties.replyTo,
            Buffer.from(EchoType.encode({ text: `ok ${text}`, delayMs: 0 })),
            { correlationId: m.properties.correlationId, headers: { "rpc-status": 0 } },
          );
      },
      { noAck: true },
    );
    const t = client();
    const err = await rejection(
      t.unary(service.methods.echo, { text: "slow", delayMs: 0 }, { timeoutMs: 200 }),
    );
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
    // Now answer the abandoned call, then make a fresh one: it must get its own answer.
    const late = held[0]!;
    ch.publish(
      "",
      late.properties.replyTo,
      Buffer.from(EchoType.encode({ text: "LATE", delayMs: 0 })),
      { correlationId: late.properties.correlationId, headers: { "rpc-status": 0 } },
    );
    const res = await t.unary(service.methods.echo, { text: "fresh", delayMs: 0 });
    expect(res.text).toBe("ok fresh");
    expect(t.inFlight).toBe(0);
    await ch.close();
  });

  it("enforces the deadline on the server: aborts ctx.signal and answers DEADLINE_EXCEEDED", async () => {
    let handlerSignal: AbortSignal | undefined;
    const { service } = await serve({
      slow: async (_req, ctx) => {
        handlerSignal = ctx.signal;
        await sleep(1500); // ignores the signal on purpose: the server must answer anyway
        return { text: "too late", delayMs: 0 };
      },
    });
    // A raw caller without a client-side deadline, so only the server can produce the status.
    const ch = await bed.admin.createChannel();
    const reply = await rawReplies(ch);
    ch.publish(
      "",
      service.amqp!.requestQueue,
      Buffer.from(EchoType.encode({ text: "", delayMs: 0 })),
      {
        correlationId: "c-1",
        replyTo: "amq.rabbitmq.reply-to",
        headers: { "rpc-method": service.methods.slow.path, "rpc-timeout-ms": 250 },
      },
    );
    const m = await reply();
    expect(m.properties.correlationId).toBe("c-1");
    expect(Number(m.properties.headers!["rpc-status"])).toBe(Code.DEADLINE_EXCEEDED);
    expect(handlerSignal?.aborted).toBe(true);
    expect((handlerSignal?.reason as StatusError | undefined)?.code).toBe(Code.DEADLINE_EXCEEDED);
    await ch.close();

    // Through the typed client the status is the same whichever side notices first.
    const t = client();
    const err = await rejection(
      t.unary(service.methods.slow, { text: "", delayMs: 0 }, { timeoutMs: 250 }),
    );
    expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
  });

  it("does not run a handler for a request already past its deadline", async () => {
    let calls = 0;
    const { service } = await serve({
      echo: (req) => {
        calls++;
        return req;
      },
    });
    const ch = await bed.admin.createChannel();
    const reply = await rawReplies(ch);
    ch.publish(
      "",
      service.amqp!.requestQueue,
      Buffer.from(EchoType.encode({ text: "x", delayMs: 0 })),
      {
        correlationId: "late-1",
        replyTo: "amq.rabbitmq.reply-to",
        headers: { "rpc-method": service.methods.echo.path, "rpc-timeout-ms": 0 },
      },
    );
    const m = await reply();
    expect(Number(m.properties.headers!["rpc-status"])).toBe(Code.DEADLINE_EXCEEDED);
    expect(calls).toBe(0);
    await ch.close();
  });

  it("cancels a call through its AbortSignal", async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const { service } = await serve({
      slow: async (_req, ctx) => {
        started();
        await sleep(1500, ctx.signal).catch(() => {});
        return { text: "done", delayMs: 0 };
      },
    });
    const t = client();
    const controller = new AbortController();
    const call = t.unary(
      service.methods.slow,
      { text: "", delayMs: 0 },
      { signal: controller.signal },
    );
    await running;
    controller.abort();
    const err = await rejection(call);
    expect(err.code).toBe(Code.CANCELLED);
    expect(t.inFlight).toBe(0);
    // Already aborted: fails without sending.
    const err2 = await rejection(
      t.unary(service.methods.slow, { text: "", delayMs: 0 }, { signal: AbortSignal.abort() }),
    );
    expect(err2.code).toBe(Code.CANCELLED);
  });

  it("answers INVALID_ARGUMENT to a request body that does not decode", async () => {
    let calls = 0;
    const { service } = await serve({ echo: (r) => (calls++, r) });
    const ch = await bed.admin.createChannel();
    const reply = await rawReplies(ch);
    // A tag followed by a varint that never ends: not protobuf.
    ch.publish(
      "",
      service.amqp!.requestQueue,
      Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      {
        correlationId: "bad-1",
        replyTo: "amq.rabbitmq.reply-to",
        contentType: "application/x-protobuf",
        headers: { "rpc-method": service.methods.echo.path },
      },
    );
    const m = await reply();
    expect(Number(m.properties.headers!["rpc-status"])).toBe(Code.INVALID_ARGUMENT);
    expect(String(m.properties.headers!["rpc-message"])).toContain(EchoType.typeName);
    expect(calls).toBe(0);
    await ch.close();
  });

  it("dead-letters a request without reply_to instead of dropping it", async () => {
    let calls = 0;
    const { service } = await serve({ echo: (r) => (calls++, r) });
    const q = service.amqp!.requestQueue;
    const ch = await bed.admin.createChannel();
    ch.publish("", q, Buffer.from(EchoType.encode({ text: "orphan", delayMs: 0 })), {
      correlationId: "no-reply-1",
      messageId: "m-1",
      type: EchoType.typeName,
      headers: { "rpc-method": service.methods.echo.path, "x-tenant": "acme" },
    });
    let dead: amqp.GetMessage | false = false;
    for (let i = 0; i < 500 && !dead; i++) {
      dead = await ch.get(`${q}.dlq`, { noAck: true });
      if (!dead) await sleep(20);
    }
    expect(dead).not.toBe(false);
    const m = dead as amqp.GetMessage;
    expect(EchoType.decode(m.content).text).toBe("orphan");
    expect(String(m.properties.headers!["x-grabbit-error"])).toContain("reply_to");
    expect(m.properties.headers!["x-tenant"]).toBe("acme");
    expect(m.properties.correlationId).toBe("no-reply-1");
    expect(m.properties.messageId).toBe("m-1");
    expect(calls).toBe(0);
    // Acked: nothing left in the request queue.
    const check = await ch.checkQueue(q);
    expect(check.messageCount).toBe(0);
    await ch.close();
  });

  it("runs interceptors on both sides: token propagation, UNAUTHENTICATED without it", async () => {
    const USER = Symbol("user");
    const serverSeen: string[] = [];
    const authServer: Interceptor = (next) => async (req) => {
      serverSeen.push(`${req.side}/${req.transport}/${req.method.name}`);
      const auth = req.metadata["authorization"];
      if (auth !== "Bearer s3cret")
        throw new StatusError(Code.UNAUTHENTICATED, "missing or bad token");
      req.values.set(USER, "alice");
      const res = await next(req);
      return { ...res, metadata: { ...res.metadata, "x-audited": "1" } };
    };
    const { service } = await serve(
      { echo: (req, ctx) => ({ text: `${ctx.values.get(USER)}: ${req.text}`, delayMs: 0 }) },
      { interceptors: [authServer] },
    );

    const clientSeen: string[] = [];
    const token: Interceptor = (next) => (req) => {
      clientSeen.push(`${req.side}/${req.transport}/${req.method.name}`);
      req.metadata["authorization"] = "Bearer s3cret";
      return next(req);
    };
    let md: Record<string, string> | undefined;
    const res = await client({ interceptors: [token] }).unary(
      service.methods.echo,
      { text: "hi", delayMs: 0 },
      { onResponseMetadata: (m) => (md = m) },
    );
    expect(res.text).toBe("alice: hi");
    expect(md).toEqual({ "x-audited": "1" });
    expect(clientSeen).toEqual(["client/amqp/Echo"]);
    expect(serverSeen).toEqual(["server/amqp/Echo"]);

    const err = await rejection(client().unary(service.methods.echo, { text: "hi", delayMs: 0 }));
    expect(err.code).toBe(Code.UNAUTHENTICATED);
    expect(err.rawMessage).toBe("missing or bad token");
  });

  it("lets interceptors replace the request by spreading it, keeping signal and values", async () => {
    const TAG = Symbol("tag");
    const rewrite: Interceptor = (next) => (req) => {
      req.values.set(TAG, `${req.side}-tagged`);
      if (req.stream) return next(req);
      return next({
        ...req,
        message: { ...(req.message as Echo), text: `${(req.message as Echo).text}+${req.side}` },
      });
    };
    let sawSignal = false;
    const { service } = await serve(
      {
        echo: (req, ctx) => {
          sawSignal = ctx.signal instanceof AbortSignal && !ctx.signal.aborted;
          return { text: `${req.text} ${String(ctx.values.get(TAG))}`, delayMs: 0 };
        },
      },
      { interceptors: [rewrite] },
    );
    const res = await client({ interceptors: [rewrite] }).unary(service.methods.echo, {
      text: "m",
      delayMs: 0,
    });
    expect(res.text).toBe("m+client+server server-tagged");
    expect(sawSignal).toBe(true);
  });

  it("fails UNAVAILABLE when no queue exists for the service (mandatory return)", async () => {
    const service = echoService();
    const err = await rejection(
      client().unary(service.methods.echo, { text: "x", delayMs: 0 }, { timeoutMs: 0 }),
    );
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.rawMessage).toContain(service.amqp!.requestQueue);
  });

  it("sends to a custom request queue named by the method descriptor or a registered service", async () => {
    const queue = uniqueName("custom-orders-q");
    const { service } = await serve({ echo: (req) => req }, {}, echoService(queue));
    // As generated code does: the method carries its queue.
    const generated = { ...service.methods.echo, requestQueue: queue };
    expect((await client().unary(generated, { text: "by method", delayMs: 0 })).text).toBe(
      "by method",
    );
    // Hand-written descriptors without it: the transport learns the queue from the service.
    expect(
      (
        await client({ services: [service] }).unary(service.methods.echo, {
          text: "by service",
          delayMs: 0,
        })
      ).text,
    ).toBe("by service");
  });

  it("declares a quorum request queue and DLQ by default, adopts an existing classic queue, and refuses a clash when the type is explicit", async () => {
    const ch = await bed.admin.createChannel();
    // Default ("auto"): quorum on this broker.
    const { service } = await serve({ echo: (r) => r });
    const q = service.amqp!.requestQueue;
    const redeclare = async (name: string, args: Record<string, unknown>) => {
      const c = await bed.admin.createChannel();
      c.on("error", () => {});
      try {
        await c.assertQueue(name, { durable: true, arguments: args });
        await c.close();
        return "same";
      } catch (err) {
        return (err as { code?: number }).code;
      }
    };
    expect(await redeclare(q, { "x-queue-type": "quorum" })).toBe("same");
    expect(await redeclare(`${q}.dlq`, { "x-queue-type": "quorum" })).toBe("same");

    // An existing classic queue is used as it is in "auto" mode.
    const classic = echoService();
    queues.push(classic.amqp!.requestQueue);
    await ch.assertQueue(classic.amqp!.requestQueue, { durable: true });
    const server = await serveAmqp(bed.serverConn, classic, { echo: (r: Echo) => r });
    closables.push(server);
    expect((await client().unary(classic.methods.echo, { text: "adopted", delayMs: 0 })).text).toBe(
      "adopted",
    );

    // Explicit "quorum" on that classic queue: the clash is reported, not papered over.
    const clash = await rejection(
      serveAmqp(bed.serverConn, classic, { echo: (r: Echo) => r }, { queueType: "quorum" }),
    );
    expect(clash.code).toBe(Code.FAILED_PRECONDITION);
    expect(clash.rawMessage).toContain(
      "the quorum type that the server's queueType option asks for",
    );
    expect((clash.cause as { code?: number }).code).toBe(406);
    await ch.close();
  });

  it("declares the queue type the contract names (service.amqp.queueType), refuses a queue of the other type with what to do, and lets the server option override it", async () => {
    const redeclare = async (name: string, type: "quorum" | "classic") => {
      const c = await bed.admin.createChannel();
      c.on("error", () => {});
      try {
        await c.assertQueue(name, { durable: true, arguments: { "x-queue-type": type } });
        await c.close();
        return "same";
      } catch (err) {
        return (err as { code?: number }).code;
      }
    };
    const withType = (queueType: "quorum" | "classic"): EchoService => {
      const s = echoService();
      return { ...s, amqp: { ...s.amqp!, queueType } };
    };

    // The contract says classic: both the request queue and its DLQ are classic, on a broker whose
    // "auto" choice would be quorum (the default test above shows that).
    const { service } = await serve({ echo: (r) => r }, {}, withType("classic"));
    const q = service.amqp!.requestQueue;
    expect((await client().unary(service.methods.echo, { text: "classic", delayMs: 0 })).text).toBe(
      "classic",
    );
    expect(await redeclare(q, "classic")).toBe("same");
    expect(await redeclare(q, "quorum")).toBe(406);
    expect(await redeclare(`${q}.dlq`, "classic")).toBe("same");
    expect(await redeclare(`${q}.dlq`, "quorum")).toBe(406);

    // The contract says classic, the queue exists as quorum (servers of an older contract made it).
    const moved = withType("classic");
    const mq = moved.amqp!.requestQueue;
    queues.push(mq);
    expect(await redeclare(mq, "quorum")).toBe("same");
    const err = await rejection(serveAmqp(bed.serverConn, moved, { echo: (r: Echo) => r }));
    expect(err.code).toBe(Code.FAILED_PRECONDITION);
    expect(err.rawMessage).toContain(
      `cannot serve ${moved.typeName}: queue "${mq}" already exists with another type than the classic type that the contract ((grabbit.v1.service).queue_type of ${moved.typeName}) asks for`,
    );
    expect(err.rawMessage).toContain(`delete "${mq}" and "${mq}.dlq"`);
    expect(err.rawMessage).toContain("re-created as classic");
    expect(err.rawMessage).toContain("inequivalent arg 'x-queue-type'");
    // Nothing was changed: the queue is still quorum.
    expect(await redeclare(mq, "quorum")).toBe("same");
    // The server's own option wins over the contract: "quorum" (or "auto") serves the quorum queue.
    const overridden = await serveAmqp(
      bed.serverConn,
      moved,
      { echo: (r: Echo) => r },
      { queueType: "quorum" },
    );
    closables.push(overridden);
    expect(
      (await client().unary(moved.methods.echo, { text: "overridden", delayMs: 0 })).text,
    ).toBe("overridden");

    // The contract says quorum on an existing classic queue: refused the same way.
    const toQuorum = withType("quorum");
    const tq = toQuorum.amqp!.requestQueue;
    queues.push(tq);
    expect(await redeclare(tq, "classic")).toBe("same");
    const err2 = await rejection(serveAmqp(bed.serverConn, toQuorum, { echo: (r: Echo) => r }));
    expect(err2.code).toBe(Code.FAILED_PRECONDITION);
    expect(err2.rawMessage).toContain(
      `queue "${tq}" already exists with another type than the quorum type`,
    );
  });

  it("close(): the transport cancels waiting calls; the server finishes in-flight handlers first", async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let finished = false;
    const { service, server } = await serve({
      slow: async () => {
        started();
        await sleep(300);
        finished = true;
        return { text: "finished", delayMs: 0 };
      },
    });
    // Server side: close waits for the running handler, whose reply still reaches the caller.
    const t = client();
    const call = t.unary(service.methods.slow, { text: "", delayMs: 0 });
    await running;
    await server.close();
    expect(finished).toBe(true);
    await expect(call).resolves.toEqual({ text: "finished", delayMs: 0 });

    // Client side: a call waiting when the transport closes is CANCELLED, later calls UNAVAILABLE.
    const ch = await bed.admin.createChannel();
    await ch.consume(service.amqp!.requestQueue, () => {}, { noAck: true });
    const t2 = new AmqpRpcTransport(bed.clientConn);
    const pending = t2.unary(service.methods.echo, { text: "", delayMs: 0 }, { timeoutMs: 0 });
    await eventually(() => t2.inFlight === 1, "the call to be sent");
    const pendingErr = rejection(pending);
    await t2.close();
    expect((await pendingErr).code).toBe(Code.CANCELLED);
    expect((await rejection(t2.unary(service.methods.echo, { text: "", delayMs: 0 }))).code).toBe(
      Code.UNAVAILABLE,
    );
    await ch.close();
  });
});
