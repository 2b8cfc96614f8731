// EventConsumer.close() under load on a quorum queue: every in-flight handler's ack reaches the broker
// (RabbitMQ 3.10 quorum queues drop part of the acks that follow a basic.cancel, which came back as
// duplicates), and the deliveries that arrive after stop() was called are handed back unhandled. The
// rest is consumed by a second consumer; each message must be handled exactly once in all.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AmqpConnection, EventConsumer, EventPublisher } from "@grabbit/runtime/amqp";
import { Janitor, deferred, orderEvent } from "./fixtures.js";

let conn: AmqpConnection;
const janitor = new Janitor();

beforeAll(async () => {
  conn = await AmqpConnection.connect({ name: "grabbit-consumer-stop-test" });
});
afterEach(async () => {
  await janitor.cleanup();
});
afterAll(async () => {
  await conn.close();
});

const TOTAL = 3000;
const ROUNDS = 3;

describe("EventConsumer.close() on a quorum queue under load", () => {
  for (let round = 1; round <= ROUNDS; round++) {
    it(`acks every handled message before it cancels, returns the rest unhandled (round ${round} of ${ROUNDS})`, async () => {
      const exchange = janitor.exchange("stop");
      const event = orderEvent(exchange, "topic", "order.{region}");
      const queue = janitor.queue("stop", [1000]);
      const options = {
        queue,
        queueType: "quorum" as const,
        prefetch: 200,
        concurrency: 50,
        retry: { delaysMs: [1000] },
      };
      const handled = new Map<string, number>();
      const count = (id: string) => handled.set(id, (handled.get(id) ?? 0) + 1);

      const first = new EventConsumer(conn, options);
      let stopRequested = false;
      let handledAfterStop = 0;
      const reached = deferred();
      // From the 500th message on, handlers wait for this gate, opened only after stop() was called
      // and the broker had time to answer a cancel: their acks then all go at once, the last thing
      // before the channel closes (the pattern that lost acks on 3.10 quorum queues).
      const gate = deferred();
      first.on(event, async (order) => {
        if (stopRequested) handledAfterStop++;
        count(order.id);
        if (handled.size === 500) reached.resolve();
        // Half of them: the others end at once and free their slots, so deliveries wait in the backlog.
        if (handled.size >= 500 && Number(order.id) % 2 === 0) await gate.promise;
        else await new Promise((r) => setImmediate(r));
      });
      await first.start();
      const pub = new EventPublisher(conn, event);
      const published = (async () => {
        for (let i = 0; i < TOTAL; i += 200) {
          await Promise.all(
            Array.from({ length: Math.min(200, TOTAL - i) }, (_, j) =>
              pub.publish({ id: String(i + j), region: "eu", amount: i + j }),
            ),
          );
        }
      })();
      await reached.promise;
      stopRequested = true;
      const stopping = first.close();
      for (let i = 0; i < 3; i++) await janitor.messageCount(queue);
      gate.resolve();
      await stopping;
      await published;
      await pub.close();
      const byFirst = handled.size;
      expect(handledAfterStop).toBe(0);
      // What the first consumer held goes back with its channel (a quorum queue takes it back a moment
      // later): then the queue holds exactly the messages it did not handle. An ack it lost would
      // show here as one more.
      while ((await janitor.messageCount(queue)) < TOTAL - byFirst);
      expect(await janitor.messageCount(queue)).toBe(TOTAL - byFirst);

      // The broker has every message the first consumer did not ack; a second one takes them all.
      const second = new EventConsumer(conn, options);
      const all = deferred();
      second.on(event, (order) => {
        count(order.id);
        if (handled.size === TOTAL) all.resolve();
      });
      await second.start();
      await all.promise;
      await second.close();
      const twice = [...handled].filter(([, n]) => n > 1).map(([id]) => id);
      expect(byFirst).toBeGreaterThanOrEqual(500);
      expect(byFirst).toBeLessThan(TOTAL);
      expect(handled.size).toBe(TOTAL);
      expect(twice, `handled twice: ${twice.slice(0, 10).join(", ")}`).toEqual([]);
      expect(await janitor.messageCount(queue)).toBe(0);
    }, 60_000);
  }
});
