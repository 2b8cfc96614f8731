// validate-request.ts: the checks a server makes before a handler runs, in the contract's order.
import { describe, expect, it } from "vitest";
import { Code, type ServiceDesc } from "@grabbit/runtime";
import {
  decodeRequest,
  methodTable,
  validateRequest,
  type RequestProperties,
  type ValidateContext,
} from "../../../runtime/src/amqp/rpc/validate-request.js";
import { bytesOf, noteMethod } from "./support.js";

const service = {
  typeName: "wire.v1.Notes",
  transports: ["amqp"],
  amqp: { requestQueue: "notes", prefetch: 1 },
  methods: {
    get: noteMethod("Get"),
    watch: noteMethod("Watch", "server_streaming"),
    put: noteMethod("Put"),
  },
} satisfies ServiceDesc;

class Handlers {
  get() {
    return { text: "got" };
  }
  async *watch() {}
  put = "not a function";
}
const methods = methodTable(service, new Handlers());

function check(props: RequestProperties, over: Partial<ValidateContext> = {}) {
  return validateRequest(props, {
    methods,
    service: service.typeName,
    queue: "notes",
    cancelledBefore: () => false,
    arrival: 1_000,
    ...over,
  });
}

const unary = (
  headers: Record<string, unknown>,
  extra: Partial<RequestProperties> = {},
): RequestProperties => ({
  replyTo: "amq.rabbitmq.reply-to",
  correlationId: "c1",
  headers,
  ...extra,
});

describe("methodTable", () => {
  it("keys the service's methods by path and keeps only functions as handlers, prototype methods included", () => {
    expect([...methods.keys()]).toEqual([
      "/wire.v1.Notes/Get",
      "/wire.v1.Notes/Watch",
      "/wire.v1.Notes/Put",
    ]);
    expect(typeof methods.get("/wire.v1.Notes/Get")!.handler).toBe("function");
    expect(methods.get("/wire.v1.Notes/Put")).toMatchObject({
      key: "put",
      handler: undefined,
      unsupported: "/wire.v1.Notes/Put is not implemented by this server",
    });
  });
});

describe("validateRequest", () => {
  it("dead-letters a request with no reply_to before looking at anything else", () => {
    expect(check({ headers: { "rpc-method": "nonsense" } })).toEqual({
      kind: "dead-letter",
      reason: "the request has no reply_to, so no reply can be sent",
    });
  });

  it("answers a missing or unknown rpc-method UNIMPLEMENTED, naming the service and queue", () => {
    expect(check(unary({}))).toEqual({
      kind: "unknown-method",
      path: undefined,
      text: 'the request has no rpc-method header (service wire.v1.Notes on queue "notes")',
    });
    expect(check(unary({ "rpc-method": "/wire.v1.Notes/Nope" }))).toMatchObject({
      kind: "unknown-method",
      path: "/wire.v1.Notes/Nope",
      text: 'unknown method /wire.v1.Notes/Nope (service wire.v1.Notes on queue "notes")',
    });
  });

  it("answers a method the handlers lack UNIMPLEMENTED", () => {
    expect(check(unary({ "rpc-method": "/wire.v1.Notes/Put" }))).toMatchObject({
      kind: "refuse",
      code: Code.UNIMPLEMENTED,
      text: "/wire.v1.Notes/Put is not implemented by this server",
    });
  });

  it("refuses a request framed as another kind than its method INVALID_ARGUMENT", () => {
    expect(check(unary({ "rpc-method": "/wire.v1.Notes/Watch" }))).toMatchObject({
      kind: "refuse",
      code: Code.INVALID_ARGUMENT,
      text: "/wire.v1.Notes/Watch is a server-streaming method: open it as a stream (rpc-frame: open), not as a unary request",
    });
    expect(check(unary({ "rpc-method": "/wire.v1.Notes/Get", "rpc-frame": "open" }))).toMatchObject(
      { code: Code.INVALID_ARGUMENT, text: "/wire.v1.Notes/Get is a unary method, not a stream" },
    );
  });

  it("refuses a call its caller cancelled before it arrived, asking with its correlation id", () => {
    const asked: unknown[] = [];
    const verdict = check(unary({ "rpc-method": "/wire.v1.Notes/Get" }), {
      cancelledBefore: (id) => (asked.push(id), true),
    });
    expect(asked).toEqual(["c1"]);
    expect(verdict).toMatchObject({
      code: Code.CANCELLED,
      text: "/wire.v1.Notes/Get: the caller cancelled the call before it was served",
    });
  });

  it("refuses a request already late on arrival DEADLINE_EXCEEDED, by rpc-timeout-ms or else expiration", () => {
    expect(check(unary({ "rpc-method": "/wire.v1.Notes/Get", "rpc-timeout-ms": 0 }))).toMatchObject(
      { code: Code.DEADLINE_EXCEEDED },
    );
    expect(
      check(unary({ "rpc-method": "/wire.v1.Notes/Get" }, { expiration: "-5" })),
    ).toMatchObject({ code: Code.DEADLINE_EXCEEDED });
  });

  it("serves the rest with a deadline counted from arrival; a stream's open ignores its expiration", () => {
    expect(
      check(
        unary({ "rpc-method": "/wire.v1.Notes/Get", "rpc-timeout-ms": 250 }, { expiration: "999" }),
      ),
    ).toMatchObject({ kind: "serve", streaming: false, deadline: 1_250 });
    expect(
      check(unary({ "rpc-method": "/wire.v1.Notes/Get" }, { expiration: "400" })),
    ).toMatchObject({ kind: "serve", deadline: 1_400 });
    expect(check(unary({ "rpc-method": "/wire.v1.Notes/Get" }))).toMatchObject({
      kind: "serve",
      deadline: undefined,
    });
    expect(
      check(
        unary({ "rpc-method": "/wire.v1.Notes/Watch", "rpc-frame": "open" }, { expiration: "400" }),
      ),
    ).toMatchObject({ kind: "serve", streaming: true, deadline: undefined });
  });
});

describe("decodeRequest", () => {
  it("decodes the body, refusing one over the limit RESOURCE_EXHAUSTED and a garbled one INVALID_ARGUMENT", () => {
    const body = bytesOf({ text: "x" });
    expect(decodeRequest(service.methods.get, body, Infinity)).toEqual({ request: { text: "x" } });
    expect(decodeRequest(service.methods.get, body, 1)).toEqual({
      code: Code.RESOURCE_EXHAUSTED,
      text: `/wire.v1.Notes/Get: the request is ${body.length} bytes, over the limit of 1`,
    });
    expect(decodeRequest(service.methods.get, Buffer.from("[]"), Infinity)).toEqual({
      code: Code.INVALID_ARGUMENT,
      text: "could not decode the request as wire.v1.Note: not a Note",
    });
  });
});
