// A TCP proxy the test controls, placed between a client and the shared broker, so a test can cut
// connections or refuse new ones without touching the broker other tests use.

import net from "node:net";

export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private refusing = false;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** Starts listening on a free loopback port. */
  async start(port = 0): Promise<number> {
    this.server = net.createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, this.targetHost);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  /** Number of client connections currently open through the proxy. */
  get openConnections(): number {
    return this.sockets.size / 2;
  }

  /** Cuts every open connection at once, as a network failure would. */
  cutAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** While set, new connections are closed as soon as they open (a broker that is down). */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }
}

/** Proxy in front of the broker that AMQP_URL names (default 127.0.0.1:5672). */
export async function brokerProxy(): Promise<TcpProxy> {
  const url = new URL(process.env.AMQP_URL ?? "amqp://127.0.0.1");
  const proxy = new TcpProxy(url.hostname, Number(url.port || 5672));
  await proxy.start();
  return proxy;
}
