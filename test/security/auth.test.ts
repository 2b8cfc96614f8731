// Bearer tokens end to end on both transports: one client interceptor (bearerToken) and one server
// interceptor (requireJwt) around a real gRPC server and a real AMQP RPC server, with JWTs signed here
// by jose (HS256 secret, RS256 PEM, ES256 in a local JWKS) and every way a token can be wrong.
import { generateKeyPairSync } from "node:crypto";
import { SignJWT, UnsecuredJWT, exportJWK, generateKeyPair } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Code,
  StatusError,
  type HandlerContext,
  type Interceptor,
  type Transport,
} from "@grabbit/runtime";
import {
  AmqpConnection,
  AmqpRpcTransport,
  serveAmqp,
  type AmqpRpcServer,
} from "@grabbit/runtime/amqp";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import {
  bearerToken,
  claimsOf,
  jwtVerifier,
  requireJwt,
  type RequireJwtOptions,
} from "@grabbit/runtime/auth";
import { AMQP_URL } from "../support/broker.js";
import { echoService, type Echo, type EchoService } from "../amqp-rpc/fixture.js";

const SECRET = "a-shared-secret-of-at-least-32-bytes!!";
const ISSUER = "https://issuer.grabbit.test";
const AUDIENCE = "orders";
const now = () => Math.floor(Date.now() / 1000);

function hs256(
  claims: Record<string, unknown> = {},
  opts: { exp?: number; iss?: string; aud?: string; secret?: string } = {},
): Promise<string> {
  return new SignJWT({ scope: "orders:read", ...claims })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("svc-a")
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? now() + 300)
    .sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

/** The handler answers with the verified subject, so a test sees what reached ctx.values. */
const handlers = {
  async echo(req: Echo, ctx: HandlerContext): Promise<Echo> {
    const claims = claimsOf(ctx);
    return {
      text: `${req.text}:${claims?.sub ?? "anonymous"}:${String(claims?.scope ?? "")}`,
      delayMs: 0,
    };
  },
};

interface Side {
  name: "grpc" | "amqp";
  /** Starts a server with these interceptors and returns a client factory and a stop function. */
  serve(
    interceptors: Interceptor[],
  ): Promise<{ client(interceptors: Interceptor[]): Transport; stop(): Promise<void> }>;
}

let conn: AmqpConnection;
const cleanup: (() => Promise<void>)[] = [];

beforeAll(async () => {
  conn = await AmqpConnection.connect({ urls: AMQP_URL, name: "security-auth-test" });
});
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => {});
  await conn.close();
});

const sides: Side[] = [
  {
    name: "grpc",
    async serve(interceptors) {
      const service = echoService();
      const server = new GrpcServer({ interceptors }).add(service, handlers);
      const port = await server.listen("127.0.0.1:0");
      const clients: GrpcTransport[] = [];
      return {
        client(ci) {
          const t = new GrpcTransport(`127.0.0.1:${port}`, { interceptors: ci, timeoutMs: 20_000 });
          clients.push(t);
          return wrap(t, service);
        },
        async stop() {
          for (const c of clients) c.close();
          await server.close({ graceMs: 1000 });
        },
      };
    },
  },
  {
    name: "amqp",
    async serve(interceptors) {
      const service = echoService();
      const server: AmqpRpcServer = await serveAmqp(conn, service, handlers, { interceptors });
      const transports: AmqpRpcTransport[] = [];
      const stop = async () => {
        for (const t of transports) await t.close();
        await server.close();
        const ch = await conn.waitForSession().then((s) => s.createChannel());
        await ch.deleteQueue(service.amqp!.requestQueue).catch(() => {});
        await ch.deleteQueue(`${service.amqp!.requestQueue}.dlq`).catch(() => {});
        await ch.close().catch(() => {});
      };
      cleanup.push(stop);
      return {
        client(ci) {
          const t = new AmqpRpcTransport(conn, { interceptors: ci, timeoutMs: 20_000 });
          transports.push(t);
          return wrap(t, service);
        },
        stop,
      };
    },
  },
];

