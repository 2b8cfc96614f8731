// One benchmark figure. `ratio` says how many times better grabbit is than the baseline measured in
import { readFileSync } from "node:fs";
// the same run: value/baseline for rates, baseline/value for times and memory (above 1 is better).
export interface Figure {
  value: number;
  unit: string;
  baseline: number;
  ratio: number;
  /** What the baseline is, e.g. "raw amqplib confirm channel". */
  baselineName?: string;
  note?: string;
}

export type Higher = "higher-is-better" | "lower-is-better";

export function figure(
  value: number,
  baseline: number,
  unit: string,
  better: Higher,
  baselineName?: string,
): Figure {
  const ratio = better === "higher-is-better" ? value / baseline : baseline / value;
  return {
    value: round(value),
    unit,
    baseline: round(baseline),
    ratio: Math.round(ratio * 100) / 100,
    ...(baselineName ? { baselineName } : {}),
  };
}

function round(n: number): number {
  return n >= 100 ? Math.round(n) : Math.round(n * 1000) / 1000;
}

/** The median; the mean of the two middle values for an even count. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * Publishes `n` messages with at most `window` unconfirmed, as an application with a bounded
 * backlog would (`publish(i)` sends the i-th and resolves on its confirm); returns messages per second.
 */
export function publishSliding(
  n: number,
  window: number,
  publish: (i: number) => Promise<void>,
): Promise<number> {
  const start = performance.now();
  return new Promise<number>((resolve, reject) => {
    let sent = 0;
    let confirmed = 0;
    const onConfirm = () => {
      if (++confirmed === n) resolve(n / ((performance.now() - start) / 1000));
      else pump();
    };
    const pump = () => {
      while (sent < n && sent - confirmed < window) publish(sent++).then(onConfirm, reject);
    };
    pump();
  });
}

/** A bench module: bench/<area>.ts exports `run`, and bench/run.ts calls each in turn. */
export type BenchModule = { run(options: { quick: boolean }): Promise<Record<string, Figure>> };

/** The installed version of a peer library, read from node_modules (some packages do not export package.json). */
export function peerVersion(pkg: string): string {
  return (
    JSON.parse(
      readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), "utf8"),
    ) as { version: string }
  ).version;
}
