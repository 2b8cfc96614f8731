// Where tests find RabbitMQ, and names that cannot clash between test files sharing one broker.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";

export const AMQP_URL = process.env.AMQP_URL ?? "amqp://127.0.0.1";

/** A name unique to this run, such as "orders-3f9a1c2e". */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** Runs `rabbitmqctl` against the test broker; rejects with its stderr. */
export function rabbitmqctl(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("rabbitmqctl", args, { timeout: 120_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`rabbitmqctl ${args[0]}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

/**
 * A vhost of the test's own on the shared broker, where the URL's user (guest by default) may do
 * anything: its queues and exchanges meet no other test's. `remove()` deletes it with all it holds.
 */
export async function privateVhost(
  name: string,
): Promise<{ name: string; url: string; remove: () => Promise<void> }> {
  await rabbitmqctl("add_vhost", name);
  const url = new URL(AMQP_URL);
  const user = decodeURIComponent(url.username || "guest");
  await rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*");
  url.pathname = `/${encodeURIComponent(name)}`;
  return {
    name,
    url: url.toString(),
    remove: () => rabbitmqctl("delete_vhost", name).then(() => undefined),
  };
}
