// Another language on grabbit's RPC wire: a client and a server written with plain amqplib from
// docs/wire-contract.md ("Streams over RabbitMQ", "Cancellation") alone, talking to grabbit's
// server and client on the real broker. The foreign side uses nothing of @grabbit/runtime: header
// names, frame kinds, the cancel exchange and the queue arguments are spelled out here as the page
// gives them, and messages go through the fixture's protobuf codec, as any language has one.
import amqp from "amqplib";
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError, type HandlerContext } from "@grabbit/runtime";
import { AmqpConnection, AmqpRpcTransport, serveAmqp } from "@grabbit/runtime/amqp";
import { AMQP_URL } from "../support/broker.js";
import { EchoType, eventually, sleep, streamService, type Echo } from "./fixture.js";

// ---- the foreign side: plain amqplib, names as docs/wire-contract.md spells them ----------------

const PROTOBUF = "application/x-protobuf";
const CANCEL_EXCHANGE = "grabbit.rpc.cancel";
const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";
/** "Each side declares its own inbox": server-named, exclusive, auto-delete, not durable, classic. */
const INBOX: amqp.Options.AssertQueue = {
  exclusive: true,
  autoDelete: true,
  durable: false,
  arguments: { "x-queue-type": "classic" },
};
const EMPTY = Buffer.alloc(0);

function frameOf(m: amqp.Message): string | undefined {
  const v = m.properties.headers?.["rpc-frame"];
  return typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("utf8") : undefined;
}

function header(m: amqp.Message, name: string): unknown {
  return m.properties.headers?.[name];
}

function encode(message: Echo): Buffer {
  return Buffer.from(EchoType.encode(message));
}

/** Frames of one call in arrival order, read one at a time; a read gives up after 10 s with a clear error. */
class FrameQueue {
  readonly all: amqp.ConsumeMessage[] = [];
  private read = 0;
  private wake: (() => void) | undefined;

  push(m: amqp.ConsumeMessage): void {
    this.all.push(m);
    this.wake?.();
  }

  async next(what: string): Promise<amqp.ConsumeMessage> {
    const until = Date.now() + 10_000;
    while (this.read >= this.all.length) {
      if (Date.now() > until)
        throw new Error(
          `no frame came: waiting for ${what}; got ${this.all.map(frameOf).join(", ") || "nothing"}`,
        );
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.all[this.read++]!;
  }
}

/** One stream seen from a foreign client: frames from the server, and what the client sends back. */
class ForeignClientCall {
  readonly frames = new FrameQueue();
  /** Pings from the server, counted apart (they come whenever it is quiet). */
  pings = 0;
  serverInbox: string | undefined;
  private lastSent = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ch: amqp.Channel,
    readonly id: string,
    private readonly keepaliveMs: number,
  ) {}

  onFrame(m: amqp.ConsumeMessage): void {
    const kind = frameOf(m);
    if (kind === "ping") {
      this.pings++;
      return;
    }
    if (kind === "ready" && this.serverInbox === undefined) {
      this.serverInbox = m.properties.replyTo as string;
      // "each side sends a frame to the other at least every keepalive": a ping when quiet.
      this.timer = setInterval(() => {
        if (Date.now() - this.lastSent >= this.keepaliveMs) this.send("ping");
      }, this.keepaliveMs / 2);
    }
    if (kind === "end") this.stop();
    this.frames.push(m);
  }

  /** A frame to the server's inbox: default exchange, mandatory, the call's correlation_id. */
  send(kind: string, headers: Record<string, unknown> = {}): void {
    this.lastSent = Date.now();
    this.ch.publish("", this.serverInbox!, EMPTY, {
      correlationId: this.id,
      contentType: PROTOBUF,
      mandatory: true,
      headers: { ...headers, "rpc-frame": kind },
    });
  }

  credit(n: number): void {
    this.send("credit", { "rpc-credit": n });
  }

