// protoc-gen-es and protoc-gen-grabbit (messages=protobuf-es) run by the real buf, as a repo on
// protobuf-es writes its buf.gen.yaml: the same `opt:` list for both plugins.
import { join } from "node:path";
import { bufGenerate, REPO } from "../support/buf.js";

export const PROTOBUF_ES_OPTS = ["target=ts", "import_extension=js"];

export function protobufEsTemplate({
  input,
  opts = PROTOBUF_ES_OPTS,
}: {
  input?: string;
  opts?: string[];
} = {}): string {
  return `version: v2
${input === undefined ? "" : `inputs:\n  - directory: ${input}\n`}plugins:
  - local: protoc-gen-es
    out: gen
    opt: [${opts.join(", ")}]
  - local: ["node", "${REPO}/bin/protoc-gen-grabbit.js"]
    out: gen
    opt: [messages=protobuf-es, ${opts.join(", ")}]
`;
}

/** protoc-gen-es and protoc-gen-grabbit over the module in `dir`; gen/ is the output folder. */
export function generateProtobufEsModule(
  dir: string,
  input?: string,
): { ok: boolean; out: string; stderr: string } {
  const result = bufGenerate(dir, protobufEsTemplate(input === undefined ? {} : { input }));
  return { ...result, out: join(dir, "gen") };
}
