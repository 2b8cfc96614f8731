// The Bridge: the clients' gateway. A small REST API (node:http) over an in-memory request store; each
// request goes to the Request Processor over gRPC (processRequest), and the Processor calls back over
// gRPC (notifyRequestDone) with the decision. The caller's bearer token (a JWT from the example's
// issuer, verified here: signature, issuer, audience, expiry) travels with the request.
// Each REST call is a server span (through @opentelemetry/api: free when no SDK is registered), so
// a request's trace starts here and the runtime's gRPC or RabbitMQ spans are its children.

import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { Code, StatusError, type HandlerContext, type Transport } from "@grabbit/runtime";
import { AmqpRpcTransport, type AmqpConnection } from "@grabbit/runtime/amqp";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import { addBridgeGrpcService, type BridgeHandlers } from "#gen/example/v1/bridge.grabbit.js";
import { RequestProcessorClient } from "#gen/example/v1/processor.grabbit.js";
import { APPROVED, DENIED, cents, decisionName } from "#messages";

// The message types, taken from the handler interface: the same code reads either library's.
type NotifyRequestDoneRequest = Parameters<BridgeHandlers["notifyRequestDone"]>[0];
type NotifyRequestDoneResponse = Awaited<ReturnType<BridgeHandlers["notifyRequestDone"]>>;
import type { Identity } from "../shared/auth.js";
import { retrying } from "../shared/retry.js";

/** RECEIVED: stored; PROCESSING: the Processor accepted it; DONE and FAILED are final. */
export type RequestStatus = "RECEIVED" | "PROCESSING" | "DONE" | "FAILED";

export interface StoredRequest {
  requestId: string;
  customer: string;
  amountCents: number;
  region: string;
  status: RequestStatus;
  decision?: "APPROVED" | "DENIED";
  reason?: string;
  error?: string;
  receivedAt: number;
  doneAt?: number;
  /** The caller's header, passed on to the Processor and expected back on the callback. */
  authorization: string;
}

export interface BridgeOptions {
  /** REST port; 0 picks a free one. Default 8080. */
  httpPort?: number;
  httpHost?: string;
  /** gRPC listen address for notifyRequestDone. Default "127.0.0.1:50051". */
  grpcAddress?: string;
  /** The Processor's gRPC address; may also be given later with connectProcessor(). */
  processorAddress?: string;
  /** Call the Processor over RabbitMQ instead of gRPC (the same generated client, another transport). */
  processorOverAmqp?: AmqpConnection;
  /** Verifies the callers' tokens (examples/shared/auth.ts). */
  identity: Identity;
  log?: (line: string) => void;
}

export interface Bridge {
  /** Base URL of the REST API, such as "http://127.0.0.1:8080". */
  readonly httpUrl: string;
  readonly grpcAddress: string;
  readonly requests: ReadonlyMap<string, StoredRequest>;
  connectProcessor(address: string): void;
  close(): Promise<void>;
}

