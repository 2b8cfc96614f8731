// The example system with protobuf-es messages (examples/gen-es/): the demo as a user runs it with
// EXAMPLE_MESSAGES=protobuf-es, each service in a process of its own, the Processor over gRPC and over
// RabbitMQ. Its own output is the end state checked: every request decided once and reported once,
// and the late-key story's dead-letter steps. (demo.test.ts checks the default, ts-proto, in-process.)
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL } from "../support/broker.js";
import { REPO } from "../support/buf.js";
import { generateExamples } from "./generate.js";

// A vhost of this run's own (examples/broker-setup.sh, as demo.test.ts does): the demo's Reporter
// binds every region, so on a shared broker another run's reports (signed by another issuer) would
// reach it, be refused and land in its dead-letter queue beside the late key's report.
const id = randomBytes(4).toString("hex");
const vhost = `grabbit-example-es-${id}`;
const setupEnv: NodeJS.ProcessEnv = {
  ...process.env,
  EXAMPLE_USER_PREFIX: vhost,
  EXAMPLE_BRIDGE_PASSWORD: randomBytes(12).toString("hex"),
  EXAMPLE_PROCESSOR_PASSWORD: randomBytes(12).toString("hex"),
  EXAMPLE_REPORTER_PASSWORD: randomBytes(12).toString("hex"),
  EXAMPLE_AMQP_HOST: new URL(AMQP_URL).host,
};
delete setupEnv.REPORTER_QUEUE;
const setup = (...args: string[]) =>
  new Promise<string>((resolve, reject) => {
    execFile(
      "bash",
      ["examples/broker-setup.sh", ...args],
      { cwd: REPO, env: setupEnv, timeout: 120_000 },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`broker-setup.sh ${args.join(" ")}: ${stderr || err.message}`))
          : resolve(stdout),
    );
  });
let urls: Record<string, string> = {};

beforeAll(async () => {
  generateExamples();
  urls = Object.fromEntries(
    [...(await setup(vhost)).matchAll(/^export (\w+)='([^']*)'$/gm)].map((m) => [m[1]!, m[2]!]),
  );
  expect(Object.keys(urls).sort()).toEqual([
    "BRIDGE_AMQP_URL",
    "PROCESSOR_AMQP_URL",
    "REPORTER_AMQP_URL",
  ]);
}, 240_000);

afterAll(() => setup("--delete", vhost), 240_000);

function demo(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--conditions=protobuf-es", "--import", "tsx", "examples/demo.ts", ...args],
      {
        cwd: REPO,
        env: { ...process.env, AMQP_URL, EXAMPLE_MESSAGES: "protobuf-es", ...env },
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) =>
        resolve({
          code: err ? ((err as { code?: number }).code ?? 1) : 0,
          out: `${stdout}\n${stderr}`,
        }),
    );
  });
}

describe("the example system with protobuf-es messages", () => {
  for (const transport of ["gRPC", "RabbitMQ"]) {
    it(`decides every request once and reports it once, the Processor over ${transport}`, {
      timeout: 180_000,
    }, async () => {
      const count = 10;
      const { code, out } = await demo(
        ["--count", String(count), "--seed", "7", ...(transport === "RabbitMQ" ? ["--amqp"] : [])],
        urls,
      );
      expect(code, out).toBe(0);
      expect(out).toContain(
        transport === "RabbitMQ" ? "Processor over RabbitMQ" : "Processor gRPC",
      );
      expect(out).toContain(`${count} requests sent through REST, ${count} decided, 0 failed`);
      const reporter =
        /Reporter: (\d+) reports, (\d+) approved \(\$[\d.]+\), (\d+) denied, (\d+) duplicates, (\d+) refused/.exec(
          out,
        );
      expect(reporter, out).not.toBeNull();
      const [, reports, approved, denied, duplicates, refused] = reporter!.map(Number);
      expect([reports, approved! + denied!, duplicates, refused]).toEqual([count, count, 0, 0]);
      expect(out).toContain(
        `exactly once: ${count} of ${count} requests decided in the Processor's database, ${count} with exactly one report in its outbox`,
      );
      expect(out).toContain(`the Reporter counted ${count} reports once each`);
      // The late-key story: refused, dead-lettered (the body as protobuf-es's JSON writes it: int64 as a
      // string), replayed once the key is out, counted once.
      expect(out).toContain("the Reporter refuses it");
      expect(out).toMatch(/grabbit dlq list \S+\.dlq --id report-late-/);
      expect(out).toContain(
        '"decision":"DECISION_APPROVED","region":"eu-west","amountCents":"4200"',
      );
      expect(out).toContain("replayed 1 of 1 matching message");
      expect(out).toContain(
        `the Reporter accepted the replayed report and counted it once (now ${count + 1} reports, 0 duplicates)`,
      );
      expect(out).toContain("demo: OK");
    });
  }

  it("refuses to run when EXAMPLE_MESSAGES and the loaded library disagree", {
    timeout: 60_000,
  }, async () => {
    const { code, out } = await demo(["--count", "1"], { ...urls, EXAMPLE_MESSAGES: "ts-proto" });
    expect(code).not.toBe(0);
    expect(out).toContain("EXAMPLE_MESSAGES=ts-proto but this process loaded protobuf-es messages");
  });
});
