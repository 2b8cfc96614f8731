// messages=protobuf-es: grabbit's code over protoc-gen-es's `_pb` files. A contract whose messages
// are named after globals (Buffer, Promise, Object, Date, Error) and with a method `close` compiles
// strict together with protobuf-es's output; the generated descriptors encode and decode through
// the schemas; clients take init shapes and handlers get message shapes.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { GrpcServer } from "@grabbit/runtime/grpc";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { run } from "../../generator/plugin.js";
import { bufRequest, FIXTURES, protoModule, REPO, typeCheck } from "../support/buf.js";
import { scratchDir } from "../support/buf.js";
import { generateProtobufEsModule } from "./protobuf-es-support.js";
import { flat } from "./text.js";

// A unique request queue, so that runs sharing the broker never serve each other's calls.
const requestQueue = uniqueName("grabbit.test.globals");

const GLOBALS = `syntax = "proto3";
package globals.v1;
import "grabbit/v1/options.proto";
import "google/protobuf/empty.proto";

message Buffer { string data = 1; }
message Promise { string id = 1; }
message Object { string id = 1; }
message Date { string day = 1; }
message Error {
  option (grabbit.v1.event) = {exchange: "globals.errors", routing_key: "error.{kind}.{level}"};
  enum Level { LEVEL_UNSPECIFIED = 0; LEVEL_WARN = 1; LEVEL_FATAL = 2; }
  string kind = 1;
  Level level = 2;
  string reason = 3;
}
message BufferSchema { string id = 1; }

service Globals {
  option (grabbit.v1.service) = {transports: [TRANSPORT_GRPC, TRANSPORT_AMQP], request_queue: "${requestQueue}", queue_type: QUEUE_TYPE_CLASSIC};
  rpc Close(Promise) returns (Object);
  rpc Get(Buffer) returns (Error);
  rpc Watch(Date) returns (stream Error);
  rpc Send(stream Buffer) returns (Object);
  rpc Chat(stream BufferSchema) returns (stream Date);
  rpc Ping(google.protobuf.Empty) returns (google.protobuf.Empty);
}
`;

// What a protobuf-es user writes: handlers typed as the interface, replies and stream items as plain
// literals (init shapes), requests read as message shapes. Type-checked strict with the rest.
const HANDLERS = `import type { GlobalsHandlers } from "./globals/v1/globals.grabbit.js";
import { Error_Level } from "./globals/v1/globals_pb.js";

export const handlers: GlobalsHandlers = {
  close$: (promise) => ({ id: \`closed \${promise.id}\` }),
  get: (buffer) => ({ kind: buffer.data, level: Error_Level.FATAL }),
  async *watch(date) {
    yield { kind: date.day };
    yield { kind: \`\${date.day} again\`, level: Error_Level.WARN };
  },
  async send(buffers) {
    let all = "";
    for await (const b of buffers) all += b.data;
    return { id: all };
  },
  async *chat(requests) {
    for await (const r of requests) yield { day: r.id.toUpperCase() };
  },
  ping: () => ({}),
};
`;

let out: string;
let text: string;

beforeAll(() => {
  const result = generateProtobufEsModule(protoModule({ "globals/v1/globals.proto": GLOBALS }));
  expect(result.stderr).toBe("");
  out = result.out;
  text = readFileSync(join(out, "globals/v1/globals.grabbit.ts"), "utf8");
  writeFileSync(join(out, "handlers.ts"), HANDLERS);
});

