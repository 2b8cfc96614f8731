// An event delivery seen as a served call, for the interceptors and the call context a consumer's
// handlers run in: the event as a method (`event:<type>`) and the delivery's call context.
import type { HandlerContext } from "../context.js";
import type { EventDesc, MethodDesc } from "../descriptors.js";
import type { Metadata } from "../metadata.js";
import { Code, StatusError } from "../status.js";
import type { DeliveryContext } from "./consumer.js";

/**
 * The call context of a delivery: its headers as metadata (read when asked, so that metadata an
 * interceptor passed on is what is inherited), its signal, no deadline (an event has no caller
 * waiting), and no response to send headers with.
 */
export function deliveryCallContext(method: MethodDesc, delivery: DeliveryContext): HandlerContext {
  return new DeliveryCallContext(method, delivery);
}

/** A delivery seen as a served call; a class so its getter and sendHeaders are not made per message. */
class DeliveryCallContext implements HandlerContext {
  readonly transport = "amqp" as const;
  readonly deadline = undefined;
  readonly signal: AbortSignal;
  readonly responseHeaders: Metadata = {};
  readonly responseMetadata: Metadata = {};
  readonly peer: string | undefined;
  readonly values: Map<string | symbol, unknown>;

  constructor(
    readonly method: MethodDesc,
    private readonly delivery: DeliveryContext,
  ) {
    this.signal = delivery.signal;
    this.peer = delivery.userId;
    this.values = delivery.values;
  }

  get metadata(): Metadata {
    return this.delivery.metadata;
  }

  sendHeaders(): void {
    throw new StatusError(
      Code.FAILED_PRECONDITION,
      `${this.method.path} is an event: its handler has no response to send headers with`,
    );
  }
}

/** An event as a method, for interceptors: `event:<type>` names it in logs and authorize hooks. */
export function eventMethod(event: EventDesc): MethodDesc {
  const typeName = event.type.typeName;
  return {
    name: typeName.slice(typeName.lastIndexOf(".") + 1),
    path: `event:${typeName}`,
    kind: "unary",
    input: event.type,
    output: event.type,
    idempotent: false,
  };
}
