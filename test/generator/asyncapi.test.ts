// The plugin's AsyncAPI 3.0 document validates with the real AsyncAPI parser and says what the
// wire contract says; the Mermaid diagram names every exchange, routing key and request queue.
import { join } from "node:path";
import { Parser } from "@asyncapi/parser";
import { describe, expect, it } from "vitest";
import { run } from "../../generator/plugin.js";
import { bufRequest, FIXTURES, protoModule, REPO } from "../support/buf.js";

function generate(dir: string, parameter: string, only?: (f: string) => boolean) {
  const response = run(bufRequest(dir, parameter, only));
  expect(response.error ?? "").toBe("");
  return Object.fromEntries(response.file.map((f) => [f.name, f.content]));
}

describe("AsyncAPI document", () => {
  it("validates with @asyncapi/parser for the example system and for every fixture", async () => {
    const parser = new Parser();
    for (const [dir, only] of [
      [join(REPO, "proto"), (f: string) => f.startsWith("example/")],
      [FIXTURES, undefined],
    ] as const) {
      const files = generate(dir, "asyncapi,asyncapi_title=Example,asyncapi_version=1.2.3", only);
      const { document, diagnostics } = await parser.parse(files["asyncapi.json"]!);
      const errors = diagnostics
        .filter((d) => d.severity === 0)
        .map((d) => `${d.path.join(".")}: ${d.message}`);
      expect(errors).toEqual([]);
      expect(document).toBeDefined();
    }
  });

  it("describes events, their exchanges and routing keys, and RPC request/reply", async () => {
    const files = generate(join(REPO, "proto"), "asyncapi", (f) => f.startsWith("example/"));
    const doc = JSON.parse(files["asyncapi.json"]!);
    const reported = doc.channels["event.example.v1.RequestReported"];
    expect(reported.address).toBe("report.{decision}.{region}");
    expect(reported.bindings.amqp.exchange).toMatchObject({
      name: "example.reports",
      type: "topic",
      durable: true,
    });
    expect(reported.parameters.decision.enum).toEqual([
      "DECISION_UNSPECIFIED",
      "DECISION_APPROVED",
      "DECISION_DENIED",
    ]);
    expect(doc.operations["publish.example.v1.RequestReported"].bindings.amqp).toMatchObject({
      deliveryMode: 2,
      mandatory: true,
    });

    const requests = doc.channels["rpc.example.v1.RequestProcessorService"];
    expect(requests.address).toBe("example.v1.RequestProcessorService");
    const op = doc.operations["example.v1.RequestProcessorService.ProcessRequest"];
    expect(op.reply.address.location).toBe("$message.header#/reply_to");
    const request =
      doc.components.messages["example.v1.RequestProcessorService.ProcessRequest.request"];
    expect(request.headers.properties["rpc-method"].const).toBe(
      "/example.v1.RequestProcessorService/ProcessRequest",
    );
    expect(request.contentType).toBe("application/x-protobuf");
    // The gRPC-only Bridge has no messaging channels.
    expect(Object.keys(doc.channels).some((k) => k.includes("BridgeService"))).toBe(false);
    // Payload schemas follow the fields, with proto3 JSON names and well-known types mapped.
    expect(doc.components.schemas["example.v1.RequestReported"].properties).toMatchObject({
      requestId: { type: "string" },
      amountCents: { type: "string", format: "int64" },
      decidedAt: { type: "string", format: "date-time" },
    });
  });

  it("names the request queue type the contract fixes, in the queue binding and the description, and validates", async () => {
    const files = generate(FIXTURES, "asyncapi");
    const { diagnostics } = await new Parser().parse(files["asyncapi.json"]!);
    expect(
      diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join(".")}: ${d.message}`),
    ).toEqual([]);
    const doc = JSON.parse(files["asyncapi.json"]!);
    const classic = doc.channels["rpc.kitchen.v1.AmqpOnly"];
    expect(classic.bindings.amqp.queue).toEqual({
      name: "kitchen.v1.AmqpOnly",
      durable: true,
      exclusive: false,
      autoDelete: false,
      vhost: "/",
      "x-queue-type": "classic",
    });
    expect(classic.description).toContain("declares it as a classic queue (x-queue-type classic)");
    expect(doc.channels["rpc.legacy.v1.Desk"].bindings.amqp.queue["x-queue-type"]).toBe("quorum");
    // Unspecified: no type in the binding; the description says what the servers do instead.
    const auto = doc.channels["rpc.kitchen.v1.OrdersService"];
    expect(auto.bindings.amqp.queue).not.toHaveProperty("x-queue-type");
    expect(auto.description).toContain(
      "quorum queue where the broker supports it, classic otherwise",
    );
  });

  it("says that a streaming method's request only opens the stream, and still validates", async () => {
    const dir = protoModule({
      "meter/v1/meter.proto": `syntax = "proto3";
package meter.v1;
import "grabbit/v1/options.proto";
message Query { string sensor = 1; }
service Meter {
  option (grabbit.v1.service) = {transports: [TRANSPORT_AMQP]};
  // The latest reading.
  rpc Latest(Query) returns (Query);
  // Every reading from now on.
  rpc Watch(Query) returns (stream Query);
  rpc Record(stream Query) returns (Query);
  rpc Relay(stream Query) returns (stream Query);
}
`,
    });
    const files = generate(dir, "asyncapi");
    const { diagnostics } = await new Parser().parse(files["asyncapi.json"]!);
    expect(
      diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join(".")}: ${d.message}`),
    ).toEqual([]);
    const doc = JSON.parse(files["asyncapi.json"]!);
    const description = (method: string) => doc.operations[`meter.v1.Meter.${method}`].description;
    expect(description("Latest")).toBe("The latest reading.");
    expect(description("Watch")).toMatch(
      /^Every reading from now on\. Server-streaming call: the request opens the stream, .*wire contract/,
    );
    expect(description("Record")).toMatch(/^Client-streaming call: the request opens the stream/);
    expect(description("Relay")).toMatch(
      /^Bidirectional streaming call: the request opens the stream/,
    );
    expect(doc.components.messages["meter.v1.Meter.Watch.request"].description).toContain(
      "Server-streaming call",
    );
    expect(doc.components.messages["meter.v1.Meter.Latest.request"].description).not.toContain(
      "stream",
    );
  });
});

