// Turning any buf input into an image: one `buf build` per side (both sides in parallel), then a cheap
// split of the FileDescriptorSet into per-file byte slices. Files whose bytes are equal on both sides
// cannot differ in any rule, so only the changed ones are ever decoded; source info (the bulk of an
// image) is decoded lazily, only for files that have findings or comment edits.
import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { moduleRoots } from "./config.js";
import type { DeclaredKind } from "./changed.js";
import { InputError } from "./errors.js";

// Callers outside governance/ (cli/dlq.ts) import InputError from here; errors.ts is its home.
export { InputError };

export interface Location {
  line: number;
  column: number;
  /** Where the span ends (1-based, end column exclusive as protoc records it plus one). */
  endLine: number;
  endColumn: number;
  leading: string;
  trailing: string;
  detached: string[];
}

export interface ImageFile {
  path: string;
  /** buf's mark: a dependency of the files built (a WKT, a dep, a module file outside --path). */
  isImport: boolean;
  /**
   * A file of the module that a partial build (changed.ts) pulled in only because a built file imports
   * it: unchanged, and present on one side or both by chance of what was built. buf's full build has it
   * as a file of its own, the same on both sides, so it is never compared (its package is counted
   * through `packagesOutside`). Real dependencies are not marked: they are compared, as buf does.
   */
  partialContext?: boolean;
  /** The descriptor without source info and buf's image extension: equal bytes, equal file. */
  desc: Uint8Array;
  src: Uint8Array | undefined;
  pkg: string;
  decoded?: FileDescriptorProto;
  locations?: Locations;
}

export interface Image {
  input: string;
  files: Map<string, ImageFile>;
  /** Where a file of this image lives for a human (buf's "external path"), relative to the cwd. */
  externalPath(path: string): string;
  /** Packages of files left out of a partial build because they are the same on both sides. */
  packagesOutside?: Set<string>;
  kindsOutside?: Map<string, Set<DeclaredKind>>;
}

function bufBin(): string {
  // Prefer the buf next to grabbit (this file is governance/ or dist/governance/), then PATH.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, "node_modules", ".bin", "buf");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  const local = resolve("node_modules/.bin/buf");
  return existsSync(local) ? local : "buf";
}

/** Runs `buf build <input> -o -` (with buf's --config, --path and --exclude-path) and returns the binary image. */
export function runBufBuild(
  input: string,
  cwd: string,
  config?: string,
  paths?: string[],
  excludePaths?: string[],
): Promise<Uint8Array> {
  const args = [
    "build",
    input,
    "-o",
    "-#format=binpb",
    ...(paths ?? []).flatMap((p) => ["--path", p]),
    ...(excludePaths ?? []).flatMap((p) => ["--exclude-path", p]),
  ];
  if (config !== undefined) args.push("--config", config);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bufBin(), args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) =>
      reject(new InputError(`cannot run buf (${e.message}); install @bufbuild/buf`)),
    );
    child.on("close", (code) => {
      if (code === 0) return resolvePromise(Buffer.concat(out));
      const msg = Buffer.concat(err)
        .toString("utf8")
        .trim()
        .replace(/^Failure: /, "");
      reject(new InputError(`cannot build "${input}": ${msg || `buf exited with status ${code}`}`));
    });
  });
}

// --- a minimal protobuf wire reader: just enough to slice messages by field ---

// Position after the last varint read: returning it through a variable instead of a tuple keeps the
// hot loops free of allocations (images of thousands of files hold millions of varints).
let after = 0;

function readVarint(buf: Uint8Array, pos: number): number {
  const b0 = buf[pos];
  if (b0 !== undefined && b0 < 0x80) {
    after = pos + 1;
    return b0;
  }
  let result = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new InputError("the image is truncated");
    const b = buf[pos++]!;
    result += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) {
      after = pos;
      return result;
    }
    shift += 7;
    if (shift > 63) throw new InputError("the image is not a protobuf image");
  }
}

function varint(buf: Uint8Array, pos: number): [number, number] {
  const v = readVarint(buf, pos);
  return [v, after];
}

interface RawField {
  no: number;
  wire: number;
  start: number; // start of the tag
  dataStart: number;
  end: number;
  value: number; // varint value, or length for wire type 2
}

