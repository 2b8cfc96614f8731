// What the RPC client sets up lazily on its request-and-reply channel (a Link): write back-pressure,
// the inbox its streams' servers send frames to, and the cancel exchange unary cancellations go
// through. The inbox and the exchange are declared on scratch channels, so a refusal (a user
// without configure rights) fails streams or cancellation only, never the unary calls on the link.

import type { ConsumeMessage } from "amqplib";
import { asError, messageOf } from "../../status.js";
import type { Link } from "./pending.js";
import { CANCEL_EXCHANGE, FRAME, HEADER_FRAME, HEADER_MESSAGE } from "./wire.js";

const EMPTY: Buffer = Buffer.alloc(0);

/** Back-pressure: when amqplib's buffer is full, `link.drain` is set until it drains (or the channel closes). */
export function awaitDrain(link: Link): void {
  if (link.drain) return;
  link.drain = new Promise<void>((resolve) => {
    const done = () => {
      link.channel.off("drain", done);
      link.channel.off("close", done);
      link.drain = undefined;
      resolve();
    };
    link.channel.on("drain", done);
    link.channel.on("close", done);
  });
}

/**
 * The link's inbox: a private queue, exclusive to our connection and deleted with its consumer (so
 * with the channel), consumed with `onFrame`. Declared once per link; a failure is the caller's to
 * report, and the next stream tries again.
 */
export function linkInbox(
  link: Link,
  onFrame: (msg: ConsumeMessage | null) => void,
): Promise<string> {
  link.inbox ??= (async () => {
    const scratch = await link.session.createChannel();
    let queue: string;
    try {
      ({ queue } = await scratch.assertQueue("", {
        exclusive: true,
        autoDelete: true,
        durable: false,
        arguments: { "x-queue-type": "classic" },
      }));
    } finally {
      await scratch.close().catch(() => {});
    }
    await link.channel.consume(queue, onFrame, { noAck: true });
    return queue;
  })();
  link.inbox.catch(() => {
    link.inbox = undefined; // the next stream tries again
  });
  return link.inbox;
}

/**
 * Tells every server of `queue` that call `id` is cancelled (the one serving it aborts its handler;
 * the others remember it, in case the request is still queued). Best effort: the exchange is
 * declared once per channel, and a failure to declare it goes to `warn` once.
 */
export function broadcastCancel(
  link: Link | undefined,
  queue: string,
  id: string,
  reason: string,
  warn: (fields: Record<string, unknown>, msg: string) => void,
): void {
  if (link === undefined || !link.alive) return;
  link.cancelExchange ??= (async () => {
    const scratch = await link.session.createChannel();
    try {
      await scratch.assertExchange(CANCEL_EXCHANGE, "direct", { durable: true });
      return true;
    } finally {
      await scratch.close().catch(() => {});
    }
  })().catch((err: unknown) => {
    warn(
      { err: asError(err) },
      `cancellations cannot reach AMQP servers: exchange "${CANCEL_EXCHANGE}" could not be declared (${messageOf(err)})`,
    );
    return false;
  });
  void link.cancelExchange.then((ok) => {
    if (!ok || !link.alive) return;
    try {
      link.channel.publish(CANCEL_EXCHANGE, queue, EMPTY, {
        correlationId: id,
        headers: { [HEADER_FRAME]: FRAME.cancel, [HEADER_MESSAGE]: reason },
      });
    } catch {
      // The channel closed: the server's deadline still ends the call.
    }
  });
}
