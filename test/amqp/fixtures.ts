// Shared pieces of the AMQP tests: a hand-written message type, hand-built event descriptors, and
// a janitor that deletes what a test declared so the shared broker stays clean.
import amqp from "amqplib";
import type { Channel, ChannelModel } from "amqplib";
import { afterEach } from "vitest";
import type { EventDesc, ExchangeKind } from "@grabbit/runtime";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { brokerProxy, type TcpProxy } from "../support/tcp-proxy.js";

export { type Order, orderType } from "../support/messages.js";
import { type Order, orderType } from "../support/messages.js";
import type { MessageType } from "@grabbit/runtime";

export const OrderCreated: MessageType<Order> = orderType("test.v1.OrderCreated");
export const OrderCancelled: MessageType<Order> = orderType("test.v1.OrderCancelled");

/** A length-delimited field that claims more bytes than follow: no protobuf decoder accepts it. */
export const UNDECODABLE = Buffer.from([0x0a, 0x05, 0x41]);

export function orderEvent(
  exchange: string,
  kind: ExchangeKind = "topic",
  template = "order.{region}.created",
  type: MessageType<Order> = OrderCreated,
): EventDesc<Order> {
  const fields = [...template.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!);
  return {
    type,
    exchange,
    exchangeKind: kind,
    routingKeyTemplate: template,
    routingFields: fields,
    persistent: true,
    routingValues: (o: Order) =>
      Object.fromEntries(
        fields.map((f) => [f, String((o as unknown as Record<string, unknown>)[f] ?? "")]),
      ),
  };
}

/** A raw amqplib connection for setting up, inspecting and deleting what tests create. */
export class Janitor {
  private model: ChannelModel | undefined;
  private readonly queues = new Set<string>();
  private readonly exchanges = new Set<string>();

  async channel(): Promise<Channel> {
    this.model ??= await amqp.connect(AMQP_URL);
    const ch = await this.model.createChannel();
    ch.on("error", () => {});
    return ch;
  }

  exchange(prefix = "ex"): string {
    const name = uniqueName(`grabbit-test-${prefix}`);
    this.exchanges.add(name);
    return name;
  }

  /** A queue name; its retry and dead-letter queues are deleted with it. */
  queue(prefix = "q", delays: number[] = []): string {
    const name = uniqueName(`grabbit-test-${prefix}`);
    this.queues.add(name);
    this.queues.add(`${name}.dlq`);
    for (const d of delays) this.queues.add(`${name}.retry.${d}`);
    return name;
  }

  /** Reads every message now in a queue (acking them). */
  async drain(queue: string): Promise<amqp.GetMessage[]> {
    const ch = await this.channel();
    const out: amqp.GetMessage[] = [];
    for (;;) {
      const m = await ch.get(queue, { noAck: true });
      if (!m) break;
      out.push(m);
    }
    await ch.close();
    return out;
  }

  /** Waits for the next message in a queue by consuming it (no timers: the test timeout bounds it). */
  async next(queue: string): Promise<amqp.ConsumeMessage> {
    const ch = await this.channel();
    return new Promise((resolve, reject) => {
      ch.consume(queue, (m) => {
        if (!m) return;
        ch.ack(m);
        void ch.close().catch(() => {});
        resolve(m);
      }).catch(reject);
    });
  }

  async messageCount(queue: string): Promise<number> {
    const ch = await this.channel();
    const q = await ch.checkQueue(queue);
    await ch.close();
    return q.messageCount;
  }

  async cleanup(): Promise<void> {
    if (!this.model) this.model = await amqp.connect(AMQP_URL);
    for (const q of this.queues) {
      const ch = await this.channel();
      await ch.deleteQueue(q).catch(() => {});
      await ch.close().catch(() => {});
    }
    for (const e of this.exchanges) {
      const ch = await this.channel();
      await ch.deleteExchange(e).catch(() => {});
      await ch.close().catch(() => {});
    }
    this.queues.clear();
    this.exchanges.clear();
    await this.model.close().catch(() => {});
    this.model = undefined;
  }
}

/** Resolves after `n` calls of the returned `hit`. */
export function countdown(n: number): {
  hit: () => void;
  done: Promise<void>;
  readonly count: number;
} {
  let count = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  if (n <= 0) resolve();
  return {
    hit() {
      if (++count === n) resolve();
    },
    done,
    get count() {
      return count;
    },
  };
}

/** A promise with its resolve exposed. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * For fault tests: connections through a TCP proxy the test controls. After each test, whatever
 * was pushed on `closers` is closed, newest first, and the janitor deletes what the test declared.
 */
export function faultHarness(
  name: string,
  reconnect: { initialDelayMs: number; maxDelayMs: number },
) {
  const janitor = new Janitor();
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => {});
    await janitor.cleanup();
  });
  async function proxied(): Promise<{ proxy: TcpProxy; conn: AmqpConnection }> {
    const proxy = await brokerProxy();
    const conn = await AmqpConnection.connect({ urls: proxy.url, name, reconnect });
    closers.push(
      () => proxy.stop(),
      () => conn.close(),
    );
    return { proxy, conn };
  }
  return { janitor, closers, proxied };
}