  /** "a stream whose ready has arrived: "" / the server's inbox", not mandatory. */
  cancel(reason: string): void {
    this.ch.publish("", this.serverInbox!, EMPTY, {
      correlationId: this.id,
      headers: { "rpc-frame": "cancel", "rpc-message": reason },
    });
    this.stop();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** A client in another language: one inbox for all its streams. */
class ForeignClient {
  private readonly calls = new Map<string, ForeignClientCall>();
  readonly returned: amqp.Message[] = [];

  private constructor(
    private readonly ch: amqp.Channel,
    readonly inbox: string,
  ) {}

  static async start(conn: amqp.ChannelModel): Promise<ForeignClient> {
    const ch = await conn.createChannel();
    const { queue } = await ch.assertQueue("", INBOX);
    const client = new ForeignClient(ch, queue);
    ch.on("return", (m: amqp.Message) => client.returned.push(m));
    await ch.consume(
      queue,
      (m) => m && client.calls.get(m.properties.correlationId as string)?.onFrame(m),
      { noAck: true },
    );
    return client;
  }

  /** Publishes an `open` to the request queue; the call's frames come to this client's inbox. */
  open(
    queue: string,
    path: string,
    options: { credit: number; keepaliveMs: number; timeoutMs: number; request?: Echo },
  ): ForeignClientCall {
    const id = randomUUID();
    const call = new ForeignClientCall(this.ch, id, options.keepaliveMs);
    this.calls.set(id, call);
    this.ch.publish("", queue, options.request ? encode(options.request) : EMPTY, {
      correlationId: id,
      messageId: id,
      replyTo: this.inbox,
      contentType: PROTOBUF,
      mandatory: true,
      expiration: String(options.timeoutMs),
      ...(options.request ? { type: EchoType.typeName } : {}),
      headers: {
        "rpc-frame": "open",
        "rpc-method": path,
        "rpc-credit": options.credit,
        "rpc-keepalive-ms": options.keepaliveMs,
        "rpc-timeout-ms": options.timeoutMs,
        "x-tenant": "acme",
      },
    });
    return call;
  }

  stopAll(): void {
    for (const call of this.calls.values()) call.stop();
  }
}

/** One stream served by a foreign server. `window`: the credit it gives in `ready`. */
class ForeignServerCall {
  readonly received: Echo[] = [];
  /** Protocol breaches by grabbit's client (a message beyond credit, a gap in rpc-seq): must stay empty. */
  readonly breaches: string[] = [];
  readonly clientWindow: number;
  cancelled: string | undefined;
  /** Messages the client may still send under the credit we gave. */
  private granted: number;
  private credit: number;
  private recvSeq = 0;
  private sentSeq = 0;
  private readonly outgoing: Echo[] = [];
  private halfClosed = false;
  private ended = false;
  private headersSent = false;
  /** Sum: the window is used up and we hold credit back until the client pings (it has waited). */
  private holding = false;
  /** Times the client waited for credit, quiet for a keepalive, before we gave more. */
  waitedForCredit = 0;
  private lastSent = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly ch: amqp.Channel,
    readonly open: amqp.ConsumeMessage,
    private readonly kind: "chat" | "sum",
    readonly window: number,
  ) {
    this.clientWindow = Number(header(open, "rpc-credit") ?? 64);
    this.credit = this.clientWindow;
    this.granted = window;
    const keepaliveMs = Math.min(
      60_000,
      Math.max(50, Number(header(open, "rpc-keepalive-ms") ?? 1000)),
    );
    this.timer = setInterval(() => {
      if (Date.now() - this.lastSent >= keepaliveMs) this.send("ping");
    }, keepaliveMs / 2);
  }

  get id(): string {
    return this.open.properties.correlationId as string;
  }

  /** A frame to the client's inbox (the open's reply_to): default exchange, mandatory. */
  send(
    kind: string,
    headers: Record<string, unknown> = {},
    body: Buffer = EMPTY,
    props: amqp.Options.Publish = {},
  ): void {
    if (this.ended) return;
    this.lastSent = Date.now();
    this.ch.publish("", this.open.properties.replyTo as string, body, {
      correlationId: this.id,
      contentType: PROTOBUF,
      mandatory: true,
      ...props,
      headers: { ...headers, "rpc-frame": kind },
    });
  }

  onFrame(m: amqp.ConsumeMessage): void {
    switch (frameOf(m)) {
      case "message":
        this.onMessage(m);
        break;
      case "credit":
        this.credit += Number(header(m, "rpc-credit"));
        this.flush();
        break;
      case "ping":
        if (this.holding) {
          this.holding = false;
          this.waitedForCredit++;
          this.grant(this.window);
        }
        break;
      case "half-close":
        this.halfClosed = true;
        if (this.kind === "sum") {
          const total = this.received.reduce((n, r) => n + r.delayMs, 0);
          this.reply({ text: this.received.map((r) => r.text).join(","), delayMs: total });
        }
        this.flush();
        break;
      case "cancel":
        this.cancelled = String(header(m, "rpc-message") ?? "");
        this.stop();
        break;
    }
  }

  private onMessage(m: amqp.ConsumeMessage): void {
    const seq = Number(header(m, "rpc-seq"));
    if (seq !== this.recvSeq + 1) this.breaches.push(`message ${seq} after ${this.recvSeq}`);
    this.recvSeq = seq;
    if (this.granted === 0) this.breaches.push(`message ${seq} beyond the credit given`);
    this.granted--;
    if (m.properties.type !== EchoType.typeName)
      this.breaches.push(`message ${seq} has type ${String(m.properties.type)}`);
    const request = EchoType.decode(m.content);
    this.received.push(request);
    if (this.kind === "chat") {
      // Echo at once, and give the credit back: this reader keeps up.
      this.reply({ text: request.text.toUpperCase(), delayMs: request.delayMs });
      this.grant(1);
    } else if (this.granted === 0) {
      this.holding = true; // no credit until the client has waited a keepalive and pinged
    }
  }

  private grant(n: number): void {
    this.granted += n;
    this.send("credit", { "rpc-credit": n });
  }

  /** Queues a response; it goes out as credit allows. */
  private reply(message: Echo): void {
    this.outgoing.push(message);
    this.flush();
  }

  private flush(): void {
    while (this.credit > 0 && this.outgoing.length > 0) {
      if (!this.headersSent) {
        this.headersSent = true;
        this.send("headers", { "x-head": "raw" });
      }
      this.credit--;
      this.send("message", { "rpc-seq": ++this.sentSeq }, encode(this.outgoing.shift()!), {
        type: EchoType.typeName,
      });
    }
    if (this.halfClosed && this.outgoing.length === 0) {
      this.send("end", { "rpc-status": 0, "x-count": String(this.received.length) });
      this.stop();
    }
  }

  stop(): void {
    this.ended = true;
    clearInterval(this.timer);
  }
}

/** A server in another language: consumes the request queue, has its own inbox bound to the cancel exchange. */
class ForeignServer {
  readonly calls = new Map<string, ForeignServerCall>();
  /** Deliveries on the request queue that were not a stream it serves: must stay empty. */
  readonly problems: string[] = [];

