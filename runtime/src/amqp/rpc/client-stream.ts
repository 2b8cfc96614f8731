// One streaming call on the RPC client over RabbitMQ (docs/wire-contract.md, "Streams over
// RabbitMQ"): its `open` to the request queue, the frames with the server that took it, and its
// end. Every way a stream can end here (deadline, cancellation, the server's silence, its inbox
// vanishing, the channel lost, a protocol breach) fails the caller's iteration with a status and,
// when the server may still be working, tells it with a `cancel` frame.

import { randomUUID } from "node:crypto";
import type { Channel, ConsumeMessage, Message } from "amqplib";
import { NEVER_ABORTED, type CallOptions } from "../../context.js";
import type { MethodDesc } from "../../descriptors.js";
import type { CallRequest, CallResponse } from "../../interceptor.js";
import type { Metadata } from "../../metadata.js";
import { Code, StatusError, messageOf } from "../../status.js";
import { headersToMetadata } from "../headers.js";
import { abortStatus, deadlineError } from "./deadline.js";
import { encodeRequest, requestHeaders, requestProperties } from "./encode-request.js";
import { replyStatusError } from "./parse-reply.js";
import { markRequestId } from "./rpc-telemetry.js";
import type { Link } from "./pending.js";
import { inboxRoute, StreamEnd } from "./stream.js";
import {
  FRAME,
  HEADER_CREDIT,
  HEADER_FRAME,
  HEADER_MESSAGE,
  readCount,
  remainingMs,
} from "./wire.js";

/** Where a stream call finds its options (callbacks) behind the interceptors. */
export const STREAM_OPTIONS = Symbol("grabbit.amqp.streamOptions");
const EMPTY: Buffer = Buffer.alloc(0);

export interface StreamHost {
  forget(stream: ClientStream): void;
  broadcastCancel(link: Link, queue: string, id: string, reason: string): void;
  drained(link: Link): Promise<void>;
}

/**
 * One streaming call on the client: opened on the request queue, then frames with the server that
 * took it (its inbox comes in `ready`). Our requests go out under the server's credit, its
 * responses come in under ours. Ends with the server's `end`, or here: deadline, cancellation, the
 * server's silence, its inbox vanishing, the channel lost. Ending here tells the server (`cancel`).
 */
export class ClientStream {
  readonly id = randomUUID();
  readonly method: MethodDesc;
  private readonly end: StreamEnd;
  private serverInbox: string | undefined;
  private over = false;
  private timer: NodeJS.Timeout | undefined;
  private onAbort: (() => void) | undefined;
  /** Headers, then trailers over them: what CallResponse.metadata shows. */
  private readonly metadata: Metadata = {};
  private headersReported = false;
  private requests: AsyncIterator<unknown> | undefined;
  private readonly signal: AbortSignal;

  constructor(
    private readonly host: StreamHost,
    readonly link: Link,
    private readonly req: CallRequest,
    private readonly queue: string,
    private readonly inbox: string,
    private readonly options: CallOptions | undefined,
    private readonly keepaliveMs: number,
    window: { window: number; bytes: number },
    private readonly maxMessageBytes: number,
    /** Without a deadline, how long to wait for a server to accept the open (0: forever). */
    private readonly acceptTimeoutMs: number,
  ) {
    const method = req.method;
    this.method = method;
    this.signal = req.signal;
    const sendsMessages = method.kind === "client_streaming" || method.kind === "bidi_streaming";
    this.end = new StreamEnd({
      path: method.path,
      side: "client",
      keepaliveMs,
      // A client stream's single response needs one message of credit.
      window: method.kind === "client_streaming" ? 1 : window.window,
      windowBytes: window.bytes,
      maxMessageBytes,
      receives: method.output,
      sends: method.input,
      decodeCode: Code.INTERNAL,
      onBroken: (err) => this.fail(err, true),
    });
    this.end.inbound.onReturn = () =>
      this.fail(
        new StatusError(Code.CANCELLED, `${method.path}: the caller stopped reading the stream`),
        true,
      );
    if (sendsMessages !== req.stream) {
      this.fail(
        new StatusError(
          Code.INTERNAL,
          `${method.path}: an interceptor changed the request's shape (a ${method.kind} call takes ${sendsMessages ? "a stream" : "one message"})`,
        ),
        false,
      );
    }
  }

