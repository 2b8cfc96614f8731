// The whole release path against a real npm registry (verdaccio on loopback, started here): an SDK
// generated from a contract in a temporary git repo is released as 1.0.0, then 1.1.0 after a
// compatible change, then 2.0.0 after an incompatible one; the registry and the changelog say so; a
// fresh project installs 2.0.0 from the registry, compiles against it with strict tsc and makes a real
// gRPC call through the generated client, codec included.
import { execFileSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRelease, type ReleaseResult } from "../../governance/release/cli.js";
import { AMQP_URL, uniqueName } from "../support/broker.js";
import { REPO, scratchDir } from "../support/buf.js";
import { sh, startRegistry, type LoopbackRegistry } from "../support/registry.js";

const SDK = "@grabbit-sdk/orders";

let registry: string;
let loopback: LoopbackRegistry | undefined;
let home: string;
let repo: string;

const installed = (pkg: string) =>
  JSON.parse(readFileSync(join(REPO, "node_modules", pkg, "package.json"), "utf8"))
    .version as string;

async function release(
  args: string[],
): Promise<{ code: number; result?: ReleaseResult; err: string }> {
  let out = "";
  let err = "";
  const code = await runRelease([...args, "--format", "json"], {
    stdout: (s) => void (out += s),
    stderr: (s) => void (err += s),
    cwd: repo,
  });
  return { code, err, ...(code === 0 ? { result: JSON.parse(out) as ReleaseResult } : {}) };
}

const RELEASE = ["--package", "sdk", "--registry", "", "--tag-prefix", "orders-sdk-v"];
const releaseArgs = () => RELEASE.map((a) => (a === "" ? registry : a));

// Its own exchange, so that runs sharing a broker never see each other's events.
const EXCHANGE = uniqueName("release-shop-events");

const CONTRACT_V1 = `syntax = "proto3";

package shop.v1;

import "grabbit/v1/options.proto";

service OrdersService {
  option (grabbit.v1.service) = {
    transports: [TRANSPORT_GRPC]
  };
  rpc GetOrder(GetOrderRequest) returns (GetOrderResponse);
}

message GetOrderRequest {
  string id = 1;
}

message GetOrderResponse {
  string id = 1;
  int64 total_cents = 2;
  string note = 3;
}

message OrderPlaced {
  option (grabbit.v1.event) = {
    exchange: "${EXCHANGE}"
    routing_key: "order.{region}.placed"
  };
  string id = 1;
  string region = 2;
}
`;

// Compatible: a field and a message added.
const CONTRACT_V2 = CONTRACT_V1.replace(
  "  string region = 2;\n}",
  "  string region = 2;\n  int64 placed_at_ms = 3;\n}\n\nmessage OrderShipped {\n  string id = 1;\n}",
);
// Incompatible: a field deleted and an event's routing key renamed.
const CONTRACT_V3 = CONTRACT_V2.replace("  string note = 3;\n", "").replace(
  "order.{region}.placed",
  "orders.{region}.placed",
);

// Comment only: a patch.
const CONTRACT_V4 = CONTRACT_V3.replace(
  "message OrderShipped {",
  "// Sent when the parcel leaves the warehouse.\nmessage OrderShipped {",
);

// An addition, released as a prerelease.
const CONTRACT_V5 = CONTRACT_V4.replace(
  "message OrderShipped {\n  string id = 1;\n",
  "message OrderShipped {\n  string id = 1;\n  string carrier = 2;\n",
);

const lineOf = (text: string, needle: string) =>
  text.split("\n").findIndex((l) => l.includes(needle)) + 1;

function commit(contract: string, message: string): void {
  writeFileSync(join(repo, "proto/shop/v1/orders.proto"), contract);
  sh("git", ["add", "-A", "proto"], repo);
  sh(
    "git",
    ["-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-q", "-m", message],
    repo,
  );
}

