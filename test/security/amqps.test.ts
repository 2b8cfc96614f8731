// amqps end to end against a private RabbitMQ node with a TLS listener that requires client
// certificates (mutual TLS), all certificates made here with openssl: a client that trusts the CA and
// shows its own certificate connects and publishes; one without the CA, with a certificate from
// another CA, without a certificate, or dialling a name the server certificate does not carry fails,
// and says why.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, StatusError } from "@grabbit/runtime";
import { AmqpConnection, Publisher, type AmqpTlsOptions } from "@grabbit/runtime/amqp";
import { TestPki } from "../support/pki.js";
import { startPrivateBroker, type PrivateBroker } from "./private-broker.js";

interface Pki {
  pki: TestPki;
  ca: string;
  clientCert: string;
  clientKey: string;
  otherCa: string;
  otherClientCert: string;
  otherClientKey: string;
  /** Signed by the CA, for a common name the broker has no user for. */
  strangerCert: string;
  strangerKey: string;
}

function makePki(): Pki {
  const pki = new TestPki("grabbit-amqps-pki")
    .ca("ca", "grabbit amqps test CA")
    .ca("other", "someone else's CA")
    // Only the name "localhost": dialling 127.0.0.1 is then a hostname mismatch.
    .issue("server", {
      cn: "localhost",
      ca: "ca",
      usage: "serverAuth",
      altNames: ["DNS:localhost"],
    })
    .issue("client", { cn: "grabbit-client", ca: "ca", usage: "clientAuth" })
    .issue("intruder", { cn: "grabbit-client", ca: "other", usage: "clientAuth" })
    .issue("stranger", { cn: "nobody-by-this-name", ca: "ca", usage: "clientAuth" });
  return {
    pki,
    ca: pki.pem("ca.crt"),
    clientCert: pki.pem("client.crt"),
    clientKey: pki.pem("client.key"),
    otherCa: pki.pem("other.crt"),
    otherClientCert: pki.pem("intruder.crt"),
    otherClientKey: pki.pem("intruder.key"),
    strangerCert: pki.pem("stranger.crt"),
    strangerKey: pki.pem("stranger.key"),
  };
}

let pki: Pki;
let broker: PrivateBroker;

beforeAll(async () => {
  pki = makePki();
  // If this throws, the test fails with the node's own output: the reason it could not start here.
  broker = await startPrivateBroker({
    cacertfile: pki.pki.path("ca.crt"),
    certfile: pki.pki.path("server.crt"),
    keyfile: pki.pki.path("server.key"),
    requireClientCert: true,
    certificateLogin: true,
  });
  // The user a certificate login becomes: the client certificate's common name, with no password.
  for (const args of [
    ["add_user", "grabbit-client", "unused-password"],
    ["clear_password", "grabbit-client"],
    ["set_permissions", "-p", "/", "grabbit-client", ".*", ".*", ".*"],
  ]) {
    const r = await broker.ctl(...args);
    if (!r.ok) throw new Error(`rabbitmqctl ${args.join(" ")}: ${r.out}`);
  }
}, 180_000);

afterAll(async () => {
  await broker?.stop();
  pki?.pki.remove();
}, 60_000);

/** One connection attempt, no retries, so a refusal surfaces as the error it is. */
async function connect(host: string, tls: AmqpTlsOptions): Promise<AmqpConnection> {
  return AmqpConnection.connect({
    urls: `amqps://guest:guest@${host}:${broker.tlsPort}`,
    tls,
    reconnect: { maxAttempts: 1 },
    connectTimeoutMs: 60_000,
    name: "amqps-test",
  });
}

async function refusal(host: string, tls: AmqpTlsOptions): Promise<StatusError> {
  try {
    const c = await connect(host, tls);
    await c.close();
  } catch (err) {
    expect(err).toBeInstanceOf(StatusError);
    return err as StatusError;
  }
  throw new Error("the TLS connection was accepted but should have been refused");
}

