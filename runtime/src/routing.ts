// Routing keys from templates. A placeholder value becomes one routing-key word, so the characters
// that mean something to a topic exchange ('.', '*', '#') and '%' itself are percent-encoded.

import type { EventDesc } from "./descriptors.js";

const SPECIAL = /[%.*#]/g;

export function routingWord(value: unknown): string {
  const text =
    typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
  return text.replace(
    SPECIAL,
    (ch) => "%" + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"),
  );
}

type Part = { literal: string } | { field: string };

const parsed = new Map<string, Part[]>();

export function parseTemplate(template: string): Part[] {
  let parts = parsed.get(template);
  if (parts) return parts;
  parts = [];
  const re = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
  let last = 0;
  for (let m = re.exec(template); m; m = re.exec(template)) {
    if (m.index > last) parts.push({ literal: template.slice(last, m.index) });
    parts.push({ field: m[1]! });
    last = m.index + m[0].length;
  }
  if (last < template.length) parts.push({ literal: template.slice(last) });
  parsed.set(template, parts);
  return parts;
}

/** The routing key one event is published with. */
export function renderRoutingKey<T>(event: EventDesc<T>, message: T): string {
  if (event.routingFields.length === 0) return event.routingKeyTemplate;
  const values = event.routingValues(message);
  let key = "";
  for (const part of parseTemplate(event.routingKeyTemplate)) {
    key += "literal" in part ? part.literal : routingWord(values[part.field]);
  }
  return key;
}

/**
 * The binding key a consumer binds with: each placeholder becomes `*` unless the filter gives a
 * value for it. For a direct exchange every placeholder needs a value.
 */
export function bindingKey<T>(event: EventDesc<T>, filter: Record<string, unknown> = {}): string {
  let key = "";
  for (const part of parseTemplate(event.routingKeyTemplate)) {
    if ("literal" in part) {
      key += part.literal;
      continue;
    }
    const value = filter[part.field] ?? filter[camel(part.field)];
    if (value === undefined) {
      if (event.exchangeKind === "direct") {
        throw new TypeError(
          `${event.type.typeName} is published to direct exchange "${event.exchange}": the consumer's filter needs a value for "${part.field}"`,
        );
      }
      key += "*";
    } else {
      key += routingWord(value);
    }
  }
  return key;
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
