// What a reader of generated code sees: messages by their own names through one import per module,
// aliases only where two names clash, exports that never change name to make room, doc comments
// that link back to the proto, lines within 100 columns; and templates that fail on a name the
// model lacks. The contract below names its messages after the runtime's exports and the globals
// the generated code uses, and must still generate code that type-checks strict.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { create, createFileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { beforeAll, describe, expect, it } from "vitest";
import { buildModel, DEFAULT_BUILD_OPTIONS } from "../../generator/model/build.js";
import { ImportRegistry } from "../../generator/model/imports.js";
import type { EventModel } from "../../generator/model/model.js";
import { NameScope } from "../../generator/model/names.js";
import { renderFile, renderTemplate } from "../../generator/render.js";
import { formatTypeScript, formatWhole } from "../../generator/format.js";
import {
  bufRequest,
  FIXTURES,
  generateModule,
  protoModule,
  REPO,
  typeCheck,
} from "../support/buf.js";
import { flat } from "./text.js";

const CLASH = `syntax = "proto3";
package clash.v1;
import "grabbit/v1/options.proto";

// An event named Event: its exports EventPublisher and EventConsumer are the runtime's names too.
message Event {
  option (grabbit.v1.event) = {exchange: "clash.events", routing_key: "event.{kind}"};
  string kind = 1;
}
message Error {
  option (grabbit.v1.event) = {exchange: "clash.errors", routing_key: "error"};
  string reason = 1;
}
message Buffer { string data = 1; }
message Promise { string id = 1; }
message Object { string id = 1; }
message Date { string day = 1; }
message AsyncIterable { string id = 1; }
message CallOptions { string id = 1; }
message EventPublisher { string id = 1; }
message ClashClient { string id = 1; }

service Clash {
  option (grabbit.v1.service) = {transports: [TRANSPORT_GRPC, TRANSPORT_AMQP]};
  rpc Close(Promise) returns (Object);
  rpc Get(Buffer) returns (Error);
  rpc Watch(Date) returns (stream Event);
  rpc Send(stream AsyncIterable) returns (Object);
  rpc Call(stream CallOptions) returns (stream EventPublisher);
  rpc Self(ClashClient) returns (ClashClient);
}
`;

let out: string;
let text: string;

beforeAll(() => {
  const result = generateModule(protoModule({ "clash/v1/clash.proto": CLASH }));
  expect(result.stderr).toBe("");
  out = result.out;
  text = readFileSync(join(out, "clash/v1/clash.grabbit.ts"), "utf8");
});

/** The import statement of `from`, on one line. */
function importOf(from: string): string {
  const found =
    flat(text).match(
      new RegExp(`import (type )?\\{[^}]*\\} from "${from.replace(/[./]/g, "\\$&")}";`, "g"),
    ) ?? [];
  expect(found, `one import statement from ${from}`).toHaveLength(1);
  return found[0]!;
}

