// parse-reply.ts: how a client reads a reply's status, trailers, details and body, without a broker.
import { describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import {
  describeHeader,
  isReplyStatus,
  parseReply,
  replyStatusError,
} from "../../../runtime/src/amqp/rpc/parse-reply.js";
import { statusHeaders } from "../../../runtime/src/amqp/rpc/encode-reply.js";
import { bytesOf, noteMethod } from "./support.js";

const method = noteMethod("Get");

describe("parseReply", () => {
  it("decodes an OK reply and hands its user headers back as metadata, the wire's own left out", () => {
    const reply = parseReply(
      method,
      { "rpc-status": 0, "x-tenant": "acme", "rpc-message": "ignored" },
      bytesOf({ text: "hi" }),
      Infinity,
    );
    expect(reply).toEqual({
      stream: false,
      message: { text: "hi" },
      metadata: { "x-tenant": "acme" },
    });
  });

  it("reads the status code whether amqplib hands it back as a number, a bigint or a string", () => {
    for (const status of [5, 5n, "5"]) {
      const err = parseReply(
        method,
        { "rpc-status": status, "rpc-message": "no such note" },
        Buffer.alloc(0),
        Infinity,
      );
      expect(err).toBeInstanceOf(StatusError);
      expect(err).toMatchObject({ code: Code.NOT_FOUND, rawMessage: "no such note" });
    }
  });

  it("turns a reply without a usable rpc-status into INTERNAL, naming what it got", () => {
    expect(parseReply(method, {}, bytesOf({ text: "x" }), Infinity)).toMatchObject({
      code: Code.INTERNAL,
      rawMessage: "the reply to /wire.v1.Notes/Get has no rpc-status header",
    });
    expect(parseReply(method, { "rpc-status": "busy" }, Buffer.alloc(0), Infinity)).toMatchObject({
      code: Code.INTERNAL,
      rawMessage:
        'the reply to /wire.v1.Notes/Get has an rpc-status that is not a status code ("busy")',
    });
    expect(parseReply(method, { "rpc-status": -1 }, Buffer.alloc(0), Infinity)).toMatchObject({
      code: Code.INTERNAL,
    });
  });

  it("maps a code gRPC does not define to UNKNOWN, keeping the number in the text", () => {
    const err = parseReply(
      method,
      { "rpc-status": 42, "rpc-message": "new code" },
      Buffer.alloc(0),
      Infinity,
    ) as StatusError;
    expect(err.code).toBe(Code.UNKNOWN);
    expect(err.rawMessage).toBe("the server replied with unknown status code 42: new code");
  });

  it("carries the trailers and the error details a server encoded", () => {
    const detail = {
      typeUrl: "type.googleapis.com/google.rpc.ErrorInfo",
      value: new Uint8Array([10, 3, 102, 111, 111]),
    };
    const headers = statusHeaders(
      Code.FAILED_PRECONDITION,
      "stock too low",
      { "retry-after": "5" },
      [detail],
    );
    const err = parseReply(method, headers, Buffer.alloc(0), Infinity) as StatusError;
    expect(err).toMatchObject({
      code: Code.FAILED_PRECONDITION,
      rawMessage: "stock too low",
      metadata: { "retry-after": "5" },
    });
    expect(err.details).toHaveLength(1);
    expect(err.details[0]!.typeUrl).toBe(detail.typeUrl);
    expect([...err.details[0]!.value]).toEqual([...detail.value]);
  });

  it("keeps the code and message when the details header is malformed, as gRPC does", () => {
    const err = parseReply(
      method,
      {
        "rpc-status": 9,
        "rpc-message": "m",
        "rpc-status-details-bin": Buffer.from([0xff, 0xff, 0xff]),
      },
      Buffer.alloc(0),
      Infinity,
    );
    expect(err).toMatchObject({ code: Code.FAILED_PRECONDITION, rawMessage: "m", details: [] });
  });

  it("refuses a body over the limit before decoding it, and an undecodable one as INTERNAL", () => {
    const body = bytesOf({ text: "a long enough note" });
    expect(parseReply(method, { "rpc-status": 0 }, body, body.length)).not.toBeInstanceOf(
      StatusError,
    );
    expect(parseReply(method, { "rpc-status": 0 }, body, body.length - 1)).toMatchObject({
      code: Code.RESOURCE_EXHAUSTED,
      rawMessage: `/wire.v1.Notes/Get: the reply is ${body.length} bytes, over the limit of ${body.length - 1} (maxMessageBytes)`,
    });
    const garbled = parseReply(
      method,
      { "rpc-status": 0, "x-a": "b" },
      Buffer.from("{"),
      Infinity,
    ) as StatusError;
    expect(garbled.code).toBe(Code.INTERNAL);
    expect(garbled.rawMessage).toMatch(/^could not decode the wire\.v1\.Note response: /);
    expect(garbled.metadata).toEqual({ "x-a": "b" });
  });
});

describe("replyStatusError", () => {
  it("is undefined for OK, and marks only statuses the server sent as replies", () => {
    expect(replyStatusError({ "rpc-status": 0 }, "/p", {})).toBeUndefined();
    const sent = replyStatusError({ "rpc-status": 14, "rpc-message": "down" }, "/p", {})!;
    expect(isReplyStatus(sent)).toBe(true);
    const broken = replyStatusError({}, "/p", {})!;
    expect(isReplyStatus(broken)).toBe(false);
    expect(isReplyStatus(new StatusError(Code.UNAVAILABLE, "local"))).toBe(false);
  });
});

describe("describeHeader", () => {
  it("shows a network value bounded, whatever its type", () => {
    expect(describeHeader("x".repeat(100))).toBe(`"${"x".repeat(63)}...`);
    expect(describeHeader(Buffer.alloc(7))).toBe("7 bytes");
    expect(describeHeader(12n)).toBe("12");
    expect(describeHeader({ a: 1 })).toBe('{"a":1}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(describeHeader(cyclic)).toBe("object");
  });
});