  private constructor(
    readonly conn: amqp.ChannelModel,
    readonly ch: amqp.Channel,
    readonly inbox: string,
  ) {}

  static async start(
    queue: string,
    paths: { chat: string; sum: string },
    window: number,
  ): Promise<ForeignServer> {
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.assertQueue(queue, { durable: true, arguments: { "x-queue-type": "quorum" } });
    await ch.assertExchange(CANCEL_EXCHANGE, "direct", { durable: true });
    const { queue: inbox } = await ch.assertQueue("", INBOX);
    await ch.bindQueue(inbox, CANCEL_EXCHANGE, queue);
    const server = new ForeignServer(conn, ch, inbox);
    await ch.consume(
      inbox,
      (m) => m && server.calls.get(m.properties.correlationId as string)?.onFrame(m),
      { noAck: true },
    );
    await ch.consume(
      queue,
      (m) => {
        if (!m) return;
        const path = header(m, "rpc-method");
        const kind = path === paths.chat ? "chat" : path === paths.sum ? "sum" : undefined;
        if (frameOf(m) !== "open" || kind === undefined) {
          server.problems.push(
            `got what it does not serve: ${String(path)}, rpc-frame ${String(frameOf(m))}`,
          );
          ch.nack(m, false, false);
          return;
        }
        const call = new ForeignServerCall(ch, m, kind, window);
        server.calls.set(call.id, call);
        // ready (reply_to: our inbox, rpc-credit: our window), then the ack.
        call.send("ready", { "rpc-credit": window }, EMPTY, { replyTo: inbox });
        ch.ack(m);
      },
      { noAck: false },
    );
    return server;
  }

