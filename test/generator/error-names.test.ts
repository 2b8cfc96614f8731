// Issue 14: one error hierarchy with names. The generator's own errors are InputErrors (so
// GrabbitErrors: a sentence and exit 1 should one reach the CLI) with a `name` for stack traces and
// logs, while the plugin still reports each as its bare message (file:line:column sentences).
import { describe, expect, it } from "vitest";
import { GrabbitError, InputError } from "../../governance/errors.js";
import { ContractError, ContractErrors } from "../../generator/model/errors.js";
import { TsProtoOptionError } from "../../generator/model/ts-proto-options.js";
import { ParameterError, parseParameters } from "../../generator/plugin.js";

describe("generator errors", () => {
  it("are named InputErrors", () => {
    const contract = new ContractErrors([
      new ContractError({ file: "a/v1/a.proto", line: 3, column: 5 }, "no transports"),
    ]);
    for (const [err, name] of [
      [contract, "ContractErrors"],
      [new TsProtoOptionError("bad option"), "TsProtoOptionError"],
      [new ParameterError("bad parameter"), "ParameterError"],
    ] as const) {
      expect(err).toBeInstanceOf(InputError);
      expect(err).toBeInstanceOf(GrabbitError);
      expect(err.name).toBe(name);
      expect(err.exitCode).toBe(1);
      expect(err.stack?.split("\n")[0]).toBe(`${name}: ${err.message}`);
    }
    expect(contract.message).toBe("a/v1/a.proto:3:5: no transports");
  });

  it("keep the plugin's sentences: a bad parameter is thrown as its message alone", () => {
    let caught: unknown;
    try {
      parseParameters("nonsense=1");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ParameterError);
    expect((caught as Error).message).toMatch(/^unknown option "nonsense"; known options: /);
  });
});
