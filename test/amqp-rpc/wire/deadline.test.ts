// deadline.ts and timers.ts: how long a request says its caller waits, the statuses a call ends
// with when its deadline passes or its signal aborts, and the cap Node's timers impose.
import { describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import {
  abortStatus,
  deadlineError,
  requestDeadline,
  requestTimeoutMs,
  untilReady,
} from "../../../runtime/src/amqp/rpc/deadline.js";
import { NEVER_ABORTED } from "../../../runtime/src/context.js";
import {
  beyondTimers,
  delayUntil,
  MAX_TIMEOUT_MS,
  remainingMs,
} from "../../../runtime/src/timers.js";
import { noteMethod } from "./support.js";

const method = noteMethod("Get");

describe("requestTimeoutMs", () => {
  it("reads rpc-timeout-ms in any of amqplib's number shapes, and expiration only for unary requests", () => {
    expect(requestTimeoutMs({ "rpc-timeout-ms": 150 }, "900", false)).toBe(150);
    expect(requestTimeoutMs({ "rpc-timeout-ms": 150n }, undefined, true)).toBe(150);
    expect(requestTimeoutMs({ "rpc-timeout-ms": "150" }, undefined, false)).toBe(150);
    expect(requestTimeoutMs({}, "900", false)).toBe(900);
    expect(requestTimeoutMs({}, "900", true)).toBeUndefined();
    expect(requestTimeoutMs({ "rpc-timeout-ms": "soon" }, undefined, false)).toBeUndefined();
    expect(requestTimeoutMs(undefined, "", false)).toBeUndefined();
  });

  it("counts a deadline from arrival, never from the caller's clock", () => {
    expect(requestDeadline(250, 10_000)).toBe(10_250);
    expect(requestDeadline(undefined, 10_000)).toBeUndefined();
  });
});

describe("abortStatus", () => {
  it("keeps a StatusError reason, reads AbortSignal.timeout() as a deadline, and anything else as CANCELLED", () => {
    const own = new StatusError(Code.UNAVAILABLE, "shutting down");
    expect(abortStatus(AbortSignal.abort(own))).toBe(own);
    const timeout = new DOMException("The operation timed out.", "TimeoutError");
    expect(abortStatus(AbortSignal.abort(timeout))).toMatchObject({
      code: Code.DEADLINE_EXCEEDED,
      rawMessage: "the call's signal timed out: The operation timed out.",
    });
    expect(abortStatus(AbortSignal.abort(new Error("user left")))).toMatchObject({
      code: Code.CANCELLED,
      rawMessage: "the call was cancelled: user left",
    });
    expect(abortStatus(AbortSignal.abort("why not"))).toMatchObject({
      code: Code.CANCELLED,
      rawMessage: "the call was cancelled",
    });
  });

  it("names the method in a deadline error", () => {
    expect(deadlineError(method)).toMatchObject({
      code: Code.DEADLINE_EXCEEDED,
      rawMessage: "/wire.v1.Notes/Get: the deadline passed before the reply arrived",
    });
  });
});

describe("untilReady", () => {
  const call = (over: { deadline?: number; signal?: AbortSignal }) => ({
    method,
    deadline: over.deadline,
    signal: over.signal ?? NEVER_ABORTED,
  });

  it("resolves with the event, and turns the event's failure into UNAVAILABLE", async () => {
    await expect(untilReady(Promise.resolve(), call({}))).resolves.toBeUndefined();
    await expect(
      untilReady(Promise.reject(new Error("no session")), call({})),
    ).rejects.toMatchObject({ code: Code.UNAVAILABLE, rawMessage: "no session" });
  });

  it("fails on a deadline already passed, or a signal that aborts, before the event comes", async () => {
    const never = new Promise<void>(() => {});
    await expect(untilReady(never, call({ deadline: Date.now() - 1 }))).rejects.toMatchObject({
      code: Code.DEADLINE_EXCEEDED,
    });
    const controller = new AbortController();
    const waiting = untilReady(never, call({ signal: controller.signal }));
    controller.abort(new Error("gave up"));
    await expect(waiting).rejects.toMatchObject({
      code: Code.CANCELLED,
      rawMessage: "the call was cancelled: gave up",
    });
  });
});

describe("timers", () => {
  it("caps what a timer and rpc-timeout-ms get at 2^31-1 ms, rounds up what is left, and never goes negative", () => {
    const now = 1_000_000;
    expect(remainingMs(now + 10.2, now)).toBe(11);
    expect(remainingMs(now - 5, now)).toBe(-5);
    expect(remainingMs(now + 10 * MAX_TIMEOUT_MS, now)).toBe(MAX_TIMEOUT_MS);
    expect(delayUntil(now - 5, now)).toBe(0);
    expect(delayUntil(now + 10 * MAX_TIMEOUT_MS, now)).toBe(MAX_TIMEOUT_MS);
    expect(beyondTimers(now + MAX_TIMEOUT_MS, now)).toBe(false);
    expect(beyondTimers(now + MAX_TIMEOUT_MS + 1, now)).toBe(true);
  });
});