  /** Publishes the open to the request queue; the deadline and the caller's signal start counting. */
  open(userId: string | undefined): void {
    if (this.over) return;
    const req = this.req;
    const method = this.method;
    let timeoutMs: number | undefined;
    if (req.deadline !== undefined) {
      timeoutMs = remainingMs(req.deadline);
      if (timeoutMs <= 0) {
        this.fail(deadlineError(method), false);
        return;
      }
      // No cancel on the deadline: the server times the same deadline (from the open's rpc-timeout-ms)
      // and ends its side DEADLINE_EXCEEDED by itself.
      this.timer = setTimeout(() => this.fail(deadlineError(method), false), timeoutMs);
    } else if (this.acceptTimeoutMs > 0) {
      // The open expires in the queue as the wait does, so that a late server does not start it.
      this.timer = setTimeout(
        () =>
          this.fail(
            new StatusError(
              Code.UNAVAILABLE,
              `${method.path}: no server accepted the stream within ${this.acceptTimeoutMs} ms (the transport's timeoutMs)`,
            ),
            true,
          ),
        this.acceptTimeoutMs,
      );
    }
    if (this.signal !== NEVER_ABORTED) {
      if (this.signal.aborted) {
        this.fail(abortStatus(this.signal), false);
        return;
      }
      this.onAbort = () => this.fail(abortStatus(this.signal), true);
      this.signal.addEventListener("abort", this.onAbort, { once: true });
    }
    let body: Buffer = EMPTY;
    if (!req.stream) {
      const encoded = encodeRequest(method.path, method.input, req.message, this.maxMessageBytes);
      if (encoded instanceof StatusError) {
        this.fail(encoded, false);
        return;
      }
      body = encoded;
    }
    const headers = requestHeaders(req.metadata, method.path, timeoutMs, {
      credit: this.end.window,
      keepaliveMs: this.keepaliveMs,
    });
    markRequestId(this.id);
    const props = requestProperties({
      id: this.id,
      replyTo: this.inbox,
      type: method.kind === "server_streaming" ? method.input.typeName : undefined,
      headers,
      userId,
      expirationMs: timeoutMs ?? (this.acceptTimeoutMs > 0 ? this.acceptTimeoutMs : undefined),
    });
    try {
      this.link.channel.publish("", this.queue, body, props, (err) => {
        if (err !== null && err.message !== "channel closed") {
          this.fail(
            new StatusError(
              Code.UNAVAILABLE,
              `${method.path}: the broker did not take the stream's open (${err.message})`,
            ),
            false,
          );
        }
      });
    } catch (err) {
      this.fail(
        new StatusError(
          Code.UNAVAILABLE,
          `${method.path}: could not open the stream: ${messageOf(err)}`,
          { cause: err },
        ),
        false,
      );
    }
  }

  /** What the interceptors and the caller get: the responses (server, bidi) or the one response (client streaming). */
  async response(): Promise<CallResponse> {
    if (this.method.kind !== "client_streaming")
      return { stream: true, messages: this.end.inbound, metadata: this.metadata };
    const first = await this.end.inbound.next();
    if (first.done)
      throw new StatusError(
        Code.INTERNAL,
        `${this.method.path}: the server ended the call without a response`,
      );
    const rest = await this.end.inbound.next();
    if (!rest.done)
      throw new StatusError(
        Code.INTERNAL,
        `${this.method.path}: the server sent more than one response to a client-streaming call`,
      );
    return { stream: false, message: first.value, metadata: this.metadata };
  }

  /** A frame from the server, on our inbox. */
  frame(kind: string, msg: ConsumeMessage): void {
    const headers = msg.properties.headers as Record<string, unknown> | undefined;
    switch (kind) {
      case FRAME.ready:
        this.ready(msg, headers);
        return;
      case FRAME.headers:
        this.end.receive(FRAME.headers, headers, msg.content); // heard from: the silence watch restarts
        this.reportHeaders(headersToMetadata(headers));
        return;
      case FRAME.end:
        this.ended(headers);
        return;
      case FRAME.message:
        if (!this.headersReported) this.reportHeaders({});
        break;
    }
    if (this.serverInbox !== undefined)
      this.end.receive(kind as Parameters<StreamEnd["receive"]>[0], headers, msg.content);
  }

