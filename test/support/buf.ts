// Runs the real buf: builds images for in-process plugin tests, and full `buf generate` runs.
import { execFileSync } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary } from "@bufbuild/protobuf";
import {
  CodeGeneratorRequestSchema,
  FileDescriptorSetSchema,
  type CodeGeneratorRequest,
} from "@bufbuild/protobuf/wkt";

export const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const BUF = join(REPO, "node_modules/.bin/buf");
export const FIXTURES = join(REPO, "test/fixtures/protos");

/** A scratch folder inside the repo, so node_modules resolution reaches the repo's packages. */
export function scratchDir(prefix: string): string {
  const base = join(REPO, ".tmp");
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `${prefix}-`));
}

/** A buf module in a scratch folder with the given files and grabbit's options.proto beside them. */
export function protoModule(files: Record<string, string>): string {
  const dir = scratchDir("proto");
  cpSync(join(REPO, "proto/grabbit"), join(dir, "grabbit"), { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

function protoFilesUnder(dir: string, sub = ""): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, sub))) {
    const rel = sub ? `${sub}/${entry}` : entry;
    if (statSync(join(dir, rel)).isDirectory()) out.push(...protoFilesUnder(dir, rel));
    else if (entry.endsWith(".proto")) out.push(rel);
  }
  return out;
}

/** Builds `dir` with the real `buf build` and makes the request buf would send the plugin. */
export function bufRequest(
  dir: string,
  parameter = "",
  only?: (file: string) => boolean,
): CodeGeneratorRequest {
  const out = join(scratchDir("image"), "image.binpb");
  try {
    execFileSync(BUF, ["build", dir, "-o", out], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    throw new Error(`buf build failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? err}`);
  }
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(out));
  const own = protoFilesUnder(dir).filter((f) => !f.startsWith("grabbit/") && (!only || only(f)));
  return create(CodeGeneratorRequestSchema, {
    fileToGenerate: own,
    parameter,
    protoFile: set.file,
  });
}

/** Runs `buf generate` in `dir` with a template written there; returns buf's stderr on failure. */
export function bufGenerate(
  dir: string,
  template: string,
  extraArgs: string[] = [],
): { ok: boolean; stderr: string } {
  writeFileSync(join(dir, "buf.gen.yaml"), template);
  try {
    execFileSync(BUF, ["generate", ...extraArgs], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PATH: `${join(REPO, "node_modules/.bin")}:${process.env.PATH}` },
    });
    return { ok: true, stderr: "" };
  } catch (err) {
    return { ok: false, stderr: (err as { stderr?: Buffer }).stderr?.toString() ?? String(err) };
  }
}

/**
 * The buf.gen.yaml a consuming repo writes: ts-proto (with `tsProtoOpts`) and protoc-gen-grabbit,
 * both into gen/, over `input` (default: the module in the folder buf runs in).
 */
export function grabbitTemplate({
  input,
  tsProtoOpts = ["outputServices=none", "esModuleInterop=true", "importSuffix=.js", "env=node"],
}: {
  input?: string;
  tsProtoOpts?: string[];
} = {}): string {
  return `version: v2
${input === undefined ? "" : `inputs:\n  - directory: ${input}\n`}plugins:
  - local: protoc-gen-ts_proto
    out: gen
    strategy: all
    opt: [${tsProtoOpts.join(", ")}]
  - local: ["node", "${REPO}/bin/protoc-gen-grabbit.js"]
    out: gen
    strategy: all
`;
}

/** ts-proto and protoc-gen-grabbit over the module in `dir` (grabbitTemplate); gen/ is the output folder. */
export function generateModule(
  dir: string,
  tsProtoOpts?: string[],
): { ok: boolean; out: string; stderr: string } {
  const result = bufGenerate(
    dir,
    grabbitTemplate(tsProtoOpts === undefined ? {} : { tsProtoOpts }),
  );
  return { ...result, out: join(dir, "gen") };
}

/** ts-proto and protoc-gen-grabbit over the test fixtures, as a consuming repo's buf.gen.yaml would run them. */
export function generateFixtures(prefix: string): { dir: string; out: string; stderr: string } {
  const dir = scratchDir(prefix);
  const result = bufGenerate(dir, grabbitTemplate({ input: FIXTURES }));
  return { dir, out: join(dir, "gen"), stderr: result.stderr };
}

/** Runs tsc (strict, NodeNext) on a folder of TypeScript; returns its diagnostics, empty when clean. */
// What careful consumers turn on. ts-proto's output (enums, unused imports) trips some of them, so
// callers filter the diagnostics down to the files they own.
const PEDANTIC = {
  noUnusedLocals: true,
  noUnusedParameters: true,
  noImplicitOverride: true,
  noImplicitReturns: true,
  exactOptionalPropertyTypes: true,
  noPropertyAccessFromIndexSignature: true,
  erasableSyntaxOnly: true,
  verbatimModuleSyntax: true,
};

export function typeCheck(
  dir: string,
  {
    pedantic = false,
    files = ["**/*.ts"],
    paths = runtimePaths(),
  }: { pedantic?: boolean; files?: string[]; paths?: Record<string, string[]> } = {},
): string {
  const tsconfig = {
    compilerOptions: {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      noEmit: true,
      ...(pedantic ? PEDANTIC : {}),
      skipLibCheck: true,
      esModuleInterop: true,
      types: ["node"],
      typeRoots: [join(REPO, "node_modules/@types")],
      paths,
    },
    include: files,
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
  try {
    execFileSync(join(REPO, "node_modules/.bin/tsc"), ["-p", dir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    return "";
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer };
    return (e.stdout?.toString() ?? "") + (e.stderr?.toString() ?? "");
  }
}

/** Maps @grabbit/runtime to its sources, so type checks do not depend on a build. */
export function runtimePaths(): Record<string, string[]> {
  const src = join(REPO, "runtime/src");
  return {
    "@grabbit/runtime": [join(src, "index.ts")],
    "@grabbit/runtime/amqp": [join(src, "amqp/index.ts")],
    "@grabbit/runtime/grpc": [join(src, "grpc/index.ts")],
  };
}
