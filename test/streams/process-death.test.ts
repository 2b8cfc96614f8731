// A peer of a streaming call over RabbitMQ SIGKILLed mid-stream (issue 12): no goodbye, no cancel
// frame, only its TCP connection dropped by the kernel. A dead server turns each of the client's
// streams into UNAVAILABLE; a dead client aborts each of the server's handlers. The peer runs in a
// child process (peer-child.ts) on the shared broker, with names unique to the run. The waits are
// bounds on a broken run (20 s), never assertions on how long anything took.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError, type HandlerContext } from "@grabbit/runtime";
import { AmqpConnection, AmqpRpcTransport, serveAmqp } from "@grabbit/runtime/amqp";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { eventually, sleep, type Echo } from "../amqp-rpc/fixture.js";
import { dripService, startChild, STREAM_KINDS, type Child, type StreamKind } from "./fixtures.js";

const PEER = "test/streams/peer-child.ts";
const BOUND_MS = 20_000;

let connection: AmqpConnection;
const queues: string[] = [];
const children: Child[] = [];

beforeAll(async () => {
  connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "streams-process-death" });
});

afterAll(async () => {
  for (const child of children) child.proc.kill("SIGKILL");
  const channel = await (await connection.waitForSession()).createChannel();
  for (const q of queues) {
    await channel.deleteQueue(q).catch(() => {});
    await channel.deleteQueue(`${q}.dlq`).catch(() => {});
  }
  await channel.close().catch(() => {});
  await connection.close();
});

function peer(role: "server" | "client", queue: string): Child {
  const child = startChild(PEER, { ROLE: role, QUEUE: queue, AMQP_URL });
  children.push(child);
  return child;
}

/** The child reported `n` or more messages through the `kind` stream. */
function flowing(child: Child, kind: StreamKind, n = 10) {
  return child.next(
    (m) => m.progress === kind && Number(m.n) >= n,
    `progress on its ${kind} stream`,
  );
}

/** How a call ended: its status code, or "ended" when it ended without an error. */
async function outcome(call: Promise<unknown>): Promise<Code | "ended"> {
  try {
    await call;
    return "ended";
  } catch (err) {
    return StatusError.from(err).code;
  }
}

/** Resolves with the call's outcome, or fails the test if it has none within the bound (a hang). */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>(
    (_, reject) =>
      (timer = setTimeout(
        () => reject(new Error(`${what}: no outcome within ${BOUND_MS} ms (a hang)`)),
        BOUND_MS,
      )),
  );
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

describe("a server process SIGKILLed mid-stream", () => {
  it("fails every kind of stream the client has open with UNAVAILABLE", async () => {
    const queue = uniqueName("grabbit.test.dead-server");
    queues.push(queue);
    const server = peer("server", queue);
    await server.next((m) => m.ready === true, "ready");
    const service = dripService(queue);
    // No deadline: only the server's death can end these calls.
    const transport = new AmqpRpcTransport(connection, { timeoutMs: 0 });
    try {
      const received = { count: 0, chat: 0 };
      const reader = async (kind: "count" | "chat", stream: AsyncIterable<Echo>) => {
        for await (const _ of stream) received[kind]++;
      };
      async function* endless(): AsyncGenerator<Echo> {
        for (let n = 1; ; n++) {
          yield { text: "", delayMs: n };
          await sleep(5);
        }
      }
      const calls: Record<StreamKind, Promise<Code | "ended">> = {
        count: outcome(
          reader("count", transport.serverStream(service.methods.count, { text: "", delayMs: 0 })),
        ),
        sum: outcome(transport.clientStream(service.methods.sum, endless())),
        chat: outcome(reader("chat", transport.bidiStream(service.methods.chat, endless()))),
      };
      // Mid-stream: messages flow both ways on every call.
      await Promise.all(STREAM_KINDS.map((kind) => flowing(server, kind)));
      await eventually(
        () => received.count > 0 && received.chat > 0,
        "responses on the client",
        BOUND_MS,
      );

      server.proc.kill("SIGKILL");
      expect(await server.exited).toBe("SIGKILL");
      const codes = await within(
        Promise.all(STREAM_KINDS.map((kind) => calls[kind])),
        "the client's streams after the server died",
      );
      expect(Object.fromEntries(STREAM_KINDS.map((kind, i) => [kind, codes[i]]))).toEqual({
        count: Code.UNAVAILABLE,
        sum: Code.UNAVAILABLE,
        chat: Code.UNAVAILABLE,
      });
    } finally {
      await transport.close();
    }
  });
});

describe("a client process SIGKILLed mid-stream", () => {
  it("aborts the signal of every kind of handler serving it", async () => {
    const queue = uniqueName("grabbit.test.dead-client");
    queues.push(queue);
    const seen: Record<StreamKind, { n: number; aborted: unknown }> = {
      count: { n: 0, aborted: undefined },
      sum: { n: 0, aborted: undefined },
      chat: { n: 0, aborted: undefined },
    };
    const watch = (kind: StreamKind, ctx: HandlerContext) =>
      ctx.signal.addEventListener("abort", () => (seen[kind].aborted = ctx.signal.reason), {
        once: true,
      });
    const server = await serveAmqp(connection, dripService(queue), {
      async *count(_request: Echo, ctx: HandlerContext) {
        watch("count", ctx);
        for (let n = 1; ; n++) {
          yield { text: "", delayMs: n };
          seen.count.n = n;
          await sleep(5, ctx.signal);
        }
      },
      async sum(requests: AsyncIterable<Echo>, ctx: HandlerContext) {
        watch("sum", ctx);
        for await (const _ of requests) seen.sum.n++;
        return { text: "", delayMs: seen.sum.n };
      },
      async *chat(requests: AsyncIterable<Echo>, ctx: HandlerContext) {
        watch("chat", ctx);
        for await (const r of requests) {
          yield r;
          seen.chat.n++;
        }
      },
    });
    try {
      const client = peer("client", queue);
      await client.next((m) => m.ready === true, "ready");
      await Promise.all(STREAM_KINDS.map((kind) => flowing(client, kind)));
      await eventually(
        () => STREAM_KINDS.every((kind) => seen[kind].n > 0),
        "every handler under way",
        BOUND_MS,
      );

      client.proc.kill("SIGKILL");
      expect(await client.exited).toBe("SIGKILL");
      await eventually(
        () => STREAM_KINDS.every((kind) => seen[kind].aborted !== undefined),
        "every handler's signal to abort",
        BOUND_MS,
      );
      for (const kind of STREAM_KINDS) {
        // CANCELLED when the broker returned a frame to the client's vanished inbox, UNAVAILABLE when
        // the client's silence outlasted the keepalives: either way a status, not a hang.
        expect(seen[kind].aborted, kind).toBeInstanceOf(StatusError);
        expect([Code.CANCELLED, Code.UNAVAILABLE], kind).toContain(
          (seen[kind].aborted as StatusError).code,
        );
      }
    } finally {
      await server.close();
    }
  });
});
