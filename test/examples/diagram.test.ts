// The example system's topology diagram renders: the plugin's Mermaid output, drawn by the real
// mermaid library in headless Chromium (no network), gives an SVG with the expected nodes and edges.
// docs/topology.md must show exactly what the plugin generates.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../../generator/plugin.js";
import { bufRequest, REPO } from "../support/buf.js";

const MERMAID_JS = join(REPO, "node_modules/mermaid/dist/mermaid.min.js");
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function chromiumPath(): string {
  let path = "";
  try {
    path = execFileSync("which", ["chromium"], { encoding: "utf8" }).trim();
  } catch {
    // reported below
  }
  // Not a skip: .ci/run installs it, so a missing browser is a broken environment.
  if (!path)
    throw new Error(
      "chromium is not installed: run `apt-get update && apt-get install -y chromium` (.ci/run does this), then the test again",
    );
  return path;
}

/** The plugin's extra outputs for the example contracts, with the options the repo's buf.gen.yaml gives. */
function generated(): Record<string, string> {
  const parameter =
    "asyncapi=asyncapi.json,asyncapi_title=grabbit example system,asyncapi_version=1.0.0,mermaid=topology.mmd";
  const response = run(bufRequest(join(REPO, "proto"), parameter, (f) => f.startsWith("example/")));
  expect(response.error ?? "").toBe("");
  return Object.fromEntries(response.file.map((f) => [f.name, f.content]));
}

let rendered = 0;

/** Renders with the mermaid already loaded in `page`; each diagram gets a fresh container. */
async function render(
  text: string,
): Promise<{ root: string | undefined; nodes: string[]; edges: string[]; error: string | null }> {
  return page!.evaluate(
    async ([source, id]) => {
      // Runs in the page; this file is compiled without the DOM library, hence the `any`.
      const { mermaid, document } = globalThis as any;
      const out = document.createElement("div");
      document.body.append(out);
      try {
        const { svg } = await mermaid.render(id, source);
        out.innerHTML = svg;
      } catch (err) {
        return { root: undefined, nodes: [], edges: [], error: String(err) };
      }
      // A <br/> in a label is a line break, not text: read it as a space.
      for (const br of out.querySelectorAll("br")) br.replaceWith(" ");
      const labels = (selector: string) =>
        [...out.querySelectorAll(selector)].map((n) =>
          (n.textContent ?? "").replace(/\s+/g, " ").trim(),
        );
      return {
        root: out.firstElementChild?.tagName,
        nodes: labels("g.node"),
        edges: labels(".edgeLabel"),
        error: out.querySelector(".error-text")?.textContent ?? null,
      };
    },
    [text, `diagram${++rendered}`] as const,
  );
}

let browser: Browser | undefined;
let page: Page | undefined;
let files: Record<string, string>;
let diagram: string;

beforeAll(async () => {
  files = generated();
  diagram = files["topology.mmd"]!;
  expect(diagram).toBeDefined();
  expect(existsSync(MERMAID_JS), `${MERMAID_JS} is missing: npm ci`).toBe(true);
  browser = await chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS });
  page = await browser.newPage();
  // Nothing may come from the network: the page is inline and mermaid is loaded from node_modules.
  await page.route("**/*", (route) => route.abort());
  await page.setContent("<!doctype html><html><body></body></html>");
  await page.addScriptTag({ path: MERMAID_JS });
  await page.evaluate(() =>
    (globalThis as any).mermaid.initialize({ startOnLoad: false, securityLevel: "strict" }),
  );
});

afterAll(async () => {
  await browser?.close();
});

describe("the example system's Mermaid topology", () => {
  it("is what docs/topology.md shows, and the AsyncAPI copy in docs is current", () => {
    const doc = readFileSync(join(REPO, "docs/topology.md"), "utf8");
    const block = /```mermaid\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(block, "docs/topology.md has no ```mermaid block").toBeDefined();
    expect(block).toBe(diagram);
    const copy = readFileSync(join(REPO, "docs/example.asyncapi.json"), "utf8");
    expect(
      JSON.parse(copy),
      "docs/example.asyncapi.json is stale: copy examples/gen/asyncapi.json after npm run generate",
    ).toEqual(JSON.parse(files["asyncapi.json"]!));
  });

  it("renders to an SVG with the exchanges, events, queues and services as nodes", async () => {
    const result = await render(diagram);
    expect(result.error).toBeNull();
    expect(result.root?.toLowerCase()).toBe("svg");
    const nodes = result.nodes.join("\n");
    for (const label of [
      "example.reports topic exchange",
      "example.v1.RequestReported",
      "consumer queues named at run time",
      "example.v1.RequestProcessorService request queue",
      "example.v1.RequestProcessorService ProcessRequest",
      "example.v1.RequestProcessorService callers",
      "example.v1.BridgeService gRPC: NotifyRequestDone",
    ]) {
      expect(nodes).toContain(label);
    }
    expect(result.nodes).toHaveLength(7);
    for (const label of ["report.{decision}.{region}", "report.*.*", "reply_to + correlation_id"])
      expect(result.edges).toContain(label);
  });

  it("every Mermaid block in docs/ and the README renders", async () => {
    const sources = [
      join(REPO, "README.md"),
      ...readdirSync(join(REPO, "docs"))
        .filter((f) => f.endsWith(".md"))
        .map((f) => join(REPO, "docs", f)),
    ];
    let count = 0;
    for (const file of sources) {
      for (const match of readFileSync(file, "utf8").matchAll(/```mermaid\n([\s\S]*?)```/g)) {
        const result = await render(match[1]!);
        expect(result.error, `${file}: diagram ${count + 1}`).toBeNull();
        expect(result.root?.toLowerCase()).toBe("svg");
        count++;
      }
    }
    expect(count).toBeGreaterThanOrEqual(2);
  });
});
