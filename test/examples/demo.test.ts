// The reference system end to end on the real broker: REST in, gRPC to the Processor, the report over
// RabbitMQ to the Reporter (through the Processor's outbox), the gRPC callback to the Bridge; and the
// token (a JWT of the example's issuer) checked at every hop. test/examples/identity.test.ts has the
// token cases (expired, forged, audience, rotation) over both transports.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { join } from "node:path";
import { REPO, runtimePaths, scratchDir, typeCheck } from "../support/buf.js";
import { generateExamples } from "./generate.js";
import { deleteReporterQueues } from "./reporter-queues.js";

type SystemModule = typeof import("../../examples/system.js");
let sys: SystemModule;
let system: Awaited<ReturnType<SystemModule["startSystem"]>>;
let gen: { processor: any; bridge: any; reports: any; common: any };
// A region of this run's own: the Reporter binds report.*.<region>, so other runs' reports never reach it.
const region = uniqueName("test");
const queue = uniqueName("example.reporter");
let TOKEN: string;
let OTHER: string;

beforeAll(async () => {
  generateExamples();
  sys = await import("../../examples/system.js");
  gen = {
    processor: await import("../../examples/gen/example/v1/processor.grabbit.js"),
    bridge: await import("../../examples/gen/example/v1/bridge.grabbit.js"),
    reports: await import("../../examples/gen/example/v1/reports.grabbit.js"),
    common: await import("../../examples/gen/example/v1/common.js"),
  };
  system = await sys.startSystem({
    amqpUrl: AMQP_URL,
    seed: 7,
    reporterQueue: queue,
    reporterRegion: region,
  });
  TOKEN = await system.token();
  // Valid, but another client's: not the token a request came with.
  OTHER = await system.issuer.sign({ subject: "other-client" });
});

afterAll(async () => {
  await system?.close();
  await deleteReporterQueues(queue);
});

describe("the example system", () => {
  it("decides every request sent through REST, and the Reporter sees every report", async () => {
    const count = 30;
    const { requests, summary } = await sys.runBatch(system, {
      count,
      seed: 7,
      token: TOKEN,
      regions: [region],
    });
    expect(requests).toHaveLength(count);
    for (const r of requests) {
      expect(r.status).toBe("DONE");
      expect(["APPROVED", "DENIED"]).toContain(r.decision);
      expect(system.reporter.has(r.requestId)).toBe(true);
    }
    expect(summary.reports).toBe(count);
    expect(summary.approved + summary.denied).toBe(count);
    expect(summary.approved).toBe(requests.filter((r) => r.decision === "APPROVED").length);
    expect(summary.byRegion[region]).toMatchObject({
      approved: summary.approved,
      denied: summary.denied,
    });
    expect(summary.refused).toBe(0);
    // The Bridge's own store agrees with what the REST API said.
    for (const r of requests)
      expect(system.bridge.requests.get(r.requestId)?.decision).toBe(r.decision);
  });

  it("type-checks against the generated code (strict, NodeNext)", () => {
    // The scratch folder is two levels below the repo: .tmp/<name>/.
    // The example also uses the runtime's outbox and auth entry points, and dlq (through cli/dlq.ts): from source too.
    const src = join(REPO, "runtime/src");
    const paths = {
      ...runtimePaths(),
      "@grabbit/runtime/outbox": [join(src, "outbox/index.ts")],
      "@grabbit/runtime/auth": [join(src, "auth/index.ts")],
      "@grabbit/runtime/dlq": [join(src, "dlq/index.ts")],
    };
    expect(
      typeCheck(scratchDir("examples-tsc"), { files: ["../../examples/**/*.ts"], paths }),
    ).toBe("");
  });

  it("decides the same way for the same seed", async () => {
    const { decide } = await import("../../examples/processor/processor.js");
    const request = (i: number) => ({
      requestId: `r${i}`,
      customer: `c${i}`,
      amountCents: 1000 * i,
      region: "eu",
    });
    const run = (seed: number) =>
      Array.from({ length: 40 }, (_, i) => decide(seed, request(i + 1)).decision);
    expect(run(1)).toEqual(run(1));
    expect(run(1)).not.toEqual(run(2));
    expect(new Set(run(1)).size).toBe(2);
  });
});

