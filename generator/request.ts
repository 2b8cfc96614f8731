// Reads a CodeGeneratorRequest without decoding all of it. With strategy `all` buf sends every file
// of the module (googleapis: 7,218 files, 166 MB); decoding them all into protobuf-es objects took
// 1.7 GB of heap, yet grabbit writes code only for files that declare services or grabbit events.
// So the request's bytes are walked once at the wire level: for each file its name, its imports and
// whether it may matter to grabbit (a service, a message carrying (grabbit.v1.event), or the
// (grabbit.v1.file) option, whose checks can fail). Only those files among the ones to generate, and
// everything they import transitively, are decoded: the model needs nothing else, and the output
// is the same, byte for byte, as when decoding everything. Their source code info (a location for
// every token: 0.7 GB of objects on googleapis) is decoded again from the request's bytes each
// time it is read, which generator/model/location.ts does once per file it documents or locates.
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  type SourceCodeInfo,
  type SourceCodeInfo_Location,
} from "@bufbuild/protobuf/wkt";
import * as opts from "./gen/grabbit/v1/options_pb.js";

// Field numbers in plugin.proto and descriptor.proto.
const REQUEST = { fileToGenerate: 1, parameter: 2, protoFile: 15 } as const;
const FILE = {
  name: 1,
  dependency: 3,
  messageType: 4,
  service: 6,
  options: 8,
  sourceCodeInfo: 9,
} as const;
const MESSAGE = { nestedType: 3, options: 7 } as const;

export interface LeanRequest {
  parameter: string;
  /** Every file the request names to generate, in its order. */
  fileToGenerate: string[];
  /** Among fileToGenerate, those that may produce output or an error, in the same order. */
  candidates: string[];
  /** The candidates and all they import, decoded, in the request's order. */
  protoFile: FileDescriptorProto[];
}

interface Scanned {
  bytes: Uint8Array;
  /** Field 9 of the file, and where its tag starts in `bytes`. */
  sourceCodeInfo: Uint8Array | undefined;
  sourceCodeInfoTag: number;
  dependencies: string[];
  relevant: boolean;
}

export function readRequest(bytes: Uint8Array): LeanRequest {
  const fileToGenerate: string[] = [];
  let parameter = "";
  const files = new Map<string, Scanned>();
  const order: string[] = [];
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no === REQUEST.fileToGenerate && wireType === WireType.LengthDelimited)
      fileToGenerate.push(reader.string());
    else if (no === REQUEST.parameter && wireType === WireType.LengthDelimited)
      parameter = reader.string();
    else if (no === REQUEST.protoFile && wireType === WireType.LengthDelimited) {
      const file = scanFile(reader.bytes());
      if (!files.has(file.name)) order.push(file.name);
      files.set(file.name, file.scanned);
    } else reader.skip(wireType, no);
  }
  const missing = fileToGenerate.find((name) => !files.has(name));
  if (missing !== undefined)
    throw new Error(`the request names ${missing} to generate but does not contain it`);

  const candidates = fileToGenerate.filter((name) => files.get(name)!.relevant);
  const needed = new Set<string>();
  const stack = [...candidates];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (needed.has(name)) continue;
    needed.add(name);
    // An import the request lacks is left for createFileRegistry to report, as before.
    for (const dep of files.get(name)?.dependencies ?? []) if (!needed.has(dep)) stack.push(dep);
  }
  const protoFile = order
    .filter((name) => needed.has(name))
    .map((name) => decodeFile(files.get(name)!));
  return { parameter, fileToGenerate, candidates, protoFile };
}

function decodeFile(scanned: Scanned): FileDescriptorProto {
  // Copies, so that the request's buffer (half of it source_file_descriptors, which the plugin does
  // not read) is freed once the request is read: the decoded file keeps views of the bytes it was
  // decoded from (unknown fields: options' extensions). Not `.slice()`: on the Buffer that stdin
  // gives, that is a view too.
  const whole = scanned.bytes;
  const info = scanned.sourceCodeInfo;
  const bytes = info ? new Uint8Array(info) : undefined;
  let file: Uint8Array;
  if (info) {
    // The file without its source code info, so that decoding the file does not decode that too
    // (protoc writes the field once).
    const tag = scanned.sourceCodeInfoTag;
    const end = info.byteOffset - whole.byteOffset + info.length;
    file = new Uint8Array(whole.length - (end - tag));
    file.set(whole.subarray(0, tag));
    file.set(whole.subarray(end), tag);
  } else {
    file = new Uint8Array(whole);
  }
  const proto = fromBinary(FileDescriptorProtoSchema, file);
  // Not cached: whoever reads it keeps what it needs (location.ts indexes a few files at a time).
  Object.defineProperty(proto, "sourceCodeInfo", {
    get: () => (bytes ? readSourceCodeInfo(bytes) : undefined),
    enumerable: true,
    configurable: true,
  });
  return proto;
}

