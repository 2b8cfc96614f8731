// Interceptors of the runtime's one shape on both sides of a gRPC call: token propagation, identity
// passed to handlers through values, and streams passed through interceptors.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError, type CallRequest, type Interceptor } from "@grabbit/runtime";
import { GrpcTransport } from "@grabbit/runtime/grpc";
import {
  collect,
  fromArray,
  startHarness,
  statusOf,
  TestService,
  type Harness,
  type Req,
  type Res,
} from "./fixtures.js";

const M = TestService.methods;

/** Client side: adds the caller's token before the call starts. */
const bearer =
  (token: string): Interceptor =>
  (next) =>
  async (req) => {
    req.metadata["authorization"] = `Bearer ${token}`;
    return next(req);
  };

/** Server side: rejects calls without a known token and tells handlers who called. */
const authenticate: Interceptor = (next) => async (req) => {
  const header = req.metadata["authorization"];
  const user = header === "Bearer s3cret" ? "alice" : undefined;
  if (user === undefined)
    throw new StatusError(Code.UNAUTHENTICATED, header ? "unknown token" : "missing token");
  req.values.set("user", user);
  return next(req);
};

const log: string[] = [];
const record =
  (name: string): Interceptor =>
  (next) =>
  async (req) => {
    log.push(`${req.side}:${name}:before:${req.method.name}`);
    const res = await next(req);
    log.push(`${req.side}:${name}:after:${req.method.name}`);
    return res;
  };

/** Wraps streams both ways: doubles request `n` going in, tags responses coming out. */
const streamRewriter: Interceptor = (next) => async (req) => {
  if (req.stream) {
    const inner = req.messages as AsyncIterable<Req>;
    req.messages = (async function* () {
      for await (const m of inner) yield { ...m, n: (m.n ?? 0) * 2 };
    })();
  }
  const res = await next(req);
  if (res.stream) {
    const inner = res.messages as AsyncIterable<Res>;
    return {
      ...res,
      messages: (async function* () {
        for await (const m of inner) yield { ...m, text: `${m.text ?? ""}!` };
      })(),
    };
  }
  return res;
};

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    server: { interceptors: [record("outer"), authenticate, record("inner")] },
    client: { interceptors: [record("client"), bearer("s3cret")] },
  });
});
afterAll(async () => {
  await h?.close();
});

describe("token propagation", () => {
  it("passes the client's token to the server and the identity to the handler", async () => {
    const res = await h.client.unary(M.echo, { text: "hello" });
    expect(res.metadata?.["authorization"]).toBe("Bearer s3cret");
    expect(res.values?.["user"]).toBe("alice");
  });

  it("rejects a call without a token with UNAUTHENTICATED (the handler never runs)", async () => {
    const anonymous = new GrpcTransport(h.address);
    try {
      const err = await statusOf(anonymous.unary(M.echo, {}));
      expect(err.code).toBe(Code.UNAUTHENTICATED);
      expect(err.rawMessage).toBe("missing token");
      expect((await statusOf(collect(anonymous.serverStream(M.count, { n: 3 })))).code).toBe(
        Code.UNAUTHENTICATED,
      );
    } finally {
      anonymous.close();
    }
  });

  it("rejects a wrong token", async () => {
    const intruder = new GrpcTransport(h.address, { interceptors: [bearer("guess")] });
    try {
      expect((await statusOf(intruder.unary(M.echo, {}))).rawMessage).toBe("unknown token");
    } finally {
      intruder.close();
    }
  });

  it("applies interceptors to every call kind", async () => {
    expect((await collect(h.client.serverStream(M.count, { n: 2 }))).length).toBe(2);
    expect(
      (await h.client.clientStream(M.sum, fromArray([{ n: 1 }, { n: 2 }]))).metadata?.[
        "authorization"
      ],
    ).toBe("Bearer s3cret");
    expect(
      (await collect(h.client.bidiStream(M.chat, fromArray([{ text: "x" }])))).map((r) => r.text),
    ).toEqual(["re: x"]);
  });
});

