// Renames told apart from delete-plus-add: a declaration that disappeared and one that appeared with
// the same shape (fields' numbers, names and types, enum numbers, methods' signatures), one of each, are one
// rename. It is reported once (the deletion rules share its subject) and the addition is not reported.
import { FieldDescriptorProto_Label } from "@bufbuild/protobuf/wkt";
import { methodsOf, type EnumEl, type MessageEl, type ServiceEl } from "../model.js";
import { Ctx } from "./context.js";
import { compareEvents, compareServiceContracts, effectiveEvent } from "./grabbit.js";

export interface Renames {
  messages: Map<string, string>;
  enums: Map<string, string>;
  services: Map<string, string>;
  /** Old method full name -> new method full name (within a service kept under its name). */
  methods: Map<string, string>;
  /** New full names that are the target of a rename (their addition is not reported). */
  targets: Set<string>;
}

// Shapes are compared within one scope (package and enclosing message): two unrelated declarations in
// different packages often share a shape, a rename does not move.
const scopeOf = (name: string) => name.slice(0, Math.max(0, name.lastIndexOf(".")));

function pairUnique<T>(
  olds: Map<string, T>,
  news: Map<string, T>,
  shape0: (el: T) => string | undefined,
): Map<string, string> {
  const shape = (el: T, name: string) => {
    const s = shape0(el);
    // Events may move between packages (their exchange pins them down): the type change is the finding.
    return s === undefined ? undefined : s.startsWith("event:") ? s : `${scopeOf(name)}|${s}`;
  };
  const gone = new Map<string, string[]>();
  const came = new Map<string, string[]>();
  for (const [name, el] of olds) {
    if (news.has(name)) continue;
    const s = shape(el, name);
    if (s !== undefined) gone.set(s, [...(gone.get(s) ?? []), name]);
  }
  for (const [name, el] of news) {
    if (olds.has(name)) continue;
    const s = shape(el, name);
    if (s !== undefined) came.set(s, [...(came.get(s) ?? []), name]);
  }
  const out = new Map<string, string>();
  for (const [s, names] of gone) {
    const to = came.get(s);
    if (names.length === 1 && to?.length === 1) out.set(names[0]!, to[0]!);
  }
  return out;
}

const messageShape = (m: MessageEl) => {
  const fields = fieldShape(m);
  const ev = fields === undefined ? undefined : effectiveEvent(m);
  return ev ? `event:${ev.exchange}|${fields}` : fields;
};
const fieldShape = (m: MessageEl) =>
  m.d.field.length === 0 || m.d.options?.mapEntry
    ? undefined
    : m.d.field
        .map(
          (f) =>
            `${f.number}:${f.name}:${f.type}:${f.label === FieldDescriptorProto_Label.REPEATED ? "r" : ""}:${f.typeName.split(".").pop()}`,
        )
        .sort()
        .join(",");
const enumShape = (e: EnumEl) =>
  e.d.value.length <= 1
    ? undefined
    : e.d.value
        .map((v) => v.number)
        .sort((a, b) => a - b)
        .join(",");
const serviceShape = (s: ServiceEl) =>
  s.d.method.length === 0
    ? undefined
    : s.d.method
        .map(
          (m) =>
            `${m.name}:${m.inputType}:${m.outputType}:${m.clientStreaming}:${m.serverStreaming}`,
        )
        .sort()
        .join(",");

export function findRenames(ctx: Ctx): Renames {
  const r: Renames = {
    messages: pairUnique(ctx.old.messages, ctx.cur.messages, messageShape),
    enums: pairUnique(ctx.old.enums, ctx.cur.enums, enumShape),
    services: pairUnique(ctx.old.services, ctx.cur.services, serviceShape),
    methods: new Map(),
    targets: new Set(),
  };
  for (const [name, after] of ctx.cur.services) {
    const before = ctx.old.services.get(name);
    if (!before) continue;
    const sig = (m: {
      d: {
        inputType: string;
        outputType: string;
        clientStreaming: boolean;
        serverStreaming: boolean;
      };
    }) => `${m.d.inputType}:${m.d.outputType}:${m.d.clientStreaming}:${m.d.serverStreaming}`;
    for (const [from, to] of pairUnique(methodsOf(before), methodsOf(after), sig))
      r.methods.set(`${name}.${from}`, `${name}.${to}`);
  }
  for (const m of [r.messages, r.enums, r.services, r.methods])
    for (const to of m.values()) r.targets.add(to);
  return r;
}

export function reportRenames(ctx: Ctx, r: Renames): void {
  for (const [kind, map] of [
    ["message", r.messages],
    ["enum", r.enums],
    ["service", r.services],
    ["rpc", r.methods],
  ] as const) {
    for (const [from, to] of map) ctx.notes.set(`${kind}:${from}`, `renamed to "${to}"`);
  }
  for (const [from, to] of r.messages) {
    const before = ctx.old.messages.get(from)!;
    const after = ctx.cur.messages.get(to)!;
    ctx.add(
      "TYPESCRIPT_MESSAGE_RENAMED",
      after,
      `Message "${from}" was renamed to "${to}" (same fields): the wire format is unchanged, but the generated type "${before.local.replace(/\./g, "_")}" is now "${after.local.replace(/\./g, "_")}".`,
      {
        subject: `message:${from}`,
      },
    );
    // An event's full name is its AMQP type: the event rules see the pair.
    compareEvents(ctx, before, after);
  }
  for (const [from, to] of r.enums) {
    const after = ctx.cur.enums.get(to)!;
    ctx.add(
      "TYPESCRIPT_ENUM_RENAMED",
      after,
      `Enum "${from}" was renamed to "${to}" (same numbers).`,
      { subject: `enum:${from}` },
    );
  }
  for (const [from, to] of r.services) {
    const after = ctx.cur.services.get(to)!;
    ctx.add(
      "TYPESCRIPT_SERVICE_RENAMED",
      after,
      `Service "${from}" was renamed to "${to}" (same methods): its gRPC path and generated client change.`,
      { subject: `service:${from}` },
    );
    compareServiceContracts(ctx, ctx.old.services.get(from)!, after);
  }
  for (const [from, to] of r.methods) {
    const svc = ctx.cur.services.get(to.slice(0, to.lastIndexOf(".")))!;
    const m = methodsOf(svc).get(to.slice(to.lastIndexOf(".") + 1))!;
    ctx.add(
      "TYPESCRIPT_METHOD_RENAMED",
      m,
      `RPC "${from.slice(from.lastIndexOf(".") + 1)}" on service "${svc.local}" was renamed to "${m.local}" (same signature): its gRPC path and generated method change.`,
      {
        subject: `rpc:${from}`,
      },
    );
  }
}
