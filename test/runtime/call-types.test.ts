// CallRequest and CallResponse are tagged unions (issue 14): `stream: false` carries `message`,
// `stream: true` carries `messages`. The type half of this file is checked by tsc (the
// expect-error directives fail the type-check if the error they expect goes away); the runtime half
// shows, on the in-memory transport, that the transports set the tag by the method's kind, that an
// interceptor narrowing on it may replace the message or the stream, and that one which passes on
// the wrong shape gets INTERNAL rather than a handler reading `undefined`.
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  Code,
  createInMemoryTransport,
  StatusError,
  type CallRequest,
  type CallResponse,
  type Interceptor,
  type MessageType,
  type MethodDesc,
  type ServiceDesc,
  type StreamCallRequest,
  type UnaryCallRequest,
} from "@grabbit/runtime";

interface Text {
  text: string;
}

/** A JSON codec: enough for a hand-written service, as generated code would give. */
const TextType: MessageType<Text> = {
  typeName: "types.v1.Text",
  encode: (m) => new TextEncoder().encode(JSON.stringify({ text: m.text })),
  decode: (b) => JSON.parse(new TextDecoder().decode(b)) as Text,
};

function method(name: string, kind: MethodDesc["kind"]): MethodDesc<Text, Text> {
  return {
    name,
    path: `/types.v1.Echo/${name}`,
    kind,
    input: TextType,
    output: TextType,
    idempotent: false,
  };
}

const Echo: ServiceDesc = {
  typeName: "types.v1.Echo",
  transports: ["grpc"],
  methods: {
    unary: method("Unary", "unary"),
    serverStream: method("ServerStream", "server_streaming"),
    clientStream: method("ClientStream", "client_streaming"),
    bidiStream: method("BidiStream", "bidi_streaming"),
  },
};

async function* texts(...items: string[]): AsyncGenerator<Text> {
  for (const text of items) yield { text };
}

async function collect(stream: AsyncIterable<Text>): Promise<string[]> {
  const out: string[] = [];
  for await (const m of stream) out.push(m.text);
  return out;
}

const handlers = {
  unary: (req: Text) => ({ text: `u:${req.text}` }),
  serverStream: async function* (req: Text) {
    yield { text: `s1:${req.text}` };
    yield { text: `s2:${req.text}` };
  },
  clientStream: async (reqs: AsyncIterable<Text>) => ({
    text: `c:${(await collect(reqs)).join(",")}`,
  }),
  bidiStream: async function* (reqs: AsyncIterable<Text>) {
    for await (const r of reqs) yield { text: `b:${r.text}` };
  },
};

describe("CallRequest / CallResponse types", () => {
  it("narrow on `stream`", () => {
    const onRequest = (req: CallRequest) => {
      if (req.stream) {
        expectTypeOf(req).toEqualTypeOf<StreamCallRequest>();
        expectTypeOf(req.messages).toEqualTypeOf<AsyncIterable<unknown>>();
        // @ts-expect-error a stream request has no `message`
        void req.message;
      } else {
        expectTypeOf(req).toEqualTypeOf<UnaryCallRequest>();
        expectTypeOf(req.message).toEqualTypeOf<unknown>();
        // @ts-expect-error a one-message request has no `messages`
        void req.messages;
      }
    };
    const onResponse = (res: CallResponse) => {
      if (res.stream) expectTypeOf(res.messages).toEqualTypeOf<AsyncIterable<unknown>>();
      else expectTypeOf(res.message).toEqualTypeOf<unknown>();
    };
    expectTypeOf(onRequest).parameter(0).toEqualTypeOf<CallRequest>();
    expectTypeOf(onResponse).parameter(0).toEqualTypeOf<CallResponse>();
  });

  it("do not let an interceptor read a field without narrowing, or build a response without its tag", () => {
    const reads: Interceptor = (next) => (req) => {
      // @ts-expect-error `message` exists only once `req.stream` is known to be false
      void req.message;
      // @ts-expect-error `messages` exists only once `req.stream` is known to be true
      void req.messages;
      return next(req);
    };
    // @ts-expect-error a response must say which kind it is
    const untagged: CallResponse = { message: 1, metadata: {} };
    // @ts-expect-error `stream: true` carries `messages`, not `message`
    const mixed: CallResponse = { stream: true, message: 1, metadata: {} };
    // @ts-expect-error the tag is read-only: an interceptor replaces the message, not the call's kind
    const flip = (req: UnaryCallRequest) => (req.stream = false);
    expect([reads, untagged, mixed, flip]).toHaveLength(4);
  });
});

