// The demo's last act: a report signed by a key the issuer published late, found in the Reporter's
// dead-letter queue with `grabbit dlq list` and put back with `grabbit dlq replay` once the key is out.
//
// A reporting client (here: this process, with the Processor's broker rights, as a second Processor
// would) publishes a RequestReported whose token is signed by a key the issuer made but has not
// published yet (issuer.stageKey()). The Reporter cannot verify it: UNAUTHENTICATED, which its consumer
// takes as permanent, so the event goes to `<reporter queue>.dlq` with the reason. Then the issuer
// publishes the key; the operator replays the message by its id, to the Reporter's queue (the Reporter's
// own broker rights suffice: read its DLQ, write through the default exchange); the Reporter fetches
// the key set again for the unknown kid, accepts the token and counts the report once.
//
// Both `grabbit dlq` steps run the CLI's own code (cli/dlq.ts, runDlq) and their output is printed as is.

import { randomBytes } from "node:crypto";
import { silentLogger } from "@grabbit/runtime";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { runDlq } from "../cli/dlq.js";
import { RequestReportedPublisher } from "#gen/example/v1/reports.grabbit.js";
import { APPROVED, cents, timestamp } from "#messages";
import type { ReportSummary } from "./reporter/reporter.js";
import { bearer } from "./shared/auth.js";
import type { Issuer } from "./shared/issuer.js";

export interface LateKeyOptions {
  issuer: Issuer;
  /** A broker URL that may publish reports (the Processor's). */
  publisherUrl: string;
  /** A broker URL that may read the Reporter's dead-letter queue and write to its queue (the Reporter's). */
  dlqUrl: string;
  reporter: {
    readonly queue: string;
    waitFor(requestIds: Iterable<string>, timeoutMs?: number): Promise<unknown>;
    summary(): ReportSummary | Promise<ReportSummary>;
  };
  /** The contract as a buf image (.binpb) for `grabbit dlq` to decode the body; without it the body is left undecoded. */
  image?: string;
  /** The report's region (a Reporter bound to one region needs it). Default eu-west. */
  region?: string;
  /** Each line to show. */
  print?: (line: string) => void;
  timeoutMs?: number;
}

export interface LateKeyResult {
  requestId: string;
  messageId: string;
  deadLetterQueue: string;
  kid: string;
  /** What `grabbit dlq list` printed while the report was dead-lettered. */
  listed: string;
  /** What `grabbit dlq replay` printed. */
  replayed: string;
  before: ReportSummary;
  after: ReportSummary;
  /** Copies of this story's message left in the dead-letter queue at the end (other runs' may be there too). */
  leftInDlq: number;
  /** Why the story did not end as it should (undefined when it did: refused once, counted once, DLQ empty). */
  problem: string | undefined;
}

export async function lateKeyStory(options: LateKeyOptions): Promise<LateKeyResult> {
  const print = options.print ?? (() => {});
  const timeoutMs = options.timeoutMs ?? 15_000;
  const { issuer, reporter } = options;
  const dlq = `${reporter.queue}.dlq`;
  const requestId = `late-${randomBytes(4).toString("hex")}`;
  const messageId = `report-${requestId}`;
  const image = options.image !== undefined ? ["--image", options.image] : [];
  const before = await reporter.summary();
  const started = Date.now();

  const { kid } = await issuer.stageKey();
  const token = await issuer.sign({
    kid,
    subject: Object.keys(issuer.clients)[0] ?? "demo-client",
  });
  const publishing = await AmqpConnection.connect({
    urls: options.publisherUrl,
    name: "grabbit-example-late-key",
    connectTimeoutMs: 5000,
    logger: silentLogger(),
  });
  try {
    const publisher = new RequestReportedPublisher(publishing);
    await publisher.publish(
      {
        requestId,
        decision: APPROVED,
        region: options.region ?? "eu-west",
        amountCents: cents(4200),
        decidedAt: timestamp(new Date()),
      },
      { messageId, metadata: bearer(token) },
    );
    await publisher.close();
  } finally {
    await publishing.close();
  }
  print(
    `a report signed by a key the issuer has not published yet (kid ${kid.slice(0, 8)}...): the Reporter refuses it`,
  );
  // Wait for this story's message by its id: on a shared broker the Reporter (bound to every region)
  // may also refuse and dead-letter other runs' reports, so the queue's count says nothing of ours.
  await waitForOurs(
    options.dlqUrl,
    dlq,
    messageId,
    1,
    timeoutMs,
    `the refused report did not reach "${dlq}"`,
  );

  const listed = await dlqCommand([
    "list",
    dlq,
    "--id",
    messageId,
    "--url",
    options.dlqUrl,
    ...image,
  ]);
  print(`grabbit dlq list ${dlq} --id ${messageId}`);
  for (const line of listed.trimEnd().split("\n")) print(`  ${line}`);

  issuer.publish(kid);
  print(
    `the issuer publishes kid ${kid.slice(0, 8)}... (its key set now has ${issuer.kids.length} keys)`,
  );
  const replayed = await dlqCommand([
    "replay",
    dlq,
    "--id",
    messageId,
    "--to-queue",
    reporter.queue,
    "--url",
    options.dlqUrl,
  ]);
  print(`grabbit dlq replay ${dlq} --id ${messageId} --to-queue ${reporter.queue}`);
  for (const line of replayed.trimEnd().split("\n")) print(`  ${line}`);

  await reporter.waitFor([requestId], timeoutMs);
  const after = await reporter.summary();
  const leftInDlq = await waitForOurs(options.dlqUrl, dlq, messageId, 0, timeoutMs, "");
  const problem =
    after.refused < before.refused + 1
      ? "the Reporter did not refuse the report signed by the unpublished key"
      : after.reports !== before.reports + 1 || after.duplicates !== before.duplicates
        ? `the Reporter counted ${after.reports - before.reports} reports and ${after.duplicates - before.duplicates} duplicates, not the replayed one once`
        : leftInDlq !== 0
          ? `the replayed report is still in "${dlq}"`
          : undefined;
  print(
    problem === undefined
      ? `the Reporter accepted the replayed report and counted it once (now ${after.reports} reports, ${after.duplicates} duplicates); it is no longer in "${dlq}"; all this in ${Date.now() - started} ms`
      : `the replayed report: ${problem}`,
  );
  return {
    requestId,
    messageId,
    deadLetterQueue: dlq,
    kid,
    listed,
    replayed,
    before,
    after,
    leftInDlq,
    problem,
  };
}

/** Runs `grabbit dlq <args>` in this process (the CLI's code); its stdout, or an error with its stderr. */
async function dlqCommand(args: string[]): Promise<string> {
  let out = "";
  let err = "";
  const code = await runDlq(args, {
    stdout: (s) => (out += s),
    stderr: (s) => (err += s),
    cwd: process.cwd(),
    isTTY: false,
    env: {},
  });
  if (code !== 0)
    throw new Error(`grabbit dlq ${args[0]} ${args[1]} failed (exit ${code}): ${err.trim()}`);
  return out;
}

/** Polls `grabbit dlq list --id` until the queue holds `want` copies of the message; returns the last count. */
async function waitForOurs(
  url: string,
  queue: string,
  messageId: string,
  want: number,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const listed = JSON.parse(
      await dlqCommand(["list", queue, "--id", messageId, "--url", url, "--format", "json"]),
    ) as { items: unknown[] };
    if (listed.items.length === want || Date.now() > end) {
      if (listed.items.length !== want && what) throw new Error(what);
      return listed.items.length;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
