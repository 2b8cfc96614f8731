// Problems found in a contract. Generation collects them all and fails once, listing each as
// `file:line:column: message`, so a user fixes every mistake in one round.
import { InputError } from "../../governance/errors.js";
import type { Position } from "./location.js";

export class ContractError {
  constructor(
    readonly position: Position,
    readonly message: string,
  ) {}

  toString(): string {
    const { file, line, column } = this.position;
    return `${file}:${line}:${column}: ${this.message}`;
  }
}

/** Every problem of a contract at once: bad input (exit 1 should it reach the CLI), one line each. */
export class ContractErrors extends InputError {
  constructor(readonly errors: readonly ContractError[]) {
    super(errors.map(String).join("\n"));
  }
}
// On the prototype, as governance/errors.ts does, so the name is there when the stack is captured.
Object.defineProperty(ContractErrors.prototype, "name", {
  value: "ContractErrors",
  writable: true,
  configurable: true,
});
