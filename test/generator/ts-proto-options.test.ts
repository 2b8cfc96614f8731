// ts-proto's options change the names and shapes of the messages grabbit's code refers to. Given the
// same `opt:` list as ts-proto, protoc-gen-grabbit must follow: the real `buf generate` runs both
// plugins with each list, tsc checks the result, and the generated event descriptor renders the
// routing key from a message shaped as ts-proto made it.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { renderRoutingKey, type EventDesc } from "@grabbit/runtime";
import { run } from "../../generator/plugin.js";
import { bufGenerate, bufRequest, protoModule, typeCheck } from "../support/buf.js";

const SHOP = `syntax = "proto3";

package shop.v1;

import "grabbit/v1/options.proto";

enum sales_region {
  SALES_REGION_UNSPECIFIED = 0;
  SALES_REGION_EU = 1;
}

message order_placed {
  option (grabbit.v1.event) = {
    exchange: "shop.orders"
    routing_key: "order.{region}.{amount_cents}.{order_id}"
  };
  string order_id = 1 [json_name = "ref"];
  sales_region region = 2;
  int64 amount_cents = 3;
  message line_item {
    string sku = 1;
  }
  repeated line_item lines = 4;
  oneof payment {
    string card = 5;
    string voucher = 6;
  }
}

// allow_alias: two names for 1; a routing key must carry the first, whichever enum style made the value.
enum channel {
  option allow_alias = true;
  CHANNEL_UNSPECIFIED = 0;
  CHANNEL_WEB = 1;
  CHANNEL_ONLINE = 1;
}

message channel_opened {
  option (grabbit.v1.event) = {
    exchange: "shop.channels"
    routing_key: "channel.{via}"
  };
  channel via = 1;
}

service order_desk {
  option (grabbit.v1.service) = { transports: [TRANSPORT_GRPC, TRANSPORT_AMQP] };
  rpc Place(order_placed) returns (order_placed.line_item);
}
`;

/** Runs ts-proto and grabbit with the same options over SHOP; returns the output folder. */
function generateWith(opts: string[]): string {
  const dir = protoModule({ "shop/v1/shop.proto": SHOP });
  const list = `[${opts.join(", ")}]`;
  const result = bufGenerate(
    dir,
    `version: v2
plugins:
  - local: protoc-gen-ts_proto
    out: gen
    strategy: all
    opt: ${list}
  - local: ["node", "${join(process.cwd(), "bin/protoc-gen-grabbit.js")}"]
    out: gen
    strategy: all
    opt: ${list}
`,
  );
  expect(result.stderr).toBe("");
  return join(dir, "gen");
}

async function eventDesc(
  out: string,
  name = "orderPlacedEvent",
): Promise<EventDesc<Record<string, unknown>>> {
  const mod = (await import(pathToFileURL(join(out, "shop/v1/shop.grabbit.ts")).href)) as Record<
    string,
    unknown
  >;
  return mod[name] as EventDesc<Record<string, unknown>>;
}