beforeAll(async () => {
  // The plugin runs from grabbit's build, and the runtime is published from its build.
  if (!existsSync(join(REPO, "dist/generator")) || !existsSync(join(REPO, "runtime/dist/index.js")))
    sh("npm", ["run", "build"], REPO);

  loopback = await startRegistry("grabbit-registry");
  registry = loopback.url;
  home = loopback.home;

  // The SDK depends on @grabbit/runtime: the registry must serve it.
  const packs = join(home, "packs");
  mkdirSync(packs);
  const runtimeTgz = sh(
    "npm",
    ["pack", "--silent", "--ignore-scripts", "--pack-destination", packs],
    join(REPO, "runtime"),
  )
    .trim()
    .split("\n")
    .pop()!;
  sh(
    "npm",
    [
      "publish",
      join(packs, runtimeTgz),
      "--registry",
      registry,
      "--access",
      "public",
      "--ignore-scripts",
    ],
    home,
  );

  // The contract repo, inside grabbit's checkout so that its node_modules (buf, ts-proto, tsc, the
  // runtime) are the repo's tooling, as in a team's repo with grabbit installed.
  repo = scratchDir("release-repo");
  sh("git", ["init", "-q", "-b", "main"], repo);
  cpSync(join(REPO, "proto/grabbit"), join(repo, "proto/grabbit"), { recursive: true });
  mkdirSync(join(repo, "proto/shop/v1"), { recursive: true });
  writeFileSync(
    join(repo, "buf.yaml"),
    "version: v2\nmodules:\n  - path: proto\nbreaking:\n  use:\n    - FILE\n",
  );
  writeFileSync(join(repo, ".gitignore"), "sdk/\n");
  sh("git", ["add", "-A"], repo);
  commit(CONTRACT_V1, "contract v1");
}, 180_000);

afterAll(async () => {
  await loopback?.stop();
  if (repo) rmSync(repo, { recursive: true, force: true });
});

