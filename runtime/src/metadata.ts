// Metadata is the same plain object on both transports: gRPC metadata entries and AMQP headers
// of the same (lower-case) names. Keys the wire contract reserves are never copied across.

export type Metadata = Record<string, string>;

/** Header names grabbit itself writes on AMQP messages; user metadata may not use them. */
export const RESERVED_HEADER_PREFIXES = [
  "rpc-",
  "x-grabbit-",
  "x-death",
  "x-first-death",
  "x-last-death",
  "x-match",
] as const;

export function isReservedHeader(name: string): boolean {
  return RESERVED_HEADER_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** True when `metadata` has any entry (without listing its keys). */
export function hasKeys(metadata: object): boolean {
  for (const _ in metadata) return true;
  return false;
}

/** Lower-cases keys and keeps string values only, so that both transports see the same thing. */
export function normalizeMetadata(input: Record<string, unknown> | undefined): Metadata {
  const out: Metadata = {};
  if (!input) return out;
  for (const [key, value] of Object.entries(input)) {
    if (typeof value === "string") out[key.toLowerCase()] = value;
    else if (typeof value === "number" || typeof value === "boolean")
      out[key.toLowerCase()] = String(value);
    else if (value instanceof Uint8Array)
      out[key.toLowerCase()] = Buffer.from(value).toString("utf8");
  }
  return out;
}
