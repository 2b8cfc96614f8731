// The write side of the transactional outbox: an event is stored as a row in the service's own
// database, in the caller's transaction, so it exists if and only if the business change committed.
// An OutboxRelay later publishes the rows with confirms.
//
// Everything the wire needs is fixed at write time, the message_id included: whichever relay sends
// the row, however many times, the consumer sees the same id and can drop the copies.

import { randomUUID } from "node:crypto";
import type { EventDesc } from "../descriptors.js";
import type { Metadata } from "../metadata.js";
import { renderRoutingKey } from "../routing.js";
import { metadataToHeaders } from "../amqp/headers.js";
import { injectActiveContext } from "../amqp/telemetry.js";
import { tableName, type Database, type SqlClient } from "./database.js";

export interface OutboxOptions {
  /** Table of events; the lease table is `${table}_partitions`. Default "grabbit_outbox". */
  table?: string;
  /**
   * Events are spread over this many partitions by ordering key; a relay holds a partition while it
   * sends from it, so order per key holds with several relays. Every writer and relay must agree on
   * it: change it only with an empty outbox. Default 16.
   */
  partitions?: number;
}

export interface OutboxAddOptions {
  /** Default: a new UUID, fixed now so that every copy the relay sends carries it. */
  messageId?: string;
  /** Sent as headers of the same names (reserved names are skipped), as EventPublisher does. */
  metadata?: Metadata;
  /** Events with the same key are published in the order they were added. Default: the routing key. */
  orderingKey?: string;
  /** Overrides the event's declared persistence. */
  persistent?: boolean;
  expirationMs?: number;
  priority?: number;
}

export interface OutboxCounts {
  pending: number;
  sent: number;
  /** Given up after the relay's maxAttempts; kept with last_error for an operator. */
  failed: number;
}

export class Outbox {
  readonly table: string;
  readonly partitionTable: string;
  readonly partitions: number;

  constructor(options: OutboxOptions = {}) {
    this.table = tableName(options.table ?? "grabbit_outbox");
    this.partitionTable = tableName(`${this.table}_partitions`);
    this.partitions = Math.max(1, Math.floor(options.partitions ?? 16));
  }

  /** Creates the tables if missing (safe to run from several processes at once). */
  async install(db: Database): Promise<void> {
    const t = this.table;
    const index = t.replace(".", "_");
    await db.transaction(async (tx) => {
      // Concurrent CREATE ... IF NOT EXISTS can still collide in the catalog: serialise installers.
      await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [t]);
      await tx.query(`CREATE TABLE IF NOT EXISTS ${t} (
        id bigserial PRIMARY KEY,
        message_id text NOT NULL,
        partition integer NOT NULL,
        exchange text NOT NULL,
        exchange_kind text NOT NULL,
        routing_key text NOT NULL,
        type text NOT NULL,
        content bytea NOT NULL,
        headers jsonb NOT NULL,
        persistent boolean NOT NULL,
        expiration_ms integer,
        priority smallint,
        created_at timestamptz NOT NULL DEFAULT now(),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT '-infinity',
        last_error text,
        sent_at timestamptz,
        failed_at timestamptz
      )`);
      await tx.query(
        `CREATE INDEX IF NOT EXISTS ${index}_pending ON ${t} (partition, id) WHERE sent_at IS NULL AND failed_at IS NULL`,
      );
      await tx.query(
        `CREATE INDEX IF NOT EXISTS ${index}_sent ON ${t} (sent_at) WHERE sent_at IS NOT NULL`,
      );
      await tx.query(`CREATE TABLE IF NOT EXISTS ${this.partitionTable} (
        partition integer PRIMARY KEY,
        owner text,
        lease_until timestamptz NOT NULL DEFAULT '-infinity'
      )`);
      await tx.query(
        `INSERT INTO ${this.partitionTable} (partition) SELECT generate_series(0, $1::int - 1) ON CONFLICT DO NOTHING`,
        [this.partitions],
      );
    });
  }

  /** Drops both tables (tests, teardown). */
  async uninstall(db: Database): Promise<void> {
    await db.query(`DROP TABLE IF EXISTS ${this.table}`);
    await db.query(`DROP TABLE IF EXISTS ${this.partitionTable}`);
  }

  /**
   * Stores `event` for publishing, in the transaction `tx` the caller's business writes use (a pg
   * PoolClient after BEGIN, a PGlite transaction, or Database.transaction's argument). Returns the
   * message_id the event will carry.
   */
  async add<T>(
    tx: SqlClient,
    desc: EventDesc<T>,
    event: T,
    options: OutboxAddOptions = {},
  ): Promise<string> {
    const messageId = options.messageId ?? randomUUID();
    const routingKey = renderRoutingKey(desc, event);
    const headers = metadataToHeaders(options.metadata);
    // The writer's trace context (traceparent, tracestate, baggage) is kept with the row, however
    // long it waits: the relay's publish continues that trace (while a tracer is registered).
    injectActiveContext(headers);
    if (desc.exchangeKind === "headers" && desc.routingFields.length > 0) {
      const values = desc.routingValues(event);
      for (const field of desc.routingFields) headers[field] = values[field] ?? "";
    }
    const partition = partitionOf(
      desc.exchange,
      options.orderingKey ?? routingKey,
      this.partitions,
    );
    const content = desc.type.encode(event);
    await tx.query(
      `INSERT INTO ${this.table} (message_id, partition, exchange, exchange_kind, routing_key, type, content, headers, persistent, expiration_ms, priority)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11)`,
      [
        messageId,
        partition,
        desc.exchange,
        desc.exchangeKind,
        routingKey,
        desc.type.typeName,
        Buffer.from(content.buffer, content.byteOffset, content.byteLength),
        JSON.stringify(headers),
        options.persistent ?? desc.persistent,
        options.expirationMs === undefined ? null : Math.max(0, Math.floor(options.expirationMs)),
        options.priority ?? null,
      ],
    );
    return messageId;
  }

  /** Rows waiting, sent (until purged) and given up. */
  async counts(db: SqlClient): Promise<OutboxCounts> {
    const { rows } = await db.query(
      `SELECT count(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL)::int AS pending,
              count(*) FILTER (WHERE sent_at IS NOT NULL)::int AS sent,
              count(*) FILTER (WHERE failed_at IS NOT NULL)::int AS failed
       FROM ${this.table}`,
    );
    const r = rows[0] as { pending: number; sent: number; failed: number };
    return { pending: Number(r.pending), sent: Number(r.sent), failed: Number(r.failed) };
  }
}

/** FNV-1a over exchange and key: stable across processes and versions, unlike a runtime hash. */
export function partitionOf(exchange: string, key: string, partitions: number): number {
  let h = 0x811c9dc5;
  const text = `${exchange}\u0000${key}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
