// Consumer-side deduplication by message_id. At-least-once delivery means copies: a relay that
// crashed between confirm and mark sends a row again, a publisher re-sends what a lost channel did
// not confirm, the broker redelivers what a lost consumer did not ack. Each copy carries the same
// message_id, so a table of processed ids, written in the same transaction as the handler's own
// writes, makes the effect happen once: the id and the effect commit together or not at all.

import type { DeliveryContext, EventHandler } from "../amqp/consumer.js";
import { Code, StatusError } from "../status.js";
import { tableName, type Database, type SqlClient } from "./database.js";

export interface IdempotencyOptions {
  /** Names the consumer, so several consumers of one message each apply it once. */
  consumer: string;
  /** Default "grabbit_processed". */
  table?: string;
  /** Called, inside the transaction, for a copy of an already processed message (which is then acked). */
  onDuplicate?: (delivery: DeliveryContext, tx: SqlClient) => Promise<void> | void;
}

/** A handler given the transaction its writes must use. */
export type TransactionalHandler<T> = (
  event: T,
  delivery: DeliveryContext,
  tx: SqlClient,
) => Promise<void> | void;

/** Creates the processed-messages table if missing. */
export async function installIdempotency(
  db: Database,
  options: { table?: string } = {},
): Promise<void> {
  const t = tableName(options.table ?? "grabbit_processed");
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [t]);
    await tx.query(`CREATE TABLE IF NOT EXISTS ${t} (
      consumer text NOT NULL,
      message_id text NOT NULL,
      processed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (consumer, message_id)
    )`);
  });
}

/** Forgets ids processed more than `olderThanMs` ago (older copies are then no longer caught). */
export async function purgeProcessed(
  db: SqlClient,
  olderThanMs: number,
  options: { table?: string } = {},
): Promise<number> {
  const t = tableName(options.table ?? "grabbit_processed");
  const { rows } = await db.query(
    `WITH d AS (DELETE FROM ${t} WHERE processed_at < now() - make_interval(secs => $1) RETURNING 1) SELECT count(*)::int AS n FROM d`,
    [olderThanMs / 1000],
  );
  return Number((rows[0] as { n: number }).n);
}

/**
 * Wraps `handler` for EventConsumer.on(): in one transaction, records (consumer, message_id) and
 * runs the handler with that transaction. A message already recorded is a duplicate: the handler is
 * skipped and the delivery acked. If the handler throws, the transaction rolls back, the id with it,
 * and the consumer's retry runs the handler again. A concurrent copy waits on the first one's row
 * lock, then sees it as processed (or, if the first rolled back, processes it itself).
 * A message without a message_id cannot be deduplicated: it is dead-lettered (INVALID_ARGUMENT).
 */
export function idempotent<T>(
  db: Database,
  handler: TransactionalHandler<T>,
  options: IdempotencyOptions,
): EventHandler<T> {
  const t = tableName(options.table ?? "grabbit_processed");
  const insert = `INSERT INTO ${t} (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1 AS fresh`;
  return async (event, delivery) => {
    const id = delivery.messageId;
    if (!id)
      throw new StatusError(
        Code.INVALID_ARGUMENT,
        `a message without message_id reached idempotent consumer "${options.consumer}"`,
      );
    await db.transaction(async (tx) => {
      const { rows } = await tx.query(insert, [options.consumer, id]);
      if (rows.length === 0) {
        await options.onDuplicate?.(delivery, tx);
        return;
      }
      await handler(event, delivery, tx);
    });
  };
}
