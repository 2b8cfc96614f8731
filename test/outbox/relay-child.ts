// A relay in a process of its own, for the crash tests: the parent kills it with SIGKILL mid-batch.
// With CRASH_AFTER=n it kills itself once n rows are confirmed and before they are marked sent: the
// exact window in which a crash makes the next relay send copies.
import { AmqpConnection } from "../../runtime/src/amqp/index.js";
import { Outbox, OutboxRelay, openDatabase } from "../../runtime/src/outbox/index.js";
import { exitWithParent } from "./child-support.js";

exitWithParent();

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`relay-child needs ${name}`);
  return v;
};

const db = await openDatabase(env("PG_URL"), { poolSize: 4 });
const conn = await AmqpConnection.connect({
  urls: env("RELAY_AMQP_URL"),
  name: "grabbit-relay-child",
  reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
});
const outbox = new Outbox({ table: env("OUTBOX_TABLE"), partitions: Number(env("PARTITIONS")) });
const crashAfter = Number(process.env.CRASH_AFTER ?? "0");
let confirmed = 0;
const relay = new OutboxRelay(db, conn, outbox, {
  relayId: env("RELAY_ID"),
  batchSize: Number(process.env.BATCH ?? "100"),
  leaseMs: Number(process.env.LEASE_MS ?? "15000"),
  partitionsPerClaim: Number(process.env.PER_CLAIM ?? "2"),
  pollMs: 20,
  onConfirmed(ids) {
    confirmed += ids.length;
    if (crashAfter > 0 && confirmed >= crashAfter) {
      console.log(`crashing after ${confirmed} confirmed`);
      process.kill(process.pid, "SIGKILL");
    }
  },
  onError: (err) => console.error(`relay-child: ${err.message}`),
});
relay.start();
console.log("ready");
process.on("SIGTERM", () => {
  void relay
    .close()
    .then(() => conn.close())
    .then(() => db.close())
    .then(() => {
      console.log(`stopped sent=${relay.stats.sent}`);
      process.exit(0);
    });
});
