// Counts of the hostile inputs tried, printed at the end of each file (figures for RELIABILITY.md).
import { afterAll } from "vitest";

const rows: string[] = [];

export function tally(edge: string, tried: number, outcomes: Record<string, number>): void {
  rows.push(`${edge}: ${tried} tried -> ${Object.entries(outcomes).map(([k, v]) => `${k} ${v}`).join(", ")}`);
}

afterAll(() => {
  if (rows.length > 0) console.log(`[hostile inputs]\n  ${rows.join("\n  ")}`);
});
