// Operations on one dead-letter queue: list, show, replay and purge, over a runtime AmqpConnection.
//
// Reading without losing: messages are read by a consumer with manual acks and a bounded prefetch
// on a channel of its own, and nothing is acked unless it was replayed (confirmed) first. What was
// only looked at goes back when the channel closes (never by a nack, which a quorum queue counts as a
// failed delivery). A read takes the head of the queue and gives all of it back at once, so the order
// is kept, on classic queues (requeued messages return to their place) and on quorum queues (returned
// messages are delivered before the others). While held, those messages are invisible to any other
// reader of the queue: two readers at once see disjoint parts of it, never the same message twice.
// Each operation reads at most the messages the queue held when it started (a snapshot of its ready
// count), so a replayed message that fails again and comes back is not replayed twice in one run.
//
// Replay: each selected message is published (mandatory, with a publisher confirm) to its original
// exchange and routing key or to a queue, and its dead-lettered copy is acked only after the confirm.
// A crash or a lost connection in between leaves the copy in the queue: at worst a message is
// delivered twice, never lost. A message that cannot be replayed (unroutable, no known destination)
// stays in the queue and is reported.
//
// Failures: a queue that does not exist is a StatusError NOT_FOUND with a sentence; a lost
// connection is UNAVAILABLE and says what was already replayed.

import { createFileRegistry, fromBinary, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type FileDescriptorSet } from "@bufbuild/protobuf/wkt";
import type { Channel, ConsumeMessage, Options, Replies } from "amqplib";
import type { AmqpConnection } from "../amqp/connection.js";
import {
  copiedProperties,
  HEADER_ORIGINAL_EXCHANGE,
  HEADER_ORIGINAL_ROUTING_KEY,
  HEADER_REPLAYS,
  republishableHeaders,
} from "../amqp/headers.js";
import { Publisher } from "../amqp/publisher.js";
import { Code, StatusError, messageOf } from "../status.js";
import { isEmptySelection, matches, type Selection } from "./filter.js";
import { DEAD_LETTER_HEADERS, describe, type DeadLetter } from "./message.js";

export interface DeadLetterQueueOptions {
  /** Decodes bodies by their `type` (see registryFromImage). Without it bodies are left undecoded. */
  registry?: Registry;
  /** How long a read waits for the next message before it asks the broker whether any are left. Default 250 ms. */
  idleMs?: number;
  /** How long an operation waits for the queue to count what it gave back. Default 2000 ms. */
  settleMs?: number;
}

export interface QueueInfo {
  queue: string;
  /** Ready messages when the operation started (held or unacked ones are not counted by the broker). */
  messages: number;
  /** Consumers on the queue when the operation started: they take messages a reader would not see. */
  consumers: number;
}

export interface ListOptions {
  selection?: Selection;
  /** Matching messages returned at most. Default 100. */
  limit?: number;
  /** Messages examined at most (held unacked meanwhile). Default 10 000. */
  scan?: number;
}

export interface ListResult extends QueueInfo {
  examined: number;
  items: DeadLetter[];
  /** True when the queue held more messages than were examined (limit or scan reached). */
  truncated: boolean;
}

export interface ReplayProgress {
  total: number;
  examined: number;
  replayed: number;
  failed: number;
}

export interface ReplayOptions {
  /** Which messages; empty or absent = all. */
  selection?: Selection;
  /** Publish to this queue (through the default exchange) instead of the original exchange and routing key. */
  toQueue?: string;
  /** Report what would be replayed, replay nothing. */
  dryRun?: boolean;
  /** Unacked messages held at most: replays in flight plus messages kept aside. Default 1000. */
  window?: number;
  /** Called after each message examined or settled. */
  onProgress?: (p: ReplayProgress) => void;
  /** Called after each message is replayed (confirmed) and its dead-lettered copy acked. */
  onReplayed?: (d: DeadLetter) => void;
  signal?: AbortSignal;
}

/** One selected message of a replay. */
export interface ReplayItem {
  position: number;
  messageId: string | undefined;
  type: string | undefined;
  reason: string | undefined;
  /** Where it goes (went); undefined when that is unknown (it then fails, see `failed`). */
  destination: { exchange: string; routingKey: string } | undefined;
}

export interface ReplayResult extends QueueInfo {
  examined: number;
  matched: number;
  replayed: number;
  /** Matching messages that could not be replayed: they stay in the queue. */
  failed: { messageId: string | undefined; position: number; error: string }[];
  /** Messages of the snapshot not examined (more were kept aside than `window`). */
  notExamined: number;
  /** Every matching message (replayed, failed, or in a dry run to be replayed), in queue order. */
  items: ReplayItem[];
  dryRun: boolean;
}

