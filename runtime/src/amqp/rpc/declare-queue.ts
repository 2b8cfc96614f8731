// Declaring an RPC server's request queue and its dead-letter queue with the queue type the
// contract or the server asks for. Fails with the broker's error, or, when an existing queue has
// another type than an explicit one, FAILED_PRECONDITION with what happened and what to do.

import type { Options } from "amqplib";
import type { AmqpSession } from "../connection.js";
import { Code, StatusError, messageOf } from "../../status.js";
import type { AmqpQueueType } from "./server-options.js";
import { deadLetterQueueName } from "./wire.js";

export interface QueueDeclaration {
  readonly queueType: AmqpQueueType;
  /** Who chose an explicit type ("the server's queueType option", "the contract (...)"), for the error. */
  readonly source: string;
  /** The service's full name and request queue, for the error. */
  readonly service: string;
  readonly requestQueue: string;
  /** Whether the broker has quorum queues ("auto" picks quorum then). */
  readonly quorum: boolean;
}

/** The `x-queue-type` sent: an explicit type always (classic too), "auto" quorum where supported, else none. */
export function declaredQueueType(
  d: Pick<QueueDeclaration, "queueType" | "quorum">,
): "quorum" | "classic" | undefined {
  // Where a default queue type is configured (RabbitMQ's default_queue_type), an argument-less
  // declaration would get that type instead; older brokers without quorum queues expect none.
  return d.queueType !== "auto" ? d.queueType : d.quorum ? "quorum" : undefined;
}

/** Declares durable `queue` as `d` says; in "auto" mode an existing queue of either type is taken as is. */
export async function declareServerQueue(
  session: AmqpSession,
  queue: string,
  d: QueueDeclaration,
): Promise<void> {
  const type = declaredQueueType(d);
  const options: Options.AssertQueue = {
    durable: true,
    ...(type ? { arguments: { "x-queue-type": type } } : {}),
  };
  const ch = await session.createChannel();
  try {
    await ch.assertQueue(queue, options);
  } catch (err) {
    // 406 PRECONDITION_FAILED: the queue exists with other arguments (closes the channel).
    if ((err as { code?: number }).code !== 406) throw err;
    if (d.queueType !== "auto") throw queueTypeClash(queue, d.queueType, d, err);
    const check = await session.createChannel();
    try {
      await check.checkQueue(queue);
    } finally {
      await check.close().catch(() => {});
    }
  } finally {
    await ch.close().catch(() => {});
  }
}

/** An existing queue that an explicit queue type does not match: what happened and what to do. */
export function queueTypeClash(
  queue: string,
  type: "quorum" | "classic",
  d: Pick<QueueDeclaration, "source" | "service" | "requestQueue">,
  err: unknown,
): StatusError {
  const broker = /with message "(.*)"\s*$/s.exec(messageOf(err))?.[1] ?? messageOf(err);
  const queues = `"${d.requestQueue}" and "${deadLetterQueueName(d.requestQueue)}"`;
  const what = /x-queue-type/.test(broker)
    ? `queue "${queue}" already exists with another type than the ${type} type that ${d.source} asks for`
    : `queue "${queue}" already exists with other arguments than this server declares (durable, x-queue-type ${type}, from ${d.source})`;
  return new StatusError(
    Code.FAILED_PRECONDITION,
    `cannot serve ${d.service}: ${what} (RabbitMQ: ${broker}). ` +
      `RabbitMQ cannot change a queue's type, and every server of one queue must declare it alike. ` +
      `If the type changed on purpose, stop the servers that use the old one, delete ${queues} (requests waiting in them are lost), ` +
      `then start the servers again and the queues are re-created as ${type}; otherwise make the contract's queue_type (or this server's queueType option) match the queue.`,
    { cause: err },
  );
}
