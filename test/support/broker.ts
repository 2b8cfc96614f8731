// Where tests find RabbitMQ, and names that cannot clash between test files sharing one broker.
import { randomBytes } from "node:crypto";

export const AMQP_URL = process.env.AMQP_URL ?? "amqp://127.0.0.1";

/** A name unique to this run, such as "orders-3f9a1c2e". */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}