  async close(): Promise<void> {
    for (const call of this.calls.values()) call.stop();
    await this.conn.close().catch(() => {});
  }
}

// ---- grabbit's side -----------------------------------------------------------------------------

function foreignService() {
  return streamService("grabbit.test.Foreign");
}

let grabbitConn: AmqpConnection;
let raw: amqp.ChannelModel;
const queues: string[] = [];
const cleanups: (() => Promise<unknown> | void)[] = [];

beforeAll(async () => {
  grabbitConn = await AmqpConnection.connect({ urls: AMQP_URL, name: "foreign-wire-test" });
  raw = await amqp.connect(AMQP_URL);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse())
    await Promise.resolve(cleanup()).catch(() => {});
});
afterAll(async () => {
  const ch = await raw.createChannel();
  for (const q of queues) {
    await ch.deleteQueue(q).catch(() => {});
    await ch.deleteQueue(`${q}.dlq`).catch(() => {});
  }
  await raw.close();
  await grabbitConn.close();
});

async function serve(handlers: object) {
  const service = foreignService();
  queues.push(service.amqp!.requestQueue);
  const server = await serveAmqp(grabbitConn, service, handlers);
  cleanups.push(() => server.close());
  return service;
}

async function foreignClient(): Promise<ForeignClient> {
  const conn = await amqp.connect(AMQP_URL);
  const client = await ForeignClient.start(conn);
  cleanups.push(async () => {
    client.stopAll();
    await conn.close();
  });
  return client;
}

/** Reads a server stream as a foreign client: credit 1 back per message read, until `end`. */
async function readToEnd(
  call: ForeignClientCall,
  firstSeq: number,
): Promise<{ messages: amqp.ConsumeMessage[]; end: amqp.ConsumeMessage }> {
  const messages: amqp.ConsumeMessage[] = [];
  for (;;) {
    const f = await call.frames.next(`message ${firstSeq + messages.length} or end`);
    const kind = frameOf(f);
    if (kind === "end") return { messages, end: f };
    expect(kind).toBe("message");
    expect(Number(header(f, "rpc-seq"))).toBe(firstSeq + messages.length);
    messages.push(f);
    call.credit(1);
  }
}

