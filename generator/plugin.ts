// The plugin as a plain function: a CodeGeneratorRequest in, a CodeGeneratorResponse out.
// Tests call it in-process; generator/main.ts wires it to stdin/stdout for buf and protoc.
import { create, createFileRegistry } from "@bufbuild/protobuf";
import {
  type CodeGeneratorRequest,
  type CodeGeneratorResponse,
  CodeGeneratorResponse_Feature,
  CodeGeneratorResponseSchema,
  Edition,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { buildModel, DEFAULT_BUILD_OPTIONS, type BuildOptions } from "./model/build.js";
import { ContractErrors } from "./model/errors.js";
import { renderFile } from "./render.js";

export const PLUGIN_NAME = "protoc-gen-grabbit";
export const PLUGIN_VERSION = "0.1.0";

export interface PluginParameters extends BuildOptions {
  runtime: string;
}

/** Parses `opt:` values from buf.gen.yaml ("key=value,key=value"). */
export function parseParameters(parameter: string): PluginParameters {
  const params: PluginParameters = { ...DEFAULT_BUILD_OPTIONS, runtime: "@grabbit/runtime" };
  for (const pair of parameter.split(",").map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf("=");
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? "" : pair.slice(eq + 1);
    switch (key) {
      case "import_extension":
        params.importExtension = value === "none" || value === "" ? "" : value.startsWith(".") ? value : `.${value}`;
        break;
      case "runtime":
        if (!value) throw new ParameterError(`option "runtime" needs a module name, such as runtime=@grabbit/runtime`);
        params.runtime = value;
        break;
      case "ts_proto_file_suffix":
        params.tsProtoSuffix = value;
        break;
      case "file_suffix":
        params.outputSuffix = value;
        break;
      default:
        throw new ParameterError(
          `unknown option "${key}"; known options: import_extension, runtime, ts_proto_file_suffix, file_suffix`,
        );
    }
  }
  return params;
}

export class ParameterError extends Error {}

export function run(request: CodeGeneratorRequest): CodeGeneratorResponse {
  const response = create(CodeGeneratorResponseSchema, {
    supportedFeatures: BigInt(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL | CodeGeneratorResponse_Feature.SUPPORTS_EDITIONS),
    minimumEdition: Edition.EDITION_PROTO2,
    maximumEdition: Edition.EDITION_2024,
  });
  try {
    const params = parseParameters(request.parameter);
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
    const model = buildModel(registry, request.fileToGenerate, params);
    for (const file of model.files) {
      response.file.push({
        $typeName: "google.protobuf.compiler.CodeGeneratorResponse.File",
        name: file.outputPath,
        content: renderFile(file, { runtime: params.runtime, version: PLUGIN_VERSION }),
        insertionPoint: "",
      });
    }
  } catch (err) {
    // Contract and parameter errors are the user's to fix: report them as text, never a stack.
    if (err instanceof ContractErrors || err instanceof ParameterError) {
      response.error = err.message;
    } else {
      throw err;
    }
  }
  return response;
}