const FINAL: ReadonlySet<RequestStatus> = new Set(["DONE", "FAILED"]);

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const log = options.log ?? (() => {});
  const requests = new Map<string, StoredRequest>();
  let processorTransport: (Transport & { close(): unknown }) | undefined;
  let processor: RequestProcessorClient | undefined;

  function connectProcessor(address: string): void {
    void processorTransport?.close();
    processorTransport = new GrpcTransport(address);
    processor = new RequestProcessorClient(processorTransport);
  }
  if (options.processorOverAmqp) {
    processorTransport = new AmqpRpcTransport(options.processorOverAmqp);
    processor = new RequestProcessorClient(processorTransport);
  } else if (options.processorAddress) {
    connectProcessor(options.processorAddress);
  }

  // --- gRPC: the Processor's callback ---
  const handlers: BridgeHandlers = {
    notifyRequestDone(
      done: NotifyRequestDoneRequest,
      context: HandlerContext,
    ): NotifyRequestDoneResponse {
      const stored = requests.get(done.requestId);
      if (!stored) throw new StatusError(Code.NOT_FOUND, `no request ${done.requestId}`);
      // A valid token is not enough: it must be the one this request came with.
      if (context.metadata.authorization !== stored.authorization) {
        throw new StatusError(
          Code.PERMISSION_DENIED,
          `request ${done.requestId} was sent with another token`,
        );
      }
      if (done.decision !== APPROVED && done.decision !== DENIED) {
        throw new StatusError(
          Code.INVALID_ARGUMENT,
          `decision ${decisionName(done.decision)} is not final`,
        );
      }
      // At-least-once callers may repeat a callback: the first one wins, repeats are acknowledged.
      if (stored.status !== "DONE") {
        stored.status = "DONE";
        stored.decision = done.decision === APPROVED ? "APPROVED" : "DENIED";
        stored.reason = done.reason;
        stored.doneAt = Date.now();
      }
      return {};
    },
  };
  const grpcServer = new GrpcServer({ interceptors: [options.identity.interceptor()] });
  addBridgeGrpcService(grpcServer, handlers);
  const listen = options.grpcAddress ?? "127.0.0.1:50051";
  const grpcPort = await grpcServer.listen(listen);
  const grpcAddress = `${listen.slice(0, listen.lastIndexOf(":"))}:${grpcPort}`;

  // --- REST: the clients' API ---
  async function sendRequest(req: IncomingMessage, authorization: string): Promise<Reply> {
    const body = await readJson(req);
    const customer = body?.customer;
    const amountCents = body?.amountCents;
    const region = body?.region;
    if (
      typeof customer !== "string" ||
      customer === "" ||
      typeof region !== "string" ||
      region === "" ||
      !Number.isSafeInteger(amountCents) ||
      amountCents <= 0
    ) {
      return [
        400,
        {
          error:
            'send JSON {"customer": string, "amountCents": positive integer, "region": string}',
        },
      ];
    }
    if (!processor)
      return [503, { error: "the Bridge does not know where the Request Processor is yet" }];
    const stored: StoredRequest = {
      requestId: randomUUID(),
      customer,
      amountCents,
      region,
      status: "RECEIVED",
      receivedAt: Date.now(),
      authorization,
    };
    requests.set(stored.requestId, stored);
    try {
      // Retried (for about a minute) while the Processor is away (restarting, say): it decides a request once however
      // often it is sent (its decisions are keyed by request id), so a repeat is safe.
      await retrying(
        `send ${stored.requestId} to the Processor`,
        log,
        () =>
          processor!.processRequest(
            {
              request: {
                requestId: stored.requestId,
                customer,
                amountCents: cents(amountCents),
                region,
              },
            },
            // The token enters here: a REST request is no call the runtime serves, so there is no call
            // context to inherit from and it is passed on by hand. From the Processor on, it travels by itself.
            { metadata: { authorization }, timeoutMs: 5000 },
          ),
        16,
      );
      // The callback may already have come in: never move a request back from DONE.
      if (stored.status === "RECEIVED") stored.status = "PROCESSING";
    } catch (err) {
      const status = StatusError.from(err);
      if (stored.status === "RECEIVED") {
        stored.status = "FAILED";
        stored.error = status.message;
      }
      log(`bridge: the Processor refused ${stored.requestId}: ${status.message}`);
      return [502, { ...publicView(stored), error: status.message }];
    }
    return [202, publicView(stored)];
  }

  async function route(req: IncomingMessage): Promise<Reply> {
    const url = new URL(req.url ?? "/", "http://bridge");
    const [, action, id] = url.pathname.split("/");
    // Every endpoint needs a caller's token; it is the one passed on downstream.
    const authorization = req.headers.authorization;
    try {
      await options.identity.verify(authorization);
    } catch (err) {
      const status = StatusError.from(err);
      if (status.code === Code.UNAVAILABLE) return [503, { error: status.message }];
      return [
        401,
        { error: `send Authorization: Bearer <token from the issuer>: ${status.message}` },
      ];
    }
    if (req.method === "POST" && action === "sendRequest" && id === undefined)
      return sendRequest(req, authorization!);
    if (req.method === "GET" && (action === "getStatus" || action === "getResult") && id) {
      const stored = requests.get(decodeURIComponent(id));
      if (!stored) return [404, { error: `no request ${id}` }];
      if (action === "getStatus")
        return [200, { requestId: stored.requestId, status: stored.status }];
      if (!FINAL.has(stored.status))
        return [
          409,
          {
            requestId: stored.requestId,
            status: stored.status,
            error: "the request is not finished yet",
          },
        ];
      return [200, publicView(stored)];
    }
    return [
      404,
      {
        error:
          "endpoints: POST /sendRequest, GET /getStatus/{requestId}, GET /getResult/{requestId}",
      },
    ];
  }

  const tracer = trace.getTracer("grabbit-example-bridge");
  const http = createServer((req, res) => {
    // A caller that traces (sends traceparent) gets the Bridge's spans in its own trace.
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const httpRoute = routeOf(req);
    tracer.startActiveSpan(
      `${req.method} ${httpRoute}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "http.request.method": req.method ?? "",
          "http.route": httpRoute,
          "url.path": (req.url ?? "/").split("?")[0]!,
        },
      },
      parent,
      (span) => {
        const reply = (status: number, body: unknown) => {
          span.setAttribute("http.response.status_code", status);
          if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
          send(res, status, body);
        };
        route(req).then(
          ([status, body]) => reply(status, body),
          (err: unknown) => reply(500, { error: err instanceof Error ? err.message : String(err) }),
        );
      },
    );
  });
  http.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.httpPort ?? 8080, options.httpHost ?? "127.0.0.1", () => resolve());
  });
  const { address, port } = http.address() as AddressInfo;
  const httpUrl = `http://${address.includes(":") ? `[${address}]` : address}:${port}`;
  log(`bridge: REST on ${httpUrl}, gRPC on ${grpcAddress}`);

  return {
    httpUrl,
    grpcAddress,
    requests,
    connectProcessor,
    async close() {
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
      await grpcServer.close({ graceMs: 2000 });
      await processorTransport?.close();
    },
  };
}

type Reply = [number, unknown];

/** The route template of a request, for span names: "/getStatus/{requestId}", not every id. */
function routeOf(req: IncomingMessage): string {
  const [, action, id] = (req.url ?? "/").split("?")[0]!.split("/");
  return id === undefined ? `/${action ?? ""}` : `/${action}/{requestId}`;
}

/** What a client may see: everything but the token. */
function publicView(stored: StoredRequest): Omit<StoredRequest, "authorization"> {
  const { authorization: _, ...rest } = stored;
  return rest;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  };
  if (status === 401) headers["www-authenticate"] = "Bearer";
  res.writeHead(status, headers).end(text);
}

async function readJson(req: IncomingMessage): Promise<any> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) return undefined;
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return undefined;
  }
}