describe("a foreign client against a grabbit server", () => {
  it("server streaming: ready, headers, messages under the credit it grants, then end with status and trailers", async () => {
    const service = await serve({
      async *count(req: Echo, ctx: HandlerContext) {
        ctx.responseHeaders["x-head"] = ctx.metadata["x-tenant"] ?? "none";
        for (let i = 1; i <= req.delayMs; i++) yield { text: `${req.text}${i}`, delayMs: i };
        ctx.responseMetadata["x-total"] = String(req.delayMs);
      },
    });
    const client = await foreignClient();
    const keepaliveMs = 100;
    const call = client.open(service.amqp!.requestQueue, service.methods.count.path, {
      credit: 2,
      keepaliveMs,
      timeoutMs: 30_000,
      request: { text: "n", delayMs: 10 },
    });

    const ready = await call.frames.next("ready");
    expect(frameOf(ready)).toBe("ready");
    expect(ready.properties.correlationId).toBe(call.id);
    expect(ready.properties.replyTo).toMatch(/^amq\.gen-/);
    expect(Number(header(ready, "rpc-credit"))).toBe(0); // a server stream takes no messages from the client
    const headers = await call.frames.next("headers");
    expect(frameOf(headers)).toBe("headers");
    expect(header(headers, "x-head")).toBe("acme");

    // The window of 2 is spent: the server must wait. It pings while it waits, and our pings keep
    // the call alive past three keepalives of waiting (else it would end UNAVAILABLE).
    const first = [await call.frames.next("message 1"), await call.frames.next("message 2")];
    expect(first.map((f) => [frameOf(f), Number(header(f, "rpc-seq"))])).toEqual([
      ["message", 1],
      ["message", 2],
    ]);
    const pingsBefore = call.pings;
    // (An end instead, UNAVAILABLE if our pings went unheard, stops the wait and fails just below.)
    await eventually(
      () => call.pings >= pingsBefore + 4 || call.frames.all.length > 4,
      "four pings from a server waiting for credit",
      10_000,
    );
    expect(call.frames.all.map(frameOf)).toEqual(["ready", "headers", "message", "message"]);

    call.credit(2);
    const rest = await readToEnd(call, 3);
    const all = [...first, ...rest.messages];
    expect(all.map((f) => f.properties.type)).toEqual(Array(10).fill(EchoType.typeName));
    expect(all.map((f) => EchoType.decode(f.content))).toEqual(
      Array.from({ length: 10 }, (_, i) => ({ text: `n${i + 1}`, delayMs: i + 1 })),
    );
    expect(Number(header(rest.end, "rpc-status"))).toBe(Code.OK);
    expect(header(rest.end, "x-total")).toBe("10");
    expect(client.returned).toEqual([]);
  });

  it("an error mid-stream: the messages sent, then an end with the status, message and trailers", async () => {
    const service = await serve({
      async *count() {
        yield { text: "1", delayMs: 0 };
        throw new StatusError(Code.FAILED_PRECONDITION, "no more", {
          metadata: { "x-why": "test" },
        });
      },
    });
    const client = await foreignClient();
    const call = client.open(service.amqp!.requestQueue, service.methods.count.path, {
      credit: 8,
      keepaliveMs: 1000,
      timeoutMs: 30_000,
      request: { text: "", delayMs: 0 },
    });
    expect(frameOf(await call.frames.next("ready"))).toBe("ready");
    const { messages, end } = await readToEnd(call, 1);
    expect(messages.map((f) => EchoType.decode(f.content).text)).toEqual(["1"]);
    expect(Number(header(end, "rpc-status"))).toBe(Code.FAILED_PRECONDITION);
    expect(String(header(end, "rpc-message"))).toContain("no more");
    expect(header(end, "x-why")).toBe("test");
  });

  it("opens refused before ready: an end frame with the status, no ready", async () => {
    const service = await serve({ echo: (req: Echo) => req });
    const client = await foreignClient();
    const queue = service.amqp!.requestQueue;
    const options = { credit: 8, keepaliveMs: 1000, timeoutMs: 30_000 };
    const unimplemented = client.open(queue, service.methods.count.path, {
      ...options,
      request: { text: "", delayMs: 1 },
    });
    const unknown = client.open(queue, `/${service.typeName}/NoSuchMethod`, options);
    const unary = client.open(queue, service.methods.echo.path, options);
    for (const [call, code] of [
      [unimplemented, Code.UNIMPLEMENTED],
      [unknown, Code.UNIMPLEMENTED],
      [unary, Code.INVALID_ARGUMENT],
    ] as const) {
      const end = await call.frames.next("the refusal");
      expect(frameOf(end)).toBe("end");
      expect(end.properties.correlationId).toBe(call.id);
      expect(Number(header(end, "rpc-status"))).toBe(code);
    }
  });

  it("a cancel to the server's inbox mid-stream aborts the handler and ends the call CANCELLED", async () => {
    let aborted: unknown;
    const service = await serve({
      async *count(_req: Echo, ctx: HandlerContext) {
        ctx.signal.addEventListener("abort", () => (aborted = ctx.signal.reason));
        for (let i = 1; ; i++) {
          yield { text: "", delayMs: i };
          await sleep(5);
        }
      },
    });
    const client = await foreignClient();
    const call = client.open(service.amqp!.requestQueue, service.methods.count.path, {
      credit: 4,
      keepaliveMs: 1000,
      timeoutMs: 30_000,
      request: { text: "", delayMs: 0 },
    });
    expect(frameOf(await call.frames.next("ready"))).toBe("ready");
    expect(frameOf(await call.frames.next("message 1"))).toBe("message");
    call.cancel("the foreign reader is done");
    await eventually(() => aborted !== undefined, "the handler's signal to abort");
    expect(aborted).toBeInstanceOf(StatusError);
    expect((aborted as StatusError).code).toBe(Code.CANCELLED);
    expect((aborted as StatusError).rawMessage).toContain("the foreign reader is done");
    // The server answers with end CANCELLED (after at most the messages its credit allowed).
    await eventually(() => call.frames.all.some((f) => frameOf(f) === "end"), "the end frame");
    const end = call.frames.all.find((f) => frameOf(f) === "end")!;
    expect(Number(header(end, "rpc-status"))).toBe(Code.CANCELLED);
    expect(call.frames.all.filter((f) => frameOf(f) === "message").length).toBeLessThanOrEqual(4);
  });
});