function scanFile(bytes: Uint8Array): { name: string; scanned: Scanned } {
  const reader = new BinaryReader(bytes);
  let name = "";
  const dependencies: string[] = [];
  let relevant = false;
  let sourceCodeInfo: Uint8Array | undefined;
  let sourceCodeInfoTag = 0;
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [no, wireType] = reader.tag();
    if (wireType !== WireType.LengthDelimited) reader.skip(wireType, no);
    else if (no === FILE.name) name = reader.string();
    else if (no === FILE.dependency) dependencies.push(reader.string());
    else if (no === FILE.service) {
      relevant = true;
      reader.skip(wireType, no);
    } else if (no === FILE.messageType) relevant = messageHasEvent(reader.bytes()) || relevant;
    else if (no === FILE.options) relevant = hasField(reader.bytes(), opts.file.number) || relevant;
    else if (no === FILE.sourceCodeInfo) {
      sourceCodeInfoTag = start;
      sourceCodeInfo = reader.bytes();
    } else reader.skip(wireType, no);
  }
  return { name, scanned: { bytes, sourceCodeInfo, sourceCodeInfoTag, dependencies, relevant } };
}

/** Whether a DescriptorProto, or one nested in it, carries (grabbit.v1.event). */
function messageHasEvent(bytes: Uint8Array): boolean {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited && no === MESSAGE.options) {
      if (hasField(reader.bytes(), opts.event.number)) return true;
    } else if (wireType === WireType.LengthDelimited && no === MESSAGE.nestedType) {
      if (messageHasEvent(reader.bytes())) return true;
    } else reader.skip(wireType, no);
  }
  return false;
}

function hasField(bytes: Uint8Array, fieldNo: number): boolean {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no === fieldNo) return true;
    reader.skip(wireType, no);
  }
  return false;
}

const SOURCE_CODE_INFO_LOCATION = 1;
const LOCATION = {
  path: 1,
  span: 2,
  leadingComments: 3,
  trailingComments: 4,
  leadingDetachedComments: 6,
} as const;

/**
 * SourceCodeInfo's locations, read straight off the wire into plain objects of the same fields:
 * the file's code reads them once per documented file, and protobuf-es's generic decoding of a
 * million locations made garbage enough to add 350 MB to the plugin's peak on googleapis.
 */
function readSourceCodeInfo(bytes: Uint8Array): SourceCodeInfo {
  const location: SourceCodeInfo_Location[] = [];
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no === SOURCE_CODE_INFO_LOCATION && wireType === WireType.LengthDelimited)
      location.push(readLocation(reader.bytes()));
    else reader.skip(wireType, no);
  }
  return { $typeName: "google.protobuf.SourceCodeInfo", location } as SourceCodeInfo;
}

function readLocation(bytes: Uint8Array): SourceCodeInfo_Location {
  const path: number[] = [];
  const span: number[] = [];
  let leadingComments = "";
  let trailingComments = "";
  const leadingDetachedComments: string[] = [];
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no === LOCATION.path || no === LOCATION.span) {
      const into = no === LOCATION.path ? path : span;
      if (wireType === WireType.LengthDelimited) {
        const end = reader.uint32() + reader.pos;
        while (reader.pos < end) into.push(reader.int32());
      } else into.push(reader.int32());
    } else if (no === LOCATION.leadingComments && wireType === WireType.LengthDelimited)
      leadingComments = reader.string();
    else if (no === LOCATION.trailingComments && wireType === WireType.LengthDelimited)
      trailingComments = reader.string();
    else if (no === LOCATION.leadingDetachedComments && wireType === WireType.LengthDelimited)
      leadingDetachedComments.push(reader.string());
    else reader.skip(wireType, no);
  }
  return {
    $typeName: "google.protobuf.SourceCodeInfo.Location",
    path,
    span,
    leadingComments,
    trailingComments,
    leadingDetachedComments,
  };
}
