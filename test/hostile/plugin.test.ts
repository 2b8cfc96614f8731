// Hostile input to the plugin: a request built by the real buf from a small contract, then its
// grabbit options replaced with random values (templates made of placeholders, braces and junk,
// unknown enum numbers, empty or huge names, out-of-range numbers) or with raw bytes that are not a
// valid option message at all; and random plugin parameters. run() must never throw: it produces
// files, or an error whose every line is `file:line:column: message`.
import { clone, create, setExtension } from "@bufbuild/protobuf";
import {
  CodeGeneratorRequestSchema,
  MessageOptionsSchema,
  MethodOptionsSchema,
  ServiceOptionsSchema,
  FileOptionsSchema as DescFileOptionsSchema,
  type CodeGeneratorRequest,
} from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import * as opts from "../../generator/gen/grabbit/v1/options_pb.js";
import { run } from "../../generator/plugin.js";
import { bufRequest, protoModule } from "../support/buf.js";
import { runs, tally } from "./support.js";

const PROTO = `syntax = "proto3";
package shop.v1;
import "grabbit/v1/options.proto";
option (grabbit.v1.file) = {exchange: "shop"};

message Money { int64 units = 1; }
message OrderCreated {
  option (grabbit.v1.event) = {exchange: "shop", routing_key: "order.{region}.created"};
  string region = 1;
  string id = 2;
  int32 qty = 3;
  Money total = 4;
  repeated string tags = 5;
  bytes blob = 6;
}
message GetReq { string id = 1; }
message GetRes { string id = 1; }
service Orders {
  option (grabbit.v1.service) = {transports: [TRANSPORT_GRPC, TRANSPORT_AMQP]};
  rpc Get(GetReq) returns (GetRes) { option (grabbit.v1.method) = {timeout_ms: 100}; }
}
`;

let base: CodeGeneratorRequest;
beforeAll(() => {
  base = bufRequest(protoModule({ "shop/v1/shop.proto": PROTO }));
  // The unmutated request generates: what follows tests the mutations, not a broken fixture.
  expect(run(base).error ?? "").toBe("");
});

const LOCATED = /^shop\/v1\/shop\.proto:\d+:\d+: \S.*$/;

const name = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("shop", "orders.v1", "billing-events", "a:b_c") },
  fc.string({ maxLength: 20 }),
  fc.constantFrom(
    "",
    " ",
    "amq.topic",
    "amq.gen-x",
    "a".repeat(300),
    "with space",
    "ünïcødé",
    "a/b",
    "\u0000",
    "shop",
  ),
);
const template = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom("order.{region}.created", "order.{id}", "{region}.{qty}", "fixed"),
  },
  fc
    .array(
      fc.oneof(
        fc.constantFrom(
          "{region}",
          "{id}",
          "{qty}",
          "{total}",
          "{tags}",
          "{blob}",
          "{nope}",
          "{",
          "}",
          "{}",
          "{{region}}",
          "{ region }",
          ".",
          "*",
          "#",
          "..",
          "order",
        ),
        fc.string({ maxLength: 6 }),
      ),
      { maxLength: 8 },
    )
    .map((parts) => parts.join("")),
);
const enumNumber = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 4 }) },
  fc.integer({ min: -3, max: 1000 }),
);
const uint = fc.oneof(fc.nat({ max: 10_000 }), fc.constantFrom(0, 1, 2 ** 31 - 1, 2 ** 32 - 1));

