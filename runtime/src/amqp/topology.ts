// Exchanges, queues and bindings of the events contract, declared idempotently so they can be
// declared again on every new session.

import type { Channel } from "amqplib";
import { bindingKey } from "../routing.js";
import type { EventDesc } from "../descriptors.js";
import type { AmqpConnection } from "./connection.js";

export type QueueType = "quorum" | "classic";

/** "auto" is quorum where the broker supports it (RabbitMQ 3.8+), classic otherwise. */
export function resolveQueueType(
  connection: AmqpConnection,
  requested: "auto" | QueueType | undefined,
): QueueType {
  if (requested === "quorum" || requested === "classic") return requested;
  return connection.supportsQuorumQueues() ? "quorum" : "classic";
}

/** Declares the exchange an event is published to: durable, of the event's kind. */
export async function declareEventExchange(channel: Channel, event: EventDesc): Promise<void> {
  await channel.assertExchange(event.exchange, event.exchangeKind, { durable: true });
}

function typeArguments(
  type: QueueType,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  // Classic queues are declared without x-queue-type so that queues declared before grabbit match.
  return type === "quorum" ? { "x-queue-type": "quorum", ...extra } : { ...extra };
}

export interface ConsumerTopology {
  queue: string;
  type: QueueType;
  deadLetterQueue: string;
  retryDelaysMs: readonly number[];
  /** x-expires for every queue (temporary consumers, tests). */
  expiresMs?: number;
  /** Quorum only: deliveries (redeliveries included) after which the broker dead-letters a message. */
  deliveryLimit?: number;
}

export function retryQueueName(queue: string, delayMs: number): string {
  return `${queue}.retry.${delayMs}`;
}

/**
 * The work queue, its dead-letter queue, and one TTL retry queue per distinct delay. A retry queue
 * holds a message for its delay, then dead-letters it back to the work queue via the default exchange.
 */
export async function declareConsumerQueues(channel: Channel, t: ConsumerTopology): Promise<void> {
  const expires = t.expiresMs !== undefined ? { "x-expires": t.expiresMs } : {};
  // Quorum queues can be neither exclusive nor auto-delete: every queue here is durable and shared.
  // The work queue dead-letters to the DLQ too, so a message rejected without requeue (or past
  // the delivery limit, e.g. one that crashes every consumer) is kept rather than dropped.
  const work: Record<string, unknown> = {
    "x-dead-letter-exchange": "",
    "x-dead-letter-routing-key": t.deadLetterQueue,
    ...expires,
  };
  if (t.type === "quorum" && t.deliveryLimit !== undefined)
    work["x-delivery-limit"] = t.deliveryLimit;
  await channel.assertQueue(t.queue, { durable: true, arguments: typeArguments(t.type, work) });
  await channel.assertQueue(t.deadLetterQueue, {
    durable: true,
    arguments: typeArguments(t.type, expires),
  });
  for (const delay of new Set(t.retryDelaysMs)) {
    const dl: Record<string, unknown> = {
      "x-message-ttl": delay,
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": t.queue,
      ...expires,
    };
    // Quorum queues dead-letter at most once by default; ask for at-least-once so that a message
    // leaving the retry queue cannot be lost on the way back (needs reject-publish overflow).
    if (t.type === "quorum")
      Object.assign(dl, {
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
      });
    await channel.assertQueue(retryQueueName(t.queue, delay), {
      durable: true,
      arguments: typeArguments(t.type, dl),
    });
  }
}

/** Binds a queue to an event's exchange, honouring the exchange kind and the consumer's filter. */
export async function bindEvent(
  channel: Channel,
  queue: string,
  event: EventDesc,
  filter?: Record<string, unknown>,
): Promise<void> {
  switch (event.exchangeKind) {
    case "fanout":
      await channel.bindQueue(queue, event.exchange, "");
      return;
    case "headers": {
      // Publishers send the placeholder values as headers; match all the filter values given.
      const args: Record<string, unknown> = { "x-match": "all" };
      for (const field of event.routingFields) {
        const value = filter?.[field] ?? filter?.[camel(field)];
        if (value !== undefined && value !== null) args[field] = String(value);
      }
      await channel.bindQueue(queue, event.exchange, "", args);
      return;
    }
    default:
      await channel.bindQueue(queue, event.exchange, bindingKey(event, filter ?? {}));
  }
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
