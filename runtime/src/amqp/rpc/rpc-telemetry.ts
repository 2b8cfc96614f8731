// The RPC-over-RabbitMQ side of tracing and metrics: the CLIENT and SERVER telemetry interceptors
// with the messaging attributes of a request queue, and the request ids put on the active span.
// With no tracer registered the span helpers do nothing; nothing here throws into a call.

import type { ConsumeMessage } from "amqplib";
import type { Interceptor } from "../../interceptor.js";
import { rpcClientTelemetry, rpcServerTelemetry } from "../../telemetry/rpc.js";
import {
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_BODY_SIZE,
  ATTR_MESSAGING_MESSAGE_CONVERSATION_ID,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_SYSTEM_RABBITMQ,
  RPC_SYSTEM_GRABBIT_AMQP,
} from "../../telemetry/semconv.js";
import { activeSpan } from "../telemetry.js";

/** The CLIENT span and client metrics of calls whose requests go to `queue`. */
export function clientTelemetry(queue: string): Interceptor {
  return rpcClientTelemetry({
    system: RPC_SYSTEM_GRABBIT_AMQP,
    attributes: {
      [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
      [ATTR_MESSAGING_OPERATION_TYPE]: "send",
      [ATTR_MESSAGING_OPERATION_NAME]: "publish",
      [ATTR_MESSAGING_DESTINATION_NAME]: queue,
    },
  });
}

/** The SERVER span and rpc.server.call.duration of calls served from `queue`. */
export function serverTelemetry(queue: string): Interceptor {
  return rpcServerTelemetry({
    system: RPC_SYSTEM_GRABBIT_AMQP,
    attributes: {
      [ATTR_MESSAGING_SYSTEM]: MESSAGING_SYSTEM_RABBITMQ,
      [ATTR_MESSAGING_OPERATION_TYPE]: "process",
      [ATTR_MESSAGING_OPERATION_NAME]: "process",
      [ATTR_MESSAGING_DESTINATION_NAME]: queue,
    },
  });
}

/** Puts a request's id (its correlation and message id) on the call's CLIENT span, if one records. */
export function markRequestId(id: string): void {
  const span = activeSpan();
  if (span?.isRecording()) {
    span.setAttribute(ATTR_MESSAGING_MESSAGE_CONVERSATION_ID, id);
    span.setAttribute(ATTR_MESSAGING_MESSAGE_ID, id);
  }
}

/** Puts a request's ids on the call's SERVER span (active when this runs, inside the telemetry interceptor). */
export function requestIds(msg: ConsumeMessage): Interceptor {
  return (next) => (req) => {
    const span = activeSpan();
    if (span?.isRecording()) {
      const correlationId = msg.properties.correlationId;
      const messageId = msg.properties.messageId;
      if (typeof correlationId === "string")
        span.setAttribute(ATTR_MESSAGING_MESSAGE_CONVERSATION_ID, correlationId);
      if (typeof messageId === "string") span.setAttribute(ATTR_MESSAGING_MESSAGE_ID, messageId);
      span.setAttribute(ATTR_MESSAGING_MESSAGE_BODY_SIZE, msg.content.length);
    }
    return next(req);
  };
}