/** A registry of every message in a FileDescriptorSet, such as a buf image (`buf build -o image.binpb`). */
export function registryFromImage(bytes: Uint8Array): Registry {
  let set: FileDescriptorSet;
  try {
    set = fromBinary(FileDescriptorSetSchema, bytes);
  } catch (err) {
    throw new StatusError(
      Code.INVALID_ARGUMENT,
      `the image is not a FileDescriptorSet (buf build -o image.binpb makes one): ${messageOf(err)}`,
    );
  }
  try {
    return createFileRegistry(set);
  } catch (err) {
    throw new StatusError(
      Code.INVALID_ARGUMENT,
      `the image cannot be read (build it with its imports, as buf build does by default): ${messageOf(err)}`,
    );
  }
}

const DEFAULT_LIMIT = 100;
const DEFAULT_SCAN = 10_000;
const DEFAULT_WINDOW = 1000;

export class DeadLetterQueue {
  private readonly registry: Registry | undefined;
  private readonly idleMs: number;
  private readonly settleMs: number;

  constructor(
    private readonly connection: AmqpConnection,
    readonly queue: string,
    options: DeadLetterQueueOptions = {},
  ) {
    if (!queue) throw new TypeError("DeadLetterQueue needs a queue name");
    this.registry = options.registry;
    this.idleMs = options.idleMs ?? 250;
    this.settleMs = options.settleMs ?? 2000;
  }

  /** The queue's ready messages and consumers; NOT_FOUND when it does not exist. */
  info(): Promise<QueueInfo> {
    return this.withChannel(async (_ch, info) => info);
  }

  /** The first messages of the queue (matching `selection`), decoded; all are left in the queue. */
  list(options: ListOptions = {}): Promise<ListResult> {
    const limit = Math.max(1, options.limit ?? DEFAULT_LIMIT);
    const selection = options.selection ?? {};
    const filtered = !isEmptySelection(selection);
    const scan = Math.max(1, options.scan ?? DEFAULT_SCAN);
    return this.withChannel(async (ch, info, read) => {
      const items: DeadLetter[] = [];
      const target = Math.min(info.messages, filtered ? scan : limit);
      const now = Date.now();
      const examined = await this.read(ch, target, target, (msg, position) => {
        const d = describe(msg, position, this.queue, this.registry);
        if (matches(d, selection, now)) items.push(d);
        return items.length >= limit ? "stop" : "hold";
      });
      read.examined = examined;
      return { ...info, examined, items, truncated: examined < info.messages };
    });
  }

  /**
   * One message, by its message id or its 1-based position in the queue (as list numbers them), with
   * its raw body when it does not decode; undefined when not among the first `scan` (or not there).
   */
  show(
    which: string | { position: number },
    options: { scan?: number } = {},
  ): Promise<{ info: QueueInfo; examined: number; message: DeadLetter | undefined }> {
    const scan = Math.max(1, options.scan ?? DEFAULT_SCAN);
    const wanted = (msg: ConsumeMessage, position: number) =>
      typeof which === "string" ? msg.properties.messageId === which : position === which.position;
    return this.withChannel(async (ch, info, read) => {
      let found: DeadLetter | undefined;
      const target = Math.min(info.messages, typeof which === "string" ? scan : which.position);
      const examined = await this.read(ch, target, target, (msg, position) => {
        if (!wanted(msg, position)) return "hold";
        found = describe(msg, position, this.queue, this.registry);
        if (found.decodeError !== undefined) found.bodyBase64 = msg.content.toString("base64");
        return "stop";
      });
      read.examined = examined;
      return { info, examined, message: found };
    });
  }

  /** Deletes every ready message of the queue; returns how many. The caller asks for confirmation. */
  purge(): Promise<{ info: QueueInfo; purged: number }> {
    return this.withChannel(async (ch, info) => ({
      info,
      purged: (await ch.purgeQueue(this.queue)).messageCount,
    }));
  }

