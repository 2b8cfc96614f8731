// inheritCallOptions on its own: what an outgoing call or publish takes from the call being served.
// Pure: no broker, no server; the served call is a HandlerContext built here.
import { describe, expect, it } from "vitest";
import {
  currentCallContext,
  inheritCallOptions,
  INHERITED_HEADERS,
  runInCallContext,
  type CallOptions,
  type HandlerContext,
  type Metadata,
} from "@grabbit/runtime";
import { orderType } from "../support/messages.js";

const Order = orderType("test.v1.Order");
const method = {
  name: "Get",
  path: "/test.v1.Orders/Get",
  kind: "unary",
  input: Order,
  output: Order,
  idempotent: false,
} as const;

/** A served call with these metadata, deadline and signal. */
function served(
  options: { metadata?: Metadata; deadline?: number; signal?: AbortSignal } = {},
): HandlerContext {
  return {
    method,
    transport: "grpc",
    metadata: options.metadata ?? {},
    deadline: options.deadline,
    signal: options.signal ?? new AbortController().signal,
    responseHeaders: {},
    sendHeaders() {},
    responseMetadata: {},
    peer: undefined,
    values: new Map(),
  };
}

const CALLER = {
  authorization: "Bearer caller",
  traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  tracestate: "vendor=1",
  baggage: "tenant=acme",
};

describe("outside a handler", () => {
  it("changes nothing: the same options object, or undefined", () => {
    const options: CallOptions = { timeoutMs: 50, metadata: { authorization: "Bearer own" } };
    expect(currentCallContext()).toBeUndefined();
    expect(inheritCallOptions(options)).toBe(options);
    expect(inheritCallOptions(undefined)).toBeUndefined();
  });

  it("is outside again once the handler's run is over", async () => {
    await runInCallContext(served({ metadata: CALLER }), async () => {
      await Promise.resolve();
    });
    expect(currentCallContext()).toBeUndefined();
    expect(inheritCallOptions(undefined)).toBeUndefined();
  });
});

describe("the deadline", () => {
  it("is the served call's when the options set none", () => {
    const out = runInCallContext(served({ deadline: 5_000 }), () =>
      inheritCallOptions({ timeoutMs: 100 }),
    );
    expect(out?.deadline).toBe(5_000);
    expect(out?.timeoutMs).toBe(100); // the client takes the earlier of the two
  });

  it("is the earlier of the served call's and the options' own (a number or a Date)", () => {
    const ctx = served({ deadline: 5_000 });
    expect(runInCallContext(ctx, () => inheritCallOptions({ deadline: 9_000 }))?.deadline).toBe(
      5_000,
    );
    expect(runInCallContext(ctx, () => inheritCallOptions({ deadline: 2_000 }))?.deadline).toBe(
      2_000,
    );
    expect(
      runInCallContext(ctx, () => inheritCallOptions({ deadline: new Date(3_000) }))?.deadline,
    ).toBe(3_000);
  });

  it("stays the options' own when the served call has none", () => {
    const when = new Date(7_000);
    expect(runInCallContext(served(), () => inheritCallOptions({ deadline: when }))?.deadline).toBe(
      when,
    );
    expect(runInCallContext(served(), () => inheritCallOptions({}))?.deadline).toBeUndefined();
  });
});

describe("the signal", () => {
  it("is the served call's when the options give none", () => {
    const call = new AbortController();
    const out = runInCallContext(served({ signal: call.signal }), () =>
      inheritCallOptions(undefined),
    );
    expect(out?.signal).toBe(call.signal);
  });

  it("aborts when either the served call or the options' own signal does", () => {
    for (const which of ["served", "own"] as const) {
      const call = new AbortController();
      const own = new AbortController();
      const out = runInCallContext(served({ signal: call.signal }), () =>
        inheritCallOptions({ signal: own.signal }),
      );
      expect(out?.signal?.aborted).toBe(false);
      (which === "served" ? call : own).abort(new Error(`${which} cancelled`));
      expect(out?.signal?.aborted, which).toBe(true);
      expect((out?.signal?.reason as Error | undefined)?.message).toBe(`${which} cancelled`);
    }
  });

  it("reaches work the handler started, after awaits and timers", async () => {
    const call = new AbortController();
    const later = await runInCallContext(
      served({ signal: call.signal, metadata: CALLER }),
      async () => {
        await new Promise((resolve) => setImmediate(resolve));
        return new Promise<CallOptions | undefined>((resolve) =>
          setTimeout(() => resolve(inheritCallOptions(undefined)), 0),
        );
      },
    );
    expect(later?.signal).toBe(call.signal);
    expect(later?.metadata?.authorization).toBe(CALLER.authorization);
  });
});

describe("the headers", () => {
  it("copies authorization and W3C trace context and baggage, and nothing else", () => {
    expect([...INHERITED_HEADERS].sort()).toEqual([
      "authorization",
      "baggage",
      "traceparent",
      "tracestate",
    ]);
    const out = runInCallContext(
      served({ metadata: { ...CALLER, "x-tenant": "acme", "rpc-method": "/a/b" } }),
      () => inheritCallOptions(undefined),
    );
    expect(out?.metadata).toEqual(CALLER);
  });

  it("keeps what the options set themselves, whatever the case of the name, and leaves their object alone", () => {
    const metadata = { Authorization: "Bearer own", "x-request-id": "r1" };
    const out = runInCallContext(served({ metadata: CALLER }), () =>
      inheritCallOptions({ metadata }),
    );
    expect(out?.metadata).toEqual({
      Authorization: "Bearer own",
      "x-request-id": "r1",
      traceparent: CALLER.traceparent,
      tracestate: CALLER.tracestate,
      baggage: CALLER.baggage,
    });
    expect(metadata).toEqual({ Authorization: "Bearer own", "x-request-id": "r1" });
  });

  it("adds none the served call did not have", () => {
    const out = runInCallContext(served({ metadata: { traceparent: CALLER.traceparent } }), () =>
      inheritCallOptions({ metadata: { "x-request-id": "r1" } }),
    );
    expect(out?.metadata).toEqual({ "x-request-id": "r1", traceparent: CALLER.traceparent });
  });
});

describe("inherit: false", () => {
  it("starts afresh: the options come back as given", () => {
    const options: CallOptions = { inherit: false, metadata: { "x-request-id": "r1" } };
    const call = new AbortController();
    const out = runInCallContext(
      served({ metadata: CALLER, deadline: 1_000, signal: call.signal }),
      () => inheritCallOptions(options),
    );
    expect(out).toBe(options);
    expect(out?.deadline).toBeUndefined();
    expect(out?.signal).toBeUndefined();
    expect(out?.metadata).toEqual({ "x-request-id": "r1" });
  });
});

describe("nested calls", () => {
  it("a handler serving a call inside another handler's work inherits from the inner one", () => {
    const outer = served({ metadata: { authorization: "Bearer outer" }, deadline: 9_000 });
    const inner = served({ metadata: { authorization: "Bearer inner" } });
    const out = runInCallContext(outer, () =>
      runInCallContext(inner, () => inheritCallOptions(undefined)),
    );
    expect(out?.metadata?.authorization).toBe("Bearer inner");
    expect(out?.deadline).toBeUndefined();
    expect(
      runInCallContext(outer, () => inheritCallOptions(undefined))?.metadata?.authorization,
    ).toBe("Bearer outer");
  });
});