function* fields(buf: Uint8Array, start = 0, end = buf.length): Generator<RawField> {
  let pos = start;
  while (pos < end) {
    const tagStart = pos;
    const [tag, p1] = varint(buf, pos);
    const no = Math.floor(tag / 8);
    const wire = tag & 7;
    pos = p1;
    let value = 0;
    let dataStart = pos;
    switch (wire) {
      case 0:
        [value, pos] = varint(buf, pos);
        break;
      case 1:
        pos += 8;
        break;
      case 2:
        [value, dataStart] = varint(buf, pos);
        pos = dataStart + value;
        break;
      case 5:
        pos += 4;
        break;
      default:
        throw new InputError(`the image is not a protobuf image (wire type ${wire})`);
    }
    if (pos > end || no === 0) throw new InputError("the image is not a protobuf image");
    yield { no, wire, start: tagStart, dataStart, end: pos, value };
  }
}

const utf8 = new TextDecoder();

function splitFile(bytes: Uint8Array): ImageFile {
  const keep: Array<[number, number]> = [];
  let src: Uint8Array | undefined;
  let path = "";
  let pkg = "";
  let isImport = false;
  for (const f of fields(bytes)) {
    if (f.no === 9 && f.wire === 2) {
      src = bytes.subarray(f.dataStart, f.end);
      continue;
    }
    if (f.no === 8042 && f.wire === 2) {
      // buf's ImageFileExtension: field 1 is is_import.
      for (const g of fields(bytes, f.dataStart, f.end))
        if (g.no === 1 && g.wire === 0) isImport = g.value !== 0;
      continue;
    }
    if (f.no === 1 && f.wire === 2) path = utf8.decode(bytes.subarray(f.dataStart, f.end));
    if (f.no === 2 && f.wire === 2) pkg = utf8.decode(bytes.subarray(f.dataStart, f.end));
    const last = keep[keep.length - 1];
    if (last && last[1] === f.start) last[1] = f.end;
    else keep.push([f.start, f.end]);
  }
  let desc: Uint8Array;
  if (keep.length === 1) desc = bytes.subarray(keep[0]![0], keep[0]![1]);
  else {
    desc = new Uint8Array(keep.reduce((n, [a, b]) => n + b - a, 0));
    let o = 0;
    for (const [a, b] of keep) {
      desc.set(bytes.subarray(a, b), o);
      o += b - a;
    }
  }
  if (!path) throw new InputError("the image has a file without a name");
  return { path, isImport, desc, src, pkg };
}

/** Splits a binary image (a FileDescriptorSet) into its files. */
export function parseImage(bytes: Uint8Array): Map<string, ImageFile> {
  const files = new Map<string, ImageFile>();
  for (const f of fields(bytes)) {
    if (f.no !== 1 || f.wire !== 2) continue;
    const file = splitFile(bytes.subarray(f.dataStart, f.end));
    files.set(file.path, file);
  }
  return files;
}

export function decodeFile(file: ImageFile): FileDescriptorProto {
  if (!file.decoded) {
    // A damaged image can split into files whose bytes are not a descriptor: bad input, not a crash.
    try {
      file.decoded = fromBinary(FileDescriptorProtoSchema, file.desc);
    } catch (err) {
      throw new InputError(
        `the image's file "${file.path}" is not a valid file descriptor (${err instanceof Error ? err.message : String(err)})`,
      );
    }
  }
  return file.decoded;
}

/**
 * Source locations of one file, keyed by the descriptor path joined with ".". Building the index reads
 * only each location's path; spans and comments are decoded when asked for (most never are).
 */
export class Locations {
  private readonly decoded = new Map<string, Location>();
  constructor(
    private readonly src: Uint8Array,
    private readonly index: Map<string, number>,
  ) {}

  get(key: string): Location | undefined {
    let hit = this.decoded.get(key);
    if (hit) return hit;
    const start = this.index.get(key);
    if (start === undefined) return undefined;
    const [len, dataStart] = varint(this.src, start);
    hit = decodeLocation(this.src, dataStart, dataStart + len);
    this.decoded.set(key, hit);
    return hit;
  }
}