describe("messages=protobuf-es: a contract named after globals, with a method close", () => {
  it("type-checks strict with protoc-gen-es's output, and pedantic in grabbit's file", () => {
    expect(typeCheck(out)).toBe("");
    const ours = typeCheck(out, { pedantic: true })
      .split("\n")
      .filter((line) => line.includes(".grabbit.ts("));
    expect(ours).toEqual([]);
  });

  it("imports shapes as types and schemas as values from the _pb file, well-known types from @bufbuild/protobuf/wkt", () => {
    const flatText = flat(text);
    const pb = flatText.match(/import \{[^}]*\} from "\.\/globals_pb\.js";/)?.[0] ?? "";
    for (const schema of [
      "BufferSchema$",
      "PromiseSchema",
      "ObjectSchema",
      "DateSchema",
      "ErrorSchema",
      "BufferSchemaSchema",
    ]) {
      expect(pb).toContain(` ${schema}`);
    }
    // protoc-gen-es names the message Object `Object$`, and BufferSchema's shape takes the plain
    // name, so Buffer's schema is `BufferSchema$`; Promise is a global the code uses: aliased.
    expect(pb).toMatch(/type Object\$[,} ]/);
    expect(pb).toContain("type Promise as Promise$1");
    expect(flatText).toMatch(/import \{[^}]*EmptySchema[^}]*\} from "@bufbuild\/protobuf\/wkt";/);
    expect(flatText).toMatch(/import type \{ MessageInitShape \} from "@bufbuild\/protobuf";/);
    expect(text).not.toContain("tsProtoType");
  });

  it("gives handlers message shapes and clients init shapes", () => {
    const flatText = flat(text);
    expect(flatText).toContain(
      "get(request: Buffer, context: HandlerContext): Promise<MessageInitShape<typeof ErrorSchema>> | MessageInitShape<typeof ErrorSchema>;",
    );
    expect(flatText).toContain(
      "close$(request: MessageInitShape<typeof PromiseSchema>, options?: CallOptions): Promise<Object$> {",
    );
    expect(flatText).toContain(
      "publish(event: MessageInitShape<typeof ErrorSchema>, options?: PublishOptions): Promise<void> {",
    );
  });

  it("runs: descriptors encode init shapes and decode to messages, routing keys carry enum names", async () => {
    const pb = await import(pathToFileURL(join(out, "globals/v1/globals_pb.ts")).href);
    const generated = await import(pathToFileURL(join(out, "globals/v1/globals.grabbit.ts")).href);
    const get = generated.GlobalsService.methods.get;
    expect(get.input.typeName).toBe("globals.v1.Buffer");
    const bytes = get.input.encode({ data: "x" });
    expect(bytes).toEqual(toBinary(pb.BufferSchema$, create(pb.BufferSchema$, { data: "x" })));
    const decoded = get.input.decode(bytes);
    expect(decoded.$typeName).toBe("globals.v1.Buffer");
    expect(decoded.data).toBe("x");
    const event = generated.ErrorEvent;
    expect(
      event.type.decode(event.type.encode({ kind: "disk", level: pb.Error_Level.FATAL })).level,
    ).toBe(pb.Error_Level.FATAL);
    expect(event.routingValues({ kind: "disk", level: pb.Error_Level.FATAL })).toEqual({
      kind: "disk",
      level: "LEVEL_FATAL",
    });
    expect(Object.keys(generated.GlobalsService.methods)).toEqual([
      "close$",
      "get",
      "watch",
      "send",
      "chat",
      "ping",
    ]);
    expect(generated.GlobalsService.methods.ping.input.typeName).toBe("google.protobuf.Empty");
  });
});

describe("messages=protobuf-es at run time: every call kind over gRPC and RabbitMQ", () => {
  let connection: AmqpConnection;
  const server = new GrpcServer();
  afterAll(async () => {
    await connection?.close();
    await server.shutdown(1000);
  });

  it("serves literal replies and streams, and clients get message shapes, on both transports", async () => {
    const generated = await import(pathToFileURL(join(out, "globals/v1/globals.grabbit.ts")).href);
    const { handlers } = await import(pathToFileURL(join(out, "handlers.ts")).href);
    generated.addGlobalsGrpcService(server, handlers);
    const port = await server.listen("127.0.0.1:0");
    connection = await AmqpConnection.connect(AMQP_URL);
    const rpcServer = await generated.serveGlobalsAmqp(connection, handlers);
    async function* items<T>(...xs: T[]): AsyncIterable<T> {
      yield* xs;
    }
    const collect = async (it: AsyncIterable<Record<string, unknown>>) => {
      const all: Record<string, unknown>[] = [];
      for await (const x of it) all.push(x);
      return all;
    };
    try {
      for (const client of [
        generated.createGlobalsGrpcClient(`127.0.0.1:${port}`),
        generated.createGlobalsAmqpClient(connection),
      ]) {
        const options = { timeoutMs: 10_000 };
        const closed = await client.close$({ id: "p" }, options);
        expect(closed).toMatchObject({ $typeName: "globals.v1.Object", id: "closed p" });
        expect(await client.get({ data: "disk" }, options)).toMatchObject({
          $typeName: "globals.v1.Error",
          kind: "disk",
          level: 2,
        });
        expect(
          (await collect(client.watch({ day: "mon" }, options))).map((e) => e["kind"]),
        ).toEqual(["mon", "mon again"]);
        expect(await client.send(items({ data: "a" }, { data: "b" }), options)).toMatchObject({
          id: "ab",
        });
        expect(
          (await collect(client.chat(items({ id: "x" }, { id: "y" }), options))).map(
            (d) => d["day"],
          ),
        ).toEqual(["X", "Y"]);
        expect(await client.ping({}, options)).toEqual({ $typeName: "google.protobuf.Empty" });
        await client.close();
      }
    } finally {
      await rpcServer.close();
    }
  });
});

