// A replay killed in the middle (SIGKILL after N confirmed replays) loses nothing: every dead letter
// is afterwards either in the DLQ or back on its queue, at most the in-flight window of them in both,
// and a second replay (the real `grabbit` binary) finishes the job with the counts adding up.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import type { AmqpConnection } from "@grabbit/runtime/amqp";
import { DeadLetterQueue } from "@grabbit/runtime/dlq";
import { Janitor } from "../amqp/fixtures.js";
import { AMQP_URL } from "../support/broker.js";
import { REPO } from "../support/buf.js";
import { contract, deadLetter, report, setup } from "./fixtures.js";

const janitor = new Janitor();
const connections: AmqpConnection[] = [];
afterEach(async () => {
  for (const c of connections.splice(0)) await c.close();
  await janitor.cleanup();
});

const TOTAL = 300;
const CRASH_AFTER = 100;
const WINDOW = 20;

it("loses nothing when the replaying process is killed after N confirms, and a second run finishes", async () => {
  const s = await setup(janitor, "crash");
  connections.push(s.connection);
  const ids = await deadLetter(
    s,
    janitor,
    Array.from({ length: TOTAL }, (_, i) => report(i)),
    () => {
      throw new Error("the ledger is down");
    },
  );
  expect(await janitor.messageCount(s.dlq)).toBe(TOTAL);

  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(REPO, "test/dlq/replay-child.ts")],
    {
      cwd: REPO,
      env: {
        ...process.env,
        AMQP_URL,
        DLQ_QUEUE: s.dlq,
        CRASH_AFTER: String(CRASH_AFTER),
        WINDOW: String(WINDOW),
      },
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out += b.toString("utf8")));
  const ended = await new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.on("exit", (code, signal) => resolve(signal ?? code)),
  );
  expect(ended).toBe("SIGKILL");
  const confirmed = out.split("\n").filter((l) => l.startsWith("replayed "));
  expect(confirmed).toHaveLength(CRASH_AFTER);

  // The broker gives the killed process's unacked copies back to the DLQ (asynchronously).
  const counts = async () => ({
    dlq: await janitor.messageCount(s.dlq),
    work: await janitor.messageCount(s.queue),
  });
  let c = await counts();
  while (c.dlq + c.work < TOTAL) {
    await new Promise((r) => setTimeout(r, 20));
    c = await counts();
  }
  // Every confirmed replay is on the work queue; at most the window's worth was replayed but not acked.
  expect(c.work).toBeGreaterThanOrEqual(CRASH_AFTER);
  const duplicates = c.dlq + c.work - TOTAL;
  expect(duplicates).toBeGreaterThanOrEqual(0);
  expect(duplicates).toBeLessThanOrEqual(WINDOW);
  // Nothing is missing: each id is in the DLQ or on the work queue.
  const inDlq = (await new DeadLetterQueue(s.connection, s.dlq).list({ limit: TOTAL })).items.map(
    (d) => d.messageId!,
  );
  expect(inDlq).toHaveLength(c.dlq);

  // The real binary finishes the replay.
  const second = spawnSync(
    process.execPath,
    [
      join(REPO, "bin/grabbit.js"),
      "dlq",
      "replay",
      s.dlq,
      "--all",
      "--url",
      AMQP_URL,
      "--image",
      contract().image,
      "--format",
      "json",
    ],
    { cwd: REPO, encoding: "utf8" },
  );
  expect(second.stderr).toBe("");
  expect(second.status).toBe(0);
  expect(JSON.parse(second.stdout)).toMatchObject({ replayed: c.dlq, failed: [], notExamined: 0 });
  while (
    (await janitor.messageCount(s.dlq)) > 0 ||
    (await janitor.messageCount(s.queue)) < TOTAL + duplicates
  )
    await new Promise((r) => setTimeout(r, 20));
  const back = (await janitor.drain(s.queue)).map((m) => m.properties.messageId as string);
  expect(back).toHaveLength(TOTAL + duplicates);
  expect(new Set(back)).toEqual(new Set(ids));
  expect(new Set([...inDlq, ...back])).toEqual(new Set(ids));
});
