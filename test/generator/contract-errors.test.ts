// Wrong options fail generation with file:line:column and a sentence, never a stack trace, and
// every mistake in the request is reported at once.
import { describe, expect, it } from "vitest";
import { run } from "../../generator/plugin.js";
import { bufGenerate, bufRequest, protoModule, REPO } from "../support/buf.js";

const header = `syntax = "proto3";
package shop.v1;
import "grabbit/v1/options.proto";
`;

function errorsOf(body: string, parameter = ""): string {
  const dir = protoModule({ "shop/v1/shop.proto": header + body });
  const response = run(bufRequest(dir, parameter));
  expect(response.file).toHaveLength(0);
  return response.error ?? "";
}

describe("contract errors", () => {
  it("names an unknown placeholder with its position and the fields that would do", () => {
    const error = errorsOf(`
message OrderCreated {
  option (grabbit.v1.event) = {exchange: "shop", routing_key: "order.{regoin}.created"};
  string region = 1;
  string id = 2;
}
`);
    expect(error).toMatch(
      /^shop\/v1\/shop\.proto:6:50: event shop\.v1\.OrderCreated: routing key "order\.\{regoin\}\.created": \{regoin\} is not a field of shop\.v1\.OrderCreated \(scalar fields: region, id\)$/,
    );
  });

  it("refuses non-scalar placeholders", () => {
    const error = errorsOf(`
message Money { int64 units = 1; }
message Paid {
  option (grabbit.v1.event) = {exchange: "shop", routing_key: "paid.{amount}.{tags}.{blob}"};
  Money amount = 1;
  repeated string tags = 2;
  bytes blob = 3;
}
`);
    const lines = error.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain("shop/v1/shop.proto:7:50:");
    expect(lines[0]).toContain("{amount} is a message (shop.v1.Money) field");
    expect(lines[1]).toContain("{tags} is a repeated field");
    expect(lines[2]).toContain("{blob} is a bytes field");
  });

  it("requires an exchange, from the event or the file", () => {
    const error = errorsOf(`
message Shipped {
  option (grabbit.v1.event) = {routing_key: "shipped"};
  string id = 1;
}
`);
    expect(error).toMatch(
      /^shop\/v1\/shop\.proto:6:10: event shop\.v1\.Shipped has no exchange: set \(grabbit\.v1\.event\)\.exchange, or \(grabbit\.v1\.file\)\.exchange for the whole file$/,
    );
  });

  it("points at the single option line when the option is set field by field", () => {
    const error = errorsOf(`
message Shipped {
  option (grabbit.v1.event).exchange = "shop";
  option (grabbit.v1.event).routing_key = "shipped.{nope}";
  string id = 1;
}
`);
    expect(error).toMatch(/^shop\/v1\/shop\.proto:7:3: /);
  });

  it("refuses reserved and malformed exchange names", () => {
    expect(
      errorsOf(`message A { option (grabbit.v1.event) = {exchange: "amq.topic"}; string id = 1; }`),
    ).toContain('exchange names starting with "amq." are reserved');
    expect(
      errorsOf(`message A { option (grabbit.v1.event) = {exchange: "has space"}; string id = 1; }`),
    ).toContain('"has space" is not a valid exchange name');
  });

  it("refuses placeholders inside a word of a topic key, wildcards and broken braces", () => {
    expect(
      errorsOf(
        `message A { option (grabbit.v1.event) = {exchange: "s", routing_key: "a.x{id}"}; string id = 1; }`,
      ),
    ).toContain("{id} must be a whole word between dots");
    expect(
      errorsOf(
        `message A { option (grabbit.v1.event) = {exchange: "s", routing_key: "a.*.b"}; string id = 1; }`,
      ),
    ).toContain('"*" and "#" are wildcards');
    expect(
      errorsOf(
        `message A { option (grabbit.v1.event) = {exchange: "s", routing_key: "a.{id"}; string id = 1; }`,
      ),
    ).toContain('unbalanced "{" or "}"');
  });

  it("refuses placeholders on a fanout exchange", () => {
    const error = errorsOf(
      `message A { option (grabbit.v1.event) = {exchange: "s", exchange_kind: EXCHANGE_KIND_FANOUT, routing_key: "a.{id}"}; string id = 1; }`,
    );
    expect(error).toContain("a fanout exchange ignores routing keys");
  });

  it("reports conflicting declarations: one exchange with two kinds, one queue for two services", () => {
    const error = errorsOf(`
message A { option (grabbit.v1.event) = {exchange: "shared"}; string id = 1; }
message B { option (grabbit.v1.event) = {exchange: "shared", exchange_kind: EXCHANGE_KIND_DIRECT}; string id = 1; }
service One { option (grabbit.v1.service) = {transports: [TRANSPORT_AMQP], request_queue: "q"}; rpc Do(A) returns (B); }
service Two { option (grabbit.v1.service) = {transports: [TRANSPORT_AMQP], request_queue: "q"}; rpc Do(A) returns (B); }
`);
    expect(error).toContain('services shop.v1.One and shop.v1.Two both use request queue "q"');
    expect(error).toContain(
      'event shop.v1.B declares exchange "shared" as direct, but shop.v1.A (shop/v1/shop.proto:5) declares it as topic',
    );
  });

  it("refuses AMQP settings on a gRPC-only service, and nothing about streaming methods on an AMQP one", () => {
    const error = errorsOf(`
message A { string id = 1; }
service GrpcOnly { option (grabbit.v1.service) = {request_queue: "x", prefetch: 4}; rpc Do(A) returns (A); }
service Amqp {
  option (grabbit.v1.service) = {transports: [TRANSPORT_AMQP]};
  rpc Watch(A) returns (stream A);
  rpc Upload(stream A) returns (A);
  rpc Chat(stream A) returns (stream A);
}
`);
    expect(error.split("\n")).toEqual([
      "shop/v1/shop.proto:6:51: service shop.v1.GrpcOnly sets request_queue but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove request_queue",
      "shop/v1/shop.proto:6:71: service shop.v1.GrpcOnly sets prefetch but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove prefetch",
    ]);
  });

  it("refuses a queue_type on a gRPC-only service, at the queue_type line, and unknown queue types", () => {
    const error = errorsOf(`
message A { string id = 1; }
service GrpcOnly {
  option (grabbit.v1.service) = {
    transports: [TRANSPORT_GRPC]
    queue_type: QUEUE_TYPE_CLASSIC
  };
  rpc Do(A) returns (A);
}
service Defaulted {
  option (grabbit.v1.service).queue_type = QUEUE_TYPE_QUORUM;
  rpc Do(A) returns (A);
}
service Future {
  option (grabbit.v1.service) = {transports: [TRANSPORT_AMQP], queue_type: 7};
  rpc Do(A) returns (A);
}
service Fine {
  option (grabbit.v1.service) = {transports: [TRANSPORT_AMQP], queue_type: QUEUE_TYPE_CLASSIC};
  rpc Do(A) returns (A);
}
`);
    expect(error.split("\n")).toEqual([
      "shop/v1/shop.proto:9:5: service shop.v1.GrpcOnly sets queue_type but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove queue_type",
      // No transports at all: gRPC only, by default.
      "shop/v1/shop.proto:14:3: service shop.v1.Defaulted sets queue_type but is not served over AMQP: add TRANSPORT_AMQP to its transports or remove queue_type",
      "shop/v1/shop.proto:18:64: service shop.v1.Future: queue_type 7 is not QUEUE_TYPE_QUORUM or QUEUE_TYPE_CLASSIC",
    ]);
  });

  it("rejects unknown plugin options with the list of known ones", () => {
    const dir = protoModule({
      "shop/v1/shop.proto":
        header + "message A { string id = 1; }\nservice S { rpc Do(A) returns (A); }",
    });
    const response = run(bufRequest(dir, "import_extention=js"));
    expect(response.error).toBe(
      "unknown option \"import_extention\"; known options: messages, import_extension, runtime, ts_proto_file_suffix, file_suffix, asyncapi, asyncapi_title, asyncapi_version, mermaid, and those of the message library's plugin (ts-proto's, or protoc-gen-es's with messages=protobuf-es)",
    );
  });

  it("fails the real buf generate with the positions and no stack trace", () => {
    const dir = protoModule({
      "shop/v1/shop.proto":
        header +
        `message A { option (grabbit.v1.event) = {exchange: "s", routing_key: "{nope}"}; string id = 1; }\n`,
    });
    const result = bufGenerate(
      dir,
      `version: v2
plugins:
  - local: ["node", "${REPO}/bin/protoc-gen-grabbit.js"]
    out: gen
`,
    );
    expect(result.ok).toBe(false);
    expect(result.stderr).toContain(
      'shop/v1/shop.proto:4:57: event shop.v1.A: routing key "{nope}": {nope} is not a field of shop.v1.A (scalar fields: id)',
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
