// For scripts run with runChild(): nothing here may import through the vitest aliases.

/** Exit when the parent's end of stdin closes (the test run died or was killed): no orphans. */
export function exitWithParent(): void {
  process.stdin.on("end", () => process.exit(1));
  process.stdin.on("close", () => process.exit(1));
  process.stdin.resume();
}
