// Failover on a real 3-node RabbitMQ cluster (private ports 47001-47003, never the shared broker):
// events at 500/s to a quorum queue with two competing consumers, and AMQP RPC at 200 calls/s to
// two servers, while a node dies. Every client gets the three URLs in the same order, the worst
// case (everything, queue leaders included, on the first node). The goal figures are issue 10's:
//
// - any one node killed -9, whether or not it comes back: 0 confirmed messages lost, 0 publishes or
//   calls hung, publishing and RPC working again within 5 s of the kill, at most 2% of the
//   publishes refused;
// - two nodes down (the quorum lost): publishes and calls fail fast with UNAVAILABLE and a message
//   that says the quorum is lost, never hang, and work again by themselves once a majority is back.
//
// The figures of each scenario are printed ("CLUSTER SCENARIO ...") before they are asserted; see
// scenario.ts for what each one means (recovery time in particular).
//
// One cluster serves the whole file: the one CI started (GRABBIT_CLUSTER_DIR set, see
// test/support/cluster.ts) or one started here from scratch. Killed nodes are restarted after each
// scenario, and the next one starts only when the cluster is whole again.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import {
  deleteScenarioObjects,
  formatSummary,
  runScenario,
  type ScenarioResult,
  type ScenarioSummary,
} from "./scenario.js";

/** Issue 10's goal figures. */
const RECOVERY_LIMIT_MS = 5_000;
const MAX_REFUSED_PCT = 2;
/** "Fail fast": a publish or call that fails while the quorum is lost fails within this. */
const FAIL_FAST_MS = 5_000;
/** How long the runtime may take to learn that the quorum is lost before its failures must say so. */
const QUORUM_NOTICE_MS = 3_000;

const reuse = process.env.GRABBIT_CLUSTER_DIR !== undefined;
let cluster: Cluster;
let created: ScenarioResult["created"] | undefined;

beforeAll(async () => {
  cluster = new Cluster();
  if (reuse) {
    for (const n of cluster.nodes)
      if (cluster.pid(n) === undefined) await cluster.startNode(n.index, { wait: false });
    await cluster.awaitReady();
  } else {
    await cluster.start({ fresh: true });
  }
}, 180_000);

afterEach(async () => {
  // Whatever a scenario killed comes back, and the cluster is whole before the next one.
  for (const n of cluster.nodes)
    if (cluster.pid(n) === undefined) await cluster.startNode(n.index, { wait: false });
  await cluster.awaitReady();
  if (created) {
    const problems = await deleteScenarioObjects(cluster.urls, created);
    if (problems.length > 0) console.warn(`cleanup: ${problems.join("; ")}`);
    created = undefined;
  }
}, 180_000);

afterAll(async () => {
  if (!reuse) await cluster?.stop();
}, 60_000);

function print(s: ScenarioSummary, extra: Record<string, unknown>): void {
  console.log(`${formatSummary(s)}\n${JSON.stringify(extra)}`);
}

/** What must hold in every scenario, fault or not: the run measured what it claims to. */
function expectSound(s: ScenarioSummary): void {
  for (const stream of [s.publish, s.rpc])
    expect(stream.ok + stream.failed + stream.hung).toBe(stream.sent);
  expect(s.publish.sent).toBeGreaterThan(0);
  expect(s.rpc.sent).toBeGreaterThan(0);
  expect(s.faultAtMs).not.toBeNull();
  // The consumers and the servers really compete (each got work before the fault at least).
  expect(s.publish.perConsumer.every((n) => n > 0)).toBe(true);
  expect(s.rpc.perServer.every((n) => n > 0)).toBe(true);
}

