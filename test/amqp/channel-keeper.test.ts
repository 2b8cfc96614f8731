// The one channel lifecycle every AMQP part uses: open per session, set up, reopen after a channel
// error or a lost connection, replace (at once, or after the work on it drains), close once.
import { afterEach, describe, expect, it } from "vitest";
import type { Channel, ConfirmChannel } from "amqplib";
import { AmqpConnection, ChannelKeeper } from "@grabbit/runtime/amqp";
import { deferred, faultHarness } from "./fixtures.js";

const { closers, proxied } = faultHarness("grabbit-keeper-test", {
  initialDelayMs: 10,
  maxDelayMs: 50,
});
const keepers: ChannelKeeper<Channel>[] = [];
afterEach(async () => {
  for (const k of keepers.splice(0)) await k.close();
});

/** A keeper whose every event is recorded; `opened` resolves on the n-th open. */
function recorded(conn: AmqpConnection, setup?: (ch: Channel) => Promise<void>) {
  const log: string[] = [];
  const lostErrors: (string | undefined)[] = [];
  let opens = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  const keeper = new ChannelKeeper<Channel>(conn, {
    owner: "test",
    confirm: false,
    setup: async (ch) => {
      log.push("setup");
      await setup?.(ch);
    },
    onOpen: () => {
      opens++;
      log.push("open");
      for (const w of waiters.filter((w) => w.n <= opens)) w.resolve();
    },
    onLost: (_ch, err) => {
      log.push("lost");
      lostErrors.push(err?.message);
    },
  });
  keepers.push(keeper);
  const opened = (n: number) =>
    new Promise<void>((resolve) => {
      if (opens >= n) resolve();
      else waiters.push({ n, resolve });
    });
  return { keeper, log, lostErrors, opened };
}

describe("ChannelKeeper", () => {
  it("opens and sets up a channel, and after a channel error opens a new one on the same session", async () => {
    const { conn } = await proxied();
    const { keeper, log, lostErrors, opened } = recorded(conn);
    await keeper.startOrFail();
    const first = keeper.current!;
    const session = conn.currentSession;
    expect(first).toBeDefined();
    // A passive declare of a missing queue is a channel error (404): the broker closes the channel.
    await expect(first.checkQueue("grabbit-no-such-queue-keeper")).rejects.toThrow(/NOT_FOUND/);
    await opened(2);
    expect(keeper.current).toBeDefined();
    expect(keeper.current).not.toBe(first);
    expect(conn.currentSession).toBe(session);
    expect(log).toEqual(["setup", "open", "lost", "setup", "open"]);
    expect(lostErrors[0]).toMatch(/NOT_FOUND/);
  });

  it("opens again on the next session after the connection is cut", async () => {
    const { proxy, conn } = await proxied();
    const { keeper, log, lostErrors, opened } = recorded(conn);
    await keeper.startOrFail();
    const before = conn.currentSession!.id;
    proxy.cutAll();
    await opened(2);
    expect(conn.currentSession!.id).toBeGreaterThan(before);
    expect(log).toEqual(["setup", "open", "lost", "setup", "open"]);
    // A lost connection is no channel error of the broker's.
    expect(lostErrors).toEqual([undefined]);
  });

  it("replaces a channel at once, or keeps the old one open until its work drains", async () => {
    const { conn } = await proxied();
    const { keeper, log, opened } = recorded(conn);
    await keeper.startOrFail();
    const first = keeper.current!;
    keeper.replace(first, new Error("nacks everything"));
    await opened(2);
    expect(keeper.replacements).toBe(1);
    expect(keeper.lastReplaceReason).toBe("nacks everything");

    const second = keeper.current!;
    const drained = deferred();
    keeper.replace(second, new Error("stalled"), drained.promise);
    await opened(3);
    const third = keeper.current!;
    expect(third).not.toBe(second);
    // The retired channel still works (its replies would still arrive) until the drain ends.
    await second.checkExchange("amq.direct");
    expect(log.filter((e) => e === "lost")).toHaveLength(1);
    const closed = new Promise<void>((resolve) => second.once("close", () => resolve()));
    drained.resolve();
    await closed;
    expect(keeper.current).toBe(third);
    expect(log.filter((e) => e === "lost")).toHaveLength(2);
  });

  it("startOrFail rejects with the broker's refusal and stays stopped; close() ends reopening", async () => {
    const { conn } = await proxied();
    const { keeper, log } = recorded(conn, async (ch) => {
      await ch.checkQueue("grabbit-no-such-queue-keeper");
    });
    await expect(keeper.startOrFail()).rejects.toThrow(/NOT_FOUND/);
    await new Promise((r) => setTimeout(r, 200));
    expect(log).toEqual(["setup"]);
    expect(keeper.current).toBeUndefined();

    const ok = recorded(conn);
    await ok.keeper.startOrFail();
    const ch = ok.keeper.current!;
    const closed = new Promise<void>((resolve) => ch.once("close", () => resolve()));
    await Promise.all([ok.keeper.close(), ok.keeper.close()]);
    await closed;
    await new Promise((r) => setTimeout(r, 200));
    expect(ok.keeper.current).toBeUndefined();
    expect(ok.log).toEqual(["setup", "open", "lost"]);
  });

  it("keeps a confirm channel for a publisher: the channel it hands out is in confirm mode", async () => {
    const { conn } = await proxied();
    const keeper = new ChannelKeeper<ConfirmChannel>(conn, { owner: "test", confirm: true });
    closers.push(() => keeper.close());
    await keeper.startOrFail();
    const ch = keeper.current!;
    await new Promise<void>((resolve, reject) =>
      ch.publish("amq.direct", "nobody", Buffer.from("x"), {}, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  });
});
