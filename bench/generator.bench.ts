// protoc-gen-grabbit against ts-proto on the same large CodeGeneratorRequest: both run as the
// plugin processes buf would start, fed the same bytes on stdin.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CodeGeneratorRequestSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { figure, type Figure } from "./figure.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));

/** A module of `count` files, each with messages, an enum, a service and an event. */
function writeLargeModule(count: number): { dir: string; files: string[] } {
  const dir = mkdtempSync(join(tmpdir(), "grabbit-bench-gen-"));
  mkdirSync(join(dir, "grabbit/v1"), { recursive: true });
  writeFileSync(
    join(dir, "grabbit/v1/options.proto"),
    readFileSync(join(REPO, "proto/grabbit/v1/options.proto")),
  );
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const pkg = `bench.p${Math.floor(i / 50)}.v1`;
    const name = `${pkg.replace(/\./g, "/")}/f${i}.proto`;
    files.push(name);
    mkdirSync(join(dir, pkg.replace(/\./g, "/")), { recursive: true });
    writeFileSync(
      join(dir, name),
      `syntax = "proto3";
package ${pkg};
import "grabbit/v1/options.proto";
enum Status${i} { STATUS${i}_UNSPECIFIED = 0; STATUS${i}_OK = 1; STATUS${i}_FAILED = 2; }
message Item${i} { string id = 1; int64 quantity = 2; map<string, string> labels = 3; repeated string tags = 4; Status${i} status = 5; }
message Get${i}Request { string id = 1; optional string view = 2; }
message Get${i}Response { Item${i} item = 1; repeated Item${i} related = 2; oneof extra { string note = 3; int32 code = 4; } }
message Changed${i} {
  option (grabbit.v1.event) = {exchange: "bench.events", routing_key: "item.{region}.{status}.changed"};
  string id = 1; string region = 2; Status${i} status = 3; Item${i} item = 4;
}
service Store${i} {
  option (grabbit.v1.service) = {transports: [TRANSPORT_GRPC, TRANSPORT_AMQP], timeout_ms: 1000};
  rpc Get(Get${i}Request) returns (Get${i}Response);
  rpc Put(Item${i}) returns (Item${i});
  rpc List(Get${i}Request) returns (Get${i}Response);
}
`,
    );
  }
  return { dir, files };
}

const GNU_TIME = existsSync("/usr/bin/time");

/** Wall time of one plugin run, and its peak memory where GNU time can report it. */
function measure(command: string, args: string[], input: Buffer): { ms: number; maxRssMb: number } {
  const start = performance.now();
  const run = GNU_TIME
    ? spawnSync("/usr/bin/time", ["-f", "%M", command, ...args], { input, maxBuffer: 1 << 30 })
    : spawnSync(command, args, { input, maxBuffer: 1 << 30 });
  const ms = performance.now() - start;
  if (run.status !== 0)
    throw new Error(`${command} failed: ${run.stderr.toString().slice(0, 500)}`);
  const maxRssMb = GNU_TIME ? Number(run.stderr.toString().trim().split("\n").pop()) / 1024 : NaN;
  return { ms, maxRssMb };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function run({ quick }: { quick: boolean }): Promise<Record<string, Figure>> {
  const count = quick ? 500 : 2000;
  const { dir, files } = writeLargeModule(count);
  const image = join(dir, "image.binpb");
  execFileSync(join(REPO, "node_modules/.bin/buf"), ["build", dir, "-o", image]);
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(image));
  const request = (parameter: string) =>
    Buffer.from(
      toBinary(
        CodeGeneratorRequestSchema,
        create(CodeGeneratorRequestSchema, {
          fileToGenerate: files,
          parameter,
          protoFile: set.file,
        }),
      ),
    );
  const grabbitInput = request("");
  const tsProtoInput = request(
    "outputServices=none,esModuleInterop=true,importSuffix=.js,env=node",
  );

  const rounds = quick ? 1 : 3;
  const grabbit: { ms: number; maxRssMb: number }[] = [];
  const tsProto: { ms: number; maxRssMb: number }[] = [];
  for (let i = 0; i < rounds; i++) {
    grabbit.push(measure("node", [join(REPO, "bin/protoc-gen-grabbit.js")], grabbitInput));
    tsProto.push(measure(join(REPO, "node_modules/.bin/protoc-gen-ts_proto"), [], tsProtoInput));
  }
  const note = `${count} files, ${count * 3} methods, ${count} events`;
  const figures: Record<string, Figure> = {
    plugin_time_ms: {
      ...figure(
        median(grabbit.map((r) => r.ms)),
        median(tsProto.map((r) => r.ms)),
        "ms",
        "lower-is-better",
        "ts-proto plugin, same request",
      ),
      note,
    },
  };
  const rss = median(grabbit.map((r) => r.maxRssMb));
  if (Number.isFinite(rss)) {
    figures.plugin_peak_rss_mb = {
      ...figure(
        rss,
        median(tsProto.map((r) => r.maxRssMb)),
        "MB",
        "lower-is-better",
        "ts-proto plugin, same request",
      ),
      note,
    };
  }
  return figures;
}