/** One node lost: issue 10's goal figures. Soft, so every figure that misses is reported. */
function expectOneNodeGoals(s: ScenarioSummary): void {
  expect.soft(s.publish.lost, "confirmed messages lost").toBe(0);
  expect.soft(s.publish.hung, "publishes hung").toBe(0);
  expect.soft(s.rpc.hung, "RPC calls hung").toBe(0);
  expect.soft(s.publish.recoveryMs, "publishing recovered").not.toBeNull();
  expect
    .soft(s.publish.recoveryMs ?? Infinity, "publishing recovery (ms after the kill)")
    .toBeLessThanOrEqual(RECOVERY_LIMIT_MS);
  expect.soft(s.rpc.recoveryMs, "RPC recovered").not.toBeNull();
  expect
    .soft(s.rpc.recoveryMs ?? Infinity, "RPC recovery (ms after the kill)")
    .toBeLessThanOrEqual(RECOVERY_LIMIT_MS);
  expect.soft(s.publish.failedPct, "% of publishes refused").toBeLessThanOrEqual(MAX_REFUSED_PCT);
  // A request the broker dropped must be re-sent or fail fast, never silently run out its deadline.
  expect
    .soft(s.rpc.failedByCode.DEADLINE_EXCEEDED ?? 0, "RPC calls that ran out their deadline")
    .toBe(0);
}

async function leaders(
  eventQueue: string,
  rpcQueue: string,
): Promise<{ event: number; rpc: number }> {
  return { event: await cluster.leaderOf(eventQueue), rpc: await cluster.leaderOf(rpcQueue) };
}

const node = (i: number) => `node ${i + 1} (${cluster.nodes[i]!.port})`;