function decodeLocation(src: Uint8Array, start: number, end: number): Location {
  const span: number[] = [];
  const l: Location = {
    line: 1,
    column: 1,
    endLine: 1,
    endColumn: 1,
    leading: "",
    trailing: "",
    detached: [],
  };
  for (const f of fields(src, start, end)) {
    if (f.no === 2 && f.wire === 2) {
      for (let p = f.dataStart; p < f.end && span.length < 4; ) {
        const [v, np] = varint(src, p);
        span.push(v);
        p = np;
      }
    } else if (f.no === 2 && f.wire === 0) span.push(f.value);
    else if (f.wire === 2 && (f.no === 3 || f.no === 4 || f.no === 6)) {
      const text = utf8.decode(src.subarray(f.dataStart, f.end));
      if (f.no === 3) l.leading = text;
      else if (f.no === 4) l.trailing = text;
      else l.detached.push(text);
    }
  }
  l.line = (span[0] ?? 0) + 1;
  l.column = (span[1] ?? 0) + 1;
  // [start line, start column, end line, end column], or three values when the span ends on its start line.
  l.endLine = (span.length === 4 ? span[2]! : (span[0] ?? 0)) + 1;
  l.endColumn = (span.length === 4 ? span[3]! : span.length === 3 ? span[2]! : (span[1] ?? 0)) + 1;
  return l;
}

const EMPTY = new Uint8Array(0);

export function locations(file: ImageFile): Locations {
  if (file.locations) return file.locations;
  const src = file.src ?? EMPTY;
  const index = new Map<string, number>();
  let pos = 0;
  while (pos < src.length) {
    const tag = readVarint(src, pos);
    const p1 = after;
    if (tag !== 0x0a) {
      // Not a location (field 1, length-delimited): skip whatever it is.
      const next = fields(src, pos).next().value as RawField;
      pos = next.end;
      continue;
    }
    const lenStart = p1;
    const len = readVarint(src, p1);
    const body = after;
    const end = body + len;
    // The path comes first (field 1, packed); build its key without intermediate arrays.
    let key = "";
    if (body < end && src[body] === 0x0a) {
      const plen = readVarint(src, body + 1);
      const pstart = after;
      for (let p = pstart; p < pstart + plen; ) {
        const v = readVarint(src, p);
        key = key === "" ? String(v) : `${key}.${v}`;
        p = after;
      }
    }
    if (!index.has(key)) index.set(key, lenStart);
    pos = end;
  }
  file.locations = new Locations(src, index);
  return file.locations;
}

/** The local directory an input names (relative to `cwd`); undefined for a git ref, an image, a file. */
export function localDir(input: string, cwd: string): string | undefined {
  if (input.includes("#")) return undefined;
  const dir = resolve(cwd, input);
  try {
    return statSync(dir).isDirectory() ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** Maps image paths to paths a human (and GitHub annotations) can open, as buf prints them. */
export function pathMapper(
  input: string,
  cwd: string,
  fallback?: (p: string) => string,
): (p: string) => string {
  const dir = localDir(input, cwd);
  if (!dir) return fallback ?? ((p) => p);
  const roots = moduleRoots(dir);
  const memo = new Map<string, string>();
  return (p) => {
    let hit = memo.get(p);
    if (hit !== undefined) return hit;
    const found =
      roots.find((r) => existsSync(join(dir, r, p))) ?? (fallback ? undefined : roots[0]);
    hit =
      found === undefined
        ? fallback!(p)
        : relative(cwd, join(dir, found, p))
            .split(sep)
            .join("/");
    memo.set(p, hit);
    return hit;
  };
}

/** What a partial build needs to know about the files it left out. */
export interface PartialBuild {
  /** --path arguments (an empty list builds nothing). */
  paths: string[];
  /** Packages of the module's files that are the same on both sides. */
  packagesOutside: Set<string>;
  /** What those files declare, by package. */
  kindsOutside: Map<string, Set<DeclaredKind>>;
  /** Every file of the module, by import path: an import among them is partial-build context. */
  moduleFiles: Set<string>;
}

/** Builds an input whole, or only some of its files (`partial`). */
export async function buildImage(
  input: string,
  cwd: string,
  partial?: PartialBuild,
): Promise<Image> {
  const files =
    partial && partial.paths.length === 0
      ? new Map<string, ImageFile>()
      : parseImage(await runBufBuild(input, cwd, undefined, partial?.paths));
  if (partial)
    for (const f of files.values())
      if (f.isImport && partial.moduleFiles.has(f.path)) f.partialContext = true;
  return {
    input,
    files,
    externalPath: pathMapper(input, cwd),
    ...(partial
      ? { packagesOutside: partial.packagesOutside, kindsOutside: partial.kindsOutside }
      : {}),
  };
}

/** Paths of the real dependencies an image holds (imports that are not partial-build context). */
export function dependencyPaths(image: Image): Set<string> {
  const out = new Set<string>();
  for (const f of image.files.values()) if (f.isImport && !f.partialContext) out.add(f.path);
  return out;
}