  /** Puts selected messages back where they were first published (or into `toQueue`); see the head comment. */
  async replay(options: ReplayOptions = {}): Promise<ReplayResult> {
    const selection = options.selection ?? {};
    const window = Math.max(1, options.window ?? DEFAULT_WINDOW);
    const dryRun = options.dryRun === true;
    if (options.toQueue !== undefined) await this.checkDestination(options.toQueue);
    const publisher = dryRun
      ? undefined
      : new Publisher(this.connection, { maxInFlight: window, track: false });
    try {
      return await this.withChannel(async (ch, info, read) => {
        const result: ReplayResult = {
          ...info,
          examined: 0,
          matched: 0,
          replayed: 0,
          failed: [],
          notExamined: 0,
          items: [],
          dryRun,
        };
        const progress = () =>
          options.onProgress?.({
            total: info.messages,
            examined: result.examined,
            replayed: result.replayed,
            failed: result.failed.length,
          });
        const byId = new Set(selection.ids ?? []);
        const now = Date.now();
        const inFlight = new Set<Promise<void>>();
        let lost: Error | undefined;
        ch.once(
          "close",
          () =>
            (lost = new StatusError(
              Code.UNAVAILABLE,
              `the channel to RabbitMQ closed after ${result.replayed} message(s) were replayed; the others stay in "${this.queue}" (one in flight may be delivered twice)`,
            )),
        );
        const visit = (msg: ConsumeMessage, position: number): "hold" | "stop" => {
          result.examined = position;
          const d = describe(msg, position, this.queue, this.registry);
          // One message per id: a duplicate of it (a replay that came back) is left alone.
          if (!matches(d, selection, now) || (byId.size > 0 && !byId.has(d.messageId ?? "")))
            return "hold";
          if (d.messageId !== undefined) byId.delete(d.messageId);
          result.matched++;
          const destination =
            options.toQueue !== undefined
              ? { exchange: "", routingKey: options.toQueue }
              : d.originalExchange !== undefined && d.originalRoutingKey !== undefined
                ? { exchange: d.originalExchange, routingKey: d.originalRoutingKey }
                : undefined;
          result.items.push({
            position,
            messageId: d.messageId,
            type: d.type,
            reason: d.reason,
            destination,
          });
          if (dryRun) return selection.ids?.length && byId.size === 0 ? "stop" : "hold";
          if (destination === undefined) {
            result.failed.push({
              messageId: d.messageId,
              position,
              error: "it does not say where it was first published: replay it to a queue",
            });
            progress();
            return "hold";
          }
          const p = publisher!
            .publish(
              destination.exchange,
              destination.routingKey,
              msg.content,
              replayProperties(msg, d, options.toQueue !== undefined),
              { mandatory: true, ...(options.signal ? { signal: options.signal } : {}) },
            )
            .then(
              () => {
                if (lost) return; // the copy went back to the queue with the channel: a duplicate later, not a loss
                try {
                  ch.ack(msg);
                } catch {
                  return; // the channel just closed: the same
                }
                result.replayed++;
                options.onReplayed?.(d);
              },
              (err: unknown) => {
                result.failed.push({ messageId: d.messageId, position, error: messageOf(err) });
              },
            )
            .finally(() => {
              inFlight.delete(p);
              progress();
            });
          inFlight.add(p);
          progress();
          return selection.ids?.length && byId.size === 0 ? "stop" : "hold";
        };
        try {
          const idle = async () => {
            while (inFlight.size > 0) await Promise.all([...inFlight]);
          };
          result.examined = await this.read(
            ch,
            info.messages,
            window,
            visit,
            { pending: () => inFlight.size, acked: () => result.replayed, idle },
            options.signal,
          );
        } catch (err) {
          throw lost ?? err;
        } finally {
          while (inFlight.size > 0) await Promise.all([...inFlight]);
          read.examined = result.examined;
          read.acked = result.replayed;
        }
        if (lost) throw lost;
        const held = result.examined - result.replayed;
        if (
          result.examined < info.messages &&
          held >= window &&
          !(selection.ids?.length && byId.size === 0)
        )
          result.notExamined = info.messages - result.examined;
        progress();
        return result;
      });
    } finally {
      await publisher?.close();
    }
  }

