// Serving one streaming call over RabbitMQ (docs/wire-contract.md, "Streams over RabbitMQ"): the
// `ready` frame, the handler run over the client's messages and under its credit, and the `end`
// frame with the status and trailers. A stream that cannot start is refused with the status the
// contract gives (UNAVAILABLE without an inbox, RESOURCE_EXHAUSTED past maxStreams...); once it has
// started every failure (the handler's, the deadline, the client's cancel, silence or vanished
// inbox, shutdown) ends it with an `end` frame when the client can still be told.

import type { AmqpSession } from "../connection.js";
import type { Channel, ConsumeMessage } from "amqplib";
import { metadataToHeaders } from "../headers.js";
import { runInCallContext } from "../../call-context.js";
import type { HandlerContext } from "../../context.js";
import type { MethodDesc } from "../../descriptors.js";
import type { ServerCall } from "../../handler-context.js";
import { serverCallRequest } from "../../handler-context.js";
import {
  applyInterceptors,
  requestMessage,
  requestStream,
  responseMessage,
  responseStream,
  type CallInput,
  type CallRequest,
  type CallResponse,
  type Interceptor,
} from "../../interceptor.js";
import { hasKeys, normalizeMetadata, type Metadata } from "../../metadata.js";
import { Code, StatusError } from "../../status.js";
import type { Context } from "../../telemetry/otel.js";
import { TRACE_CONTEXT_VALUE } from "../../telemetry/rpc.js";
import { delayUntil } from "../../timers.js";
import { statusHeaders } from "./encode-reply.js";
import { inboxRoute, StreamEnd } from "./stream.js";
import { decodeRequest, type MethodEntry } from "./validate-request.js";
import {
  DEFAULT_KEEPALIVE_MS,
  FRAME,
  HEADER_CREDIT,
  HEADER_KEEPALIVE,
  INITIAL_STREAM_CREDIT,
  MAX_KEEPALIVE_MS,
  MIN_KEEPALIVE_MS,
  readCount,
} from "./wire.js";

/** The consuming channel, for the deliveries that came on it (acks must go back on it). */
export interface ServerLink {
  readonly session: AmqpSession;
  readonly channel: Channel;
  consumerTag: string | undefined;
  alive: boolean;
  /** This channel's inbox (stream frames, cancellations); undefined when it could not be declared. */
  inbox: string | undefined;
  /** Why there is no inbox, for the streams refused on this channel. */
  inboxProblem: string | undefined;
}

/** A call being served, as a cancellation finds it. */
export interface ActiveCall {
  /** Ends the call early with this status (deadline, shutdown, the caller's cancellation). */
  end(err: StatusError): void;
  /** A streaming call's end, which takes the client's frames. */
  readonly stream?: StreamEnd;
  /** Stream calls: frames from the client (half-close) the end does not take itself. */
  frame?(kind: string): void;
}

/** What serving a stream needs of its server. */
export interface StreamHost {
  readonly handlers: object;
  readonly maxStreams: number;
  readonly maxMessageBytes: number;
  readonly streamWindow: number;
  readonly streamWindowBytes: number;
  /** Streams running now on the server (this counts them in and out). */
  readonly streams: { count: number };
  /** Calls being handled: each entry ends its call early with the given status. */
  readonly active: Set<(err: StatusError) => void>;
  /** Calls being handled, by correlation id. */
  readonly calls: Map<string, ActiveCall>;
  /** Refuses the open before the stream starts (logged, answered with an `end`). */
  early(link: ServerLink, msg: ConsumeMessage, method: MethodDesc, code: Code, text: string): void;
  context(
    msg: ConsumeMessage,
    method: MethodDesc,
    deadline: number | undefined,
    sendHeaders: (ctx: HandlerContext, metadata: Metadata | undefined) => void,
  ): ServerCall;
  logFailure(msg: ConsumeMessage, method: MethodDesc, ctx: Context | undefined, err: unknown): void;
  chainFor(msg: ConsumeMessage): Interceptor[] | undefined;
}

