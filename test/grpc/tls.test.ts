// TLS with certificates made by `openssl` for this run: server authentication, mutual TLS, and clients
// that do not trust the server (or present no certificate) failing with UNAVAILABLE.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@grabbit/runtime";
import {
  GrpcServer,
  GrpcTransport,
  tlsChannelCredentials,
  tlsServerCredentials,
} from "@grabbit/runtime/grpc";
import { TestPki } from "../support/pki.js";
import { statusOf, TestService, testHandlers } from "./fixtures.js";

const M = TestService.methods;

interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
}

function makePki(): Pki {
  const pki = new TestPki("grabbit-tls")
    .ca("ca", "grabbit test CA")
    .ca("other", "someone else's CA")
    .issue("server", {
      cn: "localhost",
      ca: "ca",
      usage: "serverAuth",
      altNames: ["DNS:localhost", "IP:127.0.0.1"],
    })
    .issue("client", { cn: "grabbit test client", ca: "ca", usage: "clientAuth" });
  try {
    return {
      ca: pki.pem("ca.crt"),
      serverCert: pki.pem("server.crt"),
      serverKey: pki.pem("server.key"),
      clientCert: pki.pem("client.crt"),
      clientKey: pki.pem("client.key"),
      otherCa: pki.pem("other.crt"),
    };
  } finally {
    pki.remove();
  }
}

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});

async function tlsServer(
  requireClientCert: boolean,
): Promise<{ server: GrpcServer; port: number }> {
  const server = new GrpcServer().add(TestService, testHandlers().handlers);
  const credentials = tlsServerCredentials({
    cert: pki.serverCert,
    key: Buffer.from(pki.serverKey),
    ca: pki.ca,
    requireClientCert,
  });
  return { server, port: await server.listen("127.0.0.1:0", credentials) };
}

async function withClient<T>(
  address: string,
  credentials: Parameters<typeof tlsChannelCredentials>[0],
  fn: (t: GrpcTransport) => Promise<T>,
): Promise<T> {
  const t = new GrpcTransport(address, {
    credentials: tlsChannelCredentials(credentials),
    timeoutMs: 20_000,
  });
  try {
    return await fn(t);
  } finally {
    t.close();
  }
}

describe("server-authenticated TLS", () => {
  let s: { server: GrpcServer; port: number };
  beforeAll(async () => {
    s = await tlsServer(false);
  });
  afterAll(async () => {
    await s?.server.close({ graceMs: 1000 });
  });

  it("serves a client that trusts the CA", async () => {
    const res = await withClient(`localhost:${s.port}`, { ca: pki.ca }, (t) =>
      t.unary(M.echo, { text: "secure" }),
    );
    expect(res.text).toBe("secure");
  });

  it("fails with UNAVAILABLE for a client without the CA", async () => {
    const err = await withClient(`localhost:${s.port}`, {}, (t) => statusOf(t.unary(M.echo, {})));
    expect(err.code).toBe(Code.UNAVAILABLE);
  });

  it("fails with UNAVAILABLE for a client trusting another CA", async () => {
    const err = await withClient(`localhost:${s.port}`, { ca: pki.otherCa }, (t) =>
      statusOf(t.unary(M.echo, {})),
    );
    expect(err.code).toBe(Code.UNAVAILABLE);
  });

  it("fails with UNAVAILABLE for a plaintext client", async () => {
    const t = new GrpcTransport(`localhost:${s.port}`, { timeoutMs: 20_000 });
    try {
      expect((await statusOf(t.unary(M.echo, {}))).code).toBe(Code.UNAVAILABLE);
    } finally {
      t.close();
    }
  });
});

describe("mutual TLS", () => {
  let s: { server: GrpcServer; port: number };
  beforeAll(async () => {
    s = await tlsServer(true);
  });
  afterAll(async () => {
    await s?.server.close({ graceMs: 1000 });
  });

  it("serves a client presenting a certificate signed by the CA", async () => {
    const res = await withClient(
      `localhost:${s.port}`,
      { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      (t) => t.unary(M.echo, { text: "mutual" }),
    );
    expect(res.text).toBe("mutual");
  });

  it("fails with UNAVAILABLE for a client without a certificate", async () => {
    const err = await withClient(`localhost:${s.port}`, { ca: pki.ca }, (t) =>
      statusOf(t.unary(M.echo, {})),
    );
    expect(err.code).toBe(Code.UNAVAILABLE);
  });

  it("fails with UNAVAILABLE for a client without the CA", async () => {
    const err = await withClient(
      `localhost:${s.port}`,
      { cert: pki.clientCert, key: pki.clientKey },
      (t) => statusOf(t.unary(M.echo, {})),
    );
    expect(err.code).toBe(Code.UNAVAILABLE);
  });
});

describe("helpers", () => {
  it("refuse half a key pair and mutual TLS without a CA", () => {
    expect(() => tlsChannelCredentials({ cert: "x" })).toThrow(/both cert and key/);
    expect(() => tlsServerCredentials({ cert: "x", key: "y", requireClientCert: true })).toThrow(
      /ca/,
    );
  });
});
