// The real pipeline on every kind of input a buf user has: `buf generate` runs ts-proto and
// protoc-gen-grabbit over proto2, proto3 and editions files, and what comes out type-checks strict.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { bindingKey, renderRoutingKey } from "@grabbit/runtime";
import { generateFixtures, typeCheck } from "../support/buf.js";
import { flat } from "./text.js";

let out: string;
let generation: { stderr: string };

beforeAll(() => {
  const result = generateFixtures("gen");
  out = result.out;
  generation = result;
});

const read = (file: string) => readFileSync(join(out, file), "utf8");

describe("buf generate with ts-proto and protoc-gen-grabbit", () => {
  it("generates a file for each proto with services or events, and none for the rest", () => {
    expect(generation.stderr).toBe("");
    for (const f of [
      "kitchen/v1/kitchen",
      "kitchen/common/v1/common",
      "legacy/v1/legacy",
      "modern/v1/modern",
    ]) {
      expect(existsSync(join(out, `${f}.grabbit.ts`)), f).toBe(true);
    }
    expect(existsSync(join(out, "grabbit/v1/options.grabbit.ts"))).toBe(false);
  });

  it("type-checks strict under NodeNext, together with ts-proto's messages", () => {
    expect(typeCheck(out)).toBe("");
  });

  it("passes the pedantic flags careful teams use (erasable syntax only, exact optionals, no unused)", () => {
    const ours = typeCheck(out, { pedantic: true })
      .split("\n")
      .filter((line) => line.includes(".grabbit.ts("));
    expect(ours).toEqual([]);
  });

  it("gives each event publisher a typed publishMany: a batch of the event and its message ids check, anything else does not", () => {
    expect(read("kitchen/v1/kitchen.grabbit.ts")).toContain(
      "publishMany(events: readonly OrderCreated[], options?: PublishManyOptions): Promise<void>",
    );
    writeFileSync(
      join(out, "kitchen/v1/use-publish-many.ts"),
      `import type { AmqpConnection } from "@grabbit/runtime/amqp";
import { OrderCreatedPublisher } from "./kitchen.grabbit.js";
import { OrderCreated, Tier } from "./kitchen.js";
export async function send(conn: AmqpConnection, orders: OrderCreated[]): Promise<void> {
  const publisher = new OrderCreatedPublisher(conn);
  await publisher.publishMany(orders, { messageIds: orders.map((o) => o.orderId), timeoutMs: 5_000 });
  await publisher.publishMany([OrderCreated.fromPartial({ region: "eu", tier: Tier.TIER_GOLD })]);
  // @ts-expect-error a batch of another message type
  await publisher.publishMany([{ level: 1 }]);
  // @ts-expect-error one event is not a batch
  await publisher.publishMany(orders[0]!);
}
`,
    );
    expect(typeCheck(out, { files: ["kitchen/v1/use-publish-many.ts"] })).toBe("");
  });

  it("escapes member names that would break a class and keeps colliding names apart", () => {
    const text = read("kitchen/v1/kitchen.grabbit.ts");
    for (const member of [
      "constructor$(",
      "then$(",
      "toString$(",
      "transport$(",
      "close$(",
      "delete(",
      "unary(",
      "unary2(",
    ]) {
      expect(text).toContain(`  ${member}request`);
    }
    // ts-proto renames a message called Date so that it does not shadow the global.
    expect(flat(text)).toContain(
      "clientStream(requests: AsyncIterable<DateMessage>, options?: CallOptions): Promise<FunctionMessage>",
    );
    expect(text).toContain("AsyncIterable<snakeCaseMessage>");
  });

  it("resolves service options over file defaults over built-in defaults", () => {
    const kitchen = read("kitchen/v1/kitchen.grabbit.ts");
    expect(kitchen).toContain('amqp: { requestQueue: "kitchen.orders.rpc", prefetch: 8 }');
    expect(kitchen).toMatch(/getOrder: \{[^}]*idempotent: true,\s*timeoutMs: 250,/);
    expect(kitchen).toMatch(/cancelOrder: \{[^}]*idempotent: false,\s*timeoutMs: 1000,/);
    expect(kitchen).toMatch(/touch: \{[^}]*idempotent: true,/);
    expect(kitchen).toContain("export const AmqpOnlyService: ServiceDesc<");
    expect(kitchen).not.toContain("createAmqpOnlyGrpcClient");
    expect(kitchen).not.toContain("createPlainAmqpClient");
    const common = read("kitchen/common/v1/common.grabbit.ts");
    expect(common).toContain(
      'amqp: { requestQueue: "common.kitchen.common.v1.Pricing", prefetch: 16 }',
    );
    expect(common).toContain("timeoutMs: 3000");
    expect(common).toContain('exchange: "kitchen.common"');
  });

  it("puts the request queue type the contract names into the descriptor, and none when it names none", async () => {
    // Text: the type-check test above compiles these descriptors against the runtime's ServiceDesc.
    expect(read("kitchen/v1/kitchen.grabbit.ts")).toContain(
      'amqp: { requestQueue: "kitchen.v1.AmqpOnly", prefetch: 32, queueType: "classic" }',
    );
    expect(read("legacy/v1/legacy.grabbit.ts")).toContain(
      'amqp: { requestQueue: "legacy.v1.Desk", prefetch: 32, queueType: "quorum" }',
    );
    const kitchen = await import(pathToFileURL(join(out, "kitchen/v1/kitchen.grabbit.ts")).href);
    const legacy = await import(pathToFileURL(join(out, "legacy/v1/legacy.grabbit.ts")).href);
    expect(kitchen.AmqpOnlyService.amqp.queueType).toBe("classic");
    expect(legacy.DeskService.amqp.queueType).toBe("quorum");
    // Unspecified: no key at all, so the server's own option or "auto" decides.
    expect(Object.keys(kitchen.OrdersService.amqp)).toEqual(["requestQueue", "prefetch"]);
  });

  it("renders routing keys from real ts-proto messages: enum names, escaping, proto2 defaults, editions", async () => {
    const kitchenMessages = await import(pathToFileURL(join(out, "kitchen/v1/kitchen.ts")).href);
    const kitchen = await import(pathToFileURL(join(out, "kitchen/v1/kitchen.grabbit.ts")).href);
    const created = kitchenMessages.OrderCreated.fromPartial({
      orderId: "o1",
      region: "eu.west",
      tier: kitchenMessages.Tier.TIER_GOLD,
    });
    expect(renderRoutingKey(kitchen.OrderCreatedEvent, created)).toBe(
      "order.eu%2Ewest.TIER_GOLD.created",
    );
    expect(
      bindingKey(
        kitchen.OrderCreatedEvent,
        kitchen.OrderCreatedEvent.routingValues({ tier: kitchenMessages.Tier.TIER_SILVER }),
      ),
    ).toBe("order.*.TIER_SILVER.created");
    expect(
      renderRoutingKey(
        kitchen.AuditLoggedEvent,
        kitchenMessages.AuditLogged.fromPartial({ level: 3 }),
      ),
    ).toBe("audit.3");
    expect(() => bindingKey(kitchen.AuditLoggedEvent, {})).toThrow(
      /direct exchange "kitchen.audit": the consumer's filter needs a value for "level"/,
    );
    expect(kitchen.BroadcastEvent.persistent).toBe(false);
    expect(kitchen.BroadcastEvent.exchangeKind).toBe("fanout");
    expect(
      kitchen.TaggedEvent.routingValues(
        kitchenMessages.Tagged.fromPartial({ team: "core", urgent: true }),
      ),
    ).toEqual({ team: "core", urgent: "true" });
    expect(kitchen.Outer_HappenedEvent.routingKeyTemplate).toBe("kitchen.v1.Outer.Happened");

    const legacyMessages = await import(pathToFileURL(join(out, "legacy/v1/legacy.ts")).href);
    const legacy = await import(pathToFileURL(join(out, "legacy/v1/legacy.grabbit.ts")).href);
    const ticket = legacyMessages.Ticket.fromPartial({ id: "t1" });
    expect(renderRoutingKey(legacy.TicketEvent, ticket)).toBe("ticket.general.PRIORITY_NORMAL");

    const modernMessages = await import(pathToFileURL(join(out, "modern/v1/modern.ts")).href);
    const modern = await import(pathToFileURL(join(out, "modern/v1/modern.grabbit.ts")).href);
    expect(
      renderRoutingKey(
        modern.ShipmentEvent,
        modernMessages.Shipment.fromPartial({ carrier: "dhl" }),
      ),
    ).toBe("shipment.dhl");
  });

  it("gives the codec of each method the message's full name and a binary round trip", async () => {
    const messages = await import(pathToFileURL(join(out, "kitchen/v1/kitchen.ts")).href);
    const kitchen = await import(pathToFileURL(join(out, "kitchen/v1/kitchen.grabbit.ts")).href);
    const method = kitchen.OrdersService.methods.getOrder;
    expect(method.path).toBe("/kitchen.v1.OrdersService/GetOrder");
    expect(method.input.typeName).toBe("kitchen.v1.GetOrderRequest");
    const bytes = method.input.encode(messages.GetOrderRequest.fromPartial({ orderId: "42" }));
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(method.input.decode(bytes)).toEqual({ orderId: "42" });
  });
});
