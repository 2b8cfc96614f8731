// Renders the model with handlebars, in strict mode: a template that names a field the model lacks
// throws, and generation fails, rather than printing nothing. Templates are compiled once per
// process; each output kind has its own template under generator/templates/. TypeScript output is
// then formatted (format.ts), so templates need not manage line width or blank lines.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Handlebars from "handlebars";
import { formatTypeScript, jsdoc } from "./format.js";
import type { DocModel, FileModel, GenerationModel } from "./model/model.js";

export interface RenderOptions {
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
  // An array literal of strings, spaced as the formatter writes one: ["a", "b"].
  hb.registerHelper(
    "list",
    (values: string[]) => `[${values.map((v) => JSON.stringify(v)).join(", ")}]`,
  );
  // {{#doc doc indent}}prose{{/doc}}: a JSDoc block with the proto comment (or, without one or with
  // fallbackOnly=true, the template's prose), @deprecated and the @see link back to the proto.
  hb.registerHelper(
    "doc",
    function (this: unknown, doc: DocModel, indent: string, options: Handlebars.HelperOptions) {
      const prose = options.fn(this);
      const own = options.hash["fallbackOnly"] === true ? undefined : doc.comment;
      const tags = [...(doc.deprecated ? ["@deprecated"] : []), `@see ${doc.see}`];
      return jsdoc({ verbatim: own, prose, tags }, indent);
    },
  );
  const dir = templatesDir();
  const load = (name: string) => readFileSync(join(dir, `${name}.hbs`), "utf8");
  // Strict: a name the context lacks fails rendering instead of printing nothing.
  const compile = (name: string) =>
    hb.compile(load(name), { noEscape: true, strict: true, preventIndent: true });
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

/** One generated .ts file: the file template over the model, formatted at 100 columns. */
export function renderFile(file: FileModel, options: RenderOptions): string {
  return formatTypeScript(
    file.outputPath,
    renderTemplate("file", { ...file, version: options.version }),
  );
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
      exchanges.set(event.exchange, {
        id: exchangeId,
        name: event.exchange,
        kind: event.exchangeKind,
      });
      const bindingKey =
        event.exchangeKind === "fanout" ? "all" : event.routingKey.replace(/\{[^}]*\}/g, "*");
      events.push({
        ...event,
        id: nodeId("e", event.typeName),
        exchangeId,
        queueId: nodeId("q", event.typeName),
        bindingKey,
      });
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
  return renderTemplate("topology.mmd", {
    ...options,
    exchanges: [...exchanges.values()],
    events,
    services,
  });
}