describe("messages=protobuf-es over the test fixtures and the example system's contracts", () => {
  it.each([
    ["the test fixtures", FIXTURES],
    ["the example system", join(REPO, "proto")],
  ])("%s: generates and type-checks strict with protoc-gen-es's output", (_, input) => {
    const dir = scratchDir("pbes-fixtures");
    const result = generateProtobufEsModule(dir, input);
    expect(result.stderr).toBe("");
    expect(typeCheck(result.out)).toBe("");
  });
});

describe("what does not depend on the library", () => {
  it("the AsyncAPI document and the Mermaid topology are the same with either (payloads come from the descriptors)", () => {
    const request = bufRequest(join(REPO, "proto"), "asyncapi,mermaid");
    const tsProto = run(request);
    const es = run({ ...request, parameter: "messages=protobuf-es,asyncapi,mermaid" });
    expect(tsProto.error ?? "").toBe("");
    expect(es.error ?? "").toBe("");
    const doc = (r: typeof es, name: string) => r.file.find((f) => f.name === name)?.content;
    expect(doc(es, "asyncapi.json")).toBeTruthy();
    expect(doc(es, "asyncapi.json")).toBe(doc(tsProto, "asyncapi.json"));
    expect(doc(es, "topology.mmd")).toBe(doc(tsProto, "topology.mmd"));
  });
});

describe("the messages option", () => {
  const dir = () =>
    protoModule({
      "m/v1/m.proto": `syntax = "proto3";\npackage m.v1;\nimport "grabbit/v1/options.proto";\nmessage A { oneof which { string id = 1; } }\nmessage E {\n  option (grabbit.v1.event) = {exchange: "m.events", routing_key: "e.{id}"};\n  oneof which { string id = 1; }\n}\nservice S { rpc Do(A) returns (A); }\n`,
    });

  it("refuses an unknown library, ts-proto's options beside protobuf-es, and protoc-gen-es's without it", () => {
    const d = dir();
    expect(run(bufRequest(d, "messages=protobuf")).error).toBe(
      'option "messages" takes ts-proto or protobuf-es (the plugin that writes the message types), not "protobuf"',
    );
    expect(run(bufRequest(d, "messages=protobuf-es,useDate=true")).error).toBe(
      `option "useDate" is ts-proto's, but messages=protobuf-es: give protoc-gen-grabbit the options of protoc-gen-es (or none)`,
    );
    expect(run(bufRequest(d, "target=ts")).error).toBe(
      `option "target" is protoc-gen-es's: add messages=protobuf-es to generate for protobuf-es messages (the default is ts-proto)`,
    );
    expect(run(bufRequest(d, "messages=protobuf-es,rewrite_imports=./x:y")).error).toMatch(
      /^protoc-gen-es option rewrite_imports moves the modules/,
    );
  });

  it("refuses a routing placeholder in a oneof, which protobuf-es nests under the oneof's name", () => {
    const response = run(bufRequest(dir(), "messages=protobuf-es"));
    expect(response.error).toContain(
      `routing key "e.{id}": {id} is a member of oneof "which", which protobuf-es turns into a { case, value } union with no id property`,
    );
  });
});
