// Source positions for descriptors and their options, from the SourceCodeInfo that buf sends with
// every file to generate. Errors are reported as `file:line:column: message`, like protoc and buf.
import type { AnyDesc, DescFile, DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";

// Field numbers in descriptor.proto that make up source-info paths.
const FILE_MESSAGE = 4;
const FILE_ENUM = 5;
const FILE_SERVICE = 6;
const FILE_OPTIONS = 8;
const MESSAGE_FIELD = 2;
const MESSAGE_NESTED = 3;
const MESSAGE_ENUM = 4;
const MESSAGE_OPTIONS = 7;
const SERVICE_METHOD = 2;
const SERVICE_OPTIONS = 3;
const METHOD_OPTIONS = 4;
const FIELD_OPTIONS = 8;

export interface Position {
  file: string;
  line: number;
  column: number;
}

/** Path of a declaration inside its file, as SourceCodeInfo numbers it. */
export function declarationPath(desc: AnyDesc): number[] {
  switch (desc.kind) {
    case "file":
      return [];
    case "message":
      return desc.parent
        ? [
            ...declarationPath(desc.parent),
            MESSAGE_NESTED,
            desc.parent.nestedMessages.indexOf(desc),
          ]
        : [FILE_MESSAGE, desc.file.messages.indexOf(desc)];
    case "enum":
      return desc.parent
        ? [...declarationPath(desc.parent), MESSAGE_ENUM, desc.parent.nestedEnums.indexOf(desc)]
        : [FILE_ENUM, desc.file.enums.indexOf(desc)];
    case "field":
      return [
        ...declarationPath(desc.parent),
        MESSAGE_FIELD,
        desc.parent.proto.field.indexOf(desc.proto),
      ];
    case "service":
      return [FILE_SERVICE, desc.file.services.indexOf(desc)];
    case "rpc":
      return [...declarationPath(desc.parent), SERVICE_METHOD, desc.parent.methods.indexOf(desc)];
    default:
      return [];
  }
}

/** Path of an option of a declaration; `rest` goes into the option message (extension number, field...). */
export function optionPath(desc: AnyDesc, ...rest: number[]): number[] {
  const optionsField =
    desc.kind === "file"
      ? FILE_OPTIONS
      : desc.kind === "message"
        ? MESSAGE_OPTIONS
        : desc.kind === "service"
          ? SERVICE_OPTIONS
          : desc.kind === "rpc"
            ? METHOD_OPTIONS
            : desc.kind === "field"
              ? FIELD_OPTIONS
              : -1;
  return [...declarationPath(desc), optionsField, ...rest];
}

function fileOf(desc: AnyDesc): DescFile {
  return desc.kind === "file"
    ? desc
    : desc.kind === "field" || desc.kind === "rpc"
      ? desc.parent.file
      : (desc as { file: DescFile }).file;
}

interface FileIndexes {
  spans: Map<string, number[]>;
  comments: Map<string, string>;
}

// The indexes of the last few files read. Not one per file for the whole run: on a large request
// (googleapis) they would hold every location of every file, and the files are documented one at
// a time. Reading sourceCodeInfo may decode it anew (generator/request.ts), so it is read once here.
const KEPT_INDEXES = 4;
const recentIndexes = new Map<DescFile, FileIndexes>();

function indexes(file: DescFile): FileIndexes {
  let found = recentIndexes.get(file);
  if (found) {
    recentIndexes.delete(file);
  } else {
    found = { spans: new Map(), comments: new Map() };
    for (const loc of file.proto.sourceCodeInfo?.location ?? []) {
      const key = loc.path.join(",");
      if (!found.spans.has(key)) found.spans.set(key, loc.span);
      if (loc.leadingComments) found.comments.set(key, loc.leadingComments);
    }
    if (recentIndexes.size >= KEPT_INDEXES)
      recentIndexes.delete(recentIndexes.keys().next().value!);
  }
  recentIndexes.set(file, found);
  return found;
}

function spans(file: DescFile): Map<string, number[]> {
  return indexes(file).spans;
}

function comments(file: DescFile): Map<string, string> {
  return indexes(file).comments;
}

/** The comment written just above a declaration, as protoc records it (one leading space kept). */
export function leadingComment(desc: AnyDesc): string | undefined {
  return comments(fileOf(desc)).get(declarationPath(desc).join(","));
}

/** The position of the longest prefix of `path` that has a location, 1-based like compilers print. */
export function locate(desc: AnyDesc, path: number[] = declarationPath(desc)): Position {
  const file = fileOf(desc);
  const index = spans(file);
  for (let n = path.length; n >= 0; n--) {
    const span = index.get(path.slice(0, n).join(","));
    if (span && span.length >= 3)
      return { file: file.proto.name, line: span[0]! + 1, column: span[1]! + 1 };
  }
  return { file: file.proto.name, line: 1, column: 1 };
}

/** The 1-based line a declaration starts on, or undefined when the request carries no source info for it. */
export function declaredLine(desc: AnyDesc): number | undefined {
  const span = spans(fileOf(desc)).get(declarationPath(desc).join(","));
  return span && span.length >= 3 ? span[0]! + 1 : undefined;
}

/** How generated doc comments point back at a declaration: `proto <file>:<line> <full name>`. */
export function protoLink(desc: DescMessage | DescService | DescMethod): string {
  const name = desc.kind === "rpc" ? `${desc.parent.typeName}.${desc.name}` : desc.typeName;
  const line = declaredLine(desc);
  return `proto ${fileOf(desc).proto.name}${line === undefined ? "" : `:${line}`} ${name}`;
}
