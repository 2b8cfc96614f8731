// A competing consumer in a process of its own, for the load test: the parent kills it with SIGKILL
// mid-run and starts another. It applies events through the idempotent helper, like the parent's.
import { AmqpConnection, EventConsumer } from "../../runtime/src/amqp/index.js";
import { idempotent, openDatabase } from "../../runtime/src/outbox/index.js";
import { orderEvent, type Order } from "../amqp/fixtures.js";
import { exitWithParent } from "../outbox/child-support.js";

exitWithParent();

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`consumer-child needs ${name}`);
  return v;
};

const who = env("WHO");
const db = await openDatabase(env("PG_URL"), { poolSize: 12 });
const conn = await AmqpConnection.connect({
  urls: env("CHILD_AMQP_URL"),
  name: `grabbit-load-${who}`,
  reconnect: { initialDelayMs: 20, maxDelayMs: 250 },
});
const event = orderEvent(env("EXCHANGE"), "topic", "load.{region}");
const applied = env("APPLIED_TABLE");
const dups = env("DUPS_TABLE");
const consumer = new EventConsumer(conn, {
  queue: env("QUEUE"),
  queueType: env("QUEUE_TYPE") as "quorum" | "classic",
  prefetch: 64,
  concurrency: 12,
  retry: { delaysMs: [100] },
  onError: (err) => console.error(`consumer-child ${who}: ${err.message}`),
});
await consumer
  .on(
    event,
    idempotent<Order>(
      db,
      async (_o, d, tx) => {
        await tx.query(`INSERT INTO ${applied} (message_id, who) VALUES ($1, $2)`, [
          d.messageId,
          who,
        ]);
      },
      {
        consumer: "load",
        table: env("PROCESSED_TABLE"),
        onDuplicate: (d, tx) =>
          tx
            .query(`INSERT INTO ${dups} (message_id, who) VALUES ($1, $2)`, [d.messageId, who])
            .then(() => {}),
      },
    ),
  )
  .start();
console.log("ready");
process.on("SIGTERM", () => {
  void consumer
    .close()
    .then(() => conn.close())
    .then(() => db.close())
    .then(() => process.exit(0));
});