describe("token propagation", () => {
  it("the Bridge refuses a request without a valid bearer token", async () => {
    const body = { customer: "mallory", amountCents: 100, region };
    const before = system.bridge.requests.size;
    for (const token of [undefined, "forged"]) {
      const { status, json } = await new sys.RestClient(system.bridge.httpUrl, token).call(
        "POST",
        "/sendRequest",
        body,
      );
      expect(status).toBe(401);
      expect(json.error).toMatch(/Bearer/);
    }
    const { status } = await new sys.RestClient(system.bridge.httpUrl, "forged").call(
      "GET",
      "/getStatus/anything",
    );
    expect(status).toBe(401);
    expect(system.bridge.requests.size).toBe(before);
  });

  it("the Processor refuses gRPC calls without a valid token", async () => {
    const client = gen.processor.createRequestProcessorGrpcClient(system.processor.grpcAddress);
    const request = {
      request: { requestId: "direct-1", customer: "mallory", amountCents: 100, region },
    };
    await expect(client.processRequest(request)).rejects.toMatchObject({ code: 16 }); // UNAUTHENTICATED
    await expect(
      client.processRequest(request, { metadata: { authorization: "Bearer forged" } }),
    ).rejects.toMatchObject({ code: 16 });
  });

  it("the Bridge takes a callback only with the token the request came with", async () => {
    const { json } = await new sys.RestClient(system.bridge.httpUrl, TOKEN).call(
      "POST",
      "/sendRequest",
      { customer: "ada", amountCents: 500, region },
    );
    const client = gen.bridge.createBridgeGrpcClient(system.bridge.grpcAddress);
    const done = {
      requestId: json.requestId,
      decision: gen.common.Decision.DECISION_DENIED,
      reason: "forged",
    };
    await expect(client.notifyRequestDone(done)).rejects.toMatchObject({ code: 16 });
    // A valid token, but not this request's: PERMISSION_DENIED.
    await expect(
      client.notifyRequestDone(done, { metadata: { authorization: `Bearer ${OTHER}` } }),
    ).rejects.toMatchObject({ code: 7 });
    await system.reporter.waitFor([json.requestId], 10_000);
  });

  it("the Reporter dead-letters a report without a valid token instead of counting it", async () => {
    const before = system.reporter.summary();
    const publisher = new gen.reports.RequestReportedPublisher(system.connection);
    const forged = {
      requestId: uniqueName("forged"),
      decision: gen.common.Decision.DECISION_APPROVED,
      region,
      amountCents: 1,
      decidedAt: new Date(),
    };
    await publisher.publish(forged, { metadata: { authorization: "Bearer forged" } });
    await publisher.close();
    // It lands in the Reporter's dead-letter queue with the reason.
    const channel = await (await system.connection.waitForSession()).createChannel();
    let dead: any = false;
    for (let i = 0; i < 100 && !dead; i++) {
      dead = await channel.get(`${queue}.dlq`, { noAck: true });
      if (!dead) await new Promise((r) => setTimeout(r, 50));
    }
    await channel.close();
    expect(dead).toBeTruthy();
    expect(String(dead.properties.headers["x-grabbit-error"])).toMatch(
      /refused: invalid token: malformed token/,
    );
    const after = system.reporter.summary();
    expect(after.refused).toBe(before.refused + 1);
    expect(after.reports).toBe(before.reports);
    expect(system.reporter.has(forged.requestId)).toBe(false);
  });
});

