// Generated handler types: a service served over both transports with every call kind generates and
// type-checks; a full implementation (typed as the handlers interface) is checked method by method,
// while the serve helpers take a partial one whose missing methods answer UNIMPLEMENTED, and still
// refuse misspelt names and wrong signatures.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@grabbit/runtime";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { GrpcServer } from "@grabbit/runtime/grpc";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { generateModule, protoModule, typeCheck } from "../support/buf.js";
import { flat } from "./text.js";

// A unique request queue, so that runs sharing the broker never serve each other's calls.
const requestQueue = uniqueName("grabbit.test.meter");

const proto = `syntax = "proto3";
package meter.v1;
import "grabbit/v1/options.proto";

message Query { string sensor = 1; }
message Reading { string sensor = 1; double value = 2; }
message Summary { int32 count = 1; double total = 2; }

service Meter {
  option (grabbit.v1.service) = {
    transports: [TRANSPORT_GRPC, TRANSPORT_AMQP]
    request_queue: "${requestQueue}"
    queue_type: QUEUE_TYPE_CLASSIC
  };
  rpc Latest(Query) returns (Reading);
  rpc Watch(Query) returns (stream Reading);
  rpc Record(stream Reading) returns (Summary);
  rpc Relay(stream Reading) returns (stream Reading);
}
`;

// What every case file starts with: the generated code, the messages and an AMQP connection.
const prelude = `import type { HandlerContext } from "@grabbit/runtime";
import type { AmqpConnection } from "@grabbit/runtime/amqp";
import { GrpcServer } from "@grabbit/runtime/grpc";
import { addMeterGrpcService, createMeterAmqpClient, createMeterGrpcClient, serveMeterAmqp, type MeterHandlers } from "./meter/v1/meter.grabbit.js";
import type { Query, Reading, Summary } from "./meter/v1/meter.js";
declare const connection: AmqpConnection;
export type Used = [HandlerContext, GrpcServer, Query, Reading, Summary, MeterHandlers];
export const helpers = [addMeterGrpcService, createMeterAmqpClient, createMeterGrpcClient, serveMeterAmqp, () => connection];
`;

// Must compile, under the pedantic flags too.
const accepted = `${prelude}
// A full implementation, typed as the interface: every method checked.
export const full: MeterHandlers = {
  latest: (query) => ({ sensor: query.sensor, value: 1 }),
  async *watch(query, context) {
    if (!context.signal.aborted) yield { sensor: query.sensor, value: 1 };
  },
  async record(readings) {
    let count = 0;
    let total = 0;
    for await (const reading of readings) {
      count++;
      total += reading.value;
    }
    return { count, total };
  },
  async *relay(readings) {
    for await (const reading of readings) yield reading;
  },
};
export const fullServers = [addMeterGrpcService(new GrpcServer(), full), serveMeterAmqp(connection, full)];

// Some methods only, as object literals: the others answer UNIMPLEMENTED.
export const grpcPartial = addMeterGrpcService(new GrpcServer(), { latest: (query) => ({ sensor: query.sensor, value: 2 }) });
export const amqpPartial = serveMeterAmqp(connection, {
  async *watch(query) {
    yield { sensor: query.sensor, value: 3 };
  },
});
export const nothing = addMeterGrpcService(new GrpcServer(), {});

// A partial implementation named as such, and a class with some of the methods.
export const relayOnly: Partial<MeterHandlers> = { relay: (readings) => readings };
class LatestOnly {
  latest(query: Query, _context: HandlerContext): Reading {
    return { sensor: query.sensor, value: 4 };
  }
}
export const fromVariables = [serveMeterAmqp(connection, relayOnly), addMeterGrpcService(new GrpcServer(), new LatestOnly())];

// The AMQP client has every call kind, as the gRPC one does.
async function* readings(): AsyncIterable<Reading> {
  yield { sensor: "a", value: 1 };
}
export async function callEveryKind(): Promise<number> {
  let sum = 0;
  for (const client of [createMeterAmqpClient(connection), createMeterGrpcClient("127.0.0.1:1")]) {
    const latest: Reading = await client.latest({ sensor: "a" });
    sum += latest.value;
    for await (const reading of client.watch({ sensor: "a" })) sum += reading.value;
    const summary: Summary = await client.record(readings());
    sum += summary.total;
    for await (const reading of client.relay(readings())) sum += reading.value;
  }
  return sum;
}
`;

