// Building the SDK package: `buf generate` (ts-proto for messages, protoc-gen-grabbit for transports)
// into <package>/src, tsc to ESM JavaScript and declarations in <package>/dist, then package.json,
// README and `npm pack`. The generated sources are the package's: src/ and dist/ are rewritten.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ReleaseError } from "../errors.js";

/** grabbit's own package root (source checkout or installed package; dist/ or not). */
export function grabbitRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "bin/protoc-gen-grabbit.js"))) {
    const up = dirname(dir);
    if (up === dir)
      throw new ReleaseError(
        "cannot find grabbit's bin/protoc-gen-grabbit.js next to the release code.",
      );
    dir = up;
  }
  return dir;
}

/** node_modules/.bin folders from `dir` up, then grabbit's own: the team's pinned tools win. */
function binDirs(dir: string): string[] {
  const out: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    const bin = join(d, "node_modules/.bin");
    if (existsSync(bin)) out.push(bin);
    if (dirname(d) === d) break;
  }
  const own = join(grabbitRoot(), "node_modules/.bin");
  if (existsSync(own) && !out.includes(own)) out.push(own);
  return out;
}

function findBin(name: string, dir: string, hint: string): string {
  for (const d of binDirs(dir)) if (existsSync(join(d, name))) return join(d, name);
  throw new ReleaseError(`cannot find ${name} (${hint}).`);
}

export function run(
  cmd: string,
  args: string[],
  cwd: string,
  what: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw new ReleaseError(`${what}: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0) {
    const out = `${r.stderr ?? ""}\n${r.stdout ?? ""}`.trim();
    throw new ReleaseError(`${what} failed (exit ${r.status}):\n${out}`);
  }
  return r.stdout;
}

// The same ts-proto options `grabbit init` writes: what protoc-gen-grabbit's output is written against.
const TS_PROTO_OPTIONS = [
  "outputServices=none",
  "esModuleInterop=true",
  "importSuffix=.js",
  "env=node",
];

export interface GenerateOptions {
  /** A buf input: a directory, an image, a git ref. */
  input: string;
  cwd: string;
  srcDir: string;
  /** The team's own buf.gen.yaml for the SDK, instead of grabbit's (its outputs must go to srcDir). */
  template?: string;
}

export function generate({ input, cwd, srcDir, template }: GenerateOptions): void {
  const buf = findBin("buf", cwd, "install @bufbuild/buf");
  let templatePath = template && resolve(cwd, template);
  const scratch = mkdtempSync(join(tmpdir(), "grabbit-release-"));
  try {
    if (!templatePath) {
      const tsProto = findBin("protoc-gen-ts_proto", cwd, "install ts-proto");
      const plugin = join(grabbitRoot(), "bin/protoc-gen-grabbit.js");
      templatePath = join(scratch, "buf.gen.yaml");
      // JSON is YAML: no quoting questions for paths.
      writeFileSync(
        templatePath,
        JSON.stringify({
          version: "v2",
          plugins: [
            { local: tsProto, out: srcDir, strategy: "all", opt: TS_PROTO_OPTIONS },
            { local: plugin, out: srcDir, strategy: "all" },
          ],
        }),
      );
    }
    // buf's `clean` would also clear a team's out dirs; here only the SDK's own src/ is cleared.
    rmSync(srcDir, { recursive: true, force: true });
    mkdirSync(srcDir, { recursive: true });
    const env = { ...process.env, PATH: [...binDirs(cwd), process.env.PATH ?? ""].join(delimiter) };
    run(buf, ["generate", input, "--template", templatePath], cwd, `buf generate ${input}`, env);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (!listFiles(srcDir).some((f) => f.endsWith(".ts")))
    throw new ReleaseError(`buf generate ${input} wrote no TypeScript into ${srcDir}.`);
}

export function listFiles(dir: string, sub = ""): string[] {
  if (!existsSync(join(dir, sub))) return [];
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, sub)).sort()) {
    const rel = sub ? `${sub}/${entry}` : entry;
    if (statSync(join(dir, rel)).isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out;
}

/** The folder of an installed package as node would find it from `from`, if any. */
export function installedPackage(
  name: string,
  from: string,
): { dir: string; version: string } | undefined {
  for (let d = resolve(from); ; d = dirname(d)) {
    const pj = join(d, "node_modules", name, "package.json");
    if (existsSync(pj))
      return { dir: dirname(pj), version: String(JSON.parse(readFileSync(pj, "utf8")).version) };
    if (dirname(d) === d) return undefined;
  }
}

// Statements only: an import or export at the start of a line (JSDoc copied from proto comments starts
// with " * " and may well say `import "orders.proto"`).
const IMPORT = /^(?:import|export)\s(?:[^'";]*?\sfrom\s*)?["']([^"']+)["']/gm;

/** Packages the generated code imports (bare specifiers), plus the two every SDK runs on. */
export function importedPackages(srcDir: string): string[] {
  const names = new Set(["@grabbit/runtime", "@bufbuild/protobuf"]);
  for (const f of listFiles(srcDir)) {
    if (!f.endsWith(".ts")) continue;
    for (const m of readFileSync(join(srcDir, f), "utf8").matchAll(IMPORT)) {
      const spec = m[1]!;
      if (spec.startsWith(".") || spec.startsWith("node:") || spec.startsWith("/")) continue;
      const parts = spec.split("/");
      names.add(spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!);
    }
  }
  return [...names].sort();
}

/** Each package at the version installed where the SDK is built (`^x.y.z`). */
export function dependencyRanges(names: string[], pkgDir: string): Record<string, string> {
  const deps: Record<string, string> = {};
  for (const name of names) {
    const found = installedPackage(name, pkgDir);
    if (!found)
      throw new ReleaseError(
        `the generated code imports ${name}, which is not installed where ${pkgDir} can see it; add it to the repo's dependencies (npm install ${name}).`,
      );
    deps[name] = `^${found.version}`;
  }
  return deps;
}

