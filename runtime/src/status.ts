// gRPC status codes and the one error type both transports raise and carry.
// The numbers are gRPC's and travel on the wire (header `rpc-status`), so they never change.

export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

export function codeName(code: number): string {
  return Code[code] ?? `CODE_${code}`;
}

/** A structured error detail, as in google.rpc.Status.details (an Any). */
export interface ErrorDetail {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

/**
 * A non-OK result. Handlers throw it to choose the status the caller sees;
 * clients reject with it whatever the transport.
 */
export class StatusError extends Error {
  override readonly name: string = "StatusError";
  readonly code: Code;
  /** The status message without the code prefix. */
  readonly rawMessage: string;
  readonly metadata: Record<string, string>;
  readonly details: readonly ErrorDetail[];

  constructor(
    code: Code,
    message: string,
    options: {
      metadata?: Record<string, string>;
      details?: readonly ErrorDetail[];
      cause?: unknown;
    } = {},
  ) {
    super(
      `[${codeName(code)}] ${message}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.rawMessage = message;
    this.metadata = options.metadata ?? {};
    this.details = options.details ?? [];
  }

  /** Turns anything thrown into a StatusError; unknown errors become UNKNOWN without leaking stacks. */
  static from(err: unknown, fallback: Code = Code.UNKNOWN): StatusError {
    if (err instanceof StatusError) return err;
    if (err instanceof Error && err.name === "AbortError") {
      return new StatusError(Code.CANCELLED, err.message || "the call was cancelled", {
        cause: err,
      });
    }
    if (err instanceof Error && err.name === "TimeoutError") {
      return new StatusError(Code.DEADLINE_EXCEEDED, err.message || "the deadline passed", {
        cause: err,
      });
    }
    const message = messageOf(err);
    return new StatusError(fallback, message, { cause: err });
  }
}

/**
 * A mandatory publish that no queue was bound to receive. The broker returned it;
 * nothing was delivered.
 */
export class UnroutableError extends StatusError {
  override readonly name = "UnroutableError";
  constructor(
    readonly exchange: string,
    readonly routingKey: string,
    readonly replyText = "NO_ROUTE",
  ) {
    super(
      Code.NOT_FOUND,
      `no queue is bound to exchange "${exchange}" for routing key "${routingKey}" (${replyText})`,
    );
  }
}

/** What an error says, for a message of ours: its `message`, or the thrown value as text. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Anything thrown as an Error (a thrown string or object wrapped, with its text), for logs and onError. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
