// The imports of one generated file. Code names a symbol (a name some module exports); the registry
// gives it the name it has in this file, from the file's one NameScope: the plain name unless a
// declaration, a reserved global or an earlier import took it, then an alias (`Order$1`). It writes
// one import statement per module, de-duplicated, `import type` where every name is a type only.
// It cannot fail: a clash is resolved by an alias, never by a changed export.
import type { NameScope } from "./names.js";

/** One `import` statement: `import {type }{ <names> } from "<from>"`. */
export interface ImportStatement {
  from: string;
  /** Every name is used as a type only: the statement is `import type`. */
  typeOnly: boolean;
  /** The specifiers, sorted: `Order, type OrderFilter, Tier as Tier$1`. */
  names: string;
}

interface Entry {
  name: string;
  local: string;
  value: boolean;
}

export class ImportRegistry {
  private readonly modules = new Map<string, Map<string, Entry>>();

  /** `runtime` is the runtime's module name: its modules come first, then packages, then files. */
  constructor(
    private readonly scope: NameScope,
    private readonly runtime: string,
  ) {}

  /**
   * The local name of `name` exported by `from`. `value` when the code uses it at run time (a
   * codec passed to a function); a symbol named for both uses is imported as a value.
   */
  use(from: string, name: string, value: boolean): string {
    let entries = this.modules.get(from);
    if (!entries) this.modules.set(from, (entries = new Map()));
    let entry = entries.get(name);
    if (!entry) entries.set(name, (entry = { name, local: this.scope.alias(name), value }));
    entry.value ||= value;
    return entry.local;
  }

  statements(): ImportStatement[] {
    const group = (from: string) =>
      from === this.runtime || from.startsWith(`${this.runtime}/`)
        ? 0
        : from.startsWith(".")
          ? 2
          : 1;
    const modules = [...this.modules].map(([from, entries], order) => ({ from, entries, order }));
    modules.sort((a, b) => group(a.from) - group(b.from) || a.order - b.order);
    return modules.map(({ from, entries }) => {
      const list = [...entries.values()].sort((a, b) => compareNames(a.name, b.name));
      const typeOnly = list.every((e) => !e.value);
      const specifier = (e: Entry) =>
        `${typeOnly || e.value ? "" : "type "}${e.name}${
          e.local === e.name ? "" : ` as ${e.local}`
        }`;
      return { from, typeOnly, names: list.map(specifier).join(", ") };
    });
  }
}

/** Case-insensitive first, so `serveAmqp` sorts among the S's; exact order breaks ties. */
function compareNames(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
}
