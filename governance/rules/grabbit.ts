// grabbit's messaging contract: what RabbitMQ consumers and AMQP clients depend on but no wire check
// sees. Effective values are compared (event option, else the file default, else grabbit's default),
// so moving a setting between the file and the element is not a change.
import { getExtension, hasExtension } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import {
  ExchangeKind,
  QueueType,
  Transport,
  event as eventExt,
  file as fileExt,
  method as methodExt,
  service as serviceExt,
} from "../../generator/gen/grabbit/v1/options_pb.js";
import { methodsOf, type FileEl, type MessageEl, type MethodEl, type ServiceEl } from "../model.js";
import { type At, Ctx } from "./context.js";

export interface EffectiveEvent {
  exchange: string;
  kind: string;
  routingKey: string;
  persistent: boolean;
}

const KIND = {
  [ExchangeKind.UNSPECIFIED]: "topic",
  [ExchangeKind.TOPIC]: "topic",
  [ExchangeKind.DIRECT]: "direct",
  [ExchangeKind.FANOUT]: "fanout",
  [ExchangeKind.HEADERS]: "headers",
} as Record<number, string>;
const TRANSPORT = { [Transport.GRPC]: "gRPC", [Transport.AMQP]: "AMQP" } as Record<number, string>;
/** "auto" is QUEUE_TYPE_UNSPECIFIED: quorum where the broker supports it, an existing queue used as is. */
const QUEUE_TYPE = {
  [QueueType.UNSPECIFIED]: "auto",
  [QueueType.QUORUM]: "quorum",
  [QueueType.CLASSIC]: "classic",
} as Record<number, string>;
/** Where buf records `queue_type` inside the service's options: options, (grabbit.v1.service), field 5. */
const QUEUE_TYPE_SUB = [3, 51732, 5];

function fileDefaults(file: FileEl) {
  const o = file.fd.options;
  return o && hasExtension(o, fileExt) ? getExtension(o, fileExt) : undefined;
}

export function effectiveEvent(m: MessageEl): EffectiveEvent | undefined {
  const o = m.d.options;
  if (!o || !hasExtension(o, eventExt)) return undefined;
  const ev = getExtension(o, eventExt);
  const defaults = fileDefaults(m.file);
  return {
    exchange: ev.exchange || defaults?.exchange || "",
    kind: KIND[ev.exchangeKind || defaults?.exchangeKind || ExchangeKind.TOPIC] ?? "topic",
    routingKey: ev.routingKey || m.fullName,
    persistent: ev.persistent ?? true,
  };
}

/** The binding pattern a consumer derives from a template: placeholders become `*`. */
export function bindingPattern(template: string): string {
  return template
    .split(".")
    .map((w) => (/\{[^}]*\}/.test(w) ? "*" : w))
    .join(".");
}

function placeholders(template: string): string[] {
  return [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]!);
}