const mutation = fc.record(
  {
    event: fc.record({
      exchange: name,
      exchangeKind: enumNumber,
      routingKey: template,
      persistent: fc.option(fc.boolean(), { nil: undefined }),
    }),
    eventOn: fc.constantFrom(1, 2, 3), // which message carries the event option: OrderCreated, or also Money / GetReq
    service: fc.record({
      transports: fc.array(enumNumber, { maxLength: 4 }),
      requestQueue: name,
      prefetch: uint,
      timeoutMs: uint,
    }),
    method: fc.record({ timeoutMs: uint, idempotent: fc.boolean() }),
    file: fc.record({
      exchange: name,
      exchangeKind: enumNumber,
      transports: fc.array(enumNumber, { maxLength: 3 }),
      queuePrefix: name,
      prefetch: uint,
      timeoutMs: uint,
    }),
    /** Raw bytes in place of one of the option messages. */
    garbage: fc.option(
      fc.record({
        target: fc.constantFrom("event", "service", "method", "file"),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }),
      }),
      { nil: undefined },
    ),
  },
  { requiredKeys: [] },
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(m: Mutation): CodeGeneratorRequest {
  const req = clone(CodeGeneratorRequestSchema, base);
  const file = req.protoFile.find((f) => f.name === "shop/v1/shop.proto")!;
  const msg = (n: string) => file.messageType.find((x) => x.name === n)!;
  if (m.event) {
    const targets = ["OrderCreated", "Money", "GetReq"].slice(0, m.eventOn ?? 1);
    for (const t of targets) {
      const d = msg(t);
      d.options ??= create(MessageOptionsSchema);
      setExtension(d.options, opts.event, create(opts.EventOptionsSchema, m.event as never));
    }
  }
  const svc = file.service[0]!;
  if (m.service)
    setExtension(
      (svc.options ??= create(ServiceOptionsSchema)),
      opts.service,
      create(opts.ServiceOptionsSchema, m.service as never),
    );
  if (m.method)
    setExtension(
      (svc.method[0]!.options ??= create(MethodOptionsSchema)),
      opts.method,
      create(opts.MethodOptionsSchema, m.method),
    );
  if (m.file)
    setExtension(
      (file.options ??= create(DescFileOptionsSchema)),
      opts.file,
      create(opts.FileOptionsSchema, m.file as never),
    );
  if (m.garbage) {
    const { target, bytes } = m.garbage;
    const holder =
      target === "event"
        ? msg("OrderCreated").options
        : target === "service"
          ? svc.options
          : target === "method"
            ? svc.method[0]!.options
            : file.options;
    const no = { file: 51730, event: 51731, service: 51732, method: 51733 }[target];
    if (holder) {
      // Replace whatever is there with a length-delimited field of random bytes under the extension's number.
      const unknown = (
        (holder as { $unknown?: { no: number; wireType: number; data: Uint8Array }[] }).$unknown ??
        []
      ).filter((u) => u.no !== no);
      const len = bytes.length;
      const data = new Uint8Array([...varint((no << 3) | 2), ...varint(len), ...bytes]);
      unknown.push({ no, wireType: 2, data });
      (holder as { $unknown?: unknown }).$unknown = unknown;
    }
  }
  return req;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

describe("plugin under hostile options", () => {
  it("random option values and malformed option bytes: files, or file:line:column errors, never a throw", () => {
    const outcomes = { generated: 0, rejected: 0 };
    let lines = 0;
    fc.assert(
      fc.property(mutation, (m) => {
        const req = mutate(m);
        let response: ReturnType<typeof run>;
        try {
          response = run(req);
        } catch (err) {
          throw new Error(
            `run() threw for ${JSON.stringify(m)}: ${err instanceof Error ? err.stack : String(err)}`,
          );
        }
        if (!response.error) {
          expect(response.file.length).toBeGreaterThan(0);
          outcomes.generated++;
        } else {
          expect(response.file).toHaveLength(0);
          for (const line of response.error.split("\n")) expect(line).toMatch(LOCATED);
          lines += response.error.split("\n").length;
          outcomes.rejected++;
        }
      }),
      runs(400),
    );
    tally("plugin option mutations", outcomes.generated + outcomes.rejected, {
      ...outcomes,
      errorLines: lines,
    });
    expect(outcomes.rejected).toBeGreaterThan(0);
  });

  it.each(["event", "service", "method", "file"] as const)(
    "an undecodable (grabbit.v1.%s) option is a located error, not a crash",
    (target) => {
      const response = run(mutate({ garbage: { target, bytes: new Uint8Array([0]) } }));
      expect(response.error).toMatch(
        new RegExp(
          `^shop/v1/shop\\.proto:\\d+:\\d+: the \\(grabbit\\.v1\\.${target}\\) option of \\S+ cannot be decoded: `,
        ),
      );
    },
  );

  it("random plugin parameters: generated, or one sentence naming the option, never a throw", () => {
    const outcomes = { generated: 0, rejected: 0 };
    const key = fc.oneof(
      fc.constantFrom(
        "import_extension",
        "runtime",
        "ts_proto_file_suffix",
        "file_suffix",
        "asyncapi",
        "asyncapi_title",
        "asyncapi_version",
        "mermaid",
      ),
      fc.string({ maxLength: 12 }),
    );
    const parameter = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc
        .array(fc.tuple(key, fc.option(fc.string({ maxLength: 16 }), { nil: undefined })), {
          maxLength: 5,
        })
        .map((pairs) => pairs.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join(",")),
    );
    fc.assert(
      fc.property(parameter, (p) => {
        const req = clone(CodeGeneratorRequestSchema, base);
        req.parameter = p;
        let response: ReturnType<typeof run>;
        try {
          response = run(req);
        } catch (err) {
          throw new Error(
            `run() threw for parameter ${JSON.stringify(p)}: ${err instanceof Error ? err.stack : String(err)}`,
          );
        }
        if (!response.error) outcomes.generated++;
        else {
          expect(response.error).toMatch(/option|parameter/i);
          expect(response.error).not.toMatch(/\n\s+at /); // no stack
          outcomes.rejected++;
        }
      }),
      runs(300),
    );
    tally("plugin parameters", outcomes.generated + outcomes.rejected, outcomes);
  });
});