describe("a foreign server for grabbit's client", () => {
  async function foreignServer(window: number) {
    const service = foreignService();
    const queue = service.amqp!.requestQueue;
    queues.push(queue);
    const server = await ForeignServer.start(
      queue,
      { chat: service.methods.chat.path, sum: service.methods.sum.path },
      window,
    );
    cleanups.push(() => server.close());
    const transport = new AmqpRpcTransport(grabbitConn, { keepaliveMs: 100 });
    cleanups.push(() => transport.close());
    return { service, server, transport };
  }

  /** Requests with a pause longer than three keepalives in the middle: only the server's pings keep the call up. */
  async function* requests(texts: string[], pauseAfter: number): AsyncGenerator<Echo> {
    for (const [i, text] of texts.entries()) {
      if (i === pauseAfter) await sleep(400);
      yield { text, delayMs: i + 1 };
    }
  }

  it("bidi: the open as documented, responses interleaved, headers, credit and the end's trailers", async () => {
    const { service, server, transport } = await foreignServer(2);
    const texts = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let headers: Record<string, string> | undefined;
    let trailers: Record<string, string> | undefined;
    const out: Echo[] = [];
    for await (const m of transport.bidiStream(service.methods.chat, requests(texts, 4), {
      metadata: { "x-tenant": "acme" },
      timeoutMs: 20_000,
      onHeaders: (h) => (headers = h),
      onTrailers: (t) => (trailers = t),
    })) {
      out.push(m);
    }
    expect(out).toEqual(texts.map((t, i) => ({ text: t.toUpperCase(), delayMs: i + 1 })));
    expect(headers).toEqual({ "x-head": "raw" });
    expect(trailers).toMatchObject({ "x-count": "8" });

    expect(server.problems).toEqual([]);
    const [call] = [...server.calls.values()];
    expect(call!.breaches).toEqual([]);
    expect(call!.received.map((r) => r.text)).toEqual(texts);
    const open = call!.open;
    expect(open.fields.routingKey).toBe(service.amqp!.requestQueue);
    expect(open.properties.replyTo).toMatch(/^amq\.gen-/);
    expect(open.properties.messageId).toBe(open.properties.correlationId);
    expect(open.properties.contentType).toBe(PROTOBUF);
    expect(open.properties.type).toBeUndefined();
    expect(open.content.length).toBe(0);
    expect(header(open, "rpc-method")).toBe(service.methods.chat.path);
    expect(Number(header(open, "rpc-credit"))).toBe(64);
    expect(Number(header(open, "rpc-keepalive-ms"))).toBe(100);
    const timeout = Number(header(open, "rpc-timeout-ms"));
    expect(timeout > 0 && timeout <= 20_000).toBe(true);
    expect(open.properties.expiration).toBe(String(timeout));
    expect(header(open, "x-tenant")).toBe("acme");
  });

  it("client streaming: the client waits for credit, half-closes, and gets the one response", async () => {
    const { service, server, transport } = await foreignServer(2);
    const texts = ["1", "2", "3", "4", "5", "6"];
    let trailers: Record<string, string> | undefined;
    const res = await transport.clientStream(service.methods.sum, requests(texts, 3), {
      timeoutMs: 20_000,
      onTrailers: (t) => (trailers = t),
    });
    expect(res).toEqual({ text: texts.join(","), delayMs: 21 });
    expect(trailers).toMatchObject({ "x-count": "6" });
    const [call] = [...server.calls.values()];
    expect(call!.breaches).toEqual([]);
    expect(call!.clientWindow).toBe(1);
    // Window 2, six messages: the client ran out of credit and waited (pinging) at least twice.
    expect(call!.waitedForCredit).toBeGreaterThanOrEqual(2);
  });

  it("the caller's abort after ready reaches the foreign server as a cancel frame in its inbox", async () => {
    const { service, server, transport } = await foreignServer(4);
    const ac = new AbortController();
    const endless = (async function* () {
      for (let i = 0; ; i++) {
        yield { text: `m${i}`, delayMs: i };
        await sleep(20);
      }
    })();
    const got: Echo[] = [];
    await expect(
      (async () => {
        for await (const m of transport.bidiStream(service.methods.chat, endless, {
          signal: ac.signal,
          timeoutMs: 20_000,
        })) {
          got.push(m);
          if (got.length === 2) ac.abort(new Error("enough"));
        }
      })(),
    ).rejects.toMatchObject({ code: Code.CANCELLED });
    await eventually(
      () => [...server.calls.values()][0]?.cancelled !== undefined,
      "a cancel frame at the foreign server",
    );
    expect([...server.calls.values()][0]!.cancelled).toContain("enough");
  });

  it("a foreign server that vanishes mid-stream: grabbit's client fails UNAVAILABLE", async () => {
    const { service, server, transport } = await foreignServer(4);
    const never = (async function* (): AsyncGenerator<Echo> {
      yield { text: "only", delayMs: 1 };
      await new Promise(() => {});
    })();
    const it = transport
      .bidiStream(service.methods.chat, never, { timeoutMs: 20_000 })
      [Symbol.asyncIterator]();
    await expect(it.next()).resolves.toMatchObject({ value: { text: "ONLY" } });
    await server.close(); // its connection closes: the broker deletes its inbox, the client's next frame comes back
    await expect(it.next()).rejects.toMatchObject({ code: Code.UNAVAILABLE });
  });
});

