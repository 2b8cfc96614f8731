// The bounded queue between grpc-js streams (push) and async iteration (pull).
import { describe, expect, it } from "vitest";
import { AsyncQueue } from "../../runtime/src/grpc/queue.js";

function queue(highWater = 4) {
  const events: string[] = [];
  const q = new AsyncQueue<number>(
    highWater,
    () => events.push("resume"),
    () => events.push("return"),
  );
  return { q, events };
}

describe("AsyncQueue", () => {
  it("delivers items in order, then the end", async () => {
    const { q } = queue();
    q.push(1);
    q.push(2);
    q.end();
    expect(q.push(3)).toBe(false); // dropped after the end
    const out: number[] = [];
    for await (const n of q) out.push(n);
    expect(out).toEqual([1, 2]);
  });

  it("asks the producer to pause at the high-water mark and resumes it when drained to half", async () => {
    const { q, events } = queue(4);
    expect([q.push(1), q.push(2), q.push(3), q.push(4)]).toEqual([false, false, false, true]);
    await q.next(); // 3 left
    expect(events).toEqual([]);
    await q.next(); // 2 left: half of 4
    expect(events).toEqual(["resume"]);
  });

  it("throws the error after the items queued before it", async () => {
    const { q } = queue();
    q.push(1);
    q.end(new Error("boom"));
    expect(await q.next()).toEqual({ value: 1, done: false });
    await expect(q.next()).rejects.toThrow("boom");
    expect(await q.next()).toEqual({ value: undefined, done: true });
  });

  it("serves next() calls made before items arrive, in order", async () => {
    const { q } = queue();
    const a = q.next();
    const b = q.next();
    q.push(1);
    q.push(2);
    expect(await a).toEqual({ value: 1, done: false });
    expect(await b).toEqual({ value: 2, done: false });
  });

  it("ends a waiting next() on return() and tells the producer once", async () => {
    const { q, events } = queue();
    const waiting = q.next();
    await q.return();
    await q.return();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(events).toEqual(["return"]);
  });

  it("stops the producer when a for-await loop breaks", async () => {
    const { q, events } = queue();
    q.push(1);
    q.push(2);
    for await (const _ of q) break;
    expect(events).toEqual(["return"]);
  });
});
