// The plugin as a plain function: a CodeGeneratorRequest in, a CodeGeneratorResponse out.
// Tests call it in-process; generator/main.ts wires it to stdin/stdout for buf and protoc.
import { create, createFileRegistry, type FileRegistry } from "@bufbuild/protobuf";
import {
  type CodeGeneratorRequest,
  type CodeGeneratorResponse,
  CodeGeneratorResponse_Feature,
  CodeGeneratorResponse_FileSchema,
  CodeGeneratorResponseSchema,
  Edition,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { InputError } from "../governance/errors.js";
import { buildModel, DEFAULT_BUILD_OPTIONS, type BuildOptions } from "./model/build.js";
import { ContractErrors } from "./model/errors.js";
import {
  isProtocGenEsOption,
  MESSAGE_LIBRARIES,
  type MessageLibrary,
  unfollowedProtocGenEsOption,
} from "./model/protobuf-es.js";
import {
  isTsProtoOption,
  TsProtoOptionError,
  tsProtoOptionsFrom,
} from "./model/ts-proto-options.js";
import { buildAsyncApi } from "./asyncapi.js";
import { renderFile, renderTopology } from "./render.js";
import type { LeanRequest } from "./request.js";

export const PLUGIN_NAME = "protoc-gen-grabbit";
export const PLUGIN_VERSION = "0.1.0";

export interface PluginParameters extends BuildOptions {
  /** File name of the AsyncAPI document, when asked for. */
  asyncapi: string | undefined;
  asyncapiTitle: string;
  asyncapiVersion: string;
  /** File name of the Mermaid topology diagram, when asked for. */
  mermaid: string | undefined;
}

const KNOWN_OPTIONS =
  "messages, import_extension, runtime, ts_proto_file_suffix, file_suffix, asyncapi, asyncapi_title, asyncapi_version, mermaid, and those of the message library's plugin (ts-proto's, or protoc-gen-es's with messages=protobuf-es)";

/**
 * Parses `opt:` values from buf.gen.yaml ("key=value,key=value"). Besides grabbit's own (snake_case)
 * options it takes ts-proto's (camelCase, and M mappings), or with messages=protobuf-es protoc-gen-es's,
 * so both plugins can get the same list.
 */
export function parseParameters(parameter: string): PluginParameters {
  const params: PluginParameters = {
    ...DEFAULT_BUILD_OPTIONS,
    asyncapi: undefined,
    asyncapiTitle: "grabbit contracts",
    asyncapiVersion: "0.0.0",
    mermaid: undefined,
  };
  const tsProtoPairs: { key: string; value: string | undefined }[] = [];
  const protocGenEsKeys: string[] = [];
  let importExtensionGiven = false;
  let tsProtoFileSuffix: string | undefined;
  for (const pair of parameter
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = pair.indexOf("=");
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? "" : pair.slice(eq + 1);
    switch (key) {
      case "messages":
        if (!MESSAGE_LIBRARIES.includes(value as MessageLibrary)) {
          throw new ParameterError(
            `option "messages" takes ${MESSAGE_LIBRARIES.join(" or ")} (the plugin that writes the message types), not "${value}"`,
          );
        }
        params.messages = value as MessageLibrary;
        break;
      case "import_extension":
        importExtensionGiven = true;
        params.importExtension =
          value === "none" || value === "" ? "" : value.startsWith(".") ? value : `.${value}`;
        break;
      case "runtime":
        if (!value)
          throw new ParameterError(
            `option "runtime" needs a module name, such as runtime=@grabbit/runtime`,
          );
        params.runtime = value;
        break;
      case "ts_proto_file_suffix":
        tsProtoFileSuffix = value;
        break;
      case "file_suffix":
        params.outputSuffix = value;
        break;
      case "asyncapi":
        params.asyncapi = value === "" || value === "true" ? "asyncapi.json" : value;
        break;
      case "asyncapi_title":
        params.asyncapiTitle = value;
        break;
      case "asyncapi_version":
        params.asyncapiVersion = value;
        break;
      case "mermaid":
        params.mermaid = value === "" || value === "true" ? "topology.mmd" : value;
        break;
      default:
        if (isProtocGenEsOption(key)) {
          protocGenEsKeys.push(key);
          break;
        }
        if (!isTsProtoOption(key))
          throw new ParameterError(`unknown option "${key}"; known options: ${KNOWN_OPTIONS}`);
        tsProtoPairs.push({ key, value: eq < 0 ? undefined : value });
    }
  }
  if (params.messages === "protobuf-es") {
    // protoc-gen-es's options are the ones that make sense beside it; ts-proto's would name nothing.
    if (tsProtoPairs.length > 0) {
      throw new ParameterError(
        `option "${tsProtoPairs[0]!.key}" is ts-proto's, but messages=protobuf-es: give protoc-gen-grabbit the options of protoc-gen-es (or none)`,
      );
    }
    if (tsProtoFileSuffix !== undefined)
      throw new ParameterError(
        `option "ts_proto_file_suffix" names ts-proto's files, but messages=protobuf-es: drop it (protoc-gen-es writes <file>_pb.ts)`,
      );
    const refused = protocGenEsKeys
      .map(unfollowedProtocGenEsOption)
      .find((why) => why !== undefined);
    if (refused) throw new ParameterError(refused);
    return params;
  }
  if (protocGenEsKeys.length > 0) {
    throw new ParameterError(
      `option "${protocGenEsKeys[0]}" is protoc-gen-es's: add messages=protobuf-es to generate for protobuf-es messages (the default is ts-proto)`,
    );
  }
  params.tsProto = tsProtoOptionsFrom(tsProtoPairs);
  // ts-proto's importSuffix is the import extension too (its default, none, is not grabbit's .js).
  // grabbit's own import_extension and ts_proto_file_suffix, when given, win over ts-proto's spelling.
  if (!importExtensionGiven && params.tsProto.importSuffix !== undefined)
    params.importExtension = params.tsProto.importSuffix;
  if (tsProtoFileSuffix !== undefined) params.tsProto.fileSuffix = tsProtoFileSuffix;
  return params;
}

/** A plugin option (buf.gen.yaml `opt`) that grabbit cannot follow; the plugin reports it as a sentence. */
export class ParameterError extends InputError {}
Object.defineProperty(ParameterError.prototype, "name", {
  value: "ParameterError",
  writable: true,
  configurable: true,
});

export function run(request: CodeGeneratorRequest): CodeGeneratorResponse {
  return generate(request.parameter, request.fileToGenerate, request.fileToGenerate, () =>
    createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile })),
  );
}