export function compareEvents(ctx: Ctx, before: MessageEl, after: MessageEl): void {
  const eb = effectiveEvent(before);
  const ea = effectiveEvent(after);
  const at = { file: after.file, spath: after.spath };
  const name = `Event "${after.local}"`;
  if (!eb) {
    if (ea)
      ctx.change(
        "EVENT_ADDED",
        at,
        `Message "${after.local}" became an event on exchange "${ea.exchange}" with routing key "${ea.routingKey}".`,
      );
    return;
  }
  if (!ea) {
    ctx.add(
      "GRABBIT_EVENT_REMOVED",
      at,
      `Message "${after.local}" is no longer an event: (grabbit.v1.event) was removed, so it is no longer published to "${eb.exchange}".`,
      { sub: [7] },
    );
    return;
  }
  if (before.fullName !== after.fullName) {
    ctx.add(
      "GRABBIT_EVENT_TYPE_CHANGED",
      at,
      `Event "${before.fullName}" was renamed to "${after.fullName}": its AMQP "type" property changes and consumers dispatching on the old name ignore it.`,
      {
        subject: `message:${before.fullName}`,
      },
    );
  }
  if (eb.exchange !== ea.exchange) {
    ctx.add(
      "GRABBIT_EVENT_EXCHANGE_CHANGED",
      at,
      `${name} moved from exchange "${eb.exchange}" to "${ea.exchange}": queues bound to the old exchange stop receiving it.`,
      { sub: [7] },
    );
  }
  if (eb.kind !== ea.kind) {
    ctx.add(
      "GRABBIT_EVENT_EXCHANGE_KIND_CHANGED",
      at,
      `${name} changed its exchange kind from "${eb.kind}" to "${ea.kind}": declaring the exchange with another kind fails and existing bindings match differently.`,
      { sub: [7] },
    );
  }
  if (eb.routingKey !== ea.routingKey) {
    const pb = bindingPattern(eb.routingKey);
    const pa = bindingPattern(ea.routingKey);
    const phb = placeholders(eb.routingKey);
    const pha = placeholders(ea.routingKey);
    const kind = ea.kind;
    if (kind === "fanout" && eb.kind === "fanout") {
      ctx.change(
        "OPTION_CHANGED",
        at,
        `${name} changed its routing key from "${eb.routingKey}" to "${ea.routingKey}" (a fanout exchange ignores it).`,
        { sub: [7] },
      );
    } else if (kind === "headers" && eb.kind === "headers" && phb.join() === pha.join()) {
      ctx.change(
        "OPTION_CHANGED",
        at,
        `${name} changed its routing key from "${eb.routingKey}" to "${ea.routingKey}" (a headers exchange matches the same placeholders).`,
        { sub: [7] },
      );
    } else if (pb !== pa) {
      ctx.add(
        "GRABBIT_EVENT_ROUTING_KEY_CHANGED",
        at,
        `${name} changed its routing key from "${eb.routingKey}" to "${ea.routingKey}": consumers bound to "${pb}" no longer match ("${pa}" now).`,
        { sub: [7] },
      );
    } else if (phb.join() !== pha.join()) {
      ctx.add(
        "GRABBIT_EVENT_ROUTING_KEY_CHANGED",
        at,
        `${name} changed the placeholders of its routing key from "${eb.routingKey}" to "${ea.routingKey}": typed consumer filters bind on other fields.`,
        { sub: [7] },
      );
    } else {
      ctx.change(
        "OPTION_CHANGED",
        at,
        `${name} changed its routing key from "${eb.routingKey}" to "${ea.routingKey}" with the same binding pattern.`,
        { sub: [7] },
      );
    }
  }
  if (eb.persistent !== ea.persistent) {
    if (eb.persistent)
      ctx.add(
        "GRABBIT_EVENT_PERSISTENCE_CHANGED",
        at,
        `${name} changed from persistent to transient: a broker restart now loses it.`,
        { sub: [7] },
      );
    else
      ctx.change("OPTION_CHANGED", at, `${name} changed from transient to persistent.`, {
        sub: [7],
      });
  }
}

export function effectiveService(s: ServiceEl): {
  transports: string[];
  queue: string;
  prefetch: number;
  timeoutMs: number;
  queueType: string;
} {
  const o = s.d.options;
  const opts = o && hasExtension(o, serviceExt) ? getExtension(o, serviceExt) : undefined;
  const defaults = fileDefaults(s.file);
  const list = opts?.transports.length
    ? opts.transports
    : defaults?.transports.length
      ? defaults.transports
      : [Transport.GRPC];
  return {
    transports: [
      ...new Set(
        list.filter((t) => t !== Transport.UNSPECIFIED).map((t) => TRANSPORT[t] ?? String(t)),
      ),
    ].sort(),
    queue: opts?.requestQueue || `${defaults?.queuePrefix ?? ""}${s.fullName}`,
    prefetch: opts?.prefetch || defaults?.prefetch || 32,
    timeoutMs: opts?.timeoutMs || defaults?.timeoutMs || 0,
    queueType: QUEUE_TYPE[opts?.queueType ?? 0] ?? `QUEUE_TYPE ${opts?.queueType}`,
  };
}

/**
 * A queue's type is fixed when it is created: a server that declares it with another type gets 406
 * PRECONDITION_FAILED. So, for an existing request queue:
 * - quorum <-> classic breaks: the new servers cannot start until the queue is deleted and re-created.
 * - unspecified ("auto") -> quorum or classic breaks too, even where it names the type the broker
 *   picked: "auto" servers used whatever queue they found (a classic one on brokers without quorum
 *   queues, or one made by hand), so some deployments may hold the other type. The checker cannot
 *   see them; a team that knows every environment already has that type accepts the finding.
 * - quorum or classic -> unspecified does not: "auto" servers use an existing queue of either type.
 *   It is reported as an option change (new environments get quorum where supported).
 */
