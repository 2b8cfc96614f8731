// The generated publisher's publishMany, on the real broker: the example's RequestReportedPublisher
// (examples/gen, generated here the way `npm run generate` does) sends a batch under one promise
// that resolves once the broker confirmed every event, each with its routing key and message_id.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type Interceptor } from "@grabbit/runtime";
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { uniqueName } from "../support/broker.js";
import { generateExamples } from "../examples/generate.js";
import { Janitor } from "./fixtures.js";

type Reports = typeof import("../../examples/gen/example/v1/reports.grabbit.js");
type Common = typeof import("../../examples/gen/example/v1/common.js");

let conn: AmqpConnection;
let reports: Reports;
let common: Common;
const janitor = new Janitor();

beforeAll(async () => {
  generateExamples();
  reports = await import("../../examples/gen/example/v1/reports.grabbit.js");
  common = await import("../../examples/gen/example/v1/common.js");
  conn = await AmqpConnection.connect({ name: "grabbit-generated-publish-many-test" });
});
afterAll(async () => {
  await conn?.close();
  await janitor.cleanup();
});

describe("generated publisher publishMany", () => {
  it("confirms a batch: every event arrives, in order, with its routing key and the message ids given", async () => {
    const region = uniqueName("region").replace(/[^A-Za-z0-9-]/g, "-");
    const queue = janitor.queue("generated-many");
    const publisher = new reports.RequestReportedPublisher(conn);
    // The exchange as the publisher declares it (durable topic), so the queue can be bound first.
    const ch = await janitor.channel();
    await ch.assertExchange(reports.RequestReportedEvent.exchange, "topic", { durable: true });
    await ch.assertQueue(queue, { durable: false });
    await ch.bindQueue(queue, reports.RequestReportedEvent.exchange, `report.*.${region}`);
    await ch.close();

    const n = 300;
    const events = Array.from({ length: n }, (_, i) => ({
      requestId: `r-${i}`,
      decision: i % 2 ? common.Decision.DECISION_APPROVED : common.Decision.DECISION_DENIED,
      region,
      amountCents: i,
      decidedAt: new Date(),
    }));
    const ids = events.map((_, i) => `${region}-${i}`);
    await publisher.publishMany(events, { messageIds: ids });

    const got = await janitor.drain(queue);
    expect(got.map((m) => m.properties.messageId)).toEqual(ids);
    expect(got.map((m) => m.fields.routingKey)).toEqual(
      events.map((e) => `report.${common.Decision[e.decision]}.${region}`),
    );
    expect(
      got.every(
        (m) =>
          m.properties.type === "example.v1.RequestReported" && m.properties.deliveryMode === 2,
      ),
    ).toBe(true);
    await publisher.close();
  });

  it("with interceptors, each event of the batch goes through them as its own publish", async () => {
    const region = uniqueName("region").replace(/[^A-Za-z0-9-]/g, "-");
    const queue = janitor.queue("generated-many-intercepted");
    const seen: string[] = [];
    const stamp: Interceptor = (next) => (req) => {
      if (req.stream) throw new Error("a publish is one message, not a stream");
      seen.push((req.message as { requestId: string }).requestId);
      req.metadata["x-stamp"] = `stamped-${seen.length}`;
      return next(req);
    };
    const publisher = new reports.RequestReportedPublisher(conn, { interceptors: [stamp] });
    const ch = await janitor.channel();
    await ch.assertExchange(reports.RequestReportedEvent.exchange, "topic", { durable: true });
    await ch.assertQueue(queue, { durable: false });
    await ch.bindQueue(queue, reports.RequestReportedEvent.exchange, `report.*.${region}`);
    await ch.close();
    const events = ["a", "b", "c"].map((requestId) => ({
      requestId,
      decision: common.Decision.DECISION_APPROVED,
      region,
      amountCents: 1,
      decidedAt: new Date(),
    }));
    await publisher.publishMany(events, { messageIds: ["id-a", "id-b", "id-c"] });
    expect(seen).toEqual(["a", "b", "c"]);
    const got = await janitor.drain(queue);
    expect(got.map((m) => m.properties.messageId).sort()).toEqual(["id-a", "id-b", "id-c"]);
    expect(got.map((m) => String(m.properties.headers?.["x-stamp"])).sort()).toEqual([
      "stamped-1",
      "stamped-2",
      "stamped-3",
    ]);
    await publisher.close();
  });

  it("refuses a batch whose message ids do not match its events, sending none", async () => {
    const publisher = new reports.RequestReportedPublisher(conn);
    const event = {
      requestId: "r",
      decision: common.Decision.DECISION_APPROVED,
      region: "nowhere",
      amountCents: 1,
      decidedAt: new Date(),
    };
    await expect(
      publisher.publishMany([event, event], { messageIds: ["only-one"] }),
    ).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT });
    await publisher.close();
  });
});
