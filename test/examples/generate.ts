// The example system imports examples/gen, which is generated (and gitignored): make it the way
// `npm run generate` does, with the repo's buf.gen.yaml and the built plugin; and examples/gen-es/, the
// same contracts with protobuf-es messages (examples/buf.gen.protobuf-es.yaml).
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { BUF, REPO } from "../support/buf.js";

export function generateExamples(): void {
  try {
    for (const args of [
      ["generate"],
      ["generate", "--template", "examples/buf.gen.protobuf-es.yaml"],
    ]) {
      execFileSync(BUF, args, {
        cwd: REPO,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, PATH: `${join(REPO, "node_modules/.bin")}:${process.env.PATH}` },
      });
    }
  } catch (err) {
    throw new Error(
      `buf generate for the examples failed (is the plugin built? npm run build): ${(err as { stderr?: Buffer }).stderr?.toString() ?? err}`,
    );
  }
}