/** The transport plus the one method the tests call. */
function wrap(
  t: Transport,
  service: EchoService,
): Transport & { call(text: string): Promise<string> } {
  return Object.assign(t, {
    call: async (text: string) => (await t.unary(service.methods.echo, { text, delayMs: 0 })).text,
  });
}

async function statusOf(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StatusError);
    return err as StatusError;
  }
  throw new Error("the call succeeded but should have failed");
}

type Client = ReturnType<typeof wrap>;

describe.each(sides)("bearer JWT on $name", (side) => {
  let s: Awaited<ReturnType<Side["serve"]>>;
  const verify: RequireJwtOptions = {
    keys: { secret: SECRET },
    issuer: ISSUER,
    audience: AUDIENCE,
    clockToleranceSec: 30,
  };
  const withToken = (t: string | (() => Promise<string>)) => s.client([bearerToken(t)]) as Client;

  beforeAll(async () => {
    s = await side.serve([
      requireJwt({
        ...verify,
        authorize: (claims, req) =>
          req.stream ||
          !(req.message as Echo).text.startsWith("admin") ||
          claims.scope === "orders:admin",
      }),
    ]);
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("a valid token reaches the handler as verified claims", async () => {
    expect(await withToken(await hs256()).call("hi")).toBe("hi:svc-a:orders:read");
  });

  it("an async provider is asked on every call (so it can refresh)", async () => {
    let asked = 0;
    const c = withToken(async () => {
      asked++;
      return hs256({ scope: `n${asked}` });
    });
    expect(await c.call("a")).toBe("a:svc-a:n1");
    expect(await c.call("b")).toBe("b:svc-a:n2");
  });

  it("no token: UNAUTHENTICATED, and the handler never runs", async () => {
    const err = await statusOf((s.client([]) as Client).call("x"));
    expect(err.code).toBe(Code.UNAUTHENTICATED);
    expect(err.rawMessage).toMatch(/authorization header is missing/);
  });

  const bad: [string, () => Promise<string>, RegExp][] = [
    ["expired beyond the clock tolerance", () => hs256({}, { exp: now() - 120 }), /expired/],
    [
      "signed with another secret",
      () => hs256({}, { secret: "another-secret-that-is-32-bytes-long!!" }),
      /signature/,
    ],
    ["from another issuer", () => hs256({}, { iss: "https://evil.test" }), /iss/],
    ["for another audience", () => hs256({}, { aud: "payments" }), /aud/],
    [
      "unsigned (alg none)",
      async () =>
        new UnsecuredJWT({ sub: "svc-a", iss: ISSUER, aud: AUDIENCE, exp: now() + 60 }).encode(),
      /algorithm|alg|malformed|Unsecured/i,
    ],
    [
      "without exp",
      () =>
        new SignJWT({})
          .setProtectedHeader({ alg: "HS256" })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .sign(new TextEncoder().encode(SECRET)),
      /exp/,
    ],
    ["not a JWT", async () => "not.a.jwt", /malformed|invalid/i],
    [
      "tampered payload",
      async () => {
        const [h, , sig] = (await hs256()).split(".");
        const forged = Buffer.from(
          JSON.stringify({ sub: "root", iss: ISSUER, aud: AUDIENCE, exp: now() + 60 }),
        ).toString("base64url");
        return `${h}.${forged}.${sig}`;
      },
      /signature/,
    ],
  ];
  it.each(bad)("a token %s: UNAUTHENTICATED with the reason", async (_what, make, reason) => {
    const err = await statusOf(withToken(await make()).call("x"));
    expect(err.code).toBe(Code.UNAUTHENTICATED);
    expect(err.rawMessage).toMatch(reason);
  });

  it("expired within the clock tolerance is still accepted", async () => {
    expect(await withToken(await hs256({}, { exp: now() - 5 })).call("late")).toBe(
      "late:svc-a:orders:read",
    );
  });

  it("a scheme other than Bearer: UNAUTHENTICATED", async () => {
    const basic: Interceptor = (next) => (req) => {
      req.metadata.authorization = "Basic Z3Vlc3Q6Z3Vlc3Q=";
      return next(req);
    };
    const err = await statusOf((s.client([basic]) as Client).call("x"));
    expect(err.code).toBe(Code.UNAUTHENTICATED);
    expect(err.rawMessage).toMatch(/Bearer/);
  });

  it("a verified caller the authorize hook refuses: PERMISSION_DENIED", async () => {
    const err = await statusOf(withToken(await hs256()).call("admin-op"));
    expect(err.code).toBe(Code.PERMISSION_DENIED);
    expect(await withToken(await hs256({ scope: "orders:admin" })).call("admin-op")).toBe(
      "admin-op:svc-a:orders:admin",
    );
  });

  it("a provider that fails stops the call on the client with UNAUTHENTICATED", async () => {
    const err = await statusOf(
      withToken(async () => Promise.reject(new Error("vault sealed"))).call("x"),
    );
    expect(err.code).toBe(Code.UNAUTHENTICATED);
    expect(err.rawMessage).toMatch(/vault sealed/);
  });
});

describe("public-key verification (both transports share the verifier)", () => {
  it("RS256 with a PEM public key; a token signed by another key fails", async () => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const verify = jwtVerifier({
      keys: { publicKey: publicKey.export({ type: "spki", format: "pem" }).toString() },
      issuer: ISSUER,
    });
    const sign = (key: typeof privateKey) =>
      new SignJWT({})
        .setProtectedHeader({ alg: "RS256" })
        .setSubject("rs")
        .setIssuer(ISSUER)
        .setExpirationTime("5m")
        .sign(key);
    expect((await verify(await sign(privateKey))).sub).toBe("rs");
    const err = await statusOf(verify(await sign(other.privateKey)));
    expect(err.code).toBe(Code.UNAUTHENTICATED);
    // An HS256 token made with the public key as "secret" (the classic confusion attack) is refused.
    const confused = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("5m")
      .setIssuer(ISSUER)
      .sign(new TextEncoder().encode(publicKey.export({ type: "spki", format: "pem" }).toString()));
    expect((await statusOf(verify(confused))).rawMessage).toMatch(/algorithm/);
  });

  it("ES256 through a local JWKS picks the key by kid; an unknown kid fails", async () => {
    const a = await generateKeyPair("ES256");
    const b = await generateKeyPair("ES256");
    const jwks = {
      keys: [{ ...(await exportJWK(a.publicKey)), kid: "a", alg: "ES256", use: "sig" }],
    };
    const verify = jwtVerifier({ keys: { jwks }, audience: AUDIENCE });
    const sign = (kid: string, key: typeof a.privateKey) =>
      new SignJWT({})
        .setProtectedHeader({ alg: "ES256", kid })
        .setSubject(kid)
        .setAudience(AUDIENCE)
        .setExpirationTime("5m")
        .sign(key);
    expect((await verify(await sign("a", a.privateKey))).sub).toBe("a");
    expect((await statusOf(verify(await sign("b", b.privateKey)))).rawMessage).toMatch(/no key/);
    expect((await statusOf(verify(await sign("a", b.privateKey)))).rawMessage).toMatch(/signature/);
  });

  it("refuses weak configuration at construction", () => {
    expect(() => jwtVerifier({ keys: { secret: "short" } })).toThrow(/32 bytes/);
    expect(() => jwtVerifier({ keys: { secret: SECRET }, algorithms: ["RS256"] })).toThrow(/HS256/);
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    expect(() => jwtVerifier({ keys: { publicKey: privateKey } })).toThrow(/public key/);
  });
});
