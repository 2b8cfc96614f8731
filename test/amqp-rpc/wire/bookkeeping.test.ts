// The RPC client's and server's small state pieces, without a broker: the memory of early
// cancellations, the request queue of a method, and which calls count as stalled.
import { describe, expect, it } from "vitest";
import type { ServiceDesc } from "@grabbit/runtime";
import { CancelMemory } from "../../../runtime/src/amqp/rpc/cancel-memory.js";
import { Pending, stalledCalls } from "../../../runtime/src/amqp/rpc/pending.js";
import { RequestQueues, serviceOfPath } from "../../../runtime/src/amqp/rpc/request-queue.js";
import { noteMethod } from "./support.js";

describe("CancelMemory", () => {
  it("answers true once for a remembered id, and false for strangers, non-strings and expired ids", () => {
    const memory = new CancelMemory(1_000, 10);
    memory.remember("a", 0);
    memory.remember("b", 0);
    expect(memory.take("a", 500)).toBe(true);
    expect(memory.take("a", 500)).toBe(false);
    expect(memory.take("zzz", 500)).toBe(false);
    expect(memory.take(42, 500)).toBe(false);
    expect(memory.take("b", 1_000)).toBe(false);
    expect(memory.size).toBe(0);
  });

  it("stays within its bound, forgetting the oldest first", () => {
    const memory = new CancelMemory(60_000, 3);
    for (const id of ["a", "b", "c", "d"]) memory.remember(id, 0);
    expect(memory.size).toBe(3);
    expect(memory.take("a", 1)).toBe(false);
    expect(memory.take("d", 1)).toBe(true);
  });
});

describe("RequestQueues", () => {
  const bare = { ...noteMethod("Get"), requestQueue: undefined };

  it("takes the descriptor's queue, else the registered service's, else the service name from the path", () => {
    expect(serviceOfPath("/demo.v1.Orders/Get")).toBe("demo.v1.Orders");
    expect(serviceOfPath("demo.v1.Orders")).toBe("demo.v1.Orders");
    const queues = new RequestQueues();
    expect(queues.of({ ...bare, requestQueue: "declared" })).toBe("declared");
    expect(queues.of(bare)).toBe("wire.v1.Notes");
    const other = { ...bare };
    queues.register({
      typeName: "wire.v1.Notes",
      transports: ["amqp"],
      amqp: { requestQueue: "notes.q", prefetch: 1 },
      methods: { get: other },
    } satisfies ServiceDesc);
    expect(queues.of(other)).toBe("notes.q");
    expect(queues.of({ ...bare })).toBe("notes.q"); // by path, for another copy of the descriptor
  });
});

describe("stalledCalls", () => {
  const call = (firstSentAt: number, confirmed: boolean) => {
    const p = new Pending(
      "id",
      noteMethod("Get"),
      new AbortController().signal,
      "q",
      Buffer.alloc(0),
      {},
      () => {},
      () => {},
    );
    p.firstSentAt = firstSentAt;
    p.confirmed = confirmed;
    return p;
  };

  it("counts an unconfirmed request past the stall time, a confirmed one only when all is quiet", () => {
    const unconfirmed = call(1, false);
    const confirmed = call(1, true);
    const recent = call(9_000, false);
    const unsent = call(0, false); // 0: not sent yet
    const calls = [unconfirmed, confirmed, recent];
    expect(stalledCalls(calls, 10_000, 3_000, 9_500)).toEqual([unconfirmed]);
    expect(stalledCalls(calls, 10_000, 3_000, 5_000)).toEqual([unconfirmed, confirmed]);
    expect(stalledCalls([unsent], 10_000, 3_000, 0)).toEqual([]);
  });
});