function compareQueueTypes(
  ctx: Ctx,
  at: At,
  name: string,
  queue: string,
  before: string,
  after: string,
): void {
  const rule = "GRABBIT_SERVICE_QUEUE_TYPE_CHANGED";
  if (after === "auto") {
    ctx.change(
      "OPTION_CHANGED",
      at,
      `${name} no longer fixes the type of its AMQP request queue "${queue}" (was ${before}): servers now use the existing queue of either type, and create a quorum queue where the broker supports it.`,
      { sub: QUEUE_TYPE_SUB },
    );
    return;
  }
  const fails = `servers declaring "${queue}" as ${after} fail with PRECONDITION_FAILED wherever it exists as`;
  const fix = `until it is deleted and re-created (existing deployments keep the type they created it with)`;
  if (before === "auto") {
    ctx.add(
      rule,
      at,
      `${name} now fixes its AMQP request queue type to ${after} (it was unspecified: quorum where the broker supports it, classic otherwise, any existing queue used as is): ${fails} another type, ${fix}. If every environment already has it as ${after}, accept the finding (grabbit:accept GRABBIT_SERVICE_QUEUE_TYPE_CHANGED reason: ...).`,
      { sub: QUEUE_TYPE_SUB },
    );
    return;
  }
  ctx.add(
    rule,
    at,
    `${name} changed its AMQP request queue type from ${before} to ${after}: ${fails} ${before}, ${fix}.`,
    { sub: QUEUE_TYPE_SUB },
  );
}

function idempotent(m: MethodEl): boolean {
  const o = m.d.options;
  if (!o) return false;
  if (
    o.idempotencyLevel === MethodOptions_IdempotencyLevel.IDEMPOTENT ||
    o.idempotencyLevel === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS
  )
    return true;
  return hasExtension(o, methodExt) && getExtension(o, methodExt).idempotent;
}

function methodTimeout(m: MethodEl): number {
  const o = m.d.options;
  return o && hasExtension(o, methodExt) ? getExtension(o, methodExt).timeoutMs : 0;
}

export function compareServiceContracts(ctx: Ctx, before: ServiceEl, after: ServiceEl): void {
  const sb = effectiveService(before);
  const sa = effectiveService(after);
  const at = { file: after.file, spath: after.spath };
  const name = `Service "${after.local}"`;
  for (const t of sb.transports) {
    if (!sa.transports.includes(t))
      ctx.add(
        "GRABBIT_SERVICE_TRANSPORT_REMOVED",
        at,
        `${name} is no longer served over ${t}: its ${t} clients fail.`,
        { sub: [3] },
      );
  }
  for (const t of sa.transports)
    if (!sb.transports.includes(t))
      ctx.change("TRANSPORT_ADDED", at, `${name} is now also served over ${t}.`, { sub: [3] });
  if (sb.transports.includes("AMQP") && sa.transports.includes("AMQP") && sb.queue !== sa.queue) {
    ctx.add(
      "GRABBIT_SERVICE_REQUEST_QUEUE_CHANGED",
      at,
      `${name} moved its AMQP request queue from "${sb.queue}" to "${sa.queue}": clients still publish to the old queue.`,
      { sub: [3] },
    );
  }
  // On a moved queue the type is that of a new queue: the move is the finding.
  if (
    sb.transports.includes("AMQP") &&
    sa.transports.includes("AMQP") &&
    sb.queue === sa.queue &&
    sb.queueType !== sa.queueType
  ) {
    compareQueueTypes(ctx, at, name, sa.queue, sb.queueType, sa.queueType);
  }
  if (sb.prefetch !== sa.prefetch || sb.timeoutMs !== sa.timeoutMs) {
    ctx.change(
      "OPTION_CHANGED",
      at,
      `${name} changed its prefetch or default timeout (prefetch ${sb.prefetch} -> ${sa.prefetch}, timeout ${sb.timeoutMs} ms -> ${sa.timeoutMs} ms).`,
      { sub: [3] },
    );
  }
  const mb = methodsOf(before);
  for (const [mname, a] of methodsOf(after)) {
    const b = mb.get(mname);
    if (!b) continue;
    if (idempotent(b) && !idempotent(a)) {
      ctx.add(
        "GRABBIT_METHOD_IDEMPOTENCY_REMOVED",
        a,
        `Method "${mname}" on service "${after.local}" is no longer idempotent: clients that retry it may now repeat side effects.`,
        { sub: [4] },
      );
    }
    if (methodTimeout(b) !== methodTimeout(a)) {
      ctx.change(
        "OPTION_CHANGED",
        a,
        `Method "${mname}" on service "${after.local}" changed its default timeout from ${methodTimeout(b)} ms to ${methodTimeout(a)} ms.`,
        { sub: [4] },
      );
    }
  }
}

export function checkGrabbit(ctx: Ctx): void {
  for (const [name, after] of ctx.cur.messages) {
    const before = ctx.old.messages.get(name);
    if (before) compareEvents(ctx, before, after);
  }
  for (const [name, after] of ctx.cur.services) {
    const before = ctx.old.services.get(name);
    if (before) compareServiceContracts(ctx, before, after);
  }
}
