// The plugin binary reads its request with readRequest (generator/request.ts), decoding only the
// files that can produce output and what they import, and source code info only when read. What it
// writes must be exactly what decoding the whole request gives: same files, same bytes, same errors.
import { join } from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import {
  type CodeGeneratorRequest,
  CodeGeneratorRequestSchema,
  CodeGeneratorResponseSchema,
} from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { run, runLean } from "../../generator/plugin.js";
import { readRequest } from "../../generator/request.js";
import { bufRequest, FIXTURES, protoModule, REPO } from "../support/buf.js";

function both(request: CodeGeneratorRequest) {
  const whole = run(request);
  const lean = runLean(readRequest(toBinary(CodeGeneratorRequestSchema, request)));
  return { whole, lean };
}

describe("reading the request lazily", () => {
  it("gives the same response, byte for byte, for every fixture and the example, with AsyncAPI and Mermaid", () => {
    for (const [dir, only] of [
      [join(REPO, "proto"), (f: string) => f.startsWith("example/")],
      [FIXTURES, undefined],
    ] as const) {
      for (const parameter of ["", "asyncapi,mermaid", "outputServices=none,file_suffix=.g"]) {
        const { whole, lean } = both(bufRequest(dir, parameter, only));
        expect(whole.error ?? "").toBe("");
        expect(whole.file.length).toBeGreaterThan(0);
        expect(toBinary(CodeGeneratorResponseSchema, lean)).toEqual(
          toBinary(CodeGeneratorResponseSchema, whole),
        );
      }
    }
  });

  it("decodes the files with services or events and their imports, not the others", () => {
    const dir = protoModule({
      "shop/v1/money.proto": `syntax = "proto3";\npackage shop.v1;\nmessage Money { int64 units = 1; }\n`,
      "shop/v1/unused.proto": `syntax = "proto3";\npackage shop.v1;\nmessage Unused { string x = 1; }\n`,
      "shop/v1/shop.proto": `syntax = "proto3";
package shop.v1;
import "grabbit/v1/options.proto";
import "shop/v1/money.proto";
// Paid is published when an order is paid.
message Paid {
  option (grabbit.v1.event) = {exchange: "shop", routing_key: "paid"};
  Money amount = 1;
}
`,
    });
    const request = bufRequest(dir, "asyncapi");
    const lean = readRequest(toBinary(CodeGeneratorRequestSchema, request));
    expect(lean.candidates).toEqual(["shop/v1/shop.proto"]);
    const decoded = lean.protoFile.map((f) => f.name);
    expect(decoded).toEqual(
      expect.arrayContaining([
        "shop/v1/shop.proto",
        "shop/v1/money.proto",
        "grabbit/v1/options.proto",
      ]),
    );
    expect(decoded).not.toContain("shop/v1/unused.proto");
    const response = runLean(lean);
    expect(toBinary(CodeGeneratorResponseSchema, response)).toEqual(
      toBinary(CodeGeneratorResponseSchema, run(request)),
    );
    const file = response.file.find((f) => f.name === "shop/v1/shop.grabbit.ts")!.content;
    expect(file).toContain("Paid is published when an order is paid.");
  });

  it("reports the same contract errors, with the same positions", () => {
    const dir = protoModule({
      "shop/v1/shop.proto": `syntax = "proto3";
package shop.v1;
import "grabbit/v1/options.proto";
message OrderCreated {
  option (grabbit.v1.event) = {exchange: "shop", routing_key: "order.{regoin}.created"};
  string region = 1;
}
message Nested {
  message Deep {
    option (grabbit.v1.event) = {exchange: "shop two", routing_key: "deep"};
    string id = 1;
  }
}
`,
    });
    const { whole, lean } = both(bufRequest(dir));
    expect(whole.error).toMatch(/^shop\/v1\/shop\.proto:5:\d+: /);
    expect(whole.error).toContain("shop.v1.Nested.Deep");
    expect(lean.error).toBe(whole.error);
    expect(lean.file).toHaveLength(0);
  });

  it("fails like the whole decoding when a file to generate is missing from the request", () => {
    const request = bufRequest(FIXTURES);
    request.fileToGenerate.push("missing/v1/missing.proto");
    expect(() => run(request)).toThrow(
      "the request names missing/v1/missing.proto to generate but does not contain it",
    );
    expect(() => readRequest(toBinary(CodeGeneratorRequestSchema, request))).toThrow(
      "the request names missing/v1/missing.proto to generate but does not contain it",
    );
  });
});