describe("failing interceptors", () => {
  it("reach the caller as StatusErrors, whether they throw, reject or fail a stream", async () => {
    const sync: Interceptor = () => () => {
      throw new Error("sync failure");
    };
    const rejects: Interceptor = () => async () => {
      throw new TypeError("async failure");
    };
    const badStream: Interceptor = (next) => async (req) => {
      const res = await next(req);
      if (!res.stream) throw new Error("badStream wraps streaming calls only");
      return {
        ...res,
        messages: (async function* () {
          yield* res.messages;
          throw new Error("stream wrapper failure");
        })(),
      };
    };
    for (const [interceptor, message] of [
      [sync, "sync failure"],
      [rejects, "async failure"],
    ] as const) {
      const t = new GrpcTransport(h.address, { interceptors: [interceptor] });
      try {
        const call = t.unary(M.echo, {});
        expect(call).toBeInstanceOf(Promise);
        const err = await statusOf(call);
        expect(err.code).toBe(Code.UNKNOWN);
        expect(err.rawMessage).toBe(message);
      } finally {
        t.close();
      }
    }
    const t = new GrpcTransport(h.address, { interceptors: [bearer("s3cret"), badStream] });
    try {
      const err = await statusOf(collect(t.serverStream(M.count, { n: 2 })));
      expect(err.rawMessage).toBe("stream wrapper failure");
    } finally {
      t.close();
    }
  });
});

describe("what interceptors see", () => {
  it("gets the call's side, transport, method, deadline, peer and a live signal on both ends", async () => {
    const seen: CallRequest[] = [];
    const spy: Interceptor = (next) => async (req) => {
      seen.push(req);
      expect(req.signal.aborted).toBe(false);
      return next(req);
    };
    const s = await startHarness({
      server: { interceptors: [spy] },
      client: { interceptors: [spy] },
    });
    try {
      await s.client.unary(M.echo, { text: "x" }, { timeoutMs: 60_000 });
      const [client, server] = seen;
      expect(client).toMatchObject({
        side: "client",
        transport: "grpc",
        message: { text: "x" },
        peer: undefined,
      });
      expect(server).toMatchObject({ side: "server", transport: "grpc", message: { text: "x" } });
      expect(client!.method).toBe(M.echo);
      expect(server!.method).toBe(M.echo);
      expect(server!.peer).toMatch(/127\.0\.0\.1/);
      expect(client!.deadline).toBeTypeOf("number");
      expect(Math.abs(server!.deadline! - client!.deadline!)).toBeLessThan(10_000);
    } finally {
      await s.close();
    }
  });
});

describe("ordering", () => {
  it("runs the first interceptor outermost on both sides", async () => {
    log.length = 0;
    await h.client.unary(M.echo, {});
    expect(log).toEqual([
      "client:client:before:Echo",
      "server:outer:before:Echo",
      "server:inner:before:Echo",
      "server:inner:after:Echo",
      "server:outer:after:Echo",
      "client:client:after:Echo",
    ]);
  });
});

describe("streams through interceptors", () => {
  it("lets interceptors rewrite request and response streams on the client", async () => {
    const t = new GrpcTransport(h.address, { interceptors: [bearer("s3cret"), streamRewriter] });
    try {
      const sum = await t.clientStream(M.sum, fromArray([{ n: 1 }, { n: 2 }, { n: 3 }]));
      expect(sum.n).toBe(12);
      const out = await collect(t.bidiStream(M.chat, fromArray([{ text: "a", n: 1 }])));
      expect(out).toEqual([{ text: "re: a!", n: 2 }]);
    } finally {
      t.close();
    }
  });

  it("lets interceptors rewrite streams on the server", async () => {
    const s = await startHarness({ server: { interceptors: [streamRewriter] } });
    try {
      expect((await s.client.clientStream(M.sum, fromArray([{ n: 5 }]))).n).toBe(10);
      expect(await collect(s.client.serverStream(M.count, { n: 2 }))).toEqual([
        { n: 0, text: "!" },
        { n: 1, text: "!" },
      ]);
    } finally {
      await s.close();
    }
  });

  it("lets a client interceptor see response metadata", async () => {
    let seen: Record<string, string> | undefined;
    const t = new GrpcTransport(h.address, {
      interceptors: [
        bearer("s3cret"),
        (next) => async (req) => {
          const res = await next(req);
          seen = res.metadata;
          return res;
        },
      ],
    });
    try {
      await t.unary(M.echo, { text: "trailer" });
      expect(seen?.["x-echo"]).toBe("trailer");
    } finally {
      t.close();
    }
  });
});