describe("Mermaid topology", () => {
  it("draws exchanges, routing and binding keys, request queues and gRPC-only services", () => {
    const files = generate(join(REPO, "proto"), "mermaid", (f) => f.startsWith("example/"));
    const text = files["topology.mmd"]!;
    expect(text.split("\n")[1]).toBe("flowchart LR");
    expect(text).toContain('x_example_reports{"example.reports<br/>topic exchange"}');
    expect(text).toContain(
      'e_example_v1_RequestReported -- "report.{decision}.{region}" --> x_example_reports',
    );
    expect(text).toContain('x_example_reports -. "report.*.*" .->');
    expect(text).toContain(
      'rq_example_v1_RequestProcessorService[("example.v1.RequestProcessorService<br/>request queue")]',
    );
    expect(text).toContain(
      's_example_v1_BridgeService[["example.v1.BridgeService<br/>gRPC: NotifyRequestDone"]]',
    );
  });

  it("labels a request queue with the type the contract fixes", () => {
    const text = generate(FIXTURES, "mermaid")["topology.mmd"]!;
    expect(text).toContain(
      'rq_kitchen_v1_AmqpOnly[("kitchen.v1.AmqpOnly<br/>classic request queue")]',
    );
    expect(text).toContain('rq_legacy_v1_Desk[("legacy.v1.Desk<br/>quorum request queue")]');
    expect(text).toContain('rq_kitchen_v1_OrdersService[("kitchen.orders.rpc<br/>request queue")]');
  });
});
