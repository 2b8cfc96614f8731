// The standard gRPC health service (grpc.health.v1.Health), so that load balancers, Kubernetes
// probes and grpc_health_probe can ask a grabbit server whether it serves. Messages are coded by hand:
//   HealthCheckRequest  { string service = 1; }
//   HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN = 0, SERVING = 1, NOT_SERVING = 2,
//                                                      SERVICE_UNKNOWN = 3 (Watch only)

import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { MessageType } from "../codec.js";
import type { HandlerContext } from "../context.js";
import type { MethodDesc, ServiceDesc } from "../descriptors.js";
import { Code, StatusError } from "../status.js";

export enum ServingStatus {
  UNKNOWN = 0,
  SERVING = 1,
  NOT_SERVING = 2,
  SERVICE_UNKNOWN = 3,
}

export interface HealthCheckRequest {
  service: string;
}

export interface HealthCheckResponse {
  status: ServingStatus;
}

const HealthCheckRequestType: MessageType<HealthCheckRequest> = {
  typeName: "grpc.health.v1.HealthCheckRequest",
  encode(message) {
    const w = new BinaryWriter();
    if (message.service !== "") w.tag(1, WireType.LengthDelimited).string(message.service);
    return w.finish();
  },
  decode(bytes) {
    const r = new BinaryReader(bytes);
    const message: HealthCheckRequest = { service: "" };
    while (r.pos < r.len) {
      const [field, wire] = r.tag();
      if (field === 1 && wire === WireType.LengthDelimited) message.service = r.string();
      else r.skip(wire, field);
    }
    return message;
  },
};

const HealthCheckResponseType: MessageType<HealthCheckResponse> = {
  typeName: "grpc.health.v1.HealthCheckResponse",
  encode(message) {
    const w = new BinaryWriter();
    if (message.status !== 0) w.tag(1, WireType.Varint).int32(message.status);
    return w.finish();
  },
  decode(bytes) {
    const r = new BinaryReader(bytes);
    const message: HealthCheckResponse = { status: ServingStatus.UNKNOWN };
    while (r.pos < r.len) {
      const [field, wire] = r.tag();
      if (field === 1 && wire === WireType.Varint) message.status = r.int32();
      else r.skip(wire, field);
    }
    return message;
  },
};

function method(name: string, kind: MethodDesc["kind"]): MethodDesc<HealthCheckRequest, HealthCheckResponse> {
  return { name, path: `/grpc.health.v1.Health/${name}`, kind, input: HealthCheckRequestType, output: HealthCheckResponseType, idempotent: true };
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
  shutdown(): void {
    if (this.closed) return;
    for (const service of this.statuses.keys()) this.statuses.set(service, ServingStatus.NOT_SERVING);
    this.closed = true;
    this.notify();
  }

  readonly handlers = {
    check: async (request: HealthCheckRequest): Promise<HealthCheckResponse> => {
      const status = this.statuses.get(request.service);
      if (status === undefined) throw new StatusError(Code.NOT_FOUND, `unknown service "${request.service}"`);
      return { status };
    },
    // Sends the current status, then every change, until the caller leaves or the server shuts down.
    watch: (request: HealthCheckRequest, ctx: HandlerContext): AsyncIterable<HealthCheckResponse> => this.watch(request.service, ctx.signal),
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
