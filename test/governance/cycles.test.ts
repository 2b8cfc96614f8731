// No import cycles in the CLI and governance code: a cycle makes module load order decide what is
// initialised (a class or table read before its module ran is undefined), and is how
// governance/cli.ts <-> release/cli.ts and config.ts <-> images.ts once grew. dpdm (a maintained
// dependency analyser) walks the imports, dynamic and type-only ones included, resolving the .js
// specifiers of the sources through tsconfig.json as tsc does.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseCircular, parseDependencyTree } from "dpdm";
import { describe, expect, it } from "vitest";
import { tempDir } from "./helpers.js";

const ROOT = resolve(import.meta.dirname, "../..");

async function cycles(
  entries: string[],
  cwd: string,
): Promise<{ cycles: string[][]; tree: Awaited<ReturnType<typeof parseDependencyTree>> }> {
  const tree = await parseDependencyTree(entries, {
    cwd,
    context: cwd,
    transform: false,
    skipDynamicImports: false,
  });
  return { cycles: parseCircular(tree, false), tree };
}

describe("import cycles", () => {
  it("governance/, cli/ and bin/ have none", async () => {
    const { cycles: found, tree } = await cycles(
      ["governance/**/*.ts", "cli/**/*.ts", "bin/*.js"],
      ROOT,
    );
    // Not vacuous: the tree resolves the .js specifiers of the TypeScript sources to their files.
    expect(tree["governance/release/cli.ts"]?.map((d) => d.id)).toContain("governance/check.ts");
    expect(tree["cli/main.ts"]?.map((d) => d.id)).toContain("governance/breaking.ts");
    expect(found.map((c) => c.join(" -> "))).toEqual([]);
  });

  it("a cycle, even through a lazy import, is found", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "src"));
    // dpdm resolves "./a.js" to a.ts the way tsc does, through the tsconfig.json it finds.
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext" } }),
    );
    writeFileSync(
      join(dir, "src/a.ts"),
      `import { b } from "./b.js";\nexport const a = () => b;\n`,
    );
    writeFileSync(
      join(dir, "src/b.ts"),
      `export async function b() {\n  return (await import("./a.js")).a;\n}\n`,
    );
    const { cycles: found } = await cycles(["src/**/*.ts"], dir);
    expect(found.map((c) => [...c].sort())).toEqual([["src/a.ts", "src/b.ts"]]);
  });
});