describe("a 3-node cluster losing nodes", () => {
  it("(a) the node leading the event queue killed -9 and left down", {
    timeout: 150_000,
  }, async () => {
    let lead: { event: number; rpc: number } | undefined;
    const { summary } = await runScenario({
      name: "a-leader-killed-left-down",
      urls: cluster.urls,
      durationMs: 14_000,
      onCreated: (c) => (created = c),
      beforeLoad: async (q) => {
        lead = await leaders(q.eventQueue, q.rpcQueue);
      },
      fault: async (ctx) => {
        if (!lead) throw new Error("no leader known");
        ctx.markFault(`kill -9 ${node(lead.event)}`);
        cluster.kill(lead.event);
      },
    });
    print(summary, {
      leadersBeforeTheFault: lead && { event: node(lead.event), rpc: node(lead.rpc) },
    });
    expectSound(summary);
    expectOneNodeGoals(summary);
  });

  it("(b) the node leading the event queue killed -9 and restarted after ~5 s", {
    timeout: 150_000,
  }, async () => {
    let lead: { event: number; rpc: number } | undefined;
    const { summary } = await runScenario({
      name: "b-leader-killed-restarted",
      urls: cluster.urls,
      // At least 9 s after the kill, and 4 s after the node is back (a restart takes 5-10 s).
      durationMs: 12_000,
      runAfterMark: { label: "node back", ms: 4_000, maxDurationMs: 30_000 },
      onCreated: (c) => (created = c),
      beforeLoad: async (q) => {
        lead = await leaders(q.eventQueue, q.rpcQueue);
      },
      fault: async (ctx) => {
        if (!lead) throw new Error("no leader known");
        ctx.markFault(`kill -9 ${node(lead.event)}`);
        cluster.kill(lead.event);
        await new Promise((r) => setTimeout(r, 5_000));
        ctx.mark("restart started");
        await cluster.startNode(lead.event);
        ctx.mark("node back");
      },
    });
    print(summary, {
      leadersBeforeTheFault: lead && { event: node(lead.event), rpc: node(lead.rpc) },
    });
    expectSound(summary);
    expect(summary.marks["node back"], "the node came back during the load").toBeDefined();
    expectOneNodeGoals(summary);
  });

  it("(c) two nodes down (quorum lost): fail fast with UNAVAILABLE, work again once one is back", {
    timeout: 180_000,
  }, async () => {
    let lead: { event: number; rpc: number } | undefined;
    let other = -1;
    const { summary, attempts } = await runScenario({
      name: "c-quorum-lost",
      urls: cluster.urls,
      // 7 s after the majority is back (the restart of a node without a majority took 5-11 s here).
      durationMs: 14_000,
      runAfterMark: { label: "majority back", ms: 7_000, maxDurationMs: 40_000 },
      onCreated: (c) => (created = c),
      beforeLoad: async (q) => {
        lead = await leaders(q.eventQueue, q.rpcQueue);
      },
      fault: async (ctx) => {
        if (!lead) throw new Error("no leader known");
        other = (lead.event + 1) % cluster.nodes.length;
        ctx.markFault(`kill -9 ${node(lead.event)} and ${node(other)}`);
        cluster.kill(lead.event);
        cluster.kill(other);
        await new Promise((r) => setTimeout(r, 5_000));
        // The one that did not lead comes back: a majority again, and the queues need a new leader.
        ctx.mark("restart started");
        await cluster.startNode(other);
        ctx.mark("majority back");
      },
    });
    print(summary, {
      leadersBeforeTheFault: lead && { event: node(lead.event), rpc: node(lead.rpc) },
      restarted: node(other),
    });
    expectSound(summary);
    expect(summary.marks["majority back"], "the majority came back during the load").toBeDefined();
    // Nothing confirmed is lost, nothing hangs.
    expect.soft(summary.publish.lost, "confirmed messages lost").toBe(0);
    expect.soft(summary.publish.hung, "publishes hung").toBe(0);
    expect.soft(summary.rpc.hung, "RPC calls hung").toBe(0);
    // While the quorum is surely lost and known to be: from a few seconds after the kill until the
    // restart begins.
    const from = summary.faultAtMs! + QUORUM_NOTICE_MS;
    const until = summary.marks["restart started"]!;
    for (const [what, stream, list] of [
      ["publishes", summary.publish, attempts.publish],
      ["RPC calls", summary.rpc, attempts.rpc],
    ] as const) {
      const lostQuorum = list.filter((a) => a.sentMs >= from && a.sentMs < until);
      const failures = lostQuorum.filter((a) => a.outcome === "failed");
      console.log(
        `${what} sent while the quorum was lost (${from}-${until} ms): ${lostQuorum.length}, failed ${failures.length}, mentioning the quorum ${failures.filter((a) => /quorum/i.test(a.error!)).length}; a sample: ${JSON.stringify(failures[0]?.error)}`,
      );
      // The outage is real: while the quorum is lost, things fail...
      expect
        .soft(failures.length, `${what} that failed while the quorum was lost`)
        .toBeGreaterThan(0);
      // ...with UNAVAILABLE, fast, and saying that the quorum is lost: every failure that settled
      // before the restart began. One still waiting when the node starts coming back may meet its
      // deadline instead (the probe finds the node reachable before its queues have a leader again;
      // seen once in a loaded CI run, 5,074 ms), so later failures may also be DEADLINE_EXCEEDED,
      // never anything else, and never later than the deadline allows (the `hung` check above).
      const settledWhileLost = list.filter(
        (a) => a.outcome === "failed" && a.settledMs !== undefined && a.settledMs < until,
      );
      expect
        .soft(
          [...new Set(settledWhileLost.map((a) => a.error!.split(":")[0]))],
          `codes of the ${what} that failed while the quorum was lost`,
        )
        .toEqual(["UNAVAILABLE"]);
      expect
        .soft(
          Math.max(0, ...settledWhileLost.map((a) => a.settledMs! - a.sentMs)),
          `slowest failure of the ${what} while the quorum was lost (ms after it was sent)`,
        )
        .toBeLessThanOrEqual(FAIL_FAST_MS);
      expect
        .soft(
          Object.keys(stream.failedByCode).filter(
            (c) => c !== "UNAVAILABLE" && c !== "DEADLINE_EXCEEDED",
          ),
          `codes of the ${what} that failed at any time`,
        )
        .toEqual([]);
      expect
        .soft(
          failures
            .filter((a) => !/^UNAVAILABLE: .*quorum/i.test(a.error!))
            .map((a) => a.error)
            .slice(0, 3),
          `${what} failed while the quorum was lost without saying so`,
        )
        .toEqual([]);
      // And they work again by themselves once a majority is back.
      const after = stream.recoveryAfterMarkMs["majority back"];
      expect.soft(after, `${what} recovered after the majority came back`).not.toBeNull();
      expect
        .soft(after ?? Infinity, `${what} recovery (ms after the majority came back)`)
        .toBeLessThanOrEqual(RECOVERY_LIMIT_MS);
    }
  });
});
