// The standard gRPC health service (grpc.health.v1.Health), so that load balancers, Kubernetes
// probes and grpc_health_probe can ask a grabbit server whether it serves. The messages are coded by
// protobuf-es from the schema generated out of runtime/proto/grpc/health/v1/health.proto (src/gen/);
// handlers and callers see plain objects, `{ service }` and `{ status }`.

import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { MessageType } from "../codec.js";
import type { HandlerContext } from "../context.js";
import type { MethodDesc, ServiceDesc } from "../descriptors.js";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";
import { Code, StatusError } from "../status.js";

/** UNKNOWN, SERVING, NOT_SERVING, and SERVICE_UNKNOWN (Watch only). */
export const ServingStatus = HealthCheckResponse_ServingStatus;
export type ServingStatus = HealthCheckResponse_ServingStatus;

export interface HealthCheckRequest {
  service: string;
}

export interface HealthCheckResponse {
  status: ServingStatus;
}

/** A runtime message type over a protobuf-es schema whose fields are exactly `T`'s. */
function messageType<T extends object, D extends DescMessage>(
  schema: D,
  pick: (m: MessageShape<D>) => T,
): MessageType<T> {
  return {
    typeName: schema.typeName,
    encode: (message) => toBinary(schema, create(schema, message as never)),
    decode: (bytes) => pick(fromBinary(schema, bytes)),
  };
}

const HealthCheckRequestType = messageType(
  HealthCheckRequestSchema,
  (m): HealthCheckRequest => ({ service: m.service }),
);
const HealthCheckResponseType = messageType(
  HealthCheckResponseSchema,
  (m): HealthCheckResponse => ({ status: m.status }),
);

function method(
  name: string,
  kind: MethodDesc["kind"],
): MethodDesc<HealthCheckRequest, HealthCheckResponse> {
  return {
    name,
    path: `/grpc.health.v1.Health/${name}`,
    kind,
    input: HealthCheckRequestType,
    output: HealthCheckResponseType,
    idempotent: true,
  };
}

/** The descriptor of grpc.health.v1.Health, for clients: `transport.unary(HealthServiceDesc.methods.check, { service: "" })`. */
export const HealthServiceDesc = {
  typeName: "grpc.health.v1.Health",
  transports: ["grpc"],
  methods: {
    check: method("Check", "unary"),
    watch: method("Watch", "server_streaming"),
  },
} as const satisfies ServiceDesc;

/**
 * Serving status per service name ("" is the whole server). Serve it with GrpcServer.addHealth(), or
 * add `HealthServiceDesc` with `health.handlers` to any server.
 */
export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<() => void>();
  private closed = false;

  constructor(initial: Record<string, ServingStatus> = { "": ServingStatus.SERVING }) {
    for (const [service, status] of Object.entries(initial)) this.statuses.set(service, status);
  }

  set(service: string, status: ServingStatus): void {
    if (this.closed) return;
    this.statuses.set(service, status);
    this.notify();
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Everything NOT_SERVING, for good, and open Watch streams end: the server is going away. */
  close(): void {
    if (this.closed) return;
    for (const service of this.statuses.keys())
      this.statuses.set(service, ServingStatus.NOT_SERVING);
    this.closed = true;
    this.notify();
  }

  /** @deprecated Renamed `close()` (one shutdown verb across the runtime); this alias goes in the next release. */
  shutdown(): void {
    this.close();
  }

  readonly handlers = {
    check: async (request: HealthCheckRequest): Promise<HealthCheckResponse> => {
      const status = this.statuses.get(request.service);
      if (status === undefined)
        throw new StatusError(Code.NOT_FOUND, `unknown service "${request.service}"`);
      return { status };
    },
    // Sends the current status, then every change, until the caller leaves or the server shuts down.
    watch: (request: HealthCheckRequest, ctx: HandlerContext): AsyncIterable<HealthCheckResponse> =>
      this.watch(request.service, ctx.signal),
  };

  private async *watch(service: string, signal: AbortSignal): AsyncGenerator<HealthCheckResponse> {
    let changed: (() => void) | undefined;
    let pending = true; // the current status is sent first
    const wake = () => {
      pending = true;
      changed?.();
    };
    this.watchers.add(wake);
    signal.addEventListener("abort", wake, { once: true });
    try {
      let last: ServingStatus | undefined;
      for (;;) {
        if (signal.aborted) return;
        if (pending) {
          pending = false;
          const status = this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
          if (status !== last) {
            last = status;
            yield { status };
          }
          if (this.closed) return;
          continue;
        }
        await new Promise<void>((resolve) => (changed = resolve));
        changed = undefined;
      }
    } finally {
      this.watchers.delete(wake);
      signal.removeEventListener("abort", wake);
    }
  }

  private notify(): void {
    for (const wake of this.watchers) wake();
  }
}
