// A tiny OTLP/HTTP receiver on loopback, for `npm run demo -- --trace` and the tests: it takes
// POST /v1/traces and /v1/metrics, keeps the spans of OTLP/JSON requests (protobuf requests are
// counted and kept as bytes, not decoded), and prints traces as indented trees. Not a collector.

import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";

export interface ReceivedSpan {
  service: string;
  /** The exporting process's resource attributes (service.name among them). */
  resource: Record<string, unknown>;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP's span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  status: number;
}

export interface ReceivedRequest {
  path: string;
  contentType: string;
  body: Buffer;
}

export interface OtlpReceiver {
  /** The base URL to give as OTEL_EXPORTER_OTLP_ENDPOINT, e.g. "http://127.0.0.1:43127". */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Every request as received (decompressed), JSON or protobuf. */
  readonly requests: ReceivedRequest[];
  /** service.name values seen in metric exports (JSON only). */
  readonly metricServices: Set<string>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests: ReceivedRequest[] = [];
  const metricServices = new Set<string>();
  const server: Server = createServer((req, res) => {
    readBody(req).then(
      (body) => {
        const path = new URL(req.url ?? "/", "http://receiver").pathname;
        const contentType = String(req.headers["content-type"] ?? "");
        if (req.method !== "POST" || (path !== "/v1/traces" && path !== "/v1/metrics")) {
          res.writeHead(404).end();
          return;
        }
        requests.push({ path, contentType, body });
        if (contentType.startsWith("application/json")) {
          const json = JSON.parse(body.toString("utf8"));
          if (path === "/v1/traces") spans.push(...spansOf(json));
          else
            for (const rm of json.resourceMetrics ?? []) metricServices.add(serviceOf(rm.resource));
          res.writeHead(200, { "content-type": "application/json" }).end("{}");
        } else {
          // An empty ExportTraceServiceResponse / ExportMetricsServiceResponse is zero bytes.
          res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
        }
      },
      (err: unknown) => res.writeHead(400).end(String(err)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    metricServices,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  return req.headers["content-encoding"] === "gzip" ? gunzipSync(body) : body;
}

type AnyValue = {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
};
type KeyValue = { key: string; value?: AnyValue };

function anyValueOf(v: AnyValue | undefined): unknown {
  if (v === undefined) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(anyValueOf);
  return undefined;
}

function attributesOf(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, anyValueOf(kv.value)]));
}

function serviceOf(resource: { attributes?: KeyValue[] } | undefined): string {
  return String(attributesOf(resource?.attributes)["service.name"] ?? "unknown_service");
}

/** Nanoseconds as OTLP/JSON writes them: a decimal string, a number, or {low, high} halves. */
function nanos(v: unknown): bigint {
  if (typeof v === "string" || typeof v === "number") return BigInt(v);
  if (v && typeof v === "object" && "low" in v && "high" in v) {
    const { low, high } = v as { low: number; high: number };
    return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
  }
  return 0n;
}

/** Ids as OTLP/JSON writes them: hex (the spec), or base64 (protobuf's JSON mapping). */
function hexId(v: unknown): string {
  if (typeof v !== "string" || v === "") return "";
  return /^[\da-f]+$/i.test(v) && (v.length === 32 || v.length === 16)
    ? v.toLowerCase()
    : Buffer.from(v, "base64").toString("hex");
}

/** The spans of one OTLP/JSON ExportTraceServiceRequest, flattened. */
export function spansOf(request: any): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of request?.resourceSpans ?? []) {
    const resource = attributesOf(rs.resource?.attributes);
    const service = serviceOf(rs.resource);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          service,
          resource,
          traceId: hexId(s.traceId),
          spanId: hexId(s.spanId),
          parentSpanId: hexId(s.parentSpanId),
          name: String(s.name),
          kind: Number(s.kind ?? 0),
          startNs: nanos(s.startTimeUnixNano),
          endNs: nanos(s.endTimeUnixNano),
          attributes: attributesOf(s.attributes),
          status: Number(s.status?.code ?? 0),
        });
      }
    }
  }
  return out;
}

/** Spans by trace id, each trace's spans in start order; traces in the order they started. */
export function tracesOf(spans: ReceivedSpan[]): Map<string, ReceivedSpan[]> {
  const byTrace = new Map<string, ReceivedSpan[]>();
  for (const s of [...spans].sort((a, b) =>
    a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0,
  )) {
    const list = byTrace.get(s.traceId) ?? [];
    list.push(s);
    byTrace.set(s.traceId, list);
  }
  return byTrace;
}

const KIND = ["", "", "server", "client", "producer", "consumer"];

/**
 * One trace as an indented tree, a line per span: service, span name, kind, duration; a child under
 * its parent (a span whose parent is not in the trace is a root), children in start order.
 */
export function formatTrace(spans: ReceivedSpan[]): string[] {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, ReceivedSpan[]>();
  const roots: ReceivedSpan[] = [];
  for (const s of spans) {
    if (s.parentSpanId && ids.has(s.parentSpanId)) {
      const list = children.get(s.parentSpanId) ?? [];
      list.push(s);
      children.set(s.parentSpanId, list);
    } else roots.push(s);
  }
  const t0 = spans.reduce((min, s) => (s.startNs < min ? s.startNs : min), spans[0]?.startNs ?? 0n);
  const serviceWidth = Math.max(...spans.map((s) => s.service.length));
  const lines: string[] = [];
  const walk = (s: ReceivedSpan, prefix: string, last: boolean, root: boolean) => {
    const branch = root ? "" : last ? "└─ " : "├─ ";
    const ms = (n: bigint) => (Number(n) / 1e6).toFixed(1);
    const kind = KIND[s.kind] ? ` (${KIND[s.kind]})` : "";
    const error = s.status === 2 ? "  ERROR" : "";
    lines.push(
      `${s.service.padEnd(serviceWidth)}  ${prefix}${branch}${s.name}${kind}  ${ms(s.endNs - s.startNs)} ms  @+${ms(s.startNs - t0)} ms${error}`,
    );
    const kids = children.get(s.spanId) ?? [];
    kids.forEach((k, i) => {
      walk(k, root ? "" : prefix + (last ? "   " : "│  "), i === kids.length - 1, false);
    });
  };
  for (const r of roots) walk(r, "", true, true);
  return lines;
}
