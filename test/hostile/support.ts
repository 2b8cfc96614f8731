// Shared by the hostile-input tests: how many inputs a property tries, from which seed, and the
// counts of what was tried, printed at the end of each file (figures for RELIABILITY.md).
import { afterAll } from "vitest";

/**
 * fast-check settings for a property that tries `n` inputs. The seed is fixed, so a CI run can
 * only fail on a change, and the failure replays; `npm run fuzz` sets HOSTILE_SEED=random and
 * HOSTILE_SCALE to explore beyond it (the seed of a failure is printed, to be replayed with
 * HOSTILE_SEED=<seed>).
 */
export function runs(n: number): { numRuns: number; seed?: number } {
  const scale = Number(process.env.HOSTILE_SCALE ?? 1);
  const numRuns = Math.max(1, Math.ceil(n * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
  const seed = process.env.HOSTILE_SEED ?? "20261121";
  return seed === "random" ? { numRuns } : { numRuns, seed: Number(seed) | 0 };
}

const rows: string[] = [];

export function tally(edge: string, tried: number, outcomes: Record<string, number>): void {
  rows.push(
    `${edge}: ${tried} tried -> ${Object.entries(outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
}

afterAll(() => {
  if (rows.length > 0) console.log(`[hostile inputs]\n  ${rows.join("\n  ")}`);
});
