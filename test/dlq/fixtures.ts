// What the DLQ tests share: the repo's contract built with the real buf (an image of proto/, as
// `grabbit dlq --image` takes it), the example's RequestReported event as a runtime MessageType built
// from that image, and real dead letters made by a real consumer whose handler throws.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import {
  fromBinary,
  fromJson,
  toBinary,
  type DescMessage,
  type JsonObject,
  type Registry,
} from "@bufbuild/protobuf";
import { readFileSync } from "node:fs";
import type { EventDesc, MessageType } from "@grabbit/runtime";
import {
  AmqpConnection,
  EventConsumer,
  EventPublisher,
  type EventHandler,
} from "@grabbit/runtime/amqp";
import { registryFromImage } from "@grabbit/runtime/dlq";
import { silentLogger } from "@grabbit/runtime";
import { BUF, REPO, scratchDir } from "../support/buf.js";
import { AMQP_URL } from "../support/broker.js";
import type { Janitor } from "../amqp/fixtures.js";

export const REPORTED = "example.v1.RequestReported";

let built: { image: string; registry: Registry } | undefined;

/** proto/ built once per test file with the real buf: the image path and its registry. */
export function contract(): { image: string; registry: Registry } {
  if (built) return built;
  const image = join(scratchDir("dlq-image"), "contract.binpb");
  execFileSync(BUF, ["build", join(REPO, "proto"), "-o", image], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  built = { image, registry: registryFromImage(readFileSync(image)) };
  return built;
}

/** A message of the contract as the runtime's MessageType, with JSON objects as values. */
export function messageType(typeName: string): MessageType<JsonObject> {
  const desc = contract().registry.getMessage(typeName) as DescMessage;
  return {
    typeName,
    encode: (json) => toBinary(desc, fromJson(desc, json)),
    decode: (bytes) =>
      JSON.parse(
        JSON.stringify(fromBinary(desc, bytes), (_k, v) => (typeof v === "bigint" ? String(v) : v)),
      ) as JsonObject,
  };
}

/** The example's RequestReported event, published to an exchange of the test's own. */
export function reportedEvent(exchange: string): EventDesc<JsonObject> {
  return {
    type: messageType(REPORTED),
    exchange,
    exchangeKind: "topic",
    routingKeyTemplate: "report.{decision}.{region}",
    routingFields: ["decision", "region"],
    persistent: true,
    routingValues: (o) => ({
      decision: String(o.decision ?? "DECISION_UNSPECIFIED"),
      region: String(o.region ?? ""),
    }),
  };
}

export function report(i: number, region = "eu-west"): JsonObject {
  return {
    requestId: `req-${i}`,
    decision: i % 2 ? "DECISION_APPROVED" : "DECISION_DENIED",
    region,
    amountCents: String(1000 + i),
    decidedAt: "2026-11-30T12:00:00Z",
  };
}

export interface DeadLetterSetup {
  connection: AmqpConnection;
  queue: string;
  dlq: string;
  exchange: string;
  event: EventDesc<JsonObject>;
  publisher: EventPublisher<JsonObject>;
}

/** A connection, an exchange and a consumer queue (with its DLQ) the janitor deletes afterwards. */
export async function setup(janitor: Janitor, prefix: string): Promise<DeadLetterSetup> {
  const connection = await AmqpConnection.connect({ urls: AMQP_URL, logger: silentLogger() });
  const exchange = janitor.exchange(`dlq-${prefix}`);
  const queue = janitor.queue(`dlq-${prefix}`, [50]);
  const event = reportedEvent(exchange);
  return {
    connection,
    queue,
    dlq: `${queue}.dlq`,
    exchange,
    event,
    publisher: new EventPublisher(connection, event),
  };
}

/**
 * Publishes `events` (with `o.metadata`) and raw messages, and lets a real consumer run `handler` on
 * them (dead-lettering after `o.maxAttempts`, default 1), so that they land in the DLQ the way
 * production dead letters do; returns once `o.dead` more (default: all) are there and the consumer is stopped.
 */
export async function deadLetter(
  s: DeadLetterSetup,
  janitor: Janitor,
  events: JsonObject[],
  handler: EventHandler<JsonObject>,
  o: {
    maxAttempts?: number;
    raw?: { content: Buffer; type: string }[];
    metadata?: Record<string, string>;
    dead?: number;
  } = {},
): Promise<string[]> {
  let before = 0;
  const ids: string[] = [];
  const expected = o.dead ?? events.length + (o.raw?.length ?? 0);
  await withConsumer(
    s,
    handler,
    async () => (await janitor.messageCount(s.dlq)) >= before + expected,
    o.maxAttempts ?? 1,
    async () => {
      // The consumer declared the DLQ on start.
      before = await janitor.messageCount(s.dlq);
      for (const e of events) {
        const id = `msg-${(seq++).toString().padStart(3, "0")}-${e.requestId as string}`;
        await s.publisher.publish(e, {
          messageId: id,
          ...(o.metadata ? { metadata: o.metadata } : {}),
        });
        ids.push(id);
      }
      const ch = await janitor.channel();
      for (const r of o.raw ?? []) {
        const id = `raw-${(seq++).toString().padStart(3, "0")}`;
        ch.publish(s.exchange, "report.DECISION_APPROVED.eu-west", r.content, {
          contentType: "application/x-protobuf",
          type: r.type,
          messageId: id,
          timestamp: Math.floor(Date.now() / 1000),
          persistent: true,
        });
        ids.push(id);
      }
      await ch.close();
    },
  );
  return ids;
}

let seq = 0;

/** Runs a real consumer on the setup's queue with `handler` until `done` holds (checked after `start`). */
export async function withConsumer(
  s: DeadLetterSetup,
  handler: EventHandler<JsonObject>,
  done: () => Promise<boolean>,
  maxAttempts = 1,
  start?: () => Promise<void>,
): Promise<void> {
  const consumer = new EventConsumer(s.connection, {
    queue: s.queue,
    retry: { maxAttempts, delaysMs: [50] },
    logger: silentLogger(),
  });
  consumer.on(s.event, handler);
  await consumer.start();
  try {
    await start?.();
    while (!(await done())) await new Promise((r) => setTimeout(r, 20));
  } finally {
    await consumer.close();
  }
}

/** Every message now in `queue`, taken off it (acked). */
export async function take(
  janitor: Janitor,
  queue: string,
): Promise<
  {
    id: string | undefined;
    headers: Record<string, unknown>;
    content: Buffer;
    exchange: string;
    routingKey: string;
  }[]
> {
  return (await janitor.drain(queue)).map((m) => ({
    id: m.properties.messageId as string | undefined,
    headers: (m.properties.headers ?? {}) as Record<string, unknown>,
    content: m.content,
    exchange: m.fields.exchange,
    routingKey: m.fields.routingKey,
  }));
}
