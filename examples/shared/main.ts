// What the three services' main.ts files share: connecting to the broker with a clear message when it
// is not there, and closing cleanly on Ctrl-C or SIGTERM.

import { AmqpConnection, redactUrl } from "@grabbit/runtime/amqp";

export function env(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value === "" ? fallback : value;
}

export async function connectOrExit(service: string): Promise<AmqpConnection> {
  const url = env("AMQP_URL", "amqp://127.0.0.1");
  try {
    return await AmqpConnection.connect({ urls: url, name: `grabbit-example-${service}`, connectTimeoutMs: 5000 });
  } catch {
    console.error(`${service}: cannot reach RabbitMQ at ${redactUrl(url)}: start a broker or set AMQP_URL, then run it again.`);
    process.exit(1);
  }
}

export function closeOnSignal(service: string, close: () => Promise<void>): void {
  let closing = false;
  const stop = (signal: string) => {
    if (closing) process.exit(1); // a second Ctrl-C does not wait
    closing = true;
    console.log(`${service}: ${signal}, finishing work in flight`);
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`${service}: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}