  private ready(msg: ConsumeMessage, headers: Record<string, unknown> | undefined): void {
    const from = msg.properties.replyTo;
    if (typeof from !== "string" || from === "") {
      this.fail(
        new StatusError(
          Code.INTERNAL,
          `${this.method.path}: the server's ready frame has no reply_to`,
        ),
        false,
      );
      return;
    }
    if (this.serverInbox !== undefined) {
      // A second server took the same open (the first died before acking it): keep the first.
      if (from !== this.serverInbox)
        sendCancel(this.link.channel, from, this.id, "another server already serves this stream");
      return;
    }
    if (this.over) {
      sendCancel(
        this.link.channel,
        from,
        this.id,
        "the call was over before the server accepted it",
      );
      return;
    }
    this.serverInbox = from;
    if (this.req.deadline === undefined && this.timer !== undefined) {
      clearTimeout(this.timer); // accepted: from here only a deadline the caller set ends it
      this.timer = undefined;
    }
    const channel = this.link.channel;
    this.end.connect(
      inboxRoute(channel, from, this.id, () => this.host.drained(this.link)),
      readCount(headers, HEADER_CREDIT) ?? 0,
    );
    if (this.req.stream) void this.pump(this.req.messages);
  }

  /** Sends the caller's requests under the server's credit, then half-closes. */
  private async pump(messages: AsyncIterable<unknown>): Promise<void> {
    let iterator: AsyncIterator<unknown>;
    try {
      iterator = messages[Symbol.asyncIterator]();
    } catch (err) {
      this.fail(
        new StatusError(
          Code.CANCELLED,
          `${this.method.path}: the request stream failed: ${messageOf(err)}`,
          { cause: err },
        ),
        true,
      );
      return;
    }
    this.requests = iterator;
    try {
      for (;;) {
        const next = await iterator.next();
        if (this.over) return;
        if (next.done) break;
        await this.end.send(next.value);
      }
      if (!this.over) this.end.sendFrame(FRAME.halfClose);
    } catch (err) {
      if (this.over) return;
      const status =
        err instanceof StatusError
          ? err
          : new StatusError(
              Code.CANCELLED,
              `${this.method.path}: the request stream failed: ${messageOf(err)}`,
              { cause: err },
            );
      this.fail(status, true);
    }
  }

  private ended(headers: Record<string, unknown> | undefined): void {
    if (this.over) return;
    const metadata = headersToMetadata(headers);
    const err = replyStatusError(headers, this.method.path, metadata);
    this.finish(metadata);
    this.end.close(err);
    this.stopRequests(); // the server is done: whatever the caller still had to send goes nowhere
  }

  /** The broker returned a frame of ours: no queue took it. */
  returned(msg: Message): void {
    const what =
      msg.fields.routingKey === this.queue
        ? `no server for ${this.method.path}: queue "${this.queue}" does not exist`
        : `${this.method.path}: the server serving the stream is gone (its inbox "${msg.fields.routingKey}" no longer exists)`;
    this.fail(new StatusError(Code.UNAVAILABLE, what), false);
  }

  /** Ends the call here with `err`; `tell` sends the server a cancel (it may still be working). */
  fail(err: StatusError, tell: boolean): void {
    if (this.over) return;
    if (tell) {
      if (this.serverInbox !== undefined)
        sendCancel(this.link.channel, this.serverInbox, this.id, err.rawMessage);
      else this.host.broadcastCancel(this.link, this.queue, this.id, err.rawMessage);
    }
    this.finish(undefined);
    this.end.close(err);
    this.stopRequests();
  }

  private finish(trailers: Metadata | undefined): void {
    this.over = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort) this.signal.removeEventListener("abort", this.onAbort);
    this.host.forget(this);
    // No headers frame and no message: a status alone, and no onHeaders (as on gRPC).
    if (trailers !== undefined) Object.assign(this.metadata, trailers);
    try {
      this.options?.onTrailers?.(trailers ?? {});
      this.options?.onResponseMetadata?.(this.metadata);
    } catch {
      // A callback that throws must not break the stream's end.
    }
  }

  private reportHeaders(headers: Metadata): void {
    if (this.headersReported) return;
    this.headersReported = true;
    Object.assign(this.metadata, headers);
    try {
      this.options?.onHeaders?.(headers);
    } catch {
      // as above
    }
  }

  private stopRequests(): void {
    const requests = this.requests;
    this.requests = undefined;
    void requests?.return?.()?.catch?.(() => {});
  }
}

/** A cancel frame straight to a server's inbox (not mandatory: a server already gone is fine). */
export function sendCancel(channel: Channel, inbox: string, id: string, reason: string): void {
  try {
    channel.publish("", inbox, EMPTY, {
      correlationId: id,
      headers: { [HEADER_FRAME]: FRAME.cancel, [HEADER_MESSAGE]: reason },
    });
  } catch {
    // The channel closed: the server hears of it through our silence.
  }
}