  private async checkDestination(queue: string): Promise<void> {
    const session = await this.connection.waitForSession({ timeoutMs: 10_000 });
    const ch = await session.createChannel();
    try {
      await ch.checkQueue(queue);
    } catch (err) {
      throw notFound(err, `the queue to replay to, "${queue}", does not exist`);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /**
   * A channel of its own for one operation, after a passive declare; closing it gives back what was
   * read. A quorum queue takes messages back asynchronously, after the channel is closed: the
   * operation ends once the queue counts them again (or after `settleMs`), so that the next one,
   * from this process or another, sees them.
   */
  private async withChannel<T>(
    f: (ch: Channel, info: QueueInfo, read: { examined: number; acked: number }) => Promise<T>,
  ): Promise<T> {
    const session = await this.connection.waitForSession({ timeoutMs: 10_000 });
    const ch = await session.createChannel();
    const read = { examined: 0, acked: 0 };
    let info: QueueInfo | undefined;
    try {
      let ok: Replies.AssertQueue;
      try {
        ok = await ch.checkQueue(this.queue);
      } catch (err) {
        // A passive declare of a missing queue closes the channel with 404.
        throw notFound(err, `queue "${this.queue}" does not exist`);
      }
      info = { queue: this.queue, messages: ok.messageCount, consumers: ok.consumerCount };
      return await f(ch, info, read);
    } finally {
      await ch.close().catch(() => undefined);
      if (info && read.examined > read.acked)
        await this.settled(info.messages - read.acked).catch(() => undefined);
    }
  }

  /** Waits (a little) until the queue has `ready` messages ready again. */
  private async settled(ready: number): Promise<void> {
    const session = await this.connection.waitForSession({ timeoutMs: 1000 });
    const ch = await session.createChannel();
    try {
      const end = Date.now() + this.settleMs;
      while ((await ch.checkQueue(this.queue)).messageCount < ready && Date.now() < end)
        await new Promise((r) => setTimeout(r, 10));
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /**
   * Consumes up to `target` messages with `prefetch` unacked at most, handing each to `visit`, which
   * keeps held ("hold") or ends the read with ("stop"). Ends early when the queue has nothing more ready
   * for us, or when every slot of the window is held (`settling` tells how many are being replayed and
   * how many were acked, which frees their slots).
   * Returns how many were examined.
   */
  private async read(
    ch: Channel,
    target: number,
    prefetch: number,
    visit: (msg: ConsumeMessage, position: number) => "hold" | "stop",
    settling: Settling = { pending: () => 0, acked: () => 0, idle: async () => {} },
    signal?: AbortSignal,
  ): Promise<number> {
    if (target <= 0) return 0;
    const queue: ConsumeMessage[] = [];
    let wake: (() => void) | undefined;
    let closed: Error | undefined;
    const onClose = () => {
      closed = new StatusError(
        Code.UNAVAILABLE,
        `the channel reading "${this.queue}" closed; what was read goes back to the queue`,
      );
      wake?.();
    };
    ch.once("close", onClose);
    await ch.prefetch(Math.max(1, Math.min(prefetch, target)));
    const { consumerTag } = await ch.consume(
      this.queue,
      (msg) => {
        if (msg === null)
          closed = new StatusError(
            Code.UNAVAILABLE,
            `the broker cancelled the read of "${this.queue}" (was it deleted?)`,
          );
        else queue.push(msg);
        wake?.();
      },
      { noAck: false },
    );
    let examined = 0;
    try {
      while (examined < target) {
        if (signal?.aborted) throw StatusError.from(signal.reason, Code.CANCELLED);
        const msg = queue.shift();
        if (msg !== undefined) {
          examined++;
          if (visit(msg, examined) === "stop") break;
          continue;
        }
        if (closed) throw closed;
        const arrived = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), this.idleMs);
          wake = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
        wake = undefined;
        if (arrived || settling.pending() > 0) continue;
        // Nothing came for a while and nothing is being settled: the window is full of held
        // messages, or the queue has nothing more ready for us (others hold the rest).
        if (examined - settling.acked() >= prefetch) break;
        const ok = await ch.checkQueue(this.queue);
        if (ok.messageCount === 0 && queue.length === 0) break;
      }
    } finally {
      // Every ack is sent before the consumer is cancelled: a quorum queue (3.10) does not always
      // honour an ack that follows the cancel of the consumer it was delivered to.
      await settling.idle();
      ch.off("close", onClose);
      await ch.cancel(consumerTag).catch(() => undefined);
    }
    return examined;
  }
}

/** What a read needs to know of the replays it started: how many are being settled, how many were acked. */
interface Settling {
  pending(): number;
  acked(): number;
  /** Resolves once nothing is being settled. */
  idle(): Promise<void>;
}

/** The properties of a replayed copy: the original's, without dead-letter headers, with the replay counted. */
function replayProperties(msg: ConsumeMessage, d: DeadLetter, toQueue: boolean): Options.Publish {
  const headers = republishableHeaders((msg.properties.headers ?? {}) as Record<string, unknown>);
  for (const h of DEAD_LETTER_HEADERS) delete headers[h];
  // Replayed to its original destination, the consumer records where it came from again; sent to a
  // queue, it keeps where it was first published (a later replay can still send it there).
  if (!toQueue) {
    delete headers[HEADER_ORIGINAL_EXCHANGE];
    delete headers[HEADER_ORIGINAL_ROUTING_KEY];
  }
  headers[HEADER_REPLAYS] = d.replays + 1;
  return { ...copiedProperties(msg.properties), headers };
}

function notFound(err: unknown, sentence: string): Error {
  const text = messageOf(err);
  if (/NOT_FOUND|404/.test(text)) return new StatusError(Code.NOT_FOUND, sentence, { cause: err });
  if (/ACCESS_REFUSED|403/.test(text))
    return new StatusError(
      Code.PERMISSION_DENIED,
      `${sentence.replace(/ does not exist$/, "")}: access refused (${text})`,
      { cause: err },
    );
  return err instanceof Error ? err : new Error(text);
}
