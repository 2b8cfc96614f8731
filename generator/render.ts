// Renders the model with handlebars. Templates are compiled once per process; each output kind
// has its own template under generator/templates/.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Handlebars from "handlebars";
import type { FileModel, GenerationModel } from "./model/model.js";

export interface RenderOptions {
  /** Module the generated code imports the runtime from. */
  runtime: string;
  version: string;
}

/** The templates folder, found from here whether running from source or from dist/. */
function templatesDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "templates");
    if (existsSync(join(candidate, "file.hbs"))) return candidate;
    const nested = join(dir, "generator", "templates");
    if (existsSync(join(nested, "file.hbs"))) return nested;
    dir = dirname(dir);
  }
  throw new Error("protoc-gen-grabbit: cannot find its templates folder (generator/templates)");
}

let compiled: Map<string, Handlebars.TemplateDelegate> | undefined;

function engine(): Map<string, Handlebars.TemplateDelegate> {
  if (compiled) return compiled;
  const hb = Handlebars.create();
  hb.registerHelper("json", (value: unknown) => JSON.stringify(value));
  hb.registerHelper("eq", (a: unknown, b: unknown) => a === b);
  // {{#jsdoc comment deprecated indent}}fallback{{/jsdoc}}: the proto comment as a JSDoc block.
  hb.registerHelper("jsdoc", function (this: unknown, comment: unknown, deprecated: unknown, ...rest: unknown[]) {
    const options = rest[rest.length - 1] as Handlebars.HelperOptions;
    const indent = typeof rest[0] === "string" ? rest[0] : "";
    const text = typeof comment === "string" && comment ? comment : options.fn(this).trim();
    const lines = text.split("\n").map((l) => l.replace(/\s+$/, ""));
    if (deprecated === true) lines.push("", "@deprecated");
    if (lines.length === 1) return `${indent}/** ${lines[0]} */`;
    return [`${indent}/**`, ...lines.map((l) => (l ? `${indent} * ${l}` : `${indent} *`)), `${indent} */`].join("\n");
  });
  const dir = templatesDir();
  const load = (name: string) => readFileSync(join(dir, `${name}.hbs`), "utf8");
  const compile = (name: string) => hb.compile(load(name), { noEscape: true, strict: false, preventIndent: true });
  hb.registerPartial("service", compile("service"));
  hb.registerPartial("event", compile("event"));
  compiled = new Map([
    ["file", compile("file")],
    ["topology.mmd", compile("topology.mmd")],
  ]);
  return compiled;
}

export function renderTemplate(name: string, context: object): string {
  const template = engine().get(name);
  if (!template) throw new Error(`protoc-gen-grabbit: no template named ${name}`);
  return template(context);
}

export function renderFile(file: FileModel, options: RenderOptions): string {
  const amqpImports: string[] = [];
  if (file.events.length > 0 || file.usesAmqpRpc) amqpImports.push("type AmqpConnection");
  if (file.events.length > 0) {
    amqpImports.push("EventConsumer", "EventPublisher", "type EventConsumerOptions", "type EventHandler", "type EventPublisherOptions", "type PublishOptions");
  }
  if (file.usesAmqpRpc) amqpImports.push("AmqpRpcTransport", "serveAmqp", "type AmqpRpcServer", "type AmqpRpcServerOptions", "type AmqpRpcTransportOptions");
  const text = renderTemplate("file", { ...file, ...options, amqpImports: amqpImports.join(", ") });
  // Templates leave blank-line runs where optional sections are empty.
  return text.replace(/\n{3,}/g, "\n\n");
}

/** Mermaid node ids: letters, digits and underscores only. */
function nodeId(prefix: string, name: string): string {
  return `${prefix}_${name.replace(/[^A-Za-z0-9]/g, "_")}`;
}

/** The whole generation's RabbitMQ topology as a Mermaid flowchart. */
export function renderTopology(model: GenerationModel, options: RenderOptions): string {
  const exchanges = new Map<string, { id: string; name: string; kind: string }>();
  const events = [];
  const services = [];
  for (const file of model.files) {
    for (const event of file.events) {
      const exchangeId = nodeId("x", event.exchange);
      exchanges.set(event.exchange, { id: exchangeId, name: event.exchange, kind: event.exchangeKind });
      const bindingKey = event.exchangeKind === "fanout" ? "all" : event.routingKey.replace(/\{[^}]*\}/g, "*");
      events.push({ ...event, id: nodeId("e", event.typeName), exchangeId, queueId: nodeId("q", event.typeName), bindingKey });
    }
    for (const service of file.services) {
      services.push({
        ...service,
        id: nodeId("s", service.typeName),
        queueId: nodeId("rq", service.typeName),
        callerId: nodeId("c", service.typeName),
        grpcOnly: !service.amqp,
        methodList: service.methods.map((m) => m.protoName).join(", "),
      });
    }
  }
  return renderTemplate("topology.mmd", { ...options, exchanges: [...exchanges.values()], events, services });
}
