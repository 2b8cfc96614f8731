// Problems found in a contract. Generation collects them all and fails once, listing each as
// `file:line:column: message`, so a user fixes every mistake in one round.
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

export class ContractErrors extends Error {
  constructor(readonly errors: readonly ContractError[]) {
    super(errors.map(String).join("\n"));
    this.name = "ContractErrors";
  }
}
