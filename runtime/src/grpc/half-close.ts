// Telling a client's half-close from its cancellation on a grpc-js server.
//
// A grpc-js client that cancels a call (or whose deadline passes) closes its HTTP/2 stream with
// Node's Http2Stream.close(CANCEL): Node first ends the writable side, which sends END_STREAM, and
// then sends RST_STREAM in a later write. The server therefore sees a half-close, and grpc-js ends
// the request stream, before the reset arrives and the call turns `cancelled` (grpc/grpc-node#205).
// At the moment the request stream ends, nothing on the server tells the two apart, so the end is
// confirmed before a handler sees it:
// - the HTTP/2 stream is already closed: the end came from a reset (clients that send RST_STREAM
//   alone, or a reset that grpc-js read before the end reached the handler);
// - otherwise the server pings the connection and waits for the acknowledgement. The client queued
//   its RST_STREAM right after writing END_STREAM, before it could have read the ping, so the reset
//   comes ahead of the acknowledgement or in the same write. A turn of the event loop after the
//   acknowledgement, grpc-js has processed the reset and emitted `cancelled`.
// This costs a round trip at the end of each client-streaming and bidirectional call (loopback:
// well under a millisecond), and one ping at a time per connection however many calls end.

import type * as http2 from "node:http2";

/** The grpc-js call objects this reads: the surface call and its internal call chain. */
interface SurfaceCall {
  readonly cancelled: boolean;
  readonly call?: unknown;
}

/**
 * The HTTP/2 stream under a grpc-js server call, found through grpc-js's internal objects (the
 * surface call's `call`, the interceptors' `nextCall`, the base call's `stream`). Undefined when a
 * grpc-js version lays them out otherwise: then half-closes are taken as they come, as grpc-js does.
 */
function http2StreamOf(call: SurfaceCall): http2.Http2Stream | undefined {
  let inner = call.call as { stream?: unknown; nextCall?: unknown } | undefined;
  for (let depth = 0; inner !== undefined && inner !== null && depth < 64; depth++) {
    if (inner.stream !== undefined) return isHttp2Stream(inner.stream) ? inner.stream : undefined;
    inner = inner.nextCall as typeof inner;
  }
  return undefined;
}

function isHttp2Stream(value: unknown): value is http2.Http2Stream {
  return (
    typeof value === "object" &&
    value !== null &&
    "rstCode" in value &&
    "closed" in value &&
    "session" in value
  );
}

/** True when the stream was reset or torn down, so that the end of its requests was no half-close. */
function wasReset(stream: http2.Http2Stream): boolean {
  return (
    stream.closed || stream.destroyed || stream.session === undefined || stream.session.destroyed
  );
}

/**
 * Resolves true when the client really half-closed the call's request stream, false when the
 * call was cancelled (or its deadline passed, or its connection went) instead. Call it when
 * grpc-js ends the request stream.
 */
export function confirmHalfClose(call: SurfaceCall): Promise<boolean> {
  if (call.cancelled) return Promise.resolve(false);
  const stream = http2StreamOf(call);
  if (stream === undefined) return Promise.resolve(true);
  if (wasReset(stream)) return Promise.resolve(false);
  return new Promise((resolve) => {
    afterRoundTrip(stream.session!, () => {
      // The reset, if any, came in with or before the acknowledgement: let grpc-js act on it first.
      setImmediate(() => resolve(!call.cancelled && !wasReset(stream)));
    });
  });
}

/** One ping in flight per connection; calls whose requests ended meanwhile wait for the next one. */
class ConnectionPinger {
  private waiting: (() => void)[] = [];
  private inFlight = false;

  constructor(private readonly session: http2.Http2Session) {}

  /** Calls `done` once a ping sent after now has been acknowledged, or the connection is gone. */
  request(done: () => void): void {
    this.waiting.push(done);
    if (!this.inFlight) this.send();
  }

  private send(): void {
    const batch = this.waiting;
    this.waiting = [];
    this.inFlight = true;
    const settle = () => {
      this.inFlight = false;
      for (const done of batch) done();
      if (this.waiting.length > 0) this.send();
    };
    let sent = false;
    try {
      // An error (the connection closed before the acknowledgement) settles the batch too: the
      // caller then finds the stream reset.
      sent = this.session.ping(settle);
    } catch {
      // The session was destroyed between the check and the ping.
    }
    // Not sent (too many pings outstanding, the session closing): nothing better to wait for.
    if (!sent) setImmediate(settle);
  }
}

const pingers = new WeakMap<http2.Http2Session, ConnectionPinger>();

function afterRoundTrip(session: http2.Http2Session, done: () => void): void {
  let pinger = pingers.get(session);
  if (pinger === undefined) {
    pinger = new ConnectionPinger(session);
    pingers.set(session, pinger);
  }
  pinger.request(done);
}
