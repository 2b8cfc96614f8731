// grpc.health.v1.Health on a GrpcServer: Check, Watch, interceptors bypassed, and shutdown.
import { describe, expect, it } from "vitest";
import { Code, StatusError, type Interceptor } from "@grabbit/runtime";
import {
  GrpcServer,
  GrpcTransport,
  HealthServiceDesc,
  HealthStatus,
  ServingStatus,
  type HealthCheckResponse,
} from "@grabbit/runtime/grpc";
import * as grpc from "@grpc/grpc-js";
import { statusOf, TestService, testHandlers } from "./fixtures.js";

const H = HealthServiceDesc.methods;
const denyAll: Interceptor = () => async () => {
  throw new StatusError(Code.UNAUTHENTICATED, "no token");
};

async function start(health?: HealthStatus) {
  const server = new GrpcServer({ interceptors: [denyAll] }).add(
    TestService,
    testHandlers().handlers,
  );
  const status = server.addHealth(health);
  const port = await server.listen();
  const client = new GrpcTransport(`127.0.0.1:${port}`);
  return { server, status, client, port };
}

/** Reads a Watch stream one message at a time. */
function watcher(stream: AsyncIterable<HealthCheckResponse>) {
  const it = stream[Symbol.asyncIterator]();
  return { next: async () => (await it.next()).value as HealthCheckResponse | undefined, it };
}

describe("health", () => {
  it("answers Check for the server and for named services, without the server's interceptors", async () => {
    const { server, status, client } = await start(
      new HealthStatus({ "": ServingStatus.SERVING, "test.v1.Test": ServingStatus.NOT_SERVING }),
    );
    try {
      // The application's interceptors still guard the application's methods.
      expect((await statusOf(client.unary(TestService.methods.echo, {}))).code).toBe(
        Code.UNAUTHENTICATED,
      );
      expect(await client.unary(H.check, { service: "" })).toEqual({
        status: ServingStatus.SERVING,
      });
      expect(await client.unary(H.check, { service: "test.v1.Test" })).toEqual({
        status: ServingStatus.NOT_SERVING,
      });
      status.set("test.v1.Test", ServingStatus.SERVING);
      expect(await client.unary(H.check, { service: "test.v1.Test" })).toEqual({
        status: ServingStatus.SERVING,
      });
      expect((await statusOf(client.unary(H.check, { service: "nope" }))).code).toBe(
        Code.NOT_FOUND,
      );
    } finally {
      client.close();
      await server.close({ graceMs: 1000 });
    }
  });

  it("speaks the standard wire format (what grpc_health_probe sends and expects)", async () => {
    const { server, client, port } = await start();
    const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      // HealthCheckRequest{service: ""} is empty; HealthCheckResponse{status: SERVING} is field 1 = 1.
      const bytes = await new Promise<Buffer>((resolve, reject) =>
        raw.makeUnaryRequest(
          "/grpc.health.v1.Health/Check",
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          (e, v) => (e ? reject(e) : resolve(v!)),
        ),
      );
      expect([...bytes]).toEqual([0x08, 0x01]);
    } finally {
      raw.close();
      client.close();
      await server.close({ graceMs: 1000 });
    }
  });

  it("streams status changes to Watch, SERVICE_UNKNOWN for a service not (yet) known", async () => {
    const { server, status, client } = await start();
    try {
      const w = watcher(client.serverStream(H.watch, { service: "later" }));
      expect(await w.next()).toEqual({ status: ServingStatus.SERVICE_UNKNOWN });
      status.set("later", ServingStatus.SERVING);
      expect(await w.next()).toEqual({ status: ServingStatus.SERVING });
      status.set("later", ServingStatus.SERVING); // no change, nothing sent
      status.set("later", ServingStatus.NOT_SERVING);
      expect(await w.next()).toEqual({ status: ServingStatus.NOT_SERVING });
      await w.it.return?.();
    } finally {
      client.close();
      await server.close({ graceMs: 1000 });
    }
  });

  it("on shutdown, tells watchers NOT_SERVING and ends their streams so the drain is graceful", async () => {
    const { server, client } = await start();
    try {
      const w = watcher(client.serverStream(H.watch, { service: "" }));
      expect(await w.next()).toEqual({ status: ServingStatus.SERVING });
      // A long grace period: shutdown finishes only because the Watch stream ends by itself.
      const shutdown = server.close({ graceMs: 50_000 });
      expect(await w.next()).toEqual({ status: ServingStatus.NOT_SERVING });
      expect(await w.it.next()).toEqual({ value: undefined, done: true });
      await shutdown;
    } finally {
      client.close();
    }
  });
});
