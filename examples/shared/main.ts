// What the three services' main.ts files share: connecting to the broker (each service with its own
// URL, see examples/broker-setup.sh) with a clear message when it is not there, closing cleanly on
// Ctrl-C or SIGTERM, and talking to `npm run demo` when it started them.

import { AmqpConnection, redactUrl } from "@grabbit/runtime/amqp";
import type { Telemetry } from "./telemetry.js";

export function env(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value === "" ? fallback : value;
}

/** The service's own broker URL: `<SERVICE>_AMQP_URL` (its user and vhost), else `AMQP_URL`. */
export function amqpUrlOf(service: "bridge" | "processor" | "reporter"): string {
  return env(`${service.toUpperCase()}_AMQP_URL`, env("AMQP_URL", "amqp://127.0.0.1"));
}

export async function connectOrExit(
  service: "bridge" | "processor" | "reporter",
): Promise<AmqpConnection> {
  const url = amqpUrlOf(service);
  try {
    return await AmqpConnection.connect({
      urls: url,
      name: `grabbit-example-${service}`,
      connectTimeoutMs: 5000,
    });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    console.error(
      `${service}: cannot connect to RabbitMQ at ${redactUrl(url)} (${why}): start a broker or set ${service.toUpperCase()}_AMQP_URL or AMQP_URL, then run it again.`,
    );
    process.exit(1);
  }
}

/** The promise's value; if it fails, the reason as a sentence on stderr and exit 1 (a service that cannot start). */
export async function orExit<T>(service: string, promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    console.error(`${service}: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}

/** Ctrl-C or SIGTERM: `close` finishes the work in flight, then `telemetry` exports what it still holds. */
export function closeOnSignal(
  service: string,
  close: () => Promise<void>,
  telemetry?: Telemetry,
): void {
  let closing = false;
  const stop = (signal: string) => {
    if (closing) process.exit(1); // a second Ctrl-C does not wait
    closing = true;
    console.log(`${service}: ${signal}, finishing work in flight`);
    close().then(
      async () => {
        await telemetry?.shutdown();
        process.exit(0);
      },
      (err: unknown) => {
        console.error(`${service}: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
}

/**
 * Run by `npm run demo`, a service is a child process with an IPC channel: it tells the demo where it
 * listens once it is ready. Alone (no channel) this does nothing.
 */
export function tellParent(message: Record<string, unknown>): void {
  process.send?.({ type: "ready", ...message });
}

/** Messages from the demo that started this service (none when it runs alone). */
export function onParentMessage(handle: (message: any) => void | Promise<void>): void {
  if (!process.send) return;
  process.on("message", (message) => void handle(message));
  // The channel does not keep a service alive on its own; a demo that went away stops its services.
  process.channel?.unref();
  process.once("disconnect", () => process.kill(process.pid, "SIGTERM"));
}