describe("grabbit release to a registry on loopback", () => {
  const versions = () =>
    JSON.parse(sh("npm", ["view", SDK, "versions", "--json", "--registry", registry], home)) as
      | string[]
      | string;

  it("publishes the first release as 1.0.0 with a changelog and the runtime as a dependency", async () => {
    const first = await release([...releaseArgs(), "--name", SDK]);
    expect(first.err).toBe("");
    expect(first.result).toMatchObject({
      name: SDK,
      previous: null,
      version: "1.0.0",
      bump: "initial",
      released: true,
      published: true,
      distTag: "latest",
      gitTag: "orders-sdk-v1.0.0",
    });
    sh("git", ["tag", first.result!.gitTag!], repo);

    const pkg = JSON.parse(readFileSync(join(repo, "sdk/package.json"), "utf8"));
    expect(pkg).toMatchObject({
      name: SDK,
      version: "1.0.0",
      type: "module",
      sideEffects: false,
      dependencies: {
        "@grabbit/runtime": `^${installed("@grabbit/runtime")}`,
        "@bufbuild/protobuf": `^${installed("@bufbuild/protobuf")}`,
      },
    });
    expect(pkg.exports["./*.js"]).toEqual({ types: "./dist/*.d.ts", default: "./dist/*.js" });
    expect(readFileSync(join(repo, "sdk/CHANGELOG.md"), "utf8")).toMatch(
      /^# Changelog\n[\s\S]*\n## 1\.0\.0 \(\d{4}-\d\d-\d\d\)\n\nFirst release of the generated SDK\.\n$/,
    );
    expect(existsSync(join(repo, "sdk/README.md"))).toBe(true);

    // What the registry serves: the tarball has the compiled ESM, the declarations and the changelog.
    const files = sh("tar", ["-tzf", first.result!.tarball!], repo).split("\n");
    expect(files).toEqual(
      expect.arrayContaining([
        "package/dist/shop/v1/orders.js",
        "package/dist/shop/v1/orders.d.ts",
        "package/dist/shop/v1/orders.grabbit.js",
        "package/dist/shop/v1/orders.grabbit.d.ts",
        "package/CHANGELOG.md",
        "package/README.md",
      ]),
    );
    expect(files.some((f) => f.endsWith(".tgz") || f.includes("tsconfig"))).toBe(false);
    expect(versions()).toEqual(expect.arrayContaining(["1.0.0"]));
  }, 120_000);

  it("refuses a second release without the previous contract, with a sentence", async () => {
    const r = await release(["--package", "sdk", "--registry", registry]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^grabbit release: @grabbit-sdk\/orders was released before \(1\.0\.0\): pass --against/,
    );
  }, 60_000);

  it("releases a compatible change (a field and a message added) as a minor version", async () => {
    commit(CONTRACT_V2, "contract v2: placed_at_ms, OrderShipped");
    const second = await release(releaseArgs());
    expect(second.err).toBe("");
    expect(second.result).toMatchObject({
      previous: "1.0.0",
      version: "1.1.0",
      bump: "minor",
      against: ".git#tag=orders-sdk-v1.0.0",
      published: true,
    });
    expect(second.result!.changes.map((c) => c.rule).sort()).toEqual([
      "FIELD_ADDED",
      "MESSAGE_ADDED",
    ]);
    sh("git", ["tag", second.result!.gitTag!], repo);

    const changelog = readFileSync(join(repo, "sdk/CHANGELOG.md"), "utf8");
    const entry = changelog.slice(changelog.indexOf("## 1.1.0"), changelog.indexOf("## 1.0.0"));
    expect(entry).toContain(
      "Minor release after 1.0.0: 2 contract changes against `.git#tag=orders-sdk-v1.0.0`.",
    );
    expect(entry).toContain(
      `### Added\n\n- \`FIELD_ADDED\` (\`proto/shop/v1/orders.proto:${lineOf(CONTRACT_V2, "placed_at_ms")}\`): Field "3" with name "placed_at_ms"`,
    );
    expect(entry).toContain(
      `- \`MESSAGE_ADDED\` (\`proto/shop/v1/orders.proto:${lineOf(CONTRACT_V2, "message OrderShipped")}\`): Message "OrderShipped" was added.`,
    );
    expect(entry).not.toContain("### Breaking changes");
    expect(changelog.indexOf("## 1.1.0")).toBeLessThan(changelog.indexOf("## 1.0.0"));
  }, 120_000);

  it("releases nothing when the contract did not change", async () => {
    const same = await release(releaseArgs());
    expect(same.result).toMatchObject({
      previous: "1.1.0",
      version: null,
      bump: "none",
      released: false,
      published: false,
    });
  }, 60_000);

  it("releases an incompatible change (a field deleted, a routing key renamed) as a major version", async () => {
    commit(CONTRACT_V3, "contract v3: note dropped, orders.{region}.placed");
    // A dry run first: it says what would happen and leaves the package and the registry alone.
    const dry = await release([...releaseArgs(), "--dry-run"]);
    expect(dry.result).toMatchObject({
      version: "2.0.0",
      bump: "major",
      released: false,
      published: false,
      tarball: null,
    });
    expect(JSON.parse(readFileSync(join(repo, "sdk/package.json"), "utf8")).version).toBe("1.1.0");

    const third = await release(releaseArgs());
    expect(third.err).toBe("");
    expect(third.result).toMatchObject({
      previous: "1.1.0",
      version: "2.0.0",
      bump: "major",
      published: true,
    });
    sh("git", ["tag", third.result!.gitTag!], repo);
    const changelog = readFileSync(join(repo, "sdk/CHANGELOG.md"), "utf8");
    const entry = changelog.slice(changelog.indexOf("## 2.0.0"), changelog.indexOf("## 1.1.0"));
    expect(entry).toContain("Major release after 1.1.0");
    expect(entry).toMatch(
      /### Breaking changes\n\n- `FIELD_NO_DELETE` \(`proto\/shop\/v1\/orders\.proto:\d+`\): Previously present field "3" with name "note" on message "GetOrderResponse" was deleted\./,
    );
    expect(entry).toContain(
      `- \`GRABBIT_EVENT_ROUTING_KEY_CHANGED\` (\`proto/shop/v1/orders.proto:${lineOf(CONTRACT_V3, "option (grabbit.v1.event)")}\`)`,
    );
    expect(entry).toContain('bound to "order.\\*.placed"');
    // Every release keeps its entry, newest first.
    expect([...changelog.matchAll(/^## (\S+)/gm)].map((m) => m[1])).toEqual([
      "2.0.0",
      "1.1.0",
      "1.0.0",
    ]);

    expect(versions()).toEqual(["1.0.0", "1.1.0", "2.0.0"]);
    expect(sh("npm", ["view", SDK, "version", "--registry", registry], home).trim()).toBe("2.0.0");
    const deps = JSON.parse(
      sh("npm", ["view", `${SDK}@2.0.0`, "dependencies", "--json", "--registry", registry], home),
    );
    expect(Object.keys(deps).sort()).toEqual(["@bufbuild/protobuf", "@grabbit/runtime"]);
  }, 180_000);

  it("releases by package name alone (as CI does): previous version and changelog come from the registry", async () => {
    commit(CONTRACT_V4, "contract v4: a comment");
    const fourth = await release([
      "--package",
      SDK,
      "--registry",
      registry,
      "--tag-prefix",
      "orders-sdk-v",
    ]);
    expect(fourth.err).toBe("");
    expect(fourth.result).toMatchObject({
      previous: "2.0.0",
      version: "2.0.1",
      bump: "patch",
      published: true,
      against: ".git#tag=orders-sdk-v2.0.0",
    });
    expect(fourth.result!.packageDir).toBe(
      join(repo, "node_modules/.cache/grabbit/release/grabbit-sdk-orders"),
    );
    // The checkout's package folder is not touched.
    expect(JSON.parse(readFileSync(join(repo, "sdk/package.json"), "utf8")).version).toBe("2.0.0");
    const extract = mkdtempSync(join(tmpdir(), "grabbit-sdk-tgz-"));
    try {
      sh("tar", ["-xzf", fourth.result!.tarball!, "-C", extract], repo);
      const changelog = readFileSync(join(extract, "package/CHANGELOG.md"), "utf8");
      expect([...changelog.matchAll(/^## (\S+)/gm)].map((m) => m[1])).toEqual([
        "2.0.1",
        "2.0.0",
        "1.1.0",
        "1.0.0",
      ]);
      expect(changelog).toContain(
        `### Documentation\n\n- \`COMMENT_CHANGED\` (\`proto/shop/v1/orders.proto:${lineOf(CONTRACT_V4, "message OrderShipped")}\`)`,
      );
    } finally {
      rmSync(extract, { recursive: true, force: true });
    }
    expect(versions()).toEqual(["1.0.0", "1.1.0", "2.0.0", "2.0.1"]);
  }, 120_000);

  it("publishes a prerelease under its own dist-tag, leaving latest alone", async () => {
    sh("git", ["tag", "orders-sdk-v2.0.1"], repo);
    commit(CONTRACT_V5, "contract v5: carrier");
    const beta = await release([
      "--package",
      SDK,
      "--registry",
      registry,
      "--tag-prefix",
      "orders-sdk-v",
      "--preid",
      "beta",
    ]);
    expect(beta.err).toBe("");
    expect(beta.result).toMatchObject({
      previous: "2.0.1",
      version: "2.1.0-beta.0",
      bump: "minor",
      distTag: "beta",
      published: true,
    });
    expect(
      JSON.parse(sh("npm", ["view", SDK, "dist-tags", "--json", "--registry", registry], home)),
    ).toEqual({ latest: "2.0.1", beta: "2.1.0-beta.0" });
  }, 120_000);

  it("stops with buf's diagnostics when the contract does not build", async () => {
    const broken = scratchDir("release-broken");
    try {
      mkdirSync(join(broken, "proto/shop/v1"), { recursive: true });
      writeFileSync(join(broken, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n");
      writeFileSync(
        join(broken, "proto/shop/v1/orders.proto"),
        'syntax = "proto3";\npackage shop.v1;\nmessage Order {\n  Missing item = 1;\n}\n',
      );
      let err = "";
      const code = await runRelease(
        ["--package", "sdk", "--name", "@grabbit-sdk/broken", "--dry-run"],
        { stdout: () => {}, stderr: (s) => void (err += s), cwd: broken },
      );
      expect(code).toBe(1);
      expect(err).toMatch(
        /^grabbit release: buf generate \. failed \(exit \d+\):\n[^\n]*shop\/v1\/orders\.proto:4:3:[^\n]*Missing/,
      );
      // A dry run leaves nothing behind.
      expect(existsSync(join(broken, "sdk"))).toBe(false);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  }, 60_000);

  it("installs in a fresh project from the registry, compiles strict, calls it over gRPC and through RabbitMQ", () => {
    const app = mkdtempSync(join(tmpdir(), "grabbit-sdk-consumer-"));
    try {
      // The SDK and the runtime come from the loopback registry; everything else from npm's default.
      writeFileSync(
        join(app, ".npmrc"),
        `@grabbit-sdk:registry=${registry}\n@grabbit:registry=${registry}\n`,
      );
      writeFileSync(
        join(app, "package.json"),
        JSON.stringify({ name: "orders-consumer", private: true, type: "module" }, null, 2),
      );
      sh(
        "npm",
        [
          "install",
          "--no-audit",
          "--no-fund",
          "--prefer-offline",
          `${SDK}@2.0.0`,
          `typescript@${installed("typescript")}`,
          `@types/node@${installed("@types/node")}`,
        ],
        app,
      );
      const lock = JSON.parse(readFileSync(join(app, "package-lock.json"), "utf8"));
      // The very tarballs the loopback registry holds (npm leaves "resolved" out for scoped registries).
      const integrity = (spec: string) =>
        sh("npm", ["view", spec, "dist.integrity", "--registry", registry], home).trim();
      expect(lock.packages[`node_modules/${SDK}`]).toMatchObject({
        version: "2.0.0",
        integrity: integrity(`${SDK}@2.0.0`),
      });
      expect(lock.packages["node_modules/@grabbit/runtime"].integrity).toBe(
        integrity(`@grabbit/runtime@${installed("@grabbit/runtime")}`),
      );
      expect(readFileSync(join(app, "node_modules", SDK, "CHANGELOG.md"), "utf8")).toContain(
        "## 2.0.0",
      );

      writeFileSync(
        join(app, "tsconfig.json"),
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
      mkdirSync(join(app, "src"));
      writeFileSync(
        join(app, "src/main.ts"),
        `import { AmqpConnection } from "@grabbit/runtime/amqp";
import { GrpcServer } from "@grabbit/runtime/grpc";
import {
  OrderPlacedConsumer, OrderPlacedPublisher, addOrdersGrpcService, createOrdersGrpcClient, type OrdersHandlers,
} from "@grabbit-sdk/orders/shop/v1/orders.grabbit.js";
import { GetOrderResponse, OrderPlaced } from "@grabbit-sdk/orders/shop/v1/orders.js";
// The same module without its extension (the "./*" export).
import { OrderShipped } from "@grabbit-sdk/orders/shop/v1/orders";

// 2.0.0 dropped "note": the compiler must say so.
// @ts-expect-error note was deleted from GetOrderResponse
const stale: GetOrderResponse = { id: "x", totalCents: 0, note: "gone" };
void stale;

const placed = OrderPlaced.decode(OrderPlaced.encode(OrderPlaced.fromPartial({ id: "o-1", region: "eu", placedAtMs: 1700000000000 })).finish());

const handlers: OrdersHandlers = {
  getOrder: async (request, context) => GetOrderResponse.fromPartial({ id: \`\${request.id} via \${context.transport}\`, totalCents: 4200 }),
};
const server = new GrpcServer();
addOrdersGrpcService(server, handlers);
const port = await server.listen("127.0.0.1:0");
const client = createOrdersGrpcClient(\`127.0.0.1:\${port}\`);
const reply = await client.getOrder({ id: "o-1" });
await client.close();
await server.close({ graceMs: 1000 });
const shipped = OrderShipped.decode(OrderShipped.encode({ id: "o-1" }).finish());

// An event through the broker on 2.0.0's routing key (orders.{region}.placed), filtered by region.
const queue = process.env.QUEUE!;
const connection = await AmqpConnection.connect(process.env.AMQP_URL);
const consumer = new OrderPlacedConsumer(connection, { queue, filter: { region: "eu" } });
let deliver!: (event: OrderPlaced) => void;
const delivered = new Promise<OrderPlaced>((resolve) => (deliver = resolve));
await consumer.start(async (event) => deliver(event));
const publisher = new OrderPlacedPublisher(connection);
await publisher.publish(OrderPlaced.fromPartial({ id: "o-2", region: "eu", placedAtMs: 5 }));
const event = await delivered;
await consumer.close();
await publisher.close();
const channel = await (await connection.waitForSession()).createChannel();
await channel.deleteQueue(queue);
await channel.deleteQueue(\`\${queue}.dlq\`).catch(() => undefined);
await channel.deleteExchange(${JSON.stringify(EXCHANGE)}).catch(() => undefined);
await connection.close();

console.log(JSON.stringify({ placed, reply, shipped, event }));
// Everything is closed, but the runtime's publisher leaves its confirm-deadline timer armed after the
// last confirm (a ref'd timer, up to 30 s): exit rather than wait for it.
process.exit(0);
`,
      );
      sh(join(app, "node_modules/.bin/tsc"), ["-p", app], app);
      const output = execFileSync(process.execPath, [join(app, "dist/main.js")], {
        cwd: app,
        encoding: "utf8",
        env: { ...process.env, AMQP_URL, QUEUE: uniqueName("release-orders-placed") },
      });
      expect(JSON.parse(output.trim().split("\n").pop()!)).toEqual({
        placed: { id: "o-1", region: "eu", placedAtMs: 1700000000000 },
        reply: { id: "o-1 via grpc", totalCents: 4200 },
        shipped: { id: "o-1" },
        event: { id: "o-2", region: "eu", placedAtMs: 5 },
      });
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  }, 180_000);
});
