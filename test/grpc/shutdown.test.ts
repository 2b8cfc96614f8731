// Graceful shutdown: new calls are refused, calls in flight finish; after the grace period the rest
// are cut off and their handlers' signals abort with UNAVAILABLE.
import { describe, expect, it } from "vitest";
import { Code, StatusError, type HandlerContext } from "@grabbit/runtime";
import {
  GrpcServer,
  GrpcTransport,
  grpcServiceDefinition,
  grpcServiceImplementation,
  HealthStatus,
  ServingStatus,
} from "@grabbit/runtime/grpc";
import * as grpc from "@grpc/grpc-js";
import { Probe, statusOf, TestService, testHandlers, type Req, type Res } from "./fixtures.js";

const M = TestService.methods;

/** A service whose `wait` call finishes only when the test releases it. */
function gatedHandlers() {
  const { handlers } = testHandlers();
  const started = new Probe<HandlerContext>();
  const release = new Probe<void>();
  const aborted = new Probe<unknown>();
  return {
    started,
    release,
    aborted,
    handlers: {
      ...handlers,
      async wait(_req: Req, ctx: HandlerContext): Promise<Res> {
        started.resolve(ctx);
        ctx.signal.addEventListener("abort", () => aborted.resolve(ctx.signal.reason), {
          once: true,
        });
        await release.promise;
        return { text: "finished" };
      },
    },
  };
}

describe("graceful shutdown", () => {
  it("waits for a call in flight and refuses new ones", async () => {
    const gated = gatedHandlers();
    const server = new GrpcServer().add(TestService, gated.handlers);
    const port = await server.listen();
    const client = new GrpcTransport(`127.0.0.1:${port}`);
    try {
      const inFlight = client.unary(M.wait, {});
      await gated.started.promise;

      let shutDown = false;
      const shutdown = server.close({ graceMs: 60_000 }).then(() => (shutDown = true));
      // New calls fail while the old one is still running.
      const refused = await statusOf(client.unary(M.echo, {}));
      expect(refused.code).toBe(Code.UNAVAILABLE);
      expect(shutDown).toBe(false);

      gated.release.resolve();
      expect((await inFlight).text).toBe("finished");
      await shutdown;
      expect(shutDown).toBe(true);
    } finally {
      client.close();
    }
  });

  it("ends calls still running after the grace period with UNAVAILABLE, aborting their signals", async () => {
    const gated = gatedHandlers();
    const server = new GrpcServer().add(TestService, gated.handlers);
    const port = await server.listen();
    const client = new GrpcTransport(`127.0.0.1:${port}`);
    try {
      const inFlight = statusOf(client.unary(M.wait, {}));
      await gated.started.promise;
      await server.close({ graceMs: 100 });
      const reason = await gated.aborted.promise;
      expect(reason).toBeInstanceOf(StatusError);
      expect((reason as StatusError).code).toBe(Code.UNAVAILABLE);
      // The client gets a proper, retryable status rather than a reset stream.
      const err = await inFlight;
      expect(err.code).toBe(Code.UNAVAILABLE);
      expect(err.rawMessage).toBe("the server is shutting down");
    } finally {
      gated.release.resolve();
      client.close();
    }
  });

  it("ends a server stream still running after the grace period with UNAVAILABLE", async () => {
    const { handlers } = testHandlers();
    const server = new GrpcServer().add(TestService, {
      ...handlers,
      async *count(_req: Req, ctx: HandlerContext): AsyncIterable<Res> {
        yield { n: 0 };
        // A stream that never ends by itself (a subscription), stopped only through its signal.
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
      },
    });
    const port = await server.listen();
    const client = new GrpcTransport(`127.0.0.1:${port}`);
    try {
      const got: Res[] = [];
      let first!: () => void;
      const firstSeen = new Promise<void>((resolve) => (first = resolve));
      const consumed = statusOf(
        (async () => {
          for await (const r of client.serverStream(M.count, {})) {
            got.push(r);
            first();
          }
        })(),
      );
      await firstSeen;
      await server.close({ graceMs: 100 });
      const err = await consumed;
      expect(got).toEqual([{ n: 0 }]);
      expect(err.code).toBe(Code.UNAVAILABLE);
    } finally {
      client.close();
    }
  });

  it("shuts down at once when idle", async () => {
    const server = new GrpcServer().add(TestService, testHandlers().handlers);
    await server.listen();
    await server.close();
  });

  // close() is the one shutdown verb; the old name stays for a release and must behave the same.
  it("keeps the deprecated shutdown(graceMs) as an alias of close({ graceMs })", async () => {
    const gated = gatedHandlers();
    const server = new GrpcServer().add(TestService, gated.handlers);
    const health = server.addHealth();
    const port = await server.listen();
    const client = new GrpcTransport(`127.0.0.1:${port}`);
    try {
      const inFlight = statusOf(client.unary(M.wait, {}));
      await gated.started.promise;
      await server.shutdown(100);
      expect(((await gated.aborted.promise) as StatusError).code).toBe(Code.UNAVAILABLE);
      expect((await inFlight).code).toBe(Code.UNAVAILABLE);
      expect(health.get("")).toBe(ServingStatus.NOT_SERVING);
    } finally {
      gated.release.resolve();
      client.close();
    }
  });

  it("keeps the deprecated HealthStatus.shutdown() as an alias of close()", () => {
    const health = new HealthStatus({
      "": ServingStatus.SERVING,
      "test.v1.Test": ServingStatus.SERVING,
    });
    health.shutdown();
    expect(health.get("")).toBe(ServingStatus.NOT_SERVING);
    expect(health.get("test.v1.Test")).toBe(ServingStatus.NOT_SERVING);
    // Closed for good: later changes are ignored.
    health.set("", ServingStatus.SERVING);
    expect(health.get("")).toBe(ServingStatus.NOT_SERVING);
  });
});

describe("handlers", () => {
  it("may be a class instance: methods keep their `this`", async () => {
    class Greeter {
      private readonly greeting = "hello";
      async echo(req: Req): Promise<Res> {
        return { text: `${this.greeting} ${req.text}` };
      }
    }
    const server = new GrpcServer().add(TestService, new Greeter());
    const port = await server.listen();
    const client = new GrpcTransport(`127.0.0.1:${port}`);
    try {
      expect((await client.unary(M.echo, { text: "there" })).text).toBe("hello there");
      // Methods the instance lacks are UNIMPLEMENTED.
      expect((await statusOf(client.unary(M.fail, {}))).code).toBe(Code.UNIMPLEMENTED);
    } finally {
      client.close();
      await server.close({ graceMs: 1000 });
    }
  });
});

describe("plain grpc-js servers", () => {
  it("can host a service through grpcServiceDefinition and grpcServiceImplementation", async () => {
    const server = new grpc.Server();
    const { handlers } = testHandlers();
    server.addService(
      grpcServiceDefinition(TestService),
      grpcServiceImplementation(TestService, handlers, {
        interceptors: [
          (next) => async (req) => {
            req.values.set("via", "plain");
            return next(req);
          },
        ],
      }),
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const client = new GrpcTransport(`127.0.0.1:${port}`);
    try {
      expect((await client.unary(M.echo, { text: "x" })).values?.["via"]).toBe("plain");
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