describe("names in a file whose messages are called Event, Error, Promise, Object, Buffer, CallOptions...", () => {
  it("type-checks strict, and pedantic (no unused import) in grabbit's file", () => {
    expect(typeCheck(out)).toBe("");
    const ours = typeCheck(out, { pedantic: true })
      .split("\n")
      .filter((line) => line.includes(".grabbit.ts("));
    expect(ours).toEqual([]);
  });

  it("keeps every export's name: an import of the same name gets the alias", () => {
    for (const declaration of [
      "export const EventEvent:",
      "export class EventPublisher {",
      "export class EventConsumer {",
      "export type EventFilter =",
      "export const ErrorEvent:",
      "export class ErrorPublisher {",
      "export const ClashService:",
      "export class ClashClient {",
    ]) {
      expect(text).toContain(declaration);
    }
    const runtimeAmqp = importOf("@grabbit/runtime/amqp");
    expect(runtimeAmqp).toMatch(/\bEventPublisher as EventPublisher\$\d\b/);
    expect(runtimeAmqp).toMatch(/\bEventConsumer as EventConsumer\$\d\b/);
    // The message ClashClient meets the exported client class.
    expect(importOf("./clash.js")).toContain("ClashClient as ClashClient$1");
  });

  it("names messages plainly where nothing clashes, and aliases the globals the code uses", () => {
    expect(text).not.toMatch(/\$\d+\./);
    const messages = importOf("./clash.js");
    for (const plain of ["Buffer", "Object", "Error", "Event", "DateMessage", "CallOptions"]) {
      expect(messages).toMatch(new RegExp(`[{,] ${plain}[,} ]`));
      expect(messages).not.toContain(`${plain} as`);
    }
    expect(messages).toContain("Promise as Promise$1");
    expect(messages).toContain("AsyncIterable as AsyncIterable$1");
    // The user's CallOptions keeps its name; the runtime's, only a type here, is the one aliased.
    expect(importOf("@grabbit/runtime")).toMatch(/type CallOptions as CallOptions\$1\b/);
    const signatures = flat(text);
    expect(signatures).toContain(
      "get(request: Buffer, context: HandlerContext): Promise<Error> | Error;",
    );
    expect(signatures).toContain(
      "close$(request: Promise$1, options?: CallOptions$1): Promise<Object> {",
    );
    expect(signatures).toContain(
      "send(requests: AsyncIterable<AsyncIterable$1>, options?: CallOptions$1): Promise<Object> {",
    );
    expect(signatures).toContain(
      "call(requests: AsyncIterable<CallOptions>, options?: CallOptions$1): AsyncIterable<EventPublisher$1> {",
    );
  });

  it("imports what is only a type with `type`, and values plainly", () => {
    const runtime = importOf("@grabbit/runtime");
    expect(runtime).toMatch(/^import \{/);
    expect(runtime).toContain("type ServiceDesc");
    expect(runtime).toMatch(/[{,] tsProtoType[,} ]/);
    // Messages are values too: their codecs go into the descriptors.
    expect(importOf("./clash.js")).toMatch(/^import \{ AsyncIterable as/);
  });

  it("runs: the descriptors carry the codecs, the aliased runtime classes are the real ones", async () => {
    const messages = await import(pathToFileURL(join(out, "clash/v1/clash.ts")).href);
    const generated = await import(pathToFileURL(join(out, "clash/v1/clash.grabbit.ts")).href);
    const method = generated.ClashService.methods.get;
    expect(method.input.typeName).toBe("clash.v1.Buffer");
    expect(
      method.input.decode(method.input.encode(messages.Buffer.fromPartial({ data: "x" }))),
    ).toEqual({ data: "x" });
    expect(Object.keys(generated.ClashService.methods)).toEqual([
      "close$",
      "get",
      "watch",
      "send",
      "call",
      "self",
    ]);
    expect(generated.EventEvent.routingValues({ kind: "k" })).toEqual({ kind: "k" });
  });
});

describe("doc comments and layout", () => {
  it("link each declaration back to its line in the proto", () => {
    const line = (needle: string) => CLASH.split("\n").findIndex((l) => l.includes(needle)) + 1;
    expect(text).toContain(
      `@see proto clash/v1/clash.proto:${line("service Clash")} clash.v1.Clash\n`,
    );
    expect(text).toContain(
      `@see proto clash/v1/clash.proto:${line("rpc Get(")} clash.v1.Clash.Get\n`,
    );
    expect(text).toContain(
      `@see proto clash/v1/clash.proto:${line("message Event {")} clash.v1.Event\n`,
    );
    // Every doc comment has one.
    const blocks = text.match(/\/\*\*[\s\S]*?\*\//g) ?? [];
    expect(blocks.length).toBeGreaterThan(10);
    for (const block of blocks) {
      expect(block).toMatch(/@see proto clash\/v1\/clash\.proto:\d+ clash\.v1\./);
    }
  });

  it("keeps lines within 100 columns and never leaves two blank lines", () => {
    expect(text.split("\n").filter((l) => l.length > 100)).toEqual([]);
    expect(text).not.toMatch(/\n\s*\n\s*\n/);
  });
});

describe("the import registry", () => {
  it("writes one statement per module, runtime first, `import type` when no name is a value", () => {
    const scope = new NameScope(["Promise"]);
    scope.claim("OrderPublisher");
    const imports = new ImportRegistry(scope, "@grabbit/runtime");
    expect(imports.use("./orders.js", "Order", false)).toBe("Order");
    expect(imports.use("./billing.js", "Order", false)).toBe("Order$1");
    expect(imports.use("./orders.js", "Promise", false)).toBe("Promise$1");
    expect(imports.use("@grabbit/runtime/amqp", "OrderPublisher", true)).toBe("OrderPublisher$1");
    expect(imports.use("@grabbit/runtime/amqp", "AmqpConnection", false)).toBe("AmqpConnection");
    // Asked again: the same name, and a type used as a value too becomes a value import.
    expect(imports.use("./orders.js", "Order", true)).toBe("Order");
    expect(imports.statements()).toEqual([
      {
        from: "@grabbit/runtime/amqp",
        typeOnly: false,
        names: "type AmqpConnection, OrderPublisher as OrderPublisher$1",
      },
      { from: "./orders.js", typeOnly: false, names: "Order, type Promise as Promise$1" },
      { from: "./billing.js", typeOnly: true, names: "Order as Order$1" },
    ]);
  });
});

describe("the layout", () => {
  it("is what formatting whole files gives, for the fixtures, the example and this contract", () => {
    const modules = [FIXTURES, join(REPO, "proto"), protoModule({ "clash/v1/clash.proto": CLASH })];
    let files = 0;
    for (const dir of modules) {
      const request = bufRequest(dir);
      const registry = createFileRegistry(
        create(FileDescriptorSetSchema, { file: request.protoFile }),
      );
      for (const file of buildModel(registry, request.fileToGenerate, DEFAULT_BUILD_OPTIONS)
        .files) {
        const raw = renderTemplate("file", { ...file, version: "0" });
        expect(formatTypeScript(file.outputPath, raw), file.outputPath).toBe(
          formatWhole(file.outputPath, raw),
        );
        files++;
      }
    }
    expect(files).toBeGreaterThanOrEqual(8);
  });
});

describe("templates in strict mode", () => {
  it("fail generation on a name the model lacks, instead of printing nothing", () => {
    const request = bufRequest(protoModule({ "clash/v1/clash.proto": CLASH }));
    const registry = createFileRegistry(
      create(FileDescriptorSetSchema, { file: request.protoFile }),
    );
    const file = buildModel(registry, request.fileToGenerate, DEFAULT_BUILD_OPTIONS).files[0]!;
    expect(renderFile(file, { version: "0" })).toContain("export class EventPublisher {");
    // The templates' own output is clean before the formatter sees it: no runs of blank lines.
    expect(renderTemplate("file", { ...file, version: "0" })).not.toMatch(/\n[ \t]*\n[ \t]*\n/);
    // A misspelt or missing field: what a template naming a field the model does not have meets.
    const { filterType: _, ...event } = file.events[0]!;
    const misspelt = { ...file, events: [event as EventModel] };
    expect(() => renderFile(misspelt, { version: "0" })).toThrow(/"filterType" not defined/);
    // A runtime symbol the model did not import for the declaration.
    const service = file.services[0]!;
    const rt = Object.fromEntries(
      Object.entries(service.rt).filter(([name]) => name !== "GrpcTransport"),
    );
    expect(() => renderFile({ ...file, services: [{ ...service, rt }] }, { version: "0" })).toThrow(
      /"GrpcTransport" not defined/,
    );
  });
});