const EMPTY = Buffer.alloc(0);

/**
 * A streaming call: `ready` (our inbox and the client's credit) goes to the client's inbox, the
 * open is acked, and the handler runs with the client's messages as its input (client and bidi)
 * and its output sent as `message` frames under the client's credit; `end` carries the status
 * and trailers. The deadline, the client's `cancel`, its silence or its inbox vanishing, and
 * shutdown abort the handler's signal.
 */
export async function serveStream(
  host: StreamHost,
  link: ServerLink,
  msg: ConsumeMessage,
  entry: MethodEntry,
  deadline: number | undefined,
): Promise<void> {
  const method = entry.method;
  const props = msg.properties;
  const headers = props.headers as Record<string, unknown> | undefined;
  const id = props.correlationId as string | undefined;
  if (link.inbox === undefined || id === undefined) {
    const why =
      id === undefined
        ? "the open has no correlation_id"
        : `this server cannot serve streams: ${link.inboxProblem ?? "its channel is being replaced"}`;
    host.early(
      link,
      msg,
      method,
      id === undefined ? Code.INVALID_ARGUMENT : Code.UNAVAILABLE,
      `${method.path}: ${why}`,
    );
    return;
  }
  if (host.streams.count >= host.maxStreams) {
    host.early(
      link,
      msg,
      method,
      Code.RESOURCE_EXHAUSTED,
      `${method.path}: this server already runs ${host.streams.count} streams (maxStreams)`,
    );
    return;
  }
  let request: unknown;
  if (method.kind === "server_streaming") {
    const decoded = decodeRequest(method, msg.content, host.maxMessageBytes);
    if ("code" in decoded) {
      host.early(link, msg, method, decoded.code, decoded.text);
      return;
    }
    request = decoded.request;
  }
  const keepaliveMs = Math.min(
    MAX_KEEPALIVE_MS,
    Math.max(MIN_KEEPALIVE_MS, readCount(headers, HEADER_KEEPALIVE) ?? DEFAULT_KEEPALIVE_MS),
  );
  const clientCredit = readCount(headers, HEADER_CREDIT) ?? INITIAL_STREAM_CREDIT;
  const clientInbox = props.replyTo as string;
  const channel = link.channel;
  const route = inboxRoute(channel, clientInbox, id, () => drainOf(channel));
  const takesMessages = method.kind === "client_streaming" || method.kind === "bidi_streaming";
  let finished = false;
  let onBroken: (err: StatusError) => void = () => {};
  const stream = new StreamEnd({
    path: method.path,
    side: "server",
    keepaliveMs,
    window: takesMessages ? host.streamWindow : 0,
    windowBytes: host.streamWindowBytes,
    maxMessageBytes: host.maxMessageBytes,
    receives: method.input,
    sends: method.output,
    decodeCode: Code.INVALID_ARGUMENT,
    onBroken: (err) => onBroken(err),
  });
  let headersSent = false;
  const sendHeaders = (
    ctx: HandlerContext,
    extra: Metadata | undefined,
    explicit: boolean,
  ): void => {
    if (headersSent) {
      if (explicit)
        throw new StatusError(
          Code.FAILED_PRECONDITION,
          `${method.path}: the response headers were already sent (explicitly, or with the first message)`,
        );
      return;
    }
    headersSent = true;
    if (extra) Object.assign(ctx.responseHeaders, normalizeMetadata(extra));
    if (!explicit && !hasKeys(ctx.responseHeaders)) return; // nothing to say: no frame
    if (!finished) stream.sendFrame(FRAME.headers, metadataToHeaders(ctx.responseHeaders));
  };
  const { ctx, abort, values } = host.context(msg, method, deadline, (c, extra) =>
    sendHeaders(c, extra, true),
  );

  host.streams.count++;
  return new Promise<void>((done) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: unknown): void => {
      if (finished) return;
      if (timer !== undefined) clearTimeout(timer);
      host.active.delete(end);
      if (host.calls.get(id)?.end === end) host.calls.delete(id);
      const status = err === undefined ? undefined : StatusError.from(err);
      if (status !== undefined)
        host.logFailure(
          msg,
          method,
          values()?.get(TRACE_CONTEXT_VALUE) as Context | undefined,
          err,
        );
      try {
        sendHeaders(ctx, undefined, false);
        const trailers = { ...ctx.responseMetadata, ...status?.metadata };
        stream.sendFrame(
          FRAME.end,
          statusHeaders(
            status?.code ?? Code.OK,
            status?.rawMessage ?? "",
            trailers,
            status?.details,
          ),
        );
      } catch {
        // The client's inbox or our channel is gone: nobody to tell.
      }
      finished = true;
      stream.close(status);
      host.streams.count--;
      done();
    };
    // Ends the call before the handler does: abort its signal, send the end now.
    const end = (err: StatusError): void => {
      if (finished) return;
      abort(err);
      finish(err);
    };
    onBroken = end;
    host.active.add(end);
    host.calls.set(id, {
      end,
      stream,
      frame: (kind) => {
        if (kind === FRAME.halfClose) stream.inbound.end();
      },
    });
    if (deadline !== undefined) {
      timer = setTimeout(
        () =>
          end(
            new StatusError(
              Code.DEADLINE_EXCEEDED,
              `${method.path}: the stream did not finish before the deadline`,
            ),
          ),
        delayUntil(deadline),
      );
    }
    try {
      stream.connect(route, clientCredit);
      stream.sendFrame(FRAME.ready, { [HEADER_CREDIT]: stream.window }, EMPTY, {
        replyTo: link.inbox,
      });
      channel.ack(msg);
    } catch (err) {
      end(StatusError.from(err, Code.UNAVAILABLE));
      return;
    }
    const handler = entry.handler!;
    const handlers = host.handlers;
    const input: CallInput = takesMessages
      ? { stream: true, messages: stream.inbound as AsyncIterable<unknown> }
      : { stream: false, message: request };
    const callHandler = async (req: CallRequest): Promise<CallResponse> => {
      const result = await handler.call(
        handlers,
        takesMessages ? requestStream(req) : requestMessage(req),
        ctx,
      );
      return method.kind === "client_streaming"
        ? { stream: false, message: result, metadata: ctx.responseMetadata }
        : {
            stream: true,
            messages: result as AsyncIterable<unknown>,
            metadata: ctx.responseMetadata,
          };
    };
    const interceptors = host.chainFor(msg);
    const run = async (): Promise<void> => {
      const response = interceptors
        ? await applyInterceptors(callHandler, interceptors)(serverCallRequest(ctx, input))
        : await callHandler(serverCallRequest(ctx, input));
      if (method.kind === "client_streaming") {
        sendHeaders(ctx, undefined, false);
        await stream.send(responseMessage(response, method));
        return;
      }
      const messages = responseStream(response, method);
      if (
        messages === undefined ||
        typeof (messages as AsyncIterable<unknown>)[Symbol.asyncIterator] !== "function"
      ) {
        throw new StatusError(
          Code.INTERNAL,
          `${method.path}: the handler did not return an async iterable`,
        );
      }
      for await (const message of messages) {
        if (finished) break;
        sendHeaders(ctx, undefined, false);
        await stream.send(message);
      }
    };
    runInCallContext(ctx, run).then(
      () => finish(undefined),
      (err: unknown) => finish(err),
    );
  });
}

/** Resolves when `channel` can take more writes, or has closed. */
export function drainOf(channel: Channel): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      channel.off("drain", done);
      channel.off("close", done);
      resolve();
    };
    channel.on("drain", done);
    channel.on("close", done);
  });
}
