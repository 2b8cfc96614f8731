// Entry point of the protoc-gen-grabbit binary.
import { runNodeJs } from "@bufbuild/protoplugin";
import { PLUGIN_NAME, PLUGIN_VERSION, run } from "./plugin.js";

export function main(): void {
  runNodeJs({ name: PLUGIN_NAME, version: PLUGIN_VERSION, run });
}
