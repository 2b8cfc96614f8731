// The producer of memory.test.ts, in a process of its own so that its memory is its own: serves the
// blob service on QUEUE over RabbitMQ, answering Pour{count, size} with `count` chunks of `size`
// bytes, each a fresh buffer (as a real producer reading a file or a table would make them).
// Reports over IPC: {ready}; {rss, produced} every SAMPLE_MS with its resident set size and how many
// chunks it has handed to the stream; {peak} when asked with "peak" (the highest RSS it sampled).
import { AmqpConnection, serveAmqp } from "../../runtime/src/amqp/index.js";
import { blobService, fillOf, type Chunk, type Pour } from "./fixtures.js";

const SAMPLE_MS = 20;
const REPORT_MS = 200;

process.on("disconnect", () => process.exit(1));
const queue = process.env.QUEUE;
if (!queue) throw new Error("producer-child needs QUEUE");

let peak = 0;
let produced = 0;
const sample = () => (peak = Math.max(peak, process.memoryUsage.rss()));
setInterval(sample, SAMPLE_MS).unref();
setInterval(() => process.send?.({ rss: process.memoryUsage.rss(), produced }), REPORT_MS).unref();
process.on("message", (m) => {
  if (m === "peak") {
    sample();
    process.send?.({ peak, produced });
  }
});

const connection = await AmqpConnection.connect({
  urls: process.env.AMQP_URL ?? "amqp://127.0.0.1",
  name: "streams-memory-producer",
});
await serveAmqp(connection, blobService(queue), {
  async *pour(request: Pour): AsyncGenerator<Chunk> {
    for (let seq = 1; seq <= request.count; seq++) {
      produced = seq;
      yield { seq, data: Buffer.alloc(request.size, fillOf(seq)) };
    }
  },
});
sample();
process.send?.({ ready: true, rss: process.memoryUsage.rss() });