/**
 * The same, from a request read by readRequest (generator/request.ts): only the files that can
 * produce output and what they import were decoded, which is what keeps googleapis under 1 GB.
 */
export function runLean(request: LeanRequest): CodeGeneratorResponse {
  return generate(request.parameter, request.candidates, request.fileToGenerate, () =>
    createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile })),
  );
}

/** `candidates` are the files to walk, `fileToGenerate` all the request names (ts-proto writes those). */
function generate(
  parameter: string,
  candidates: readonly string[],
  fileToGenerate: readonly string[],
  makeRegistry: () => FileRegistry,
): CodeGeneratorResponse {
  const response = create(CodeGeneratorResponseSchema, {
    supportedFeatures: BigInt(
      CodeGeneratorResponse_Feature.PROTO3_OPTIONAL |
        CodeGeneratorResponse_Feature.SUPPORTS_EDITIONS,
    ),
    minimumEdition: Edition.EDITION_PROTO2,
    maximumEdition: Edition.EDITION_2024,
  });
  try {
    const params = parseParameters(parameter);
    const registry = makeRegistry();
    const model = buildModel(registry, candidates, params, fileToGenerate);
    const renderOptions = { version: PLUGIN_VERSION };
    const emit = (name: string, content: string) =>
      response.file.push(create(CodeGeneratorResponse_FileSchema, { name, content }));
    for (const file of model.files) emit(file.outputPath, renderFile(file, renderOptions));
    if (params.asyncapi) {
      const doc = buildAsyncApi(model, registry, {
        title: params.asyncapiTitle,
        version: params.asyncapiVersion,
      });
      emit(params.asyncapi, JSON.stringify(doc, null, 2) + "\n");
    }
    if (params.mermaid) emit(params.mermaid, renderTopology(model, renderOptions));
  } catch (err) {
    // Contract and parameter errors are the user's to fix: report them as text, never a stack.
    if (
      err instanceof ContractErrors ||
      err instanceof ParameterError ||
      err instanceof TsProtoOptionError
    ) {
      response.error = err.message;
    } else {
      throw err;
    }
  }
  return response;
}
