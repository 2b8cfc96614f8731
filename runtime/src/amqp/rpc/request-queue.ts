// Which queue a call's request goes to: the method descriptor's `requestQueue` (generated code
// always has it), else its service's declared queue if the service was registered, else the
// service name from the method's path, the wire contract's default. Nothing here fails.

import type { MethodDesc, ServiceDesc } from "../../descriptors.js";

/** "/demo.v1.Orders/Get" -> "demo.v1.Orders", the default request queue. */
export function serviceOfPath(path: string): string {
  const end = path.lastIndexOf("/");
  return path.slice(path.startsWith("/") ? 1 : 0, end > 0 ? end : path.length);
}

export class RequestQueues {
  private readonly byMethod = new WeakMap<MethodDesc, string>();
  private readonly byPath = new Map<string, string>();

  /** Makes calls to `service`'s methods go to its declared request queue (none declared: nothing changes). */
  register(service: ServiceDesc): void {
    const queue = service.amqp?.requestQueue;
    if (!queue) return;
    for (const method of Object.values(service.methods)) {
      this.byMethod.set(method, queue);
      this.byPath.set(method.path, queue);
    }
  }

  /** The request queue of `method`'s calls (remembered per descriptor). */
  of(method: MethodDesc): string {
    let queue = this.byMethod.get(method);
    if (queue !== undefined) return queue;
    queue = method.requestQueue ?? this.byPath.get(method.path) ?? serviceOfPath(method.path);
    this.byMethod.set(method, queue);
    return queue;
  }
}
