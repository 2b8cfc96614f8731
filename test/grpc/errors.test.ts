// Status codes, messages, error details (google.rpc.Status) and trailers, end to end, and what a
// handler's plain Error becomes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { Code, StatusError } from "@grabbit/runtime";
import { decodeRpcStatus, encodeRpcStatus, STATUS_DETAILS_KEY } from "@grabbit/runtime/grpc";
import {
  collect,
  startHarness,
  statusOf,
  TestService,
  type Harness,
  type Res,
} from "./fixtures.js";

const M = TestService.methods;
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe("status errors", () => {
  it.each([
    Code.INVALID_ARGUMENT,
    Code.NOT_FOUND,
    Code.PERMISSION_DENIED,
    Code.FAILED_PRECONDITION,
    Code.UNAVAILABLE,
    Code.DATA_LOSS,
    Code.UNAUTHENTICATED,
  ])("carries code %i, message, details and trailers", async (code) => {
    const err = await statusOf(h.client.unary(M.fail, { code, text: `bad ${code}: ünïcode` }));
    expect(err).toBeInstanceOf(StatusError);
    expect(err.code).toBe(code);
    expect(err.rawMessage).toBe(`bad ${code}: ünïcode`);
    // The error's own metadata and the handler's responseMetadata both arrive as trailers.
    expect(err.metadata["x-reason"]).toBe("because");
    expect(err.metadata["x-before-fail"]).toBe("yes");
    expect(Buffer.from(err.metadata["x-blob-bin"]!, "base64")).toEqual(Buffer.from([0, 1, 2, 255]));
    // Details are decoded, not left as a base64 trailer.
    expect(err.metadata[STATUS_DETAILS_KEY]).toBeUndefined();
    expect(err.details).toHaveLength(2);
    expect(err.details[0]!.typeUrl).toBe("type.googleapis.com/google.rpc.ErrorInfo");
    expect([...err.details[0]!.value]).toEqual([10, 3, 102, 111, 111]);
    expect(err.details[1]!.typeUrl).toBe("type.googleapis.com/test.v1.Empty");
    expect(err.details[1]!.value.length).toBe(0);
  });

  it("turns a plain Error into UNKNOWN with its message and no stack", async () => {
    const err = await statusOf(h.client.unary(M.fail, { text: "database exploded" }));
    expect(err.code).toBe(Code.UNKNOWN);
    expect(err.rawMessage).toBe("database exploded");
    expect(err.rawMessage).not.toMatch(/\bat\b.*\.ts|Error:/);
    expect(err.details).toEqual([]);
  });

  it("fails a server stream after the messages sent before the error", async () => {
    const got: Res[] = [];
    const err = await statusOf(
      (async () => {
        for await (const r of h.client.serverStream(M.failStream, { n: 3 })) got.push(r);
      })(),
    );
    expect(got.map((r) => r.n)).toEqual([0, 1, 2]);
    expect(err.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(err.rawMessage).toBe("no more");
    expect(err.metadata["x-sent"]).toBe("3");
  });

  it("reports UNAVAILABLE when nothing listens", async () => {
    const { GrpcTransport } = await import("@grabbit/runtime/grpc");
    const dead = new GrpcTransport("127.0.0.1:1");
    try {
      expect((await statusOf(dead.unary(M.echo, {}))).code).toBe(Code.UNAVAILABLE);
      expect((await statusOf(collect(dead.serverStream(M.count, { n: 1 })))).code).toBe(
        Code.UNAVAILABLE,
      );
    } finally {
      dead.close();
    }
  });

  it("rejects metadata that HTTP/2 cannot carry with INVALID_ARGUMENT before sending", async () => {
    const err = await statusOf(h.client.unary(M.echo, {}, { metadata: { "Bad Key": "x" } }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
  });
});

describe("undecodable requests", () => {
  // A raw grpc-js client sends bytes the JSON codec cannot read.
  const garbage = (v: string) => Buffer.from(v);
  const decode = (b: Buffer) => b;

  it("answers INVALID_ARGUMENT, as the AMQP transport does, for unary and server-streaming calls", async () => {
    const raw = new grpc.Client(h.address, grpc.credentials.createInsecure());
    try {
      const unary = await new Promise<grpc.ServiceError>((resolve) =>
        raw.makeUnaryRequest(M.echo.path, garbage, decode, "{not json", (e) => resolve(e!)),
      );
      expect(unary.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(unary.details).toMatch(/cannot decode test\.v1\.Req/);
      const stream = raw.makeServerStreamRequest(M.count.path, garbage, decode, "{not json");
      stream.on("data", () => {});
      stream.on("error", () => {}); // the status event says the same
      const status = await new Promise<grpc.StatusObject>((resolve) =>
        stream.on("status", resolve),
      );
      expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      raw.close();
    }
  });

  it("fails a client stream with INVALID_ARGUMENT at the bad message", async () => {
    const raw = new grpc.Client(h.address, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve) => {
        const call = raw.makeClientStreamRequest(M.sum.path, garbage, decode, (e) => resolve(e!));
        call.write('{"n":1}');
        call.write("{broken");
        call.write('{"n":2}');
        call.end();
      });
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    } finally {
      raw.close();
    }
  });
});

describe("interop of the details trailer", () => {
  it("is a google.rpc.Status that a raw grpc-js client can read", async () => {
    // A raw grpc-js call sees the same trailer other languages would decode.
    const raw = new grpc.Client(h.address, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve) =>
        raw.makeUnaryRequest(
          M.fail.path,
          (v: object) => Buffer.from(JSON.stringify(v)),
          (b: Buffer) => JSON.parse(b.toString()),
          { code: Code.NOT_FOUND, text: "gone" },
          (e) => resolve(e!),
        ),
      );
      expect(err.code).toBe(grpc.status.NOT_FOUND);
      const trailer = err.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer;
      const status = decodeRpcStatus(trailer);
      expect(status.code).toBe(Code.NOT_FOUND);
      expect(status.message).toBe("gone");
      expect(status.details.map((d) => d.typeUrl)).toEqual([
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/test.v1.Empty",
      ]);
    } finally {
      raw.close();
    }
  });

  it("encodes and decodes google.rpc.Status, skipping unknown fields", () => {
    const bytes = encodeRpcStatus({
      code: 5,
      message: "x",
      details: [{ typeUrl: "t", value: new Uint8Array([1]) }],
    });
    // Append an unknown field 9 (varint 1): decoders must skip it.
    const withUnknown = new Uint8Array([...bytes, 9 << 3, 1]);
    expect(decodeRpcStatus(withUnknown)).toEqual({
      code: 5,
      message: "x",
      details: [{ typeUrl: "t", value: new Uint8Array([1]) }],
    });
    expect(decodeRpcStatus(encodeRpcStatus({ code: 0, message: "", details: [] }))).toEqual({
      code: 0,
      message: "",
      details: [],
    });
  });
});
