// `grabbit init`: the flags as every grabbit command parses them (governance/args.ts), then the
// generator's init (generator/init.ts), which writes buf.yaml, buf.gen.yaml and a first .proto.
import { parseCommand, type CommandSpec } from "../governance/args.js";
import { EXIT } from "../governance/errors.js";
import { runInit } from "../generator/init.js";
import { MESSAGE_LIBRARIES, type MessageLibrary } from "../generator/model/protobuf-es.js";

export const INIT_USAGE = `Usage: grabbit init [--dir <repo>] [--proto <folder>] [--out <folder>] [--messages <library>]

Sets a repo up for grabbit: buf.yaml, buf.gen.yaml and a first .proto.
  --dir <repo>       the repo to set up (default: the current folder)
  --proto <folder>   folder of .proto files (default: proto)
  --out <folder>     folder generated TypeScript goes to (default: src/gen)
  --messages <lib>   the plugin for message types: ts-proto (default) or protobuf-es (protoc-gen-es)
  -h, --help         this help
`;

const INIT: CommandSpec = {
  name: "init",
  positionals: { max: 0, what: "" },
  flags: {
    dir: { type: "string" },
    proto: { type: "string" },
    out: { type: "string" },
    messages: { type: "string" },
  },
};

export interface InitIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export async function runInitCommand(argv: string[], io: InitIo): Promise<number> {
  const args = parseCommand(INIT, argv);
  if (typeof args === "string") {
    io.stderr(`grabbit init: ${args}\n`);
    return EXIT.USAGE;
  }
  if (args.help) {
    io.stdout(INIT_USAGE);
    return EXIT.OK;
  }
  const v = args.values as Record<string, string | undefined>;
  const messages = (v.messages ?? "ts-proto") as MessageLibrary;
  if (!MESSAGE_LIBRARIES.includes(messages)) {
    io.stderr(
      `grabbit init: --messages takes ${MESSAGE_LIBRARIES.join(" or ")}, not "${messages}".\n`,
    );
    return EXIT.USAGE;
  }
  return await runInit({
    messages,
    ...(v.dir !== undefined ? { dir: v.dir } : {}),
    ...(v.proto !== undefined ? { proto: v.proto } : {}),
    ...(v.out !== undefined ? { out: v.out } : {}),
  });
}