describe("the example on a vhost of its own, one least-privilege user per service", () => {
  // examples/broker-setup.sh with names of this run's own (users are global to the broker).
  const id = randomBytes(4).toString("hex");
  const vhost = `grabbit-example-test-${id}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    EXAMPLE_USER_PREFIX: `grabbit-example-test-${id}`,
    EXAMPLE_BRIDGE_PASSWORD: randomBytes(12).toString("hex"),
    EXAMPLE_PROCESSOR_PASSWORD: randomBytes(12).toString("hex"),
    EXAMPLE_REPORTER_PASSWORD: randomBytes(12).toString("hex"),
    EXAMPLE_AMQP_HOST: new URL(AMQP_URL).host,
  };
  delete env.REPORTER_QUEUE; // the defaults: example.reporter and the demo's per-run queues
  const setup = (...args: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile(
        "bash",
        ["examples/broker-setup.sh", ...args],
        { env, timeout: 120_000 },
        (err, stdout, stderr) =>
          err
            ? reject(new Error(`broker-setup.sh ${args.join(" ")}: ${stderr || err.message}`))
            : resolve(stdout),
      );
    });
  let urls: Record<string, string>;
  const conns: AmqpConnection[] = [];
  const connect = async (url: string) => {
    const c = await AmqpConnection.connect({ urls: url, onError: () => {} });
    conns.push(c);
    return c;
  };

  beforeAll(async () => {
    // Twice: the second run must change nothing (idempotent) and print the same URLs.
    const first = await setup(vhost);
    expect(await setup(vhost)).toBe(first);
    urls = Object.fromEntries(
      [...first.matchAll(/^export (\w+)='([^']*)'$/gm)].map((m) => [m[1]!, m[2]!]),
    );
    expect(Object.keys(urls).sort()).toEqual([
      "BRIDGE_AMQP_URL",
      "PROCESSOR_AMQP_URL",
      "REPORTER_AMQP_URL",
    ]);
  }, 240_000);

  afterAll(async () => {
    for (const c of conns) await c.close().catch(() => {});
    await setup("--delete", vhost);
    const left = await new Promise<string>((resolve) =>
      execFile("rabbitmqctl", ["list_vhosts", "--quiet"], (_e, out) => resolve(out)),
    );
    expect(left).not.toContain(vhost);
  }, 240_000);

  for (const processorOverAmqp of [true, false]) {
    it(`decides every request and reports each one (Processor over ${processorOverAmqp ? "RabbitMQ" : "gRPC"})`, async () => {
      const own = await sys.startSystem({
        bridgeAmqpUrl: urls.BRIDGE_AMQP_URL!,
        processorAmqpUrl: urls.PROCESSOR_AMQP_URL!,
        reporterAmqpUrl: urls.REPORTER_AMQP_URL!,
        processorOverAmqp,
        seed: 11,
      });
      try {
        expect(new Set(Object.values(own.connections)).size).toBe(processorOverAmqp ? 3 : 2);
        expect(own.reporter.queue).toMatch(/^example\.reporter\.run-/);
        const count = 12;
        const { requests, summary } = await sys.runBatch(own, {
          count,
          seed: 11,
          token: await own.token(),
        });
        expect(requests.map((r) => r.status)).toEqual(Array(count).fill("DONE"));
        for (const r of requests) expect(own.reporter.has(r.requestId)).toBe(true);
        expect(summary.reports).toBe(count);
        expect(summary.refused).toBe(0);
        // The demo's dead-letter story with these users: the Processor's publishes the report, the
        // Reporter's lists its dead-letter queue and replays to its own queue (late-key.ts).
        const { lateKeyStory } = await import("../../examples/late-key.js");
        const late = await lateKeyStory({
          issuer: own.issuer,
          publisherUrl: urls.PROCESSOR_AMQP_URL!,
          dlqUrl: urls.REPORTER_AMQP_URL!,
          reporter: own.reporter,
        });
        expect(late.listed).toContain(
          "refused: invalid token: no key in the key set matches the token",
        );
        expect(late.replayed).toMatch(/^replayed 1 of 1 matching message/);
        expect(late.problem).toBeUndefined();
        expect(own.reporter.has(late.requestId)).toBe(true);
      } finally {
        await own.close();
      }
    }, 60_000);
  }

  it("refuses each user outside its role", async () => {
    const denied = async (p: Promise<unknown>, codes: Code[] = [Code.PERMISSION_DENIED]) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, "the broker allowed what the permissions should refuse").toBeInstanceOf(
        StatusError,
      );
      expect(codes, String(err)).toContain((err as StatusError).code);
      expect((err as StatusError).message).toMatch(/ACCESS_REFUSED/);
    };
    const report = {
      requestId: uniqueName("forged"),
      decision: gen.common.Decision.DECISION_APPROVED,
      region: "eu-west",
      amountCents: 1,
      decidedAt: new Date(),
    };
    // The Reporter consumes reports; it cannot publish one. It may declare the exchange (consumers
    // do), so the refusal comes at basic.publish, which closes the channel: the publisher fails that
    // message at once with PERMISSION_DENIED and the broker's ACCESS_REFUSED text.
    const reporterPublishing = new gen.reports.RequestReportedPublisher(
      await connect(urls.REPORTER_AMQP_URL!),
    );
    await denied(
      reporterPublishing.publish(report, { metadata: { authorization: `Bearer ${TOKEN}` } }),
    );
    await reporterPublishing.close().catch(() => {});
    // The Bridge calls processRequest; it cannot serve it, nor consume the Reporter's queue.
    const bridge = await connect(urls.BRIDGE_AMQP_URL!);
    await denied(
      gen.processor.serveRequestProcessorAmqp(bridge, {
        processRequest: () => ({ requestId: "x", accepted: true }),
      }),
    );
    const bridgeConsuming = new gen.reports.RequestReportedConsumer(bridge, {
      queue: "example.reporter",
    });
    await denied(bridgeConsuming.start(() => {}));
    // The Processor publishes reports and serves requests; it cannot take the Reporter's queue.
    const processorConsuming = new gen.reports.RequestReportedConsumer(
      await connect(urls.PROCESSOR_AMQP_URL!),
      { queue: "example.reporter" },
    );
    await denied(processorConsuming.start(() => {}));
  }, 60_000);
});