describe("amqps with mutual TLS on a private node", () => {
  const mine = () => ({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });

  it("connects with the CA and a client certificate, and a confirmed publish goes through", async () => {
    const conn = await connect("localhost", mine());
    try {
      const session = await conn.waitForSession();
      expect(session.url).toMatch(/^amqps:\/\/localhost:/);
      // The socket under the session really is TLS, with the server's certificate verified.
      const socket = (
        session.connection.connection as unknown as { stream: import("node:tls").TLSSocket }
      ).stream;
      expect(socket.encrypted).toBe(true);
      expect(socket.authorized).toBe(true);
      expect(socket.getPeerCertificate().subject.CN).toBe("localhost");
      const ch = await session.createChannel();
      const q = await ch.assertQueue("", { exclusive: true });
      const publisher = new Publisher(conn);
      await publisher.publish("", q.queue, Buffer.from("over tls"));
      const got = await ch.get(q.queue, { noAck: true });
      expect(got && got.content.toString()).toBe("over tls");
      await publisher.close();
    } finally {
      await conn.close();
    }
  });

  it("without the CA the server is not trusted", async () => {
    const err = await refusal("localhost", { cert: pki.clientCert, key: pki.clientKey });
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(/self[- ]signed certificate/);
  });

  it("trusting another CA only: the server is not trusted", async () => {
    const err = await refusal("localhost", {
      ca: pki.otherCa,
      cert: pki.clientCert,
      key: pki.clientKey,
    });
    expect(err.message).toMatch(/self[- ]signed certificate|unable to verify|unable to get/);
  });

  it("dialling a name the certificate does not carry fails the hostname check", async () => {
    const err = await refusal("127.0.0.1", mine());
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(
      /IP: 127\.0\.0\.1 is not in the cert's list|does not match certificate's altnames/,
    );
  });

  it("with the default (retrying) policy, the connect timeout still names the TLS failure", async () => {
    try {
      const c = await AmqpConnection.connect({
        urls: `amqps://guest:guest@localhost:${broker.tlsPort}`,
        tls: { cert: pki.clientCert, key: pki.clientKey },
        connectTimeoutMs: 3000,
      });
      await c.close();
      throw new Error("connected without trusting the CA");
    } catch (err) {
      expect((err as StatusError).code).toBe(Code.UNAVAILABLE);
      expect((err as Error).message).toMatch(
        /within 3000 ms \(last attempt: self[- ]signed certificate/,
      );
    }
  });

  it("a client without a certificate is refused by the broker", async () => {
    const err = await refusal("localhost", { ca: pki.ca });
    expect(err.code).toBe(Code.UNAVAILABLE);
    // The broker ends the handshake with a TLS alert (TLS 1.3: "certificate required").
    expect(err.message).toMatch(/alert certificate required|handshake failure/);
  });

  it("a client certificate from another CA is refused by the broker", async () => {
    const err = await refusal("localhost", {
      ca: pki.ca,
      cert: pki.otherClientCert,
      key: pki.otherClientKey,
    });
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(/alert unknown ca|alert bad certificate/);
  });
});

describe("logging in with the client certificate (SASL EXTERNAL)", () => {
  const external = (cert: string, key: string) =>
    AmqpConnection.connect({
      urls: `amqps://localhost:${broker.tlsPort}`,
      tls: { ca: pki.ca, cert, key },
      auth: "external",
      reconnect: { maxAttempts: 1 },
      connectTimeoutMs: 60_000,
    });

  it("logs in as the certificate's common name, with no password anywhere", async () => {
    const conn = await external(pki.clientCert, pki.clientKey);
    try {
      const session = await conn.waitForSession();
      const ch = await session.createChannel();
      const q = await ch.assertQueue("", { exclusive: true });
      const publisher = new Publisher(conn);
      // RabbitMQ checks user_id against the login: it is the certificate's name, not guest.
      await publisher.publish("", q.queue, Buffer.from("as grabbit-client"), {
        userId: "grabbit-client",
      });
      const got = await ch.get(q.queue, { noAck: true });
      expect(got && got.properties.userId).toBe("grabbit-client");
      const err = await publisher
        .publish("", q.queue, Buffer.from("as guest"), { userId: "guest" })
        .then(
          () => undefined,
          (e: unknown) => e as StatusError,
        );
      expect(err?.code).toBe(Code.PERMISSION_DENIED);
      expect(err?.message).toMatch(/user_id property set to 'guest'/);
      await publisher.close();
    } finally {
      await conn.close();
    }
  });

  it("a certificate the CA signed for a name with no user is refused, and says so", async () => {
    const err = await external(pki.strangerCert, pki.strangerKey).then(
      async (c) => {
        await c.close();
        throw new Error("logged in as a user that does not exist");
      },
      (e: unknown) => e as StatusError,
    );
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(err.message).toMatch(
      /ACCESS.REFUSED - Login was refused using authentication mechanism EXTERNAL/,
    );
  });

  it("asking for it over plain amqp:// or without a certificate fails at once with a sentence", async () => {
    await expect(
      AmqpConnection.connect({
        urls: `amqp://localhost:${broker.amqpPort}`,
        tls: { cert: pki.clientCert, key: pki.clientKey },
        auth: "external",
      }),
    ).rejects.toThrow(
      /auth "external" logs in with the client certificate, so it needs amqps:\/\/ URLs, not amqp:\/\/localhost/,
    );
    await expect(
      AmqpConnection.connect({
        urls: `amqps://localhost:${broker.tlsPort}`,
        tls: { ca: pki.ca },
        auth: "external",
      }),
    ).rejects.toThrow(/set tls\.cert and tls\.key/);
  });
});
