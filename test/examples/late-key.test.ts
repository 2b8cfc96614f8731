// The demo's dead-letter story on the real broker, in process: a report signed by a key the issuer has
// not published is refused by the Reporter and dead-lettered with the reason; `grabbit dlq list` (the
// CLI's code) shows it with that reason; once the issuer publishes the key, `grabbit dlq replay --id`
// puts it back and the Reporter counts it exactly once, leaving the dead-letter queue empty.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { BUF, REPO, scratchDir } from "../support/buf.js";
import { generateExamples } from "./generate.js";
import { deleteReporterQueues } from "./reporter-queues.js";

type SystemModule = typeof import("../../examples/system.js");
let system: Awaited<ReturnType<SystemModule["startSystem"]>>;
let story: typeof import("../../examples/late-key.js");
const region = uniqueName("late");
const queue = uniqueName("example.reporter");
let image: string;

beforeAll(async () => {
  generateExamples();
  image = join(scratchDir("late-key"), "example.binpb");
  execFileSync(BUF, ["build", "proto", "--path", "proto/example", "-o", image], {
    cwd: REPO,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const sys: SystemModule = await import("../../examples/system.js");
  story = await import("../../examples/late-key.js");
  system = await sys.startSystem({
    amqpUrl: AMQP_URL,
    reporterQueue: queue,
    reporterRegion: region,
  });
}, 120_000);

afterAll(async () => {
  await system?.close();
  await deleteReporterQueues(queue);
});

describe("a report signed by a key published late", () => {
  it("is dead-lettered with the reason, listed by grabbit dlq, and once the key is out replayed and counted once", async () => {
    const lines: string[] = [];
    const kidsBefore = system.issuer.kids.length;
    const r = await story.lateKeyStory({
      issuer: system.issuer,
      publisherUrl: AMQP_URL,
      dlqUrl: AMQP_URL,
      reporter: system.reporter,
      image,
      region,
      print: (l) => lines.push(l),
    });

    // The list, while it was dead-lettered: the message, the reason, the decoded body.
    expect(r.listed).toContain(`dead-letter queue "${queue}.dlq": 1 message ready`);
    expect(r.listed).toContain(r.messageId);
    expect(r.listed).toContain("example.v1.RequestReported");
    expect(r.listed).toMatch(
      new RegExp(
        `reason: +\\[UNAUTHENTICATED\\] report ${r.requestId} refused: invalid token: no key in the key set matches the token`,
      ),
    );
    expect(r.listed).toContain(`"requestId":"${r.requestId}"`);
    // The issuer published it; the replay took that one message.
    expect(system.issuer.kids).toContain(r.kid);
    expect(system.issuer.kids.length).toBe(kidsBefore + 1);
    expect(r.replayed).toMatch(/^replayed 1 of 1 matching message to queue/);

    // Refused once, then counted exactly once; nothing left behind.
    expect(r.problem).toBeUndefined();
    expect(r.after.refused).toBe(r.before.refused + 1);
    expect(r.after.reports).toBe(r.before.reports + 1);
    expect(r.after.duplicates).toBe(r.before.duplicates);
    expect(r.after.byRegion[region]?.approved).toBe((r.before.byRegion[region]?.approved ?? 0) + 1);
    expect(system.reporter.has(r.requestId)).toBe(true);
    const connection = await AmqpConnection.connect({ urls: AMQP_URL });
    const channel = await (await connection.waitForSession()).createChannel();
    expect((await channel.checkQueue(`${queue}.dlq`)).messageCount).toBe(0);
    await connection.close();
    expect(r.leftInDlq).toBe(0);
    expect(lines.at(-1)).toMatch(/accepted the replayed report and counted it once/);
  }, 60_000);
});
