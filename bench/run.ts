// `npm run bench [-- --json] [-- --quick] [-- --only name,...]`: every bench module in turn, one table
// (or one JSON object, a key per figure) at the end. Modules run one after another so that they do
// not compete for the two cores.
import { readdirSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BenchModule, Figure } from "./figure.js";

const args = process.argv.slice(2);
const json = args.includes("--json");
const quick = args.includes("--quick");
const onlyArg = args.find((a) => a.startsWith("--only"));
const only = onlyArg
  ? (onlyArg.includes("=") ? onlyArg.split("=")[1]! : args[args.indexOf(onlyArg) + 1]!).split(",")
  : undefined;

const dir = fileURLToPath(new URL(".", import.meta.url));
const modules = readdirSync(dir)
  .filter((f) => f.endsWith(".bench.ts"))
  .map((f) => f.replace(/\.bench\.ts$/, ""))
  .filter((name) => !only || only.includes(name))
  .sort();

const figures: Record<string, Figure> = {};
for (const name of modules) {
  if (!json) process.stderr.write(`bench: ${name}...\n`);
  const mod = (await import(pathToFileURL(`${dir}/${name}.bench.ts`).href)) as BenchModule;
  try {
    Object.assign(figures, await mod.run({ quick }));
  } catch (err) {
    process.stderr.write(
      `bench: ${name} failed: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exitCode = 1;
  }
}

if (json) {
  process.stdout.write(JSON.stringify(figures) + "\n");
} else {
  const rows = Object.entries(figures).map(([key, f]) => [
    key,
    `${f.value} ${f.unit}`,
    `${f.baseline} ${f.unit}`,
    `${f.ratio}x`,
    f.baselineName ?? "",
  ]);
  const header = ["figure", "grabbit", "baseline", "ratio", "baseline is"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
process.exit();