describe("the tag on the in-memory transport", () => {
  it("is set by the method's kind, client and server side, and lets interceptors replace messages and streams", async () => {
    const seen: string[] = [];
    const rewrite: Interceptor = (next) => async (req) => {
      seen.push(`${req.side}:${req.method.name}:${req.stream}`);
      if (req.stream) {
        const inner = req.messages as AsyncIterable<Text>;
        req.messages = (async function* () {
          for await (const m of inner) yield { text: `${m.text}+${req.side}` };
        })();
      } else {
        req.message = { text: `${(req.message as Text).text}+${req.side}` };
      }
      const res = await next(req);
      seen.push(`${req.side}:${req.method.name}:response:${res.stream}`);
      return res;
    };
    const transport = createInMemoryTransport(Echo, handlers, {
      clientInterceptors: [rewrite],
      interceptors: [rewrite],
    });
    const m = Echo.methods;
    expect(await transport.unary(m.unary!, { text: "a" })).toEqual({ text: "u:a+client+server" });
    expect(
      await collect(transport.serverStream(m.serverStream!, { text: "b" }) as AsyncIterable<Text>),
    ).toEqual(["s1:b+client+server", "s2:b+client+server"]);
    expect(await transport.clientStream(m.clientStream!, texts("c", "d"))).toEqual({
      text: "c:c+client+server,d+client+server",
    });
    expect(
      await collect(transport.bidiStream(m.bidiStream!, texts("e")) as AsyncIterable<Text>),
    ).toEqual(["b:e+client+server"]);
    expect(seen).toEqual([
      "client:Unary:false",
      "server:Unary:false",
      "server:Unary:response:false",
      "client:Unary:response:false",
      "client:ServerStream:false",
      "server:ServerStream:false",
      "server:ServerStream:response:true",
      "client:ServerStream:response:true",
      "client:ClientStream:true",
      "server:ClientStream:true",
      "server:ClientStream:response:false",
      "client:ClientStream:response:false",
      "client:BidiStream:true",
      "server:BidiStream:true",
      "server:BidiStream:response:true",
      "client:BidiStream:response:true",
    ]);
  });

  it("fails INTERNAL, naming the method, when a server interceptor answers a unary call with a stream", async () => {
    const wrongShape: Interceptor = () => async () =>
      ({ stream: true, messages: texts("x"), metadata: {} }) satisfies CallResponse;
    const transport = createInMemoryTransport(Echo, handlers, { interceptors: [wrongShape] });
    const err = await transport.unary(Echo.methods.unary!, { text: "a" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StatusError);
    expect((err as StatusError).code).toBe(Code.INTERNAL);
    expect((err as StatusError).rawMessage).toContain("/types.v1.Echo/Unary");
    expect((err as StatusError).rawMessage).toContain("response stream");
  });

  it("fails INTERNAL when a client interceptor turns a one-message request into a stream", async () => {
    const wrongShape: Interceptor = (next) => (req) =>
      req.stream
        ? next(req)
        : next({ ...req, message: undefined, stream: true, messages: texts("x") } as CallRequest);
    let ran = false;
    const transport = createInMemoryTransport(
      Echo,
      { ...handlers, unary: (r: Text) => ((ran = true), r) },
      { clientInterceptors: [wrongShape] },
    );
    const err = await transport.unary(Echo.methods.unary!, { text: "a" }).catch((e: unknown) => e);
    expect((err as StatusError).code).toBe(Code.INTERNAL);
    expect((err as StatusError).rawMessage).toContain("changed the request's shape");
    expect(ran).toBe(false);
  });
});
