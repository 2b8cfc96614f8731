// One side of a comparison: the decoded (changed) files of an image, indexed by full name. Source
// paths are kept with every element so findings can point at lines and acceptance comments found.
import type {
  DescriptorProto,
  EnumDescriptorProto,
  FieldDescriptorProto,
  FileDescriptorProto,
  MethodDescriptorProto,
  ServiceDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { decodeFile, type Image, type ImageFile } from "./images.js";

export interface FileEl {
  image: ImageFile;
  fd: FileDescriptorProto;
  path: string;
  pkg: string;
  /** "proto2", "proto3" or "editions". */
  syntax: string;
  /** The image (side) the file belongs to: it knows how to print the file's path. */
  owner: Image;
}

interface Base {
  file: FileEl;
  /** Source path of the element inside its file. */
  spath: number[];
  fullName: string;
  /** The name relative to the package, as buf prints it ("Outer.Inner"). */
  local: string;
}

export interface MessageEl extends Base {
  d: DescriptorProto;
  parent?: MessageEl;
}
export interface EnumEl extends Base {
  d: EnumDescriptorProto;
  parent?: MessageEl;
}
export interface ServiceEl extends Base {
  d: ServiceDescriptorProto;
}
export interface ExtensionEl extends Base {
  d: FieldDescriptorProto;
  parent?: MessageEl;
}
export interface MethodEl extends Base {
  d: MethodDescriptorProto;
  service: ServiceEl;
}

export interface Side {
  image: Image;
  /** Changed files only (both sides decode the same set of paths). */
  files: Map<string, FileEl>;
  messages: Map<string, MessageEl>;
  enums: Map<string, EnumEl>;
  services: Map<string, ServiceEl>;
  extensions: Map<string, ExtensionEl>;
  /** Packages of every file of the image (changed or not), with their file counts. */
  packages: Map<string, number>;
}

export function syntaxOf(fd: FileDescriptorProto): string {
  if (fd.syntax === "editions") return "editions";
  return fd.syntax === "proto3" ? "proto3" : "proto2";
}

export function indexSide(image: Image, paths: Iterable<string>): Side {
  const side: Side = {
    image,
    files: new Map(),
    messages: new Map(),
    enums: new Map(),
    services: new Map(),
    extensions: new Map(),
    packages: new Map(),
  };
  // Imports hold packages too (buf deletes "google.protobuf" when the last import of a WKT goes); files a
  // partial build pulled in as context are counted through packagesOutside instead.
  for (const f of image.files.values())
    if (!f.partialContext) side.packages.set(f.pkg, (side.packages.get(f.pkg) ?? 0) + 1);
  for (const pkg of image.packagesOutside ?? [])
    side.packages.set(pkg, (side.packages.get(pkg) ?? 0) + 1);
  for (const path of paths) {
    const image_ = image.files.get(path);
    if (!image_) continue;
    const fd = decodeFile(image_);
    const file: FileEl = {
      image: image_,
      fd,
      path,
      pkg: fd.package,
      syntax: syntaxOf(fd),
      owner: image,
    };
    side.files.set(path, file);
    const prefix = fd.package ? fd.package + "." : "";
    const addEnum = (d: EnumDescriptorProto, spath: number[], local: string, parent?: MessageEl) =>
      side.enums.set(prefix + local, {
        file,
        spath,
        fullName: prefix + local,
        local,
        d,
        ...(parent ? { parent } : {}),
      });
    const addExt = (d: FieldDescriptorProto, spath: number[], local: string, parent?: MessageEl) =>
      side.extensions.set(prefix + local, {
        file,
        spath,
        fullName: prefix + local,
        local,
        d,
        ...(parent ? { parent } : {}),
      });
    const addMessage = (d: DescriptorProto, spath: number[], local: string, parent?: MessageEl) => {
      const el: MessageEl = {
        file,
        spath,
        fullName: prefix + local,
        local,
        d,
        ...(parent ? { parent } : {}),
      };
      side.messages.set(el.fullName, el);
      d.nestedType.forEach((n, i) => {
        addMessage(n, [...spath, 3, i], `${local}.${n.name}`, el);
      });
      d.enumType.forEach((e, i) => {
        addEnum(e, [...spath, 4, i], `${local}.${e.name}`, el);
      });
      d.extension.forEach((x, i) => {
        addExt(x, [...spath, 6, i], `${local}.${x.name}`, el);
      });
    };
    fd.messageType.forEach((m, i) => {
      addMessage(m, [4, i], m.name);
    });
    fd.enumType.forEach((e, i) => {
      addEnum(e, [5, i], e.name);
    });
    fd.service.forEach((s, i) => {
      side.services.set(prefix + s.name, {
        file,
        spath: [6, i],
        fullName: prefix + s.name,
        local: s.name,
        d: s,
      });
    });
    fd.extension.forEach((x, i) => {
      addExt(x, [7, i], x.name);
    });
  }
  return side;
}

export function methodsOf(s: ServiceEl): Map<string, MethodEl> {
  const out = new Map<string, MethodEl>();
  s.d.method.forEach((m, i) => {
    out.set(m.name, {
      file: s.file,
      spath: [...s.spath, 2, i],
      fullName: `${s.fullName}.${m.name}`,
      local: m.name,
      d: m,
      service: s,
    });
  });
  return out;
}

const enumIndexes = new WeakMap<Side, Map<string, EnumDescriptorProto>>();

/**
 * An enum of the side's whole image by full name (without the leading dot): from the changed files'
 * index, else from the files whose package could hold it (decoded only when a rule asks, which is rare).
 */
export function findEnum(side: Side, fullName: string): EnumDescriptorProto | undefined {
  const name = fullName.replace(/^\./, "");
  const own = side.enums.get(name);
  if (own) return own.d;
  let index = enumIndexes.get(side);
  if (!index) enumIndexes.set(side, (index = new Map()));
  const hit = index.get(name);
  if (hit) return hit;
  for (const f of side.image.files.values()) {
    if (f.pkg !== "" && !name.startsWith(f.pkg + ".")) continue;
    const fd = decodeFile(f);
    const prefix = fd.package ? fd.package + "." : "";
    const walk = (m: DescriptorProto, scope: string) => {
      for (const e of m.enumType) index!.set(`${scope}.${e.name}`, e);
      for (const n of m.nestedType) walk(n, `${scope}.${n.name}`);
    };
    for (const e of fd.enumType) index.set(prefix + e.name, e);
    for (const m of fd.messageType) walk(m, prefix + m.name);
    const found = index.get(name);
    if (found) return found;
  }
  return undefined;
}
