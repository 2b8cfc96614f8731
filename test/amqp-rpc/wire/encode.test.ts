// encode-request.ts and encode-reply.ts: the headers and properties a client's request and a
// server's reply carry, field by field and in order (an AMQP table is written in key order).
import { describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import { decodeRpcStatus } from "../../../runtime/src/status-details.js";
import {
  encodeRequest,
  requestHeaders,
  requestProperties,
} from "../../../runtime/src/amqp/rpc/encode-request.js";
import {
  cannotEncode,
  encodeResponse,
  replyHeaders,
  replyProperties,
  statusHeaders,
  strippedReplyHeaders,
} from "../../../runtime/src/amqp/rpc/encode-reply.js";
import { NoteType, bytesOf, noteMethod } from "./support.js";

const method = noteMethod("Get");

describe("a request", () => {
  it("carries the caller's metadata, then rpc-method, then rpc-timeout-ms; reserved names never pass", () => {
    const headers = requestHeaders(
      { "X-Tenant": "acme", "rpc-status": "0", "x-grabbit-attempt": "3" },
      method.path,
      1500,
    );
    expect(Object.entries(headers)).toEqual([
      ["x-tenant", "acme"],
      ["rpc-method", "/wire.v1.Notes/Get"],
      ["rpc-timeout-ms", 1500],
    ]);
    expect(requestHeaders({}, method.path, undefined)).toEqual({ "rpc-method": method.path });
  });

  it("opens a stream with its frame, credit and keepalive before the timeout", () => {
    const headers = requestHeaders({}, method.path, 900, { credit: 64, keepaliveMs: 1000 });
    expect(Object.keys(headers)).toEqual([
      "rpc-method",
      "rpc-frame",
      "rpc-credit",
      "rpc-keepalive-ms",
      "rpc-timeout-ms",
    ]);
    expect(headers).toMatchObject({
      "rpc-frame": "open",
      "rpc-credit": 64,
      "rpc-keepalive-ms": 1000,
    });
  });

  it("is published mandatory with its id twice, protobuf content, and user_id and expiration only when set", () => {
    const props = requestProperties({
      id: "c1",
      replyTo: "amq.rabbitmq.reply-to",
      type: "wire.v1.Note",
      headers: {},
      userId: undefined,
      expirationMs: undefined,
    });
    expect(props).toEqual({
      correlationId: "c1",
      messageId: "c1",
      replyTo: "amq.rabbitmq.reply-to",
      contentType: "application/x-protobuf",
      type: "wire.v1.Note",
      headers: {},
      mandatory: true,
    });
    const full = requestProperties({
      id: "c2",
      replyTo: "inbox",
      type: undefined,
      headers: {},
      userId: "svc",
      expirationMs: 250,
    });
    expect(full).toMatchObject({ userId: "svc", expiration: "250" });
  });

  it("encodes its body, or says why not: INTERNAL for a message that cannot be encoded, RESOURCE_EXHAUSTED past the limit", () => {
    const body = encodeRequest(method.path, NoteType, { text: "hi" }, Infinity);
    expect(Buffer.isBuffer(body) && body.equals(bytesOf({ text: "hi" }))).toBe(true);
    expect(encodeRequest(method.path, NoteType, { text: 3 }, Infinity)).toMatchObject({
      code: Code.INTERNAL,
      rawMessage: "could not encode the wire.v1.Note request: text must be a string",
    });
    const size = bytesOf({ text: "hi" }).length;
    expect(encodeRequest(method.path, NoteType, { text: "hi" }, size - 1)).toMatchObject({
      code: Code.RESOURCE_EXHAUSTED,
      rawMessage: `/wire.v1.Notes/Get: the request is ${size} bytes, over the limit of ${size - 1} (maxMessageBytes)`,
    });
  });
});

describe("a reply", () => {
  it("says OK with rpc-status alone after the trailers", () => {
    expect(
      Object.entries(statusHeaders(Code.OK, "ignored", { "x-took": "3ms" }, undefined)),
    ).toEqual([
      ["x-took", "3ms"],
      ["rpc-status", 0],
    ]);
  });

  it("says an error with its text, and its details as a google.rpc.Status only when there are some", () => {
    expect(statusHeaders(Code.NOT_FOUND, "gone", undefined, [])).toEqual({
      "rpc-status": 5,
      "rpc-message": "gone",
    });
    const detail = {
      typeUrl: "type.googleapis.com/google.rpc.RetryInfo",
      value: new Uint8Array([1, 2]),
    };
    const headers = statusHeaders(Code.UNAVAILABLE, "later", undefined, [detail]);
    const status = decodeRpcStatus(headers["rpc-status-details-bin"] as Buffer);
    expect(status.code).toBe(Code.UNAVAILABLE);
    expect(status.message).toBe("later");
    expect(status.details.map((d) => d.typeUrl)).toEqual([detail.typeUrl]);
  });

  it("answers a refused stream open as that stream's end frame, and a unary request without a frame", () => {
    expect(
      replyHeaders({ "rpc-frame": "open" }, Code.UNIMPLEMENTED, "no", undefined, undefined),
    ).toEqual({ "rpc-status": 12, "rpc-message": "no", "rpc-frame": "end" });
    expect(
      replyHeaders({ "rpc-method": "/p" }, Code.UNIMPLEMENTED, "no", undefined, undefined),
    ).toEqual({ "rpc-status": 12, "rpc-message": "no" });
  });

  it("falls back to the bare status, with a note, when the full headers cannot be written", () => {
    expect(strippedReplyHeaders(Code.INTERNAL, "boom", "metadata dropped")).toEqual({
      "rpc-status": 13,
      "rpc-message": "boom (metadata dropped)",
    });
    expect(strippedReplyHeaders(Code.OK, "", "metadata dropped")).toEqual({ "rpc-status": 0 });
    expect(cannotEncode(new RangeError("table too big"))).toBe(true);
    expect(cannotEncode(new StatusError(Code.INVALID_ARGUMENT, "bad header"))).toBe(true);
    expect(cannotEncode(new Error("channel closed"))).toBe(false);
  });

  it("names the response type only on OK", () => {
    expect(replyProperties("c1", Code.OK, method, {})).toEqual({
      correlationId: "c1",
      contentType: "application/x-protobuf",
      type: "wire.v1.Note",
      headers: {},
    });
    expect(replyProperties("c1", Code.INTERNAL, method, {})).not.toHaveProperty("type");
    expect(replyProperties("c1", Code.OK, undefined, {})).not.toHaveProperty("type");
  });

  it("encodes the response, or the status to send instead", () => {
    expect(
      Buffer.from(encodeResponse(method, { text: "ok" }, Infinity) as Buffer).equals(
        bytesOf({ text: "ok" }),
      ),
    ).toBe(true);
    expect(encodeResponse(method, { text: 1 }, Infinity)).toMatchObject({
      code: Code.INTERNAL,
      rawMessage: "could not encode the wire.v1.Note response: text must be a string",
    });
    expect(encodeResponse(method, { text: "ok" }, 2)).toMatchObject({
      code: Code.RESOURCE_EXHAUSTED,
      rawMessage: `/wire.v1.Notes/Get: the response is ${bytesOf({ text: "ok" }).length} bytes, over the limit of 2`,
    });
  });
});
