// `grabbit dlq` against the real broker: dead letters made by a real consumer that throws (and by the
// broker, and by an RPC server), read back decoded through the repo's contract built with the real buf;
// list and show leave every message in place and in order; replay by id, by filter and all, to the
// original exchange or to a queue; purge with and without confirmation; undecodable messages; a
// queue that does not exist; JSON output.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Code, StatusError, silentLogger, type ServiceDesc } from "@grabbit/runtime";
import { HEADER_REPLAYS, serveAmqp, type AmqpConnection } from "@grabbit/runtime/amqp";
import { DeadLetterQueue, type DeadLetter, type ListResult } from "@grabbit/runtime/dlq";
import { main } from "../../cli/main.js";
import { Janitor, UNDECODABLE } from "../amqp/fixtures.js";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { REPO } from "../support/buf.js";
import {
  REPORTED,
  contract,
  deadLetter,
  messageType,
  report,
  setup,
  take,
  withConsumer,
  type DeadLetterSetup,
} from "./fixtures.js";

const janitor = new Janitor();
const connections: AmqpConnection[] = [];
/** Queues of RPC servers, named by the test rather than by the janitor. */
const rpcQueues: string[] = [];
afterEach(async () => {
  for (const c of connections.splice(0)) await c.close();
  const ch = await janitor.channel();
  for (const q of rpcQueues.splice(0)) await ch.deleteQueue(q);
  await ch.close();
  await janitor.cleanup();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function grabbit(
  args: string[],
  o: { cwd?: string; prompt?: (q: string) => Promise<string> } = {},
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await main(
    ["dlq", ...args, ...(args.includes("--url") ? [] : ["--url", AMQP_URL])],
    {
      cwd: o.cwd ?? REPO,
      isTTY: false,
      stdout: (s) => void (stdout += s),
      stderr: (s) => void (stderr += s),
      ...(o.prompt ? { prompt: o.prompt } : {}),
    },
  );
  return { code, stdout, stderr };
}

async function json<T>(args: string[]): Promise<T> {
  const r = await grabbit([...args, "--format", "json", "--image", contract().image]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

async function fresh(prefix: string): Promise<DeadLetterSetup> {
  const s = await setup(janitor, prefix);
  connections.push(s.connection);
  return s;
}

const sorted = (xs: (string | undefined)[]) => [...xs].sort();
/** The n of report(n), from a message id made by deadLetter(). */
const requestNumber = (id: string | undefined) => Number(/-req-(\d+)$/.exec(id ?? "")?.[1]);

/**
 * Waits until `queue` has `n` ready messages. Messages a read gave back (by closing its channel) are
 * returned by a quorum queue asynchronously: they may not be counted the instant the command ends.
 * A loss shows as a test timeout.
 */
async function expectCount(queue: string, n: number): Promise<void> {
  while ((await janitor.messageCount(queue)) !== n) await new Promise((r) => setTimeout(r, 20));
  expect(await janitor.messageCount(queue)).toBe(n);
}

const boom = (text: string) => () => {
  throw new Error(text);
};

describe("list and show", () => {
  it("lists each dead letter decoded through the contract, with reason, attempts, origin and failure times, and loses none", async () => {
    const s = await fresh("list");
    const ids = await deadLetter(
      s,
      janitor,
      [report(1), report(2), report(3)],
      boom("the ledger is down"),
      { maxAttempts: 2 },
    );
    const r = await json<ListResult>(["list", s.dlq]);
    expect(r).toMatchObject({
      queue: s.dlq,
      messages: 3,
      consumers: 0,
      examined: 3,
      truncated: false,
    });
    const order = r.items.map((d) => d.messageId!);
    expect(sorted(order)).toEqual(sorted(ids));
    for (const [i, d] of r.items.entries()) {
      const n = requestNumber(d.messageId);
      expect(d).toMatchObject({
        position: i + 1,
        type: REPORTED,
        reason: "the ledger is down (gave up after 2 attempts)",
        attempts: 2,
        originalExchange: s.exchange,
        source: "consumer",
      });
      expect(d.decodeError).toBeUndefined();
      expect(d.originalRoutingKey).toMatch(/^report\.DECISION_(APPROVED|DENIED)\.eu-west$/);
      // One retry in between: the first failure is recorded before the last.
      expect(d.firstFailure).toBeLessThan(d.lastFailure!);
      expect(d.body).toEqual({
        requestId: `req-${n}`,
        decision: n % 2 ? "DECISION_APPROVED" : "DECISION_DENIED",
        region: "eu-west",
        amountCents: String(1000 + n),
        decidedAt: "2026-11-30T12:00:00Z",
      });
    }
    // Read twice: still all there, in the same order.
    expect((await json<ListResult>(["list", s.dlq])).items.map((d) => d.messageId)).toEqual(order);
    await expectCount(s.dlq, 3);

    const text = await grabbit(["list", s.dlq, "--image", contract().image]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`dead-letter queue "${s.dlq}": 3 messages ready, 0 consumers`);
    expect(text.stdout).toContain(`#1  ${order[0]}  ${REPORTED}  attempts 2`);
    expect(text.stdout).toContain("reason:  the ledger is down (gave up after 2 attempts)");
    expect(text.stdout).toContain(`from:    exchange "${s.exchange}", routing key "report.`);
    expect(text.stdout).toContain(`"requestId":"req-${requestNumber(order[0])}"`);
  });

  it("shows one message in full through the protobuf JSON mapping, and says when an id is not there", async () => {
    const s = await fresh("show");
    const ids = await deadLetter(s, janitor, [report(7), report(8)], boom("no"));
    const r = await json<{ queue: string; message: DeadLetter }>(["show", s.dlq, ids[1]!]);
    expect(r.message).toMatchObject({
      messageId: ids[1],
      position: 2,
      type: REPORTED,
      attempts: 1,
      reason: "no (gave up after 1 attempts)",
    });
    expect(r.message.body).toMatchObject({ requestId: "req-8", amountCents: "1008" });
    expect(r.message.headers["x-grabbit-original-exchange"]).toBe(s.exchange);
    expect(r.message.bodyBase64).toBeUndefined();

    const text = await grabbit(["show", s.dlq, ids[0]!, "--proto", "proto"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`message ${ids[0]} in dead-letter queue "${s.dlq}" (position 1)`);
    expect(text.stdout).toContain(`"requestId": "req-7"`);
    expect(text.stdout).toContain("dead-lettered by: a grabbit consumer");
    // By position, as list numbers them.
    const second = await json<{ message: DeadLetter }>(["show", s.dlq, "#2"]);
    expect(second.message).toMatchObject({ position: 2, messageId: ids[1] });
    expect(await grabbit(["show", s.dlq, "#3", "--image", contract().image])).toEqual({
      code: 1,
      stdout: "",
      stderr: `grabbit dlq show: queue "${s.dlq}" has no message #3 (2 ready).\n`,
    });

    const missing = await grabbit(["show", s.dlq, "no-such-id", "--image", contract().image]);
    expect(missing).toMatchObject({ code: 1, stdout: "" });
    expect(missing.stderr).toBe(
      `grabbit dlq show: no message with id "no-such-id" among the 2 message(s) examined in queue "${s.dlq}" (2 ready).\n`,
    );
    await expectCount(s.dlq, 2);
  });

  it("shows a message that does not decode as undecodable, with the reason and its bytes, not a crash", async () => {
    const s = await fresh("undecodable");
    const ids = await deadLetter(s, janitor, [report(1)], () => undefined, {
      raw: [
        { content: UNDECODABLE, type: REPORTED },
        { content: Buffer.from([8, 1]), type: "example.v1.NotInTheContract" },
      ],
      dead: 2,
    });
    const r = await json<ListResult>(["list", s.dlq]);
    // The consumer acked the good one; the two bad ones were dead-lettered by it at once.
    expect(r.items.map((d) => d.messageId)).toEqual(ids.slice(1));
    expect(r.items[0]!.decodeError).toMatch(
      /^its body does not decode as example\.v1\.RequestReported: /,
    );
    expect(r.items[0]!.reason).toMatch(/^cannot decode example\.v1\.RequestReported/);
    expect(r.items[1]!.decodeError).toBe(
      "the contract has no message named example.v1.NotInTheContract",
    );
    const shown = await json<{ message: DeadLetter }>(["show", s.dlq, ids[1]!]);
    expect(Buffer.from(shown.message.bodyBase64!, "base64")).toEqual(UNDECODABLE);
    const text = await grabbit(["list", s.dlq, "--image", contract().image]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      "body:    undecodable: its body does not decode as example.v1.RequestReported",
    );

    // Without a contract (no buf module in the folder, no --image or --proto) bodies are not decoded, and that is said.
    const bare = await grabbit(["list", s.dlq], { cwd: mkdtempSync(join(tmpdir(), "dlq-")) });
    expect(bare.code).toBe(0);
    expect(bare.stdout).toContain("undecodable: no contract was given to decode it with");
  });

  it("reads what the broker dead-lettered (x-death) and an RPC request without reply_to", async () => {
    const s = await fresh("xdeath");
    await deadLetter(s, janitor, [], () => undefined);
    // A raw consumer rejects a message without requeue: the work queue's DLX moves it, with x-death.
    await s.publisher.publish(report(5), { messageId: "rejected-1" });
    const ch = await janitor.channel();
    const got = await new Promise<import("amqplib").ConsumeMessage>(
      (resolve) => void ch.consume(s.queue, (m) => m && resolve(m)),
    );
    ch.nack(got, false, false);
    while ((await janitor.messageCount(s.dlq)) < 1) await new Promise((r) => setTimeout(r, 20));
    await ch.close();

    // A request without reply_to to a real RPC server lands in <request queue>.dlq.
    const service = processorService();
    rpcQueues.push(service.amqp!.requestQueue!, `${service.amqp!.requestQueue}.dlq`);
    const server = await serveAmqp(
      s.connection,
      service,
      { processRequest: () => ({ requestId: "x", accepted: true }) },
      { logger: silentLogger() },
    );
    const rpcDlq = `${service.amqp!.requestQueue}.dlq`;
    const pub = await janitor.channel();
    pub.sendToQueue(
      service.amqp!.requestQueue!,
      Buffer.from(
        messageType("example.v1.ProcessRequestRequest").encode({ request: { requestId: "r-9" } }),
      ),
      {
        contentType: "application/x-protobuf",
        type: "example.v1.ProcessRequestRequest",
        messageId: "rpc-1",
        headers: { "rpc-method": `/${service.typeName}/ProcessRequest` },
      },
    );
    while ((await janitor.messageCount(rpcDlq)) < 1) await new Promise((r) => setTimeout(r, 20));
    await server.close();
    await pub.close();

    const broker = (await json<ListResult>(["list", s.dlq])).items[0]!;
    expect(broker).toMatchObject({
      messageId: "rejected-1",
      source: "broker",
      originalExchange: s.exchange,
      attempts: 1,
      type: REPORTED,
    });
    expect(broker.reason).toBe(
      `dead-lettered by the broker from queue "${s.queue}": rejected by a consumer without requeue`,
    );
    expect(broker.originalRoutingKey).toMatch(/^report\./);
    expect(broker.firstFailure).toBeDefined();
    expect(broker.body).toMatchObject({ requestId: "req-5" });
    const rpc = (await json<ListResult>(["list", rpcDlq])).items[0]!;
    expect(rpc).toMatchObject({
      messageId: "rpc-1",
      source: "rpc",
      originalExchange: "",
      originalRoutingKey: service.amqp!.requestQueue,
      reason: "the request has no reply_to, so no reply can be sent",
    });
    expect(rpc.body).toEqual({ request: { requestId: "r-9" } });
    expect(rpc.lastFailure).toBeDefined();

    // Replayed, the broker's death records go and the replay is counted.
    const replayed = await grabbit([
      "replay",
      s.dlq,
      "--id",
      "rejected-1",
      "--image",
      contract().image,
    ]);
    expect(replayed.code).toBe(0);
    const [back] = await take(janitor, s.queue);
    expect(back!.id).toBe("rejected-1");
    expect(back!.headers["x-death"]).toBeUndefined();
    expect(back!.headers["x-first-death-queue"]).toBeUndefined();
    expect(back!.headers[HEADER_REPLAYS]).toBe(1);
    expect(back!.exchange).toBe(s.exchange);
  });

  it("says in one sentence that a queue does not exist, for every subcommand", async () => {
    const queue = uniqueName("grabbit-test-no-such-dlq");
    const image = ["--image", contract().image];
    for (const args of [
      ["list", queue, ...image],
      ["show", queue, "x", ...image],
      ["replay", queue, "--all", ...image],
      ["purge", queue, "--yes"],
      ["purge", queue],
    ]) {
      expect(await grabbit(args)).toEqual({
        code: 1,
        stdout: "",
        stderr: `grabbit dlq ${args[0]}: queue "${queue}" does not exist.\n`,
      });
    }
    // Through the API: NOT_FOUND, and the connection goes on working (the 404 closed only that channel).
    const s = await fresh("api");
    await deadLetter(s, janitor, [report(1)], boom("x"));
    await expect(new DeadLetterQueue(s.connection, queue).list()).rejects.toMatchObject({
      code: Code.NOT_FOUND,
      rawMessage: `queue "${queue}" does not exist`,
    });
    expect(await new DeadLetterQueue(s.connection, s.dlq).info()).toEqual({
      queue: s.dlq,
      messages: 1,
      consumers: 0,
    });
  });

  it("refuses bad usage with a sentence before touching the broker", async () => {
    const cases: [string[], string][] = [
      [
        ["replay", "q"],
        "grabbit dlq replay: say which messages to replay: --id, a filter (--type, --reason, --older-than, --newer-than, --header) or --all.\n",
      ],
      [["list"], "grabbit dlq list: a queue is required (grabbit dlq list <queue>).\n"],
      [
        ["list", "q", "--older-than", "soon"],
        "grabbit dlq list: --older-than soon is not a duration (such as 90s, 15m, 2h or 7d).\n",
      ],
      [
        ["list", "q", "--header", "novalue"],
        "grabbit dlq list: --header novalue is not name=value.\n",
      ],
      [
        ["list", "q", "--format", "xml"],
        'grabbit dlq list: unknown format "xml"; use text or json.\n',
      ],
      [
        ["list", "q", "--reason", "/(/"],
        "grabbit dlq list: --reason /(/ is not a valid regular expression: Invalid regular expression: /(/: Unterminated group.\n",
      ],
      [
        ["list", "q", "--image", "nope.binpb"],
        "grabbit dlq list: --image nope.binpb: no such file (build one with buf build -o image.binpb).\n",
      ],
      [
        ["show", "q"],
        "grabbit dlq show: a message id is required (grabbit dlq show <queue> <message-id>; list shows the ids).\n",
      ],
      [["purge", "q", "--all"], 'grabbit dlq purge: unknown flag "--all".\n'],
      [["drain", "q"], 'grabbit dlq: unknown subcommand "drain" (list, show, replay or purge).\n'],
    ];
    for (const [args, stderr] of cases) {
      const r = await grabbit(args);
      expect(r.code).toBe(1);
      expect(r.stderr.split("\n\n")[0]!.replace(/\n?$/, "\n")).toBe(stderr);
    }
    const unreachable = await grabbit(["list", "q", "--url", "amqp://127.0.0.1:1"]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      /^grabbit dlq list: cannot connect to RabbitMQ at amqp:\/\/127\.0\.0\.1:1: .+\n$/,
    );
  });
});

describe("filters", () => {
  it("selects by type, reason (text or expression), age and header, for list and replay", async () => {
    const s = await fresh("filters");
    const a = await deadLetter(s, janitor, [report(1), report(2)], boom("alpha failed: timeout"));
    await deadLetter(
      s,
      janitor,
      [report(3)],
      (e) => {
        throw new StatusError(Code.INVALID_ARGUMENT, `beta rejected ${e.requestId as string}`);
      },
      { metadata: { tenant: "acme" } },
    );
    const ids = (args: string[]) =>
      json<ListResult>(["list", s.dlq, ...args]).then((r) => r.items.map((d) => d.messageId));
    expect(sorted(await ids(["--reason", "ALPHA"]))).toEqual(sorted(a));
    expect(
      await ids(["--reason", "/^\\[INVALID_ARGUMENT\\] beta rejected req-\\d$/"]),
    ).toHaveLength(1);
    expect(await ids(["--type", "example.v1.*"])).toHaveLength(3);
    expect(await ids(["--type", "example.v1.Other"])).toEqual([]);
    expect(await ids(["--older-than", "1h"])).toEqual([]);
    expect(await ids(["--newer-than", "1h"])).toHaveLength(3);
    expect(sorted(await ids(["--header", "x-grabbit-attempts=1", "--reason", "alpha"]))).toEqual(
      sorted(a),
    );
    expect(await ids(["--header", "tenant=acme"])).toHaveLength(1);
    expect(await ids(["--header", "tenant=other"])).toEqual([]);
    expect(await ids(["--id", a[1]!])).toEqual([a[1]]);

    // Replay only what matches; the rest stays, in order.
    const r = await grabbit([
      "replay",
      s.dlq,
      "--reason",
      "alpha",
      "--to-queue",
      s.queue,
      "--image",
      contract().image,
    ]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toBe(
      `replayed 2 of 2 matching messages to queue "${s.queue}" (3 examined in "${s.dlq}", 3 were ready)\n`,
    );
    expect(sorted((await take(janitor, s.queue)).map((m) => m.id))).toEqual(sorted(a));
    await expectCount(s.dlq, 1);
    expect((await ids([]))[0]).toMatch(/^msg-\d+-req-3$/);
  });
});

describe("replay", () => {
  it("puts every message back on its original exchange and routing key, stripped of dead-letter headers, and acks only then", async () => {
    const s = await fresh("replay-all");
    const ids = await deadLetter(
      s,
      janitor,
      [report(1), report(2), report(3), report(4)],
      boom("down"),
    );
    const before = (await json<ListResult>(["list", s.dlq])).items;

    const dry = await grabbit(["replay", s.dlq, "--all", "--dry-run", "--image", contract().image]);
    expect(dry.code).toBe(0);
    expect(dry.stdout.split("\n")[0]).toBe(
      `dry run: 4 messages of the 4 examined in "${s.dlq}" would be replayed to their original exchange and routing key:`,
    );
    await expectCount(s.dlq, 4);

    const r = await json<{
      replayed: number;
      matched: number;
      failed: unknown[];
      examined: number;
    }>(["replay", s.dlq, "--all"]);
    expect(r).toMatchObject({ replayed: 4, matched: 4, failed: [], examined: 4 });
    await expectCount(s.dlq, 0);
    const back = await take(janitor, s.queue);
    // In the order they had in the DLQ.
    expect(back.map((m) => m.id)).toEqual(before.map((d) => d.messageId));
    expect(sorted(back.map((m) => m.id))).toEqual(sorted(ids));
    for (const [i, m] of back.entries()) {
      expect(m.exchange).toBe(s.exchange);
      expect(m.routingKey).toBe(before[i]!.originalRoutingKey);
      expect(m.content).toEqual(
        Buffer.from(messageType(REPORTED).encode(report(requestNumber(m.id)))),
      );
      for (const h of [
        "x-grabbit-error",
        "x-grabbit-attempts",
        "x-grabbit-attempt",
        "x-grabbit-first-failed-at",
        "x-grabbit-dead-lettered-at",
        "x-grabbit-original-exchange",
        "x-death",
      ])
        expect(m.headers[h]).toBeUndefined();
      expect(m.headers[HEADER_REPLAYS]).toBe(1);
    }
  });

  it("replays a message to its consumer again; failing again it keeps its replay count, and once fixed the consumer takes it", async () => {
    const s = await fresh("replay-fixed");
    const [id] = await deadLetter(s, janitor, [report(1)], boom("bug"));
    expect((await grabbit(["replay", s.dlq, "--id", id!, "--image", contract().image])).code).toBe(
      0,
    );
    // Fails again: back in the DLQ with the replay counted; replayed once more, a fixed handler takes it.
    await withConsumer(s, boom("bug again"), async () => (await janitor.messageCount(s.dlq)) === 1);
    const again = (await json<ListResult>(["list", s.dlq])).items[0]!;
    expect(again).toMatchObject({
      messageId: id,
      replays: 1,
      reason: "bug again (gave up after 1 attempts)",
      attempts: 1,
    });
    expect((await grabbit(["replay", s.dlq, "--id", id!, "--image", contract().image])).code).toBe(
      0,
    );
    const seen: unknown[] = [];
    await withConsumer(
      s,
      (e) => void seen.push(e.requestId),
      async () => seen.length === 1,
    );
    expect(seen).toEqual(["req-1"]);
    await expectCount(s.dlq, 0);
    expect(await janitor.messageCount(s.queue)).toBe(0);
  });

  it("keeps what cannot be replayed and exits 1 saying why; an id that is not there exits 1", async () => {
    const s = await fresh("replay-fail");
    const ids = await deadLetter(s, janitor, [report(1), report(2)], boom("x"));
    // The exchange is gone: the replay is refused by the broker, the dead letters stay.
    const ch = await janitor.channel();
    await ch.deleteExchange(s.exchange);
    await ch.close();
    const r = await grabbit(["replay", s.dlq, "--all", "--image", contract().image]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("replayed 0 of 2 matching messages");
    expect(r.stderr).toMatch(
      new RegExp(
        `^grabbit dlq replay: 2 message\\(s\\) could not be replayed and stay in "${s.dlq}" \\(first: .*${s.exchange}.*\\)\\.\\n$`,
      ),
    );
    await expectCount(s.dlq, 2);
    expect(sorted((await json<ListResult>(["list", s.dlq])).items.map((d) => d.messageId))).toEqual(
      sorted(ids),
    );

    const missing = await grabbit([
      "replay",
      s.dlq,
      "--id",
      "nope",
      "--to-queue",
      s.queue,
      "--image",
      contract().image,
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `grabbit dlq replay: no message with id "nope" among the 2 message(s) examined in queue "${s.dlq}".\n`,
    );
    const noQueue = await grabbit([
      "replay",
      s.dlq,
      "--all",
      "--to-queue",
      "grabbit-test-nowhere-q",
      "--image",
      contract().image,
    ]);
    expect(noQueue).toMatchObject({
      code: 1,
      stderr:
        'grabbit dlq replay: the queue to replay to, "grabbit-test-nowhere-q", does not exist.\n',
    });
    await expectCount(s.dlq, 2);
  });

  it("stops when messages it keeps back fill a small window, and says so; a larger window reaches the rest", async () => {
    const s = await fresh("window");
    const keep = await deadLetter(s, janitor, [report(1), report(2), report(3)], boom("keep"));
    const go = await deadLetter(s, janitor, [report(4), report(5)], boom("go"));
    const r = await grabbit([
      "replay",
      s.dlq,
      "--reason",
      "go",
      "--window",
      "2",
      "--to-queue",
      s.queue,
      "--image",
      contract().image,
      "--format",
      "json",
    ]);
    // Two kept-back messages fill the window before the ones to replay are reached.
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ replayed: 0, examined: 2, notExamined: 3 });
    expect(r.stderr).toBe(
      "grabbit dlq replay: 3 message(s) were not examined because 2 not replayed filled the window; run again with a larger --window.\n",
    );
    const wide = await grabbit([
      "replay",
      s.dlq,
      "--reason",
      "go",
      "--window",
      "4",
      "--to-queue",
      s.queue,
      "--image",
      contract().image,
    ]);
    expect(wide.code).toBe(0);
    expect(sorted((await take(janitor, s.queue)).map((m) => m.id))).toEqual(sorted(go));
    expect(sorted((await json<ListResult>(["list", s.dlq])).items.map((d) => d.messageId))).toEqual(
      sorted(keep),
    );
  });
});

describe("purge", () => {
  it("needs a confirmation: --yes, or the queue name typed on a terminal", async () => {
    const s = await fresh("purge");
    await deadLetter(s, janitor, [report(1), report(2)], boom("x"));
    const refused = await grabbit(["purge", s.dlq]);
    expect(refused).toEqual({
      code: 1,
      stdout: "",
      stderr: `grabbit dlq purge: purge deletes all 2 message(s) of "${s.dlq}": add --yes, or run it on a terminal and type the queue name.\n`,
    });
    const questions: string[] = [];
    const wrong = await grabbit(["purge", s.dlq], {
      prompt: async (q) => (questions.push(q), "orders"),
    });
    expect(wrong).toEqual({
      code: 1,
      stdout: "",
      stderr: `grabbit dlq purge: nothing was purged: "orders" is not the queue name.\n`,
    });
    expect(questions[0]).toContain(`This deletes all 2 message(s) of dead-letter queue "${s.dlq}"`);
    await expectCount(s.dlq, 2);
    const typed = await grabbit(["purge", s.dlq], { prompt: async () => `${s.dlq}\n` });
    expect(typed).toEqual({ code: 0, stdout: `purged 2 messages from "${s.dlq}"\n`, stderr: "" });
    await expectCount(s.dlq, 0);

    await deadLetter(s, janitor, [report(3)], boom("x"));
    const yes = await grabbit(["purge", s.dlq, "--yes", "--format", "json"]);
    expect(yes).toEqual({
      code: 0,
      stdout: `${JSON.stringify({ queue: s.dlq, purged: 1 })}\n`,
      stderr: "",
    });
    await expectCount(s.dlq, 0);
  });
});

/** example.v1.ProcessorService over AMQP, on a request queue of the test's own. */
function processorService(): ServiceDesc {
  const queue = uniqueName("grabbit-test-dlq-rpc");
  const typeName = "example.v1.ProcessorService";
  return {
    typeName,
    transports: ["amqp"],
    amqp: { requestQueue: queue, prefetch: 4 },
    methods: {
      processRequest: {
        name: "ProcessRequest",
        path: `/${typeName}/ProcessRequest`,
        kind: "unary",
        input: messageType("example.v1.ProcessRequestRequest"),
        output: messageType("example.v1.ProcessRequestResponse") as never,
        idempotent: true,
      },
    },
  } as ServiceDesc;
}
