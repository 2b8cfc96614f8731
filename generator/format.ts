// How generated TypeScript is laid out: dprint's TypeScript formatter (the one Deno ships) at 100
// columns, and the doc comments the templates write, wrapped to the same width. The templates
// write the formatter's style, so only the top-level declarations with a line over the width go
// through it (the formatter costs about 7 ms for a file of one service and one event; most of a
// file needs nothing); the tests check that this gives the same text as formatting whole files.
// The formatter is loaded once per process, synchronously (a 4 MB wasm module). Text that does not
// parse is a bug of the generator: formatting throws, naming the file, and the plugin reports an
// internal error.
import { readFileSync } from "node:fs";
import { createFromBuffer, type Formatter } from "@dprint/formatter";
import { getPath } from "@dprint/typescript";

/** The width of generated files, as of the repo's own sources. */
export const LINE_WIDTH = 100;

let formatter: Formatter | undefined;

function typescriptFormatter(): Formatter {
  if (formatter) return formatter;
  const created = createFromBuffer(readFileSync(getPath()));
  created.setConfig(
    { lineWidth: LINE_WIDTH, indentWidth: 2, useTabs: false, newLineKind: "lf" },
    {
      quoteStyle: "alwaysDouble",
      semiColons: "always",
      trailingCommas: "onlyMultiLine",
      "typeLiteral.separatorKind.singleLine": "comma",
      // The import registry orders modules and names; the formatter keeps that order.
      "module.sortImportDeclarations": "maintain",
      "importDeclaration.sortNamedImports": "maintain",
      "exportDeclaration.sortNamedExports": "maintain",
    },
  );
  const problems = created.getConfigDiagnostics();
  if (problems.length > 0) {
    throw new Error(
      `formatter configuration: ${problems
        .map((p) => `${p.propertyName}: ${p.message}`)
        .join("; ")}`,
    );
  }
  formatter = created;
  return created;
}

/** `text` laid out at LINE_WIDTH columns; throws when it is not valid TypeScript. */
export function formatTypeScript(fileName: string, text: string): string {
  // Top-level statements start at column 0 after a blank line; nothing else does in generated
  // code (class members are indented, doc comment lines start with " *").
  const chunks = text
    .split(/\n\n(?=\S)/)
    .map((chunk) =>
      chunk.split("\n").some((line) => line.length > LINE_WIDTH)
        ? formatWhole(fileName, chunk)
        : chunk,
    );
  return `${chunks.map((chunk) => chunk.replace(/\n+$/, "")).join("\n\n")}\n`;
}

/** The formatter over all of `text`: what formatTypeScript must equal. */
export function formatWhole(fileName: string, text: string): string {
  try {
    return typescriptFormatter().formatText({ filePath: fileName, fileText: text });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`generated ${fileName} does not parse as TypeScript: ${reason}`);
  }
}

export interface DocBlock {
  /** Text to print verbatim (the proto comment, already laid out by its author). */
  verbatim?: string | undefined;
  /** The generator's own prose: paragraphs separated by blank lines, re-wrapped to the width. */
  prose?: string | undefined;
  /** Tags after the text, one a line: `@deprecated`, `@see ...`. */
  tags: string[];
}

/** A JSDoc block at `indent`, wrapped so that its prose lines stay within LINE_WIDTH. */
export function jsdoc(block: DocBlock, indent: string): string {
  const width = LINE_WIDTH - indent.length - 3;
  const text =
    block.verbatim !== undefined
      ? block.verbatim.split("\n").map((l) => l.trimEnd())
      : wrapProse(block.prose ?? "", width);
  const lines = block.tags.length > 0 ? [...text, "", ...block.tags] : text;
  // Ends with a newline: templates close the block on a line of its own, which handlebars drops.
  return [
    `${indent}/**`,
    ...lines.map((l) => (l ? `${indent} * ${l}` : `${indent} *`)),
    `${indent} */`,
    "",
  ].join("\n");
}

/**
 * Greedy word wrap of each paragraph; a word longer than the width gets a line of its own, and a
 * `code span` is one word.
 */
function wrapProse(prose: string, width: number): string[] {
  const out: string[] = [];
  for (const paragraph of prose.trim().split(/\n\s*\n/)) {
    if (out.length > 0) out.push("");
    let line = "";
    for (const word of paragraph.match(/(?:`[^`]*`|\S)+/g) ?? []) {
      if (line && line.length + 1 + word.length > width) {
        out.push(line);
        line = word;
      } else {
        line = line ? `${line} ${word}` : word;
      }
    }
    if (line) out.push(line);
  }
  return out;
}
