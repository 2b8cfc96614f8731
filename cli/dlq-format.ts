// The text output of `grabbit dlq`: one block per message for list, everything for show, a summary
// for replay and purge. Pure functions of the results (the JSON output is the results themselves).
import type { DeadLetter, ListResult, ReplayResult } from "@grabbit/runtime/dlq";

const BODY_CHARS = 160;

export function formatList(r: ListResult, filtered: boolean): string {
  const lines = [
    `dead-letter queue "${r.queue}": ${plural(r.messages, "message")} ready, ${plural(r.consumers, "consumer")}`,
  ];
  if (r.consumers > 0)
    lines.push(`  note: its consumers take messages while they run; what they hold is not listed`);
  if (r.items.length === 0)
    lines.push(filtered ? `  no message matches (${r.examined} examined)` : "  (empty)");
  for (const d of r.items) lines.push(...summary(d));
  if (r.truncated)
    lines.push(
      `showing ${r.items.length}${filtered ? " matching" : ""} of ${r.messages}: ${r.examined} examined (--limit and --scan show more)`,
    );
  return `${lines.join("\n")}\n`;
}

function summary(d: DeadLetter): string[] {
  const out = [
    `#${d.position}  ${d.messageId ?? "(no message id)"}  ${d.type ?? "(no type)"}  ${d.attempts !== undefined ? `attempts ${d.attempts}` : ""}${d.replays ? `  replayed ${d.replays}x before` : ""}`.trimEnd(),
  ];
  out.push(`    reason:  ${d.reason ?? "(none recorded)"}`);
  out.push(`    from:    ${origin(d)}`);
  out.push(`    failed:  ${times(d)}`);
  out.push(
    d.decodeError !== undefined
      ? `    body:    undecodable: ${d.decodeError} (${d.bodySize} bytes)`
      : `    body:    ${clip(JSON.stringify(d.body))}`,
  );
  return out;
}

export function formatShow(queue: string, d: DeadLetter): string {
  const lines = [
    `message ${d.messageId ?? "(no message id)"} in dead-letter queue "${queue}" (position ${d.position})`,
    `  type:         ${d.type ?? "(none)"}`,
    `  reason:       ${d.reason ?? "(none recorded)"}`,
    `  attempts:     ${d.attempts ?? "unknown"}`,
    `  from:         ${origin(d)}`,
    `  failed:       ${times(d)}`,
    `  published:    ${d.publishedAt !== undefined ? iso(d.publishedAt) : "unknown"}`,
    `  dead-lettered by: ${d.source === "consumer" ? "a grabbit consumer" : d.source === "rpc" ? "a grabbit RPC server (no reply_to)" : d.source === "broker" ? "the broker" : "unknown"}${d.replays ? ` (replayed ${d.replays} time(s) before)` : ""}`,
  ];
  for (const death of d.deaths)
    lines.push(
      `  x-death:      ${death.count}x ${death.reason} from queue "${death.queue}" (exchange "${death.exchange}", routing keys ${death.routingKeys.join(", ") || "none"})${death.time !== undefined ? ` last at ${iso(death.time)}` : ""}`,
    );
  lines.push("  properties:");
  for (const [k, v] of Object.entries(d.properties))
    lines.push(`    ${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
  lines.push("  headers:");
  for (const [k, v] of Object.entries(d.headers))
    lines.push(`    ${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
  if (d.decodeError !== undefined) {
    lines.push(`  body (${d.bodySize} bytes): undecodable: ${d.decodeError}`);
    if (d.bodyBase64 !== undefined) lines.push(`    base64: ${d.bodyBase64}`);
  } else {
    lines.push(`  body (${d.bodySize} bytes, protobuf JSON):`);
    lines.push(
      ...JSON.stringify(d.body, null, 2)
        .split("\n")
        .map((l) => `    ${l}`),
    );
  }
  return `${lines.join("\n")}\n`;
}

export function formatReplay(r: ReplayResult, toQueue: string | undefined): string {
  const where =
    toQueue !== undefined ? `to queue "${toQueue}"` : "to their original exchange and routing key";
  const lines: string[] = [];
  if (r.dryRun) {
    lines.push(
      `dry run: ${plural(r.matched, "message")} of the ${r.examined} examined in "${r.queue}" would be replayed ${where}:`,
    );
    for (const d of r.items)
      lines.push(
        `  #${d.position}  ${d.messageId ?? "(no message id)"}  ${d.type ?? "(no type)"}  -> ${d.destination === undefined ? "unknown (replay it with --to-queue)" : toQueue !== undefined ? `queue "${toQueue}"` : destinationText(d.destination)}`,
      );
  } else {
    lines.push(
      `replayed ${r.replayed} of ${plural(r.matched, "matching message")} ${where} (${r.examined} examined in "${r.queue}", ${r.messages} were ready)`,
    );
    for (const f of r.failed)
      lines.push(
        `  not replayed, kept: #${f.position} ${f.messageId ?? "(no message id)"}: ${f.error}`,
      );
  }
  if (r.notExamined > 0)
    lines.push(
      `  ${plural(r.notExamined, "message")} not examined (the window was full of messages kept back)`,
    );
  return `${lines.join("\n")}\n`;
}

export function formatPurge(queue: string, purged: number): string {
  return `purged ${plural(purged, "message")} from "${queue}"\n`;
}

function origin(d: DeadLetter): string {
  if (d.originalExchange === undefined || d.originalRoutingKey === undefined)
    return "unknown (replay it with --to-queue)";
  return destinationText({ exchange: d.originalExchange, routingKey: d.originalRoutingKey });
}

function destinationText(to: { exchange: string; routingKey: string }): string {
  return `exchange ${to.exchange === "" ? "(default)" : `"${to.exchange}"`}, routing key "${to.routingKey}"`;
}

function times(d: DeadLetter): string {
  if (d.firstFailure === undefined && d.lastFailure === undefined) return "time not recorded";
  const first = d.firstFailure ?? d.lastFailure!;
  const last = d.lastFailure ?? d.firstFailure!;
  const age = ago(Date.now() - last);
  return first === last
    ? `${iso(last)} (${age})`
    : `first ${iso(first)}, last ${iso(last)} (${age})`;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function clip(s: string | undefined): string {
  if (s === undefined) return "";
  return s.length > BODY_CHARS ? `${s.slice(0, BODY_CHARS - 1)}…` : s;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}