export function compile(pkgDir: string): void {
  const tsc = findBin("tsc", pkgDir, "install typescript");
  const hasNodeTypes = installedPackage("@types/node", pkgDir) !== undefined;
  const tsconfig = {
    compilerOptions: {
      target: "ES2022",
      lib: ["ES2023"],
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      declaration: true,
      declarationMap: true,
      sourceMap: true,
      esModuleInterop: true,
      // Generated code is not linted: ts-proto leaves imports unused in some files.
      skipLibCheck: true,
      rootDir: "src",
      outDir: "dist",
      types: hasNodeTypes ? ["node"] : [],
    },
    include: ["src"],
  };
  writeFileSync(join(pkgDir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2) + "\n");
  rmSync(join(pkgDir, "dist"), { recursive: true, force: true });
  run(
    tsc,
    ["-p", join(pkgDir, "tsconfig.json")],
    pkgDir,
    "tsc (the generated SDK does not compile)",
  );
}

export interface Manifest {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  contract: string;
}

/** package.json: fields grabbit owns are rewritten, anything else a team added is kept. */
export function writeManifest(
  pkgDir: string,
  { name, version, dependencies, contract }: Manifest,
): Record<string, unknown> {
  const path = join(pkgDir, "package.json");
  const old = existsSync(path)
    ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>)
    : {};
  const pkg: Record<string, unknown> = {
    name,
    version,
    description:
      old.description ??
      `TypeScript SDK generated by grabbit from the ${contract} contract: messages, gRPC clients and servers, RabbitMQ publishers and consumers.`,
    ...old,
  };
  Object.assign(pkg, {
    name,
    version,
    type: "module",
    // One entry per generated module: @acme/sdk/demo/v1/orders.grabbit(.js).
    exports: {
      "./package.json": "./package.json",
      "./*.js": { types: "./dist/*.d.ts", default: "./dist/*.js" },
      "./*": { types: "./dist/*.d.ts", default: "./dist/*.js" },
    },
    files: ["dist/", "src/", "CHANGELOG.md", "README.md", "contract.binpb"],
    sideEffects: false,
    // Generated code, generated dependencies: one the code stopped importing goes away.
    dependencies,
  });
  if (!pkg.engines) pkg.engines = { node: ">=20" };
  writeFileSync(path, JSON.stringify(pkg, null, 2) + "\n");
  return pkg;
}

/** A README for a package that has none (a team's own README is never replaced). */
export function writeReadme(pkgDir: string, name: string, contract: string): boolean {
  const path = join(pkgDir, "README.md");
  if (existsSync(path)) return false;
  const modules = listFiles(join(pkgDir, "src"))
    .filter((f) => f.endsWith(".ts") && !f.startsWith("google/") && !f.startsWith("grabbit/"))
    .map((f) => f.replace(/\.ts$/, ".js"));
  const first = modules.find((m) => m.endsWith(".grabbit.js")) ?? modules[0] ?? "demo/v1/demo.js";
  writeFileSync(
    path,
    `# ${name}

TypeScript SDK for the \`${contract}\` contract, generated by grabbit with
ts-proto: message types and codecs, gRPC clients and servers, RabbitMQ event publishers and consumers.
Do not edit: every release regenerates it from the protos, and its version follows the contract's
changes (see CHANGELOG.md).

\`\`\`sh
npm install ${name}
\`\`\`

\`\`\`ts
import * as api from "${name}/${first}";
\`\`\`

Modules (one per generated file, ESM with type declarations):

${modules.map((m) => `- \`${name}/${m}\``).join("\n")}

It runs on \`@grabbit/runtime\` (installed with it).
`,
  );
  return true;
}

/** `npm pack` into `dest`; returns the tarball's path. */
export function pack(pkgDir: string, dest: string): string {
  mkdirSync(dest, { recursive: true });
  const out = run(
    "npm",
    ["pack", "--json", "--ignore-scripts", "--pack-destination", dest],
    pkgDir,
    "npm pack",
  );
  const parsed = JSON.parse(out.slice(out.indexOf("["))) as { filename: string }[];
  const file = parsed[0]?.filename;
  if (!file) throw new ReleaseError(`npm pack printed no tarball name:\n${out}`);
  // npm names a scoped tarball scope-name-version.tgz; older npms printed the name with its "@".
  const plain = join(dest, file);
  return existsSync(plain) ? plain : join(dest, file.replace(/^@/, "").replace(/\//, "-"));
}

export function relativeOrAbsolute(from: string, to: string): string {
  const r = relative(from, to);
  return r && !r.startsWith("..") ? r : to;
}
