// One end of streaming calls over RabbitMQ, in a process of its own, for process-death.test.ts to
// SIGKILL mid-stream. ROLE=server serves the drip service on QUEUE with handlers that never end;
// ROLE=client opens one stream of each kind to QUEUE and keeps them going. Either way it reports
// over IPC: {ready} once serving or calling, {progress: kind, n} as messages go through.
import { AmqpConnection, AmqpRpcTransport, serveAmqp } from "../../runtime/src/amqp/index.js";
import type { Echo } from "../amqp-rpc/fixture.js";
import { dripService, STREAM_KINDS, type StreamKind } from "./fixtures.js";

const send = (message: Record<string, unknown>) => process.send?.(message);
// The test process went away: so do we.
process.on("disconnect", () => process.exit(1));

const role = process.env.ROLE;
const queue = process.env.QUEUE;
if (!queue || (role !== "server" && role !== "client"))
  throw new Error("peer-child needs ROLE=server|client and QUEUE");
const service = dripService(queue);
const connection = await AmqpConnection.connect({
  urls: process.env.AMQP_URL ?? "amqp://127.0.0.1",
  name: `streams-peer-${role}`,
});

/** Reports every 5th message, so the test knows the stream is flowing without an IPC message per message. */
function progress(kind: StreamKind, n: number): void {
  if (n % 5 === 0) send({ progress: kind, n });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Requests without end, a few milliseconds apart; a client-streaming call's progress is what it sent. */
async function* endless(kind?: StreamKind): AsyncGenerator<Echo> {
  for (let n = 1; ; n++) {
    yield { text: "", delayMs: n };
    if (kind !== undefined) progress(kind, n);
    await pause(5);
  }
}

if (role === "server") {
  await serveAmqp(connection, service, {
    async *count() {
      for (let n = 1; ; n++) {
        yield { text: "", delayMs: n };
        progress("count", n);
        await pause(5);
      }
    },
    async sum(requests: AsyncIterable<Echo>) {
      let n = 0;
      for await (const _ of requests) progress("sum", ++n);
      return { text: "", delayMs: n };
    },
    async *chat(requests: AsyncIterable<Echo>) {
      let n = 0;
      for await (const r of requests) {
        yield r;
        progress("chat", ++n);
      }
    },
  });
  send({ ready: true });
} else {
  const transport = new AmqpRpcTransport(connection, { timeoutMs: 0 });
  const read = async (kind: StreamKind, stream: AsyncIterable<Echo>) => {
    let n = 0;
    for await (const _ of stream) progress(kind, ++n);
  };
  const calls: Record<StreamKind, () => Promise<unknown>> = {
    count: () =>
      read("count", transport.serverStream(service.methods.count, { text: "", delayMs: 0 })),
    sum: () => transport.clientStream(service.methods.sum, endless("sum")),
    chat: () => read("chat", transport.bidiStream(service.methods.chat, endless())),
  };
  for (const kind of STREAM_KINDS) {
    calls[kind]().catch((err: unknown) =>
      send({ failed: kind, error: err instanceof Error ? err.message : String(err) }),
    );
  }
  send({ ready: true });
}
