// Hostile gRPC requests, sent with a raw grpc-js client so the bytes and metadata are exactly what a
// hostile peer would send: random bodies to the typed server (decoded as sent, or INVALID_ARGUMENT),
// unknown paths (UNIMPLEMENTED), and random authorization metadata at the auth interceptor
// (UNAUTHENTICATED unless the token is valid).
import * as grpc from "@grpc/grpc-js";
import { SignJWT } from "jose";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@grabbit/runtime";
import { GrpcServer } from "@grabbit/runtime/grpc";
import { requireJwt } from "@grabbit/runtime/auth";
import { EchoType, echoService, type Echo } from "../amqp-rpc/fixture.js";
import { runs, tally } from "./support.js";

const SECRET = "grpc-hostile-secret-at-least-32-bytes!";
const service = echoService();
const path = service.methods.echo.path;
let open: { server: GrpcServer; client: grpc.Client };
let guarded: { server: GrpcServer; client: grpc.Client };

async function start(interceptors: Parameters<typeof requireJwt>[0] | undefined) {
  const server = new GrpcServer(
    interceptors ? { interceptors: [requireJwt(interceptors)] } : {},
  ).add(service, { echo: async (req: Echo) => req });
  const port = await server.listen("127.0.0.1:0");
  return {
    server,
    client: new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()),
  };
}

beforeAll(async () => {
  open = await start(undefined);
  guarded = await start({ keys: { secret: SECRET } });
});
afterAll(async () => {
  for (const s of [open, guarded]) {
    s?.client.close();
    await s?.server.close({ graceMs: 1000 });
  }
});

/** A unary call with raw bytes in and out; resolves with the status code and the reply bytes. */
function call(
  client: grpc.Client,
  method: string,
  body: Uint8Array,
  metadata: Record<string, string> = {},
): Promise<{ code: number; reply?: Buffer; details: string }> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      method,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(body),
      md,
      { deadline: Date.now() + 30_000 },
      (err, reply) =>
        resolve(
          err
            ? { code: err.code ?? -1, details: err.details ?? "" }
            : { code: 0, reply: reply as Buffer, details: "" },
        ),
    );
  });
}

describe("gRPC server under hostile requests", () => {
  it("random bodies and paths: decoded as sent, INVALID_ARGUMENT or UNIMPLEMENTED", async () => {
    const outcomes: Record<string, number> = {};
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 200 }),
        fc.oneof(
          { weight: 4, arbitrary: fc.constant(path) },
          fc.constantFrom(`${path}x`, "/nope.v1.X/Y", service.methods.fail.path),
        ),
        async (body, method) => {
          const r = await call(open.client, method, body);
          let want: Code;
          let decoded: Echo | undefined;
          if (method !== path) want = Code.UNIMPLEMENTED;
          else {
            try {
              decoded = EchoType.decode(body);
              want = Code.OK;
            } catch {
              want = Code.INVALID_ARGUMENT;
            }
          }
          expect(Code[r.code]).toBe(Code[want]);
          if (want === Code.OK) expect(EchoType.decode(r.reply!)).toEqual(decoded);
          else expect(r.details).not.toBe("");
          outcomes[Code[want]] = (outcomes[Code[want]] ?? 0) + 1;
          tried++;
        },
      ),
      runs(300),
    );
    tally("gRPC server requests", tried, outcomes);
  });

  it("random authorization metadata: UNAUTHENTICATED unless the token is valid", async () => {
    const valid = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("ok")
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(SECRET));
    const body = EchoType.encode({ text: "hello", delayMs: 0 });
    const auth = fc.oneof(
      fc.constant(`Bearer ${valid}`),
      fc.string({ maxLength: 100 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
      fc
        .string({ maxLength: 100 })
        .filter((s) => /^[\x21-\x7e]*$/.test(s))
        .map((s) => `Bearer ${s}`),
      fc.integer({ min: 4000, max: 7000 }).map((n) => `Bearer ${"x".repeat(n)}`),
    );
    const outcomes: Record<string, number> = {};
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(auth, async (a) => {
        const r = await call(guarded.client, path, body, { authorization: a });
        const want = a === `Bearer ${valid}` ? Code.OK : Code.UNAUTHENTICATED;
        expect(Code[r.code]).toBe(Code[want]);
        outcomes[Code[want]] = (outcomes[Code[want]] ?? 0) + 1;
        tried++;
      }),
      runs(300),
    );
    tally("gRPC authorization metadata", tried, outcomes);
  });
});