describe("a foreign client cancels a unary call", () => {
  async function rawUnary(queue: string, path: string, timeoutMs: number) {
    const ch = await raw.createChannel();
    cleanups.push(() => ch.close());
    const replies: amqp.ConsumeMessage[] = [];
    await ch.consume(DIRECT_REPLY_TO, (m) => m && replies.push(m), { noAck: true });
    await ch.assertExchange(CANCEL_EXCHANGE, "direct", { durable: true });
    const id = randomUUID();
    const request = () =>
      ch.publish("", queue, encode({ text: "hi", delayMs: 0 }), {
        correlationId: id,
        replyTo: DIRECT_REPLY_TO,
        contentType: PROTOBUF,
        type: EchoType.typeName,
        mandatory: true,
        expiration: String(timeoutMs),
        headers: { "rpc-method": path, "rpc-timeout-ms": timeoutMs },
      });
    // "grabbit.rpc.cancel / the request queue's name", the request's correlation_id, not mandatory.
    const cancel = (why: string) =>
      ch.publish(CANCEL_EXCHANGE, queue, EMPTY, {
        correlationId: id,
        headers: { "rpc-frame": "cancel", "rpc-message": why },
      });
    return { request, cancel, replies };
  }

  function blockingEcho() {
    const seen: { started: number; aborted: unknown } = { started: 0, aborted: undefined };
    const handlers = {
      async echo(req: Echo, ctx: HandlerContext) {
        seen.started++;
        await new Promise<void>((resolve) =>
          ctx.signal.addEventListener("abort", () => {
            seen.aborted = ctx.signal.reason;
            resolve();
          }),
        );
        return req;
      },
    };
    return { seen, handlers };
  }

  it("through the cancel exchange while the handler runs: its signal aborts, the reply is CANCELLED", async () => {
    const { seen, handlers } = blockingEcho();
    const service = await serve(handlers);
    const call = await rawUnary(service.amqp!.requestQueue, service.methods.echo.path, 30_000);
    call.request();
    await eventually(() => seen.started === 1, "the handler to start");
    call.cancel("the foreign caller gave up");
    await eventually(() => seen.aborted !== undefined, "the handler's signal to abort");
    expect(seen.aborted).toBeInstanceOf(StatusError);
    expect((seen.aborted as StatusError).code).toBe(Code.CANCELLED);
    expect((seen.aborted as StatusError).rawMessage).toContain("the foreign caller gave up");
    await eventually(() => call.replies.length === 1, "the reply");
    expect(Number(header(call.replies[0]!, "rpc-status"))).toBe(Code.CANCELLED);
  });

  it("a cancel sent before the request is not lost: the request is answered CANCELLED, not served", async () => {
    const { seen, handlers } = blockingEcho();
    const service = await serve(handlers);
    // A short deadline: were the early cancel forgotten, the blocked handler would end DEADLINE_EXCEEDED.
    const call = await rawUnary(service.amqp!.requestQueue, service.methods.echo.path, 5_000);
    call.cancel("cancelled before sending");
    call.request();
    await eventually(() => call.replies.length === 1, "the reply");
    expect(Number(header(call.replies[0]!, "rpc-status"))).toBe(Code.CANCELLED);
    // Whichever came first to the server (they travel through different queues), no handler is left running.
    expect(seen.started === 0 || seen.aborted !== undefined).toBe(true);
  });
});
