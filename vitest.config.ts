import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Tests import the runtime from source, so a stale runtime/dist never hides a change.
const runtimeSrc = (p: string) => fileURLToPath(new URL(`./runtime/src/${p}`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@grabbit\/runtime$/, replacement: runtimeSrc("index.ts") },
      { find: /^@grabbit\/runtime\/amqp$/, replacement: runtimeSrc("amqp/index.ts") },
      { find: /^@grabbit\/runtime\/grpc$/, replacement: runtimeSrc("grpc/index.ts") },
      { find: /^@grabbit\/runtime\/outbox$/, replacement: runtimeSrc("outbox/index.ts") },
      { find: /^@grabbit\/runtime\/dlq$/, replacement: runtimeSrc("dlq/index.ts") },
      { find: /^@grabbit\/runtime\/auth$/, replacement: runtimeSrc("auth/index.ts") },
      { find: /^@grabbit\/runtime\/telemetry$/, replacement: runtimeSrc("telemetry/index.ts") },
    ],
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Files share one broker and two cores: run a few at a time, not all at once.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
