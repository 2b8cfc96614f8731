// Flow control holds memory down (issue 12): a server stream of 1 GiB over RabbitMQ to a reader that
// reads slowly and stops for a while keeps the producer's memory bounded. The producer runs in a
// child process (producer-child.ts) and samples its own RSS; were the stream's messages buffered on
// the producer's side rather than held back by the reader's credit, its RSS would climb towards the
// gigabyte. Every byte must arrive, in order.
import { afterAll, beforeAll, expect, it } from "vitest";
import { AmqpConnection, AmqpRpcTransport } from "@grabbit/runtime/amqp";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { sleep } from "../amqp-rpc/fixture.js";
import { blobService, fillOf, startChild, type Child } from "./fixtures.js";

const CHUNK_BYTES = 1024 * 1024;
const CHUNKS = 1024; // 1 GiB in all
/** The reader's window (the transport's default): chunks the producer may send ahead of the reader. */
const WINDOW = 64;
/** Far below the gigabyte that flows, far above what the window and Node's own footprint need. */
const PEAK_RSS_LIMIT = 400 * 1024 * 1024;
const MB = 1024 * 1024;

const queue = uniqueName("grabbit.test.blob");
let producer: Child;
let connection: AmqpConnection;

beforeAll(async () => {
  producer = startChild("test/streams/producer-child.ts", { QUEUE: queue, AMQP_URL });
  await producer.next((m) => m.ready === true, "ready");
  connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "streams-memory-reader" });
});

afterAll(async () => {
  producer?.proc.kill("SIGKILL");
  if (connection !== undefined) {
    const channel = await (await connection.waitForSession()).createChannel();
    await channel.deleteQueue(queue).catch(() => {});
    await channel.deleteQueue(`${queue}.dlq`).catch(() => {});
    await channel.close().catch(() => {});
    await connection.close();
  }
});

/** The latest count of chunks the producer reported handing to the stream. */
function produced(): number {
  for (let i = producer.messages.length - 1; i >= 0; i--) {
    const n = producer.messages[i]!.produced;
    if (typeof n === "number") return n;
  }
  return 0;
}

it("a slow reader of a 1 GiB server stream keeps the producer's memory bounded, and gets every byte", {
  timeout: 180_000,
}, async () => {
  const startRss = producer.messages[0]!.rss as number;
  const transport = new AmqpRpcTransport(connection, { timeoutMs: 0, streamWindow: WINDOW });
  const started = Date.now();
  let count = 0;
  let bytes = 0;
  // Sum of seq x size: a chunk lost, doubled or swapped for another of a different size changes it.
  let weighted = 0;
  const problems: string[] = [];
  let heldAt: { consumed: number; produced: number } | undefined;
  try {
    for await (const chunk of transport.serverStream(blobService(queue).methods.pour, {
      count: CHUNKS,
      size: CHUNK_BYTES,
    })) {
      count++;
      bytes += chunk.data.length;
      weighted += chunk.seq * chunk.data.length;
      const fill = fillOf(chunk.seq);
      if (
        chunk.seq !== count ||
        chunk.data[0] !== fill ||
        chunk.data[chunk.data.length - 1] !== fill
      ) {
        problems.push(
          `chunk ${count}: seq ${chunk.seq}, first byte ${chunk.data[0]}, last byte ${chunk.data.at(-1)}, expected fill ${fill}`,
        );
      }
      if (count === 200) {
        // The reader stops for a while: the producer must stop too, a window ahead at most.
        await sleep(3_000);
        heldAt = { consumed: count, produced: produced() };
      }
      // Then reads slowly: a little work per chunk, so the producer is faster than the reader.
      await sleep(2);
    }
  } finally {
    await transport.close();
  }
  const seconds = (Date.now() - started) / 1000;
  producer.proc.send("peak");
  const { peak } = (await producer.next((m) => typeof m.peak === "number", "its peak RSS")) as {
    peak: number;
  };

  // Every byte, in order.
  expect(problems.slice(0, 5)).toEqual([]);
  expect(count).toBe(CHUNKS);
  expect(bytes).toBe(CHUNKS * CHUNK_BYTES);
  expect(weighted).toBe((CHUNK_BYTES * CHUNKS * (CHUNKS + 1)) / 2);
  // While the reader stood still, the producer had made no more than the window allows (plus the
  // chunk its generator made while waiting for credit, and one in hand).
  expect(heldAt).toBeDefined();
  expect(heldAt!.produced - heldAt!.consumed).toBeLessThanOrEqual(WINDOW + 2);
  console.log(
    `memory.test: ${CHUNKS} x ${CHUNK_BYTES / 1024} KiB (${(bytes / 1024 ** 3).toFixed(2)} GiB) in ${seconds.toFixed(1)} s; ` +
      `producer RSS ${Math.round(startRss / MB)} MB at rest, peak ${Math.round(peak / MB)} MB; held at ${heldAt!.produced} produced / ${heldAt!.consumed} read`,
  );
  expect(peak).toBeLessThan(PEAK_RSS_LIMIT);
});
