// The Request Processor: decides each request the Bridge forwards (approve or deny, drawn at random
// from a seed), publishes a RequestReported event over RabbitMQ, then tells the Bridge over gRPC.
// Everything transport-shaped comes from generated code; this file is only the business logic.

import { Code, detachFromCall, StatusError } from "@grabbit/runtime";
import type { AmqpConnection, AmqpRpcServer } from "@grabbit/runtime/amqp";
import { GrpcServer, GrpcTransport } from "@grabbit/runtime/grpc";
import { BridgeClient } from "../gen/example/v1/bridge.grabbit.js";
import { Decision, type Request } from "../gen/example/v1/common.js";
import type { ProcessRequestRequest, ProcessRequestResponse } from "../gen/example/v1/processor.js";
import { addRequestProcessorGrpcService, serveRequestProcessorAmqp, type RequestProcessorHandlers } from "../gen/example/v1/processor.grabbit.js";
import { RequestReportedPublisher } from "../gen/example/v1/reports.grabbit.js";
import { requireBearer, TokenCheck } from "../shared/auth.js";
import { retrying } from "../shared/retry.js";

export interface ProcessorOptions {
  connection: AmqpConnection;
  /** Where the Bridge serves notifyRequestDone ("host:port"); may also be given later with connectBridge(). */
  bridgeAddress?: string;
  /** gRPC listen address; port 0 picks a free one. Default "127.0.0.1:50052". */
  grpcAddress?: string;
  /** Also serve processRequest over RabbitMQ (queue "example.v1.RequestProcessorService"). */
  serveAmqp?: boolean;
  /** Same seed and same request, same decision: runs are repeatable whatever the arrival order. */
  seed?: number;
  tokens: Iterable<string>;
  log?: (line: string) => void;
}

export interface Processor {
  readonly grpcAddress: string;
  /** Requests decided and reported so far. */
  readonly processed: number;
  connectBridge(address: string): void;
  close(): Promise<void>;
}

export async function startProcessor(options: ProcessorOptions): Promise<Processor> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 42;
  const check = new TokenCheck(options.tokens);
  const reports = new RequestReportedPublisher(options.connection);
  // Built from the generated client class so the transport can be closed on shutdown.
  let bridgeTransport: GrpcTransport | undefined;
  let bridge: BridgeClient | undefined;
  function connectBridge(address: string): void {
    bridgeTransport?.close();
    bridgeTransport = new GrpcTransport(address);
    bridge = new BridgeClient(bridgeTransport);
  }
  if (options.bridgeAddress !== undefined) connectBridge(options.bridgeAddress);
  const inFlight = new Map<string, Promise<void>>();
  let processed = 0;

  // Started by processRequest, so the caller's token and trace travel on by themselves (the call
  // context): as AMQP headers on the event and as gRPC metadata on the callback.
  async function decideAndReport(request: Request): Promise<void> {
    const { decision, reason } = decide(seed, request);
    // The message id is the request's, so a re-sent report is recognisably the same one downstream.
    await retrying(`publish the report for ${request.requestId}`, log, () =>
      reports.publish(
        { requestId: request.requestId, decision, region: request.region, amountCents: request.amountCents, decidedAt: new Date() },
        { messageId: `report-${request.requestId}` },
      ),
    );
    await retrying(`notify the Bridge of ${request.requestId}`, log, () => {
      if (!bridge) throw new StatusError(Code.UNAVAILABLE, "the Processor does not know where the Bridge is yet");
      return bridge.notifyRequestDone({ requestId: request.requestId, decision, reason });
    });
    processed++;
  }

  const handlers: RequestProcessorHandlers = {
    processRequest(input: ProcessRequestRequest): ProcessRequestResponse {
      const request = input.request;
      if (!request?.requestId) throw new StatusError(Code.INVALID_ARGUMENT, "request.request_id is required");
      if (request.amountCents <= 0) throw new StatusError(Code.INVALID_ARGUMENT, "request.amount_cents must be positive");
      // processRequest is idempotent: a retried call for a request in progress joins it.
      if (!inFlight.has(request.requestId)) {
        // The decision comes after this call has answered "accepted": detached, it keeps the
        // caller's token and trace but not the call's deadline (its retries may take longer).
        const work = detachFromCall(() => decideAndReport(request))
          .catch((err: unknown) => log(`processor: gave up on ${request.requestId}: ${err instanceof Error ? err.message : String(err)}`))
          .finally(() => inFlight.delete(request.requestId));
        inFlight.set(request.requestId, work);
      }
      return { requestId: request.requestId, accepted: true };
    },
  };

  const server = new GrpcServer({ interceptors: [requireBearer(check)] });
  addRequestProcessorGrpcService(server, handlers);
  const listen = options.grpcAddress ?? "127.0.0.1:50052";
  const port = await server.listen(listen);
  const grpcAddress = `${listen.slice(0, listen.lastIndexOf(":"))}:${port}`;
  // The same handlers and the same token check serve RabbitMQ callers.
  let amqpServer: AmqpRpcServer | undefined;
  if (options.serveAmqp) amqpServer = await serveRequestProcessorAmqp(options.connection, handlers, { interceptors: [requireBearer(check)] });
  log(`processor: gRPC on ${grpcAddress}${amqpServer ? ", AMQP on queue example.v1.RequestProcessorService" : ""}, seed ${seed}`);

  return {
    grpcAddress,
    get processed() {
      return processed;
    },
    connectBridge,
    async close() {
      await amqpServer?.close();
      await server.shutdown(2000);
      // Finish what was accepted: its report and callback are owed.
      await Promise.allSettled([...inFlight.values()]);
      await reports.close();
      bridgeTransport?.close();
    },
  };
}

/**
 * Approves or denies at random. The draw is seeded by the seed and the request's content, so the same
 * run decides the same way every time; large amounts are approved less often.
 */
export function decide(seed: number, request: Request): { decision: Decision; reason: string } {
  const draw = mulberry32(fnv1a(`${seed}|${request.customer}|${request.amountCents}|${request.region}`))();
  const threshold = request.amountCents > 50_000 ? 0.4 : 0.8;
  const shown = `draw ${draw.toFixed(2)}, approval rate ${threshold}`;
  return draw < threshold
    ? { decision: Decision.DECISION_APPROVED, reason: `approved (${shown})` }
    : { decision: Decision.DECISION_DENIED, reason: `denied by the risk check (${shown})` };
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A small seeded PRNG: the same seed gives the same sequence on every machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