// Must fail, each with the diagnostic that names the mistake.
const refused: Record<string, { code: string; says: RegExp; source: string }> = {
  "missing-method": {
    code: "TS2741",
    says: /Property 'relay' is missing in type .* but required in type 'MeterHandlers'/,
    source: `export const impl: MeterHandlers = {
  latest: (query) => ({ sensor: query.sensor, value: 1 }),
  async *watch(query) { yield { sensor: query.sensor, value: 1 }; },
  record: () => ({ count: 0, total: 0 }),
};`,
  },
  "full-wrong-signature": {
    code: "TS2322",
    says: /Type 'string' is not assignable to type 'number'/,
    source: `export const impl: MeterHandlers = {
  latest: (query) => ({ sensor: query.sensor, value: "high" }),
  async *watch(query) { yield { sensor: query.sensor, value: 1 }; },
  record: () => ({ count: 0, total: 0 }),
  relay: (readings) => readings,
};`,
  },
  "grpc-misspelt": {
    code: "TS2561",
    says: /Object literal may only specify known properties, but 'lastest' does not exist in type 'Partial<MeterHandlers>'\. Did you mean to write 'latest'\?/,
    source: `export const server = addMeterGrpcService(new GrpcServer(), {
  lastest: (query: Query) => ({ sensor: query.sensor, value: 1 }),
});`,
  },
  "amqp-misspelt": {
    code: "TS2561",
    says: /Object literal may only specify known properties, but 'wacth' does not exist in type 'Partial<MeterHandlers>'\. Did you mean to write 'watch'\?/,
    source: `export const server = serveMeterAmqp(connection, {
  latest: (query) => ({ sensor: query.sensor, value: 1 }),
  async *wacth(query: Query) { yield { sensor: query.sensor, value: 1 }; },
});`,
  },
  "grpc-wrong-signature": {
    code: "TS2322",
    says: /Type 'string' is not assignable to type 'Promise<Reading> \| Reading'/,
    source: `export const server = addMeterGrpcService(new GrpcServer(), { latest: (query) => query.sensor });`,
  },
  "amqp-wrong-call-kind": {
    code: "TS2322",
    says: /is not assignable to type '\(request: Query, context: HandlerContext\) => AsyncIterable<Reading>'/,
    source: `export const server = serveMeterAmqp(connection, { watch: async (query) => ({ sensor: query.sensor, value: 1 }) });`,
  },
  "nothing-in-common": {
    code: "TS2559",
    says: /Type 'Misspelt' has no properties in common with type 'Partial<MeterHandlers>'/,
    source: `class Misspelt {
  lastest(query: Query): Reading { return { sensor: query.sensor, value: 1 }; }
}
export const server = addMeterGrpcService(new GrpcServer(), new Misspelt());`,
  },
};

interface Diagnostic {
  file: string;
  code: string;
  text: string;
}

/** tsc's diagnostics, one per `file(line,col): error TSnnnn: text`, with continuation lines joined. */
function parseDiagnostics(output: string): Diagnostic[] {
  const found: Diagnostic[] = [];
  for (const line of output.split("\n")) {
    const head = /^(.+?)\(\d+,\d+\): error (TS\d+): (.*)$/.exec(line);
    if (head) found.push({ file: head[1]!, code: head[2]!, text: head[3]! });
    else if (found.length > 0 && /^\s+\S/.test(line))
      found[found.length - 1]!.text += ` ${line.trim()}`;
  }
  return found;
}

let out: string;
let generated: string;

beforeAll(() => {
  const dir = protoModule({ "meter/v1/meter.proto": proto });
  const result = generateModule(dir);
  expect(result.stderr).toBe("");
  out = result.out;
  generated = readFileSync(join(out, "meter/v1/meter.grabbit.ts"), "utf8");
});

