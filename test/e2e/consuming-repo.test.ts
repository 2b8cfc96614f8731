// What a team does on day one, from packed tarballs: install grabbit and the runtime into a fresh
// repo, `npx grabbit init`, `npx buf generate`, type-check strict with the repo's own tsc, then run
// the generated code over gRPC, RPC over RabbitMQ and events against the real broker. Once per
// message library: ts-proto (the default) and protobuf-es (`grabbit init --messages protobuf-es`).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { REPO } from "../support/buf.js";

const version = (pkg: string) =>
  JSON.parse(readFileSync(join(REPO, "node_modules", pkg, "package.json"), "utf8"))
    .version as string;

let packs: { tool: string; runtime: string };

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    return execFileSync(cmd, args, {
      cwd,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(" ")} failed:\n${e.stdout ?? ""}\n${e.stderr ?? e.message}`,
    );
  }
}

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), "grabbit-packs-"));
  const packed = (from: string) =>
    join(
      dir,
      sh("npm", ["pack", "--silent", "--pack-destination", dir], from).trim().split("\n").pop()!,
    );
  packs = { tool: packed(REPO), runtime: packed(join(REPO, "runtime")) };
}, 600_000);

type Library = "ts-proto" | "protobuf-es";

/** What differs per library: the plugin installed beside grabbit, init's flag, the app's message code. */
const LIBRARIES: Record<
  Library,
  {
    plugin: string;
    init: string[];
    messagesModule: string;
    imports: string;
    reply: string;
    event: (fields: string) => string;
  }
> = {
  "ts-proto": {
    plugin: `ts-proto@${version("ts-proto")}`,
    init: [],
    messagesModule: "hello.js",
    imports: "Greeted, SayHelloResponse",
    reply: "SayHelloResponse.fromPartial({ greeting })",
    event: (fields) => `Greeted.fromPartial(${fields})`,
  },
  // protobuf-es users write plain object literals (init shapes); handlers get message shapes.
  "protobuf-es": {
    plugin: `@bufbuild/protoc-gen-es@${version("@bufbuild/protoc-gen-es")}`,
    init: ["--messages", "protobuf-es"],
    messagesModule: "hello_pb.js",
    imports: "type Greeted",
    reply: "({ greeting })",
    event: (fields) => fields,
  },
};

describe.each(Object.keys(LIBRARIES) as Library[])("a consuming repo on %s", (library) => {
  const lib = LIBRARIES[library];
  let repo: string;

  beforeAll(() => {
    repo = mkdtempSync(join(tmpdir(), "grabbit-consumer-"));
    writeFileSync(
      join(repo, "package.json"),
      JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2),
    );
    sh(
      "npm",
      [
        "install",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        packs.runtime,
        `@bufbuild/protobuf@${version("@bufbuild/protobuf")}`,
      ],
      repo,
    );
    sh(
      "npm",
      [
        "install",
        "--save-dev",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        packs.tool,
        lib.plugin,
        `@bufbuild/buf@${version("@bufbuild/buf")}`,
        `typescript@${version("typescript")}`,
        `@types/node@${version("@types/node")}`,
      ],
      repo,
    );
  }, 600_000);

  it("is set up by grabbit init and generates code that type-checks strict under NodeNext", () => {
    const init = sh("npx", ["grabbit", "init", ...lib.init], repo);
    expect(init).toContain("wrote buf.gen.yaml");
    expect(existsSync(join(repo, "proto/grabbit/v1/options.proto"))).toBe(true);
    // A second run keeps what is there.
    expect(sh("npx", ["grabbit", "init", ...lib.init], repo)).toContain(
      "kept  buf.gen.yaml (already there)",
    );

    sh("npx", ["buf", "generate"], repo);
    expect(existsSync(join(repo, "src/gen/hello/v1/hello.grabbit.ts"))).toBe(true);
    expect(
      existsSync(
        join(repo, "src/gen/hello/v1", library === "protobuf-es" ? "hello_pb.ts" : "hello.ts"),
      ),
    ).toBe(true);

    writeFileSync(
      join(repo, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          outDir: "dist",
          rootDir: "src",
          skipLibCheck: false,
          types: ["node"],
        },
        include: ["src"],
      }),
    );
    sh("npx", ["tsc", "--noEmit"], repo);
  }, 300_000);

  it("runs the generated code over gRPC, RPC over RabbitMQ and events", () => {
    const queue = uniqueName("e2e-greeted");
    writeFileSync(
      join(repo, "src/main.ts"),
      `import { AmqpConnection } from "@grabbit/runtime/amqp";
import { GrpcServer } from "@grabbit/runtime/grpc";
import {
  type GreeterHandlers, addGreeterGrpcService, createGreeterGrpcClient, serveGreeterAmqp, createGreeterAmqpClient,
  GreetedPublisher, GreetedConsumer,
} from "./gen/hello/v1/hello.grabbit.js";
import { ${lib.imports} } from "./gen/hello/v1/${lib.messagesModule}";

const handlers: GreeterHandlers = {
  sayHello: async (request, context) => {
    const greeting = \`hello \${request.name} over \${context.transport}\`;
    return ${lib.reply};
  },
};

const server = new GrpcServer();
addGreeterGrpcService(server, handlers);
const port = await server.listen("127.0.0.1:0");
const grpcClient = createGreeterGrpcClient(\`127.0.0.1:\${port}\`);
const overGrpc = await grpcClient.sayHello({ name: "ada" });

const connection = await AmqpConnection.connect(process.env.AMQP_URL);
const rpcServer = await serveGreeterAmqp(connection, handlers);
const overAmqp = await createGreeterAmqpClient(connection).sayHello({ name: "bob" }, { timeoutMs: 10000 });

const consumer = new GreetedConsumer(connection, { queue: ${JSON.stringify(queue)}, filter: { language: "en" } });
const received: Greeted[] = [];
let firstReceived!: () => void;
const done = new Promise<void>((resolve) => (firstReceived = resolve));
// start() resolves once the queue is declared and bound: the publishes below have a route.
await consumer.start(async (event) => {
  received.push(event);
  if (received.length === 1) firstReceived();
});
const publisher = new GreetedPublisher(connection);
await publisher.publish(${lib.event(`{ name: "cy", language: "fr" }`)}).catch((e: Error) => e.name);
await publisher.publish(${lib.event(`{ name: "dee", language: "en" }`)});
await done;

console.log(JSON.stringify({ overGrpc: overGrpc.greeting, overAmqp: overAmqp.greeting, received: received.map((e) => e.name) }));
await consumer.close();
await rpcServer.close();
const session = await connection.waitForSession();
const channel = await session.createChannel();
await channel.deleteQueue(${JSON.stringify(queue)});
await channel.deleteQueue(${JSON.stringify(queue + ".dlq")}).catch(() => undefined);
await connection.close();
await server.close({ graceMs: 1000 });
`,
    );
    sh("npx", ["tsc"], repo);
    const output = sh("node", ["dist/main.js"], repo, { AMQP_URL });
    const result = JSON.parse(output.trim().split("\n").pop()!);
    expect(result).toEqual({
      overGrpc: "hello ada over grpc",
      overAmqp: "hello bob over amqp",
      received: ["dee"],
    });
  }, 120_000);
});
