// `grabbit init`: wires a consuming repo for generation. Writes what is missing (buf.yaml, proto/
// with grabbit's options and a starter contract, buf.gen.yaml for ts-proto or protoc-gen-es (--messages)
// + protoc-gen-grabbit) and
// never overwrites a file the team has written, except grabbit's own vendored options.proto.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { MessageLibrary } from "./model/protobuf-es.js";

export interface InitOptions {
  /** The repo to set up (default: the current folder). */
  dir?: string;
  /** Folder of .proto files (default: proto). */
  proto?: string;
  /** Folder generated TypeScript goes to (default: src/gen). */
  out?: string;
  /** The plugin that writes the message types (default: ts-proto). */
  messages?: MessageLibrary;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "proto/grabbit/v1/options.proto"))) {
    const up = dirname(dir);
    if (up === dir)
      throw new Error("grabbit init: cannot find grabbit's own proto/grabbit/v1/options.proto");
    dir = up;
  }
  return dir;
}

function hasProtoFiles(dir: string, skip: string): boolean {
  if (!existsSync(dir)) return false;
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (path === skip) continue;
    if (statSync(path).isDirectory() ? hasProtoFiles(path, skip) : entry.endsWith(".proto"))
      return true;
  }
  return false;
}

const STARTER = `syntax = "proto3";

package hello.v1;

import "grabbit/v1/options.proto";

// A starter contract from \`grabbit init\`: replace it with your own.
service GreeterService {
  option (grabbit.v1.service) = {
    transports: [TRANSPORT_GRPC, TRANSPORT_AMQP]
    timeout_ms: 5000
  };

  rpc SayHello(SayHelloRequest) returns (SayHelloResponse);
}

message SayHelloRequest {
  string name = 1;
}

message SayHelloResponse {
  string greeting = 1;
}

// Published once per greeting; consumers bind on the language.
message Greeted {
  option (grabbit.v1.event) = {
    exchange: "hello.events"
    routing_key: "greeted.{language}"
  };

  string name = 1;
  string language = 2;
}
`;

function bufYaml(proto: string): string {
  return `version: v2
modules:
  - path: ${proto}
lint:
  use:
    - STANDARD
  ignore:
    - ${proto}/grabbit
breaking:
  use:
    - FILE
`;
}

function bufGenYaml(proto: string, out: string): string {
  return `# Written by \`grabbit init\`. Run \`npx buf generate\` after changing the contracts.
version: v2
clean: true
inputs:
  - directory: ${proto}
plugins:
  # Messages and their binary codecs.
  - local: protoc-gen-ts_proto
    out: ${out}
    strategy: all
    opt: &ts_proto_options
      - outputServices=none
      - esModuleInterop=true
      - importSuffix=.js
      - env=node
  # gRPC clients and servers, RabbitMQ publishers, consumers and RPC over @grabbit/runtime.
  # It gets ts-proto's options too (the same list), to name ts-proto's types as ts-proto does.
  - local: protoc-gen-grabbit
    out: ${out}
    strategy: all
    opt: *ts_proto_options
`;
}

function bufGenYamlProtobufEs(proto: string, out: string): string {
  return `# Written by \`grabbit init --messages protobuf-es\`. Run \`npx buf generate\` after changing the contracts.
version: v2
clean: true
inputs:
  - directory: ${proto}
plugins:
  # Messages and their schemas (protobuf-es: create, toBinary, fromBinary).
  - local: protoc-gen-es
    out: ${out}
    opt:
      - target=ts
      - import_extension=js
  # gRPC clients and servers, RabbitMQ publishers, consumers and RPC over @grabbit/runtime,
  # written against protoc-gen-es's _pb files; it takes protoc-gen-es's options too (keep them alike).
  - local: protoc-gen-grabbit
    out: ${out}
    opt:
      - messages=protobuf-es
      - target=ts
      - import_extension=js
`;
}

/** Writes what the repo lacks; the flags are parsed by the CLI (cli/init.ts). */
export async function runInit(options: InitOptions = {}): Promise<number> {
  const { dir = process.cwd(), proto = "proto", out = "src/gen", messages = "ts-proto" } = options;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    console.error(`grabbit init: ${dir} is not a folder.`);
    return 1;
  }
  const wrote: string[] = [];
  const kept: string[] = [];
  const write = (path: string, text: string, overwrite = false) => {
    const full = join(dir, path);
    if (existsSync(full) && !overwrite) {
      kept.push(path);
      return;
    }
    if (existsSync(full) && readFileSync(full, "utf8") === text) return;
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, text);
    wrote.push(path);
  };

  write("buf.yaml", bufYaml(proto));
  // Vendored and owned by grabbit: kept in step with the installed version.
  const optionsProto = readFileSync(join(packageRoot(), "proto/grabbit/v1/options.proto"), "utf8");
  write(join(proto, "grabbit/v1/options.proto"), optionsProto, true);
  if (!hasProtoFiles(join(dir, proto), join(dir, proto, "grabbit")))
    write(join(proto, "hello/v1/hello.proto"), STARTER);
  write(
    "buf.gen.yaml",
    messages === "protobuf-es" ? bufGenYamlProtobufEs(proto, out) : bufGenYaml(proto, out),
  );

  for (const path of wrote) console.log(`wrote ${path}`);
  for (const path of kept) console.log(`kept  ${path} (already there)`);

  const pkgPath = join(dir, "package.json");
  if (existsSync(pkgPath)) {
    const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as {
      type?: string;
      dependencies?: Record<string, string>;
    };
    if (pkg.type !== "module") {
      console.log(
        `note: generated code is ES modules; set "type": "module" in ${relative(process.cwd(), pkgPath) || "package.json"}.`,
      );
    }
    if (!pkg.dependencies?.["@grabbit/runtime"]) {
      console.log(
        "note: services need the runtime at run time: npm install @grabbit/runtime @bufbuild/protobuf",
      );
    }
    if (
      messages === "protobuf-es" &&
      !(pkg as { devDependencies?: Record<string, string> }).devDependencies?.[
        "@bufbuild/protoc-gen-es"
      ]
    ) {
      console.log(
        "note: buf runs protoc-gen-es from node_modules: npm install --save-dev @bufbuild/protoc-gen-es",
      );
    }
  }
  console.log(`next: npx buf generate   (writes ${out}/)`);
  return 0;
}