describe("a service with every call kind, served over gRPC and RabbitMQ", () => {
  it("generates the AMQP client and server helpers beside the gRPC ones", () => {
    expect(generated).toContain(`requestQueue: "${requestQueue}"`);
    for (const kind of ["unary", "server_streaming", "client_streaming", "bidi_streaming"])
      expect(generated).toContain(`kind: "${kind}"`);
    expect(flat(generated)).toContain(
      "export function createMeterAmqpClient(connection: AmqpConnection, options?: AmqpRpcTransportOptions): MeterClient",
    );
    expect(flat(generated)).toContain(
      "export function serveMeterAmqp(connection: AmqpConnection, handlers: Partial<MeterHandlers>, options?: AmqpRpcServerOptions)",
    );
    expect(flat(generated)).toContain(
      "export function addMeterGrpcService(server: GrpcServer, handlers: Partial<MeterHandlers>): GrpcServer",
    );
  });

  it("type-checks: full and partial implementations, every call kind through both clients", () => {
    writeFileSync(join(out, "accepted.ts"), accepted);
    const diagnostics = parseDiagnostics(
      typeCheck(out, { pedantic: true, files: ["accepted.ts"] }),
    );
    // ts-proto's own files trip some pedantic flags; grabbit's and the case's must not.
    expect(
      diagnostics.filter((d) => d.file.includes("grabbit.ts") || d.file.includes("accepted.ts")),
    ).toEqual([]);
  });

  it("refuses a missing method in a full implementation, misspelt names and wrong signatures", () => {
    for (const [name, { source }] of Object.entries(refused))
      writeFileSync(join(out, `${name}.ts`), `${prelude}\n${source}\n`);
    const diagnostics = parseDiagnostics(
      typeCheck(out, { files: Object.keys(refused).map((name) => `${name}.ts`) }),
    );
    for (const [name, { code, says }] of Object.entries(refused)) {
      const own = diagnostics.filter((d) => d.file.endsWith(`${name}.ts`));
      expect(
        own.map((d) => d.code),
        name,
      ).toEqual([code]);
      expect(own[0]!.text, name).toMatch(says);
    }
    // Only the case files are wrong: the generated code itself compiles.
    expect(
      diagnostics.filter(
        (d) => !Object.keys(refused).some((name) => d.file.endsWith(`${name}.ts`)),
      ),
    ).toEqual([]);
  });
});

describe("a partial implementation at run time", () => {
  let g: any; // the generated meter.v1 code
  let connection: AmqpConnection | undefined;
  const server = new GrpcServer();

  beforeAll(async () => {
    g = await import(pathToFileURL(join(out, "meter/v1/meter.grabbit.ts")).href);
  });

  afterAll(async () => {
    await server.close({ graceMs: 1000 });
    await connection?.close();
  });

  async function* readings(): AsyncIterable<{ sensor: string; value: number }> {
    yield { sensor: "a", value: 1 };
  }

  it("answers UNIMPLEMENTED over gRPC for each method it leaves out, and serves the one it has", async () => {
    g.addMeterGrpcService(server, {
      latest: (query: { sensor: string }) => ({ sensor: query.sensor, value: 7 }),
    });
    const client = g.createMeterGrpcClient(`127.0.0.1:${await server.listen("127.0.0.1:0")}`);
    try {
      expect(await client.latest({ sensor: "a" })).toEqual({ sensor: "a", value: 7 });
      const unimplemented = { code: Code.UNIMPLEMENTED };
      await expect(
        (async () => {
          for await (const _ of client.watch({ sensor: "a" }))
            throw new Error("watch is not implemented, yet it sent a reading");
        })(),
      ).rejects.toMatchObject(unimplemented);
      await expect(client.record(readings())).rejects.toMatchObject(unimplemented);
      await expect(
        (async () => {
          for await (const _ of client.relay(readings()))
            throw new Error("relay is not implemented, yet it sent a reading");
        })(),
      ).rejects.toMatchObject(unimplemented);
    } finally {
      await client.close();
    }
  });

  it("answers UNIMPLEMENTED over RabbitMQ for a unary method it leaves out", async () => {
    connection = await AmqpConnection.connect({ urls: AMQP_URL, name: "generator-handlers" });
    const rpcServer = await g.serveMeterAmqp(connection, {
      relay: (requests: AsyncIterable<unknown>) => requests,
    });
    const client = g.createMeterAmqpClient(connection);
    try {
      await expect(client.latest({ sensor: "a" }, { timeoutMs: 10_000 })).rejects.toMatchObject({
        code: Code.UNIMPLEMENTED,
      });
    } finally {
      await client.close();
      await rpcServer.close();
      const channel = await (await connection.waitForSession()).createChannel();
      await channel.deleteQueue(requestQueue);
      await channel.deleteQueue(`${requestQueue}.dlq`);
      await channel.close();
    }
  });
});