describe("ts-proto options given to both plugins", () => {
  it("snake_case keys, string enums, string longs, $case oneofs, affixed and unjoined type names, a file suffix", async () => {
    const out = generateWith([
      "snakeToCamel=false",
      "stringEnums=true",
      "forceLong=string",
      "useOptionals=all",
      "oneof=unions",
      "typePrefix=T",
      "messageSuffix=Msg",
      "enumSuffix=Kind",
      "useSnakeTypeName=false",
      "fileSuffix=.pb",
      "importSuffix=.js",
      "outputServices=none",
      "esModuleInterop=true",
    ]);
    expect(typeCheck(out)).toBe("");
    const desc = await eventDesc(out);
    // The message as ts-proto shapes it under these options: snake_case keys, enum names, long as text.
    const message = {
      order_id: "o-1",
      region: "SALES_REGION_EU",
      amount_cents: "9007199254740993",
      lines: [],
      payment: { $case: "card", card: "c" },
    };
    expect(renderRoutingKey(desc, message)).toBe("order.SALES_REGION_EU.9007199254740993.o-1");
    const back = desc.type.decode(desc.type.encode(message)) as typeof message;
    expect(back.amount_cents).toBe("9007199254740993");
    expect(back.payment).toEqual({ $case: "card", card: "c" });
    expect(
      renderRoutingKey(await eventDesc(out, "channelOpenedEvent"), { via: "CHANNEL_WEB" }),
    ).toBe("channel.CHANNEL_WEB");
  });

  it("json_name keys, bigint longs, optional messages, enums as literals", async () => {
    // (useNullAsOptional is left out: ts-proto's own output for descriptor.proto does not type-check with it.)
    const out = generateWith([
      "useJsonName=true",
      "forceLong=bigint",
      "useOptionals=messages",
      "enumsAsLiterals=true",
      "importSuffix=.js",
      "outputServices=none",
      "esModuleInterop=true",
    ]);
    expect(typeCheck(out)).toBe("");
    const desc = await eventDesc(out);
    const message = {
      ref: "o-2",
      region: 1,
      amountCents: 12n,
      lines: [],
      card: undefined,
      voucher: "v",
    };
    expect(renderRoutingKey(desc, message)).toBe("order.SALES_REGION_EU.12.o-2");
    expect(renderRoutingKey(await eventDesc(out, "channelOpenedEvent"), { via: 1 })).toBe(
      "channel.CHANNEL_WEB",
    );
  });

  it("reads values as ts-proto does: a repeated key collects its values, an empty value is false", () => {
    const dir = protoModule({ "shop/v1/shop.proto": SHOP });
    const text = (parameter: string) => {
      const res = run(bufRequest(dir, parameter));
      expect(res.error).toBe("");
      return res.file.find((f) => f.name === "shop/v1/shop.grabbit.ts")!.content;
    };
    // snakeToCamel=keys then snakeToCamel=json: ts-proto makes ["keys", "json"], so keys are camel-cased.
    expect(text("snakeToCamel=keys,snakeToCamel=json")).toContain("event.amountCents");
    expect(text("snakeToCamel=json")).toContain("event.amount_cents");
    expect(text("snakeToCamel=")).toContain("event.amount_cents");
    // stringEnums= is false for ts-proto: the number goes through the name table.
    expect(text("stringEnums=")).toMatch(/\$salesRegionNames\[event\.region as number\]/);
    expect(text("stringEnums=on")).not.toContain("$salesRegionNames[");
    // grabbit's own spelling of an option wins over ts-proto's, and is not collected with it.
    expect(text("fileSuffix=.pb,ts_proto_file_suffix=.gen")).toContain('from "./shop.gen.js"');
    expect(text("importSuffix=.mjs,import_extension=none")).toContain('from "./shop"');
  });

  it("an M mapping to ./path is relative to the output root, as ts-proto rewrites it per file", () => {
    const dir = protoModule({ "shop/v1/shop.proto": SHOP });
    const res = run(bufRequest(dir, "Mshop/v1/shop.proto=./vendored/shop.js"));
    expect(res.error).toBe("");
    expect(res.file.find((f) => f.name === "shop/v1/shop.grabbit.ts")!.content).toContain(
      'from "../../vendored/shop.js"',
    );
  });

  it("emitImportedFiles=false: a type from a file nobody writes is an error naming the M mapping to add", () => {
    const withEmpty = SHOP.replace(
      'import "grabbit/v1/options.proto";',
      'import "grabbit/v1/options.proto";\nimport "google/protobuf/empty.proto";',
    ).replace(
      "rpc Place(order_placed) returns (order_placed.line_item);",
      "rpc Place(order_placed) returns (order_placed.line_item);\n  rpc Ping(order_placed) returns (google.protobuf.Empty);",
    );
    const dir = protoModule({ "shop/v1/shop.proto": withEmpty });
    expect(run(bufRequest(dir, "emitImportedFiles=false")).error).toBe(
      "with ts-proto's emitImportedFiles=false, nothing writes google/protobuf/empty.proto, whose types grabbit's code uses; map it to a module with Mgoogle/protobuf/empty.proto=<module>, or drop emitImportedFiles=false",
    );
    expect(
      run(bufRequest(dir, "emitImportedFiles=false,Mgoogle/protobuf/empty.proto=@acme/wkt/empty"))
        .error,
    ).toBe("");
    expect(run(bufRequest(dir, "emitImportedFiles=true")).error).toBe("");
  });

  it("an M mapping imports that file's types from the module it names", () => {
    const dir = protoModule({ "shop/v1/shop.proto": SHOP });
    const res = run(bufRequest(dir, "Mshop/v1/shop.proto=@acme/shop-protos/shop,stringEnums=true"));
    expect(res.error).toBe("");
    const text = res.file.find((f) => f.name === "shop/v1/shop.grabbit.ts")!.content;
    expect(text).toContain('from "@acme/shop-protos/shop"');
    expect(text).not.toContain("./shop.js");
  });

  it("a placeholder inside a oneof is a located error under oneof=unions, and fine without it", () => {
    const proto = SHOP.replace("{order_id}", "{card}");
    const dir = protoModule({ "shop/v1/shop.proto": proto });
    const unions = run(bufRequest(dir, "oneof=unions"));
    expect(unions.error).toMatch(
      /^shop\/v1\/shop\.proto:\d+:\d+: .*\{card\} is a member of oneof "payment", which ts-proto's oneof=unions/,
    );
    expect(run(bufRequest(dir, "oneof=properties")).error).toBe("");
  });

  it("refuses the ts-proto options that leave out the codecs, and values ts-proto would not take, with a sentence", () => {
    const dir = protoModule({ "shop/v1/shop.proto": SHOP });
    const errorOf = (parameter: string) => run(bufRequest(dir, parameter)).error;
    expect(errorOf("onlyTypes=true")).toMatch(
      /onlyTypes leaves out the encode and decode functions/,
    );
    expect(errorOf("outputEncodeMethods=decode-only")).toMatch(
      /outputEncodeMethods=decode-only leaves out/,
    );
    expect(errorOf("snakeToCamel=camels")).toMatch(
      /snakeToCamel takes true, false, keys, json or keys_json/,
    );
    expect(errorOf("oneof=maybe")).toMatch(/oneof takes properties, unions or unions-value/);
    expect(errorOf("stringEnums")).toMatch(
      /ts-proto ignores "stringEnums" without a value; write stringEnums=true/,
    );
    expect(errorOf("nestJs=true")).toMatch(
      /nestJs without outputServices leaves out the encode and decode functions/,
    );
    expect(errorOf("nestJs=true,outputServices=default")).toBe("");
    expect(errorOf("outputEncodeIncludeTypes=Line")).toMatch(
      /outputEncodeIncludeTypes gives the messages it does not match codecs that throw/,
    );
    // A name ts-proto does not have is still an unknown option, not silently a ts-proto one.
    expect(errorOf("snakeToCamle=false")).toMatch(/unknown option "snakeToCamle"/);
    // ts-proto options that change nothing grabbit refers to are taken and ignored.
    expect(errorOf("env=node,outputServices=grpc-js,useDate=string,comments=false")).toBe("");
  });
});
