// The TypeScript member names an enum's values get from the message library a repo generates with
// (`grabbit breaking --messages`): ts-proto keeps the proto names; protobuf-es strips the enum's
// prefix (LEVEL_WARN becomes WARN) when every value carries it, so one value added or renamed
// without the prefix renames every member. protobuf-es's own registry computes its names here, so
// the rule follows the library rather than a copy of its logic.
import { create, createFileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type EnumDescriptorProto } from "@bufbuild/protobuf/wkt";

export { MESSAGE_LIBRARIES, type MessageLibrary } from "../../generator/model/protobuf-es.js";
import type { MessageLibrary } from "../../generator/model/protobuf-es.js";

export interface EnumMembers {
  /** The member of each number: the first declared value's name, as the library spells it. */
  byNumber: Map<number, string>;
  /** The prefix protobuf-es strips ("LEVEL_"), when it strips one. */
  stripped: string | undefined;
}

export function enumMembers(d: EnumDescriptorProto, library: MessageLibrary): EnumMembers {
  const byNumber = new Map<number, string>();
  if (library === "ts-proto") {
    for (const v of d.value) if (!byNumber.has(v.number)) byNumber.set(v.number, v.name);
    return { byNumber, stripped: undefined };
  }
  // The enum alone in a file of its own: its values' local names do not depend on anything else.
  const file = create(FileDescriptorProtoSchema, {
    name: "grabbit-enum.proto",
    syntax: "proto2",
    enumType: [d],
  });
  const desc = createFileRegistry(file, () => undefined).getEnum(d.name);
  if (!desc) throw new Error(`could not read enum ${d.name} with protobuf-es`);
  for (const v of desc.values) if (!byNumber.has(v.number)) byNumber.set(v.number, v.localName);
  return { byNumber, stripped: desc.sharedPrefix?.toUpperCase() };
}
