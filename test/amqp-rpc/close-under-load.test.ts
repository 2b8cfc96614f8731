// The RPC server's close() under load on a quorum request queue. RabbitMQ 3.10 quorum queues drop
// part of the acks sent after the basic.cancel of their consumer when the channel closes soon after,
// so requests already answered came back and were handled twice; and requests delivered while
// closing were nacked straight back. close() now drains first (no handler starts once it is called;
// running ones reply and ack), then cancels, then closes: held requests return with the channel.
// A second server answers the rest: every call gets its answer, each request is handled once.
import { describe, expect, it } from "vitest";
import { AmqpRpcTransport, serveAmqp } from "@grabbit/runtime/amqp";
import { echoService, rpcTestBed, type Echo } from "./fixture.js";

const bed = rpcTestBed("rpc-close-test");

const TOTAL = 1500;
const ROUNDS = 3;
const REACHED = 300;

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("AmqpRpcServer.close() on a quorum request queue under load", () => {
  for (let round = 1; round <= ROUNDS; round++) {
    it(`answers and acks what it started before it cancels, hands back the rest unhandled (round ${round} of ${ROUNDS})`, async () => {
      const service = echoService();
      bed.queues.push(service.amqp!.requestQueue);
      const options = { queueType: "quorum" as const, prefetch: 200 };
      const handled = new Map<string, number>();
      const count = (id: string) => handled.set(id, (handled.get(id) ?? 0) + 1);

      let closeRequested = false;
      let handledAfterClose = 0;
      const reached = deferred();
      // From the REACHED-th request on, half the handlers wait for this gate, opened only after
      // close() was called and the broker had time to answer a cancel: their replies and acks then
      // go at once, the last thing before the channel closes (the pattern that lost acks).
      const gate = deferred();
      const first = await serveAmqp(
        bed.serverConn,
        service,
        {
          echo: async (req: Echo) => {
            if (closeRequested) handledAfterClose++;
            count(req.text);
            if (handled.size === REACHED) reached.resolve();
            if (handled.size >= REACHED && Number(req.text) % 2 === 0) await gate.promise;
            else await new Promise((r) => setImmediate(r));
            return req;
          },
        },
        options,
      );
      bed.closables.push(first);

      const transport = new AmqpRpcTransport(bed.clientConn, { timeoutMs: 60_000 }).register(
        service,
      );
      bed.closables.push(transport);
      const calls = Array.from({ length: TOTAL }, (_, i) =>
        transport.unary(service.methods.echo, { text: String(i), delayMs: 0 }),
      );

      await reached.promise;
      closeRequested = true;
      const closing = first.close();
      const admin = await bed.admin.createChannel();
      for (let i = 0; i < 3; i++) await admin.checkQueue(service.amqp!.requestQueue);
      gate.resolve();
      await closing;
      const byFirst = handled.size;
      expect(handledAfterClose).toBe(0);

      // A second server takes every request the first one did not ack; each call gets its own echo.
      const second = await serveAmqp(
        bed.serverConn,
        service,
        { echo: (req: Echo) => (count(req.text), req) },
        options,
      );
      bed.closables.push(second);
      const replies = await Promise.all(calls);
      expect(replies.map((r) => r.text)).toEqual(
        Array.from({ length: TOTAL }, (_, i) => String(i)),
      );
      await second.close();

      // A request the first server answered but whose ack was lost would come back: handled twice.
      const twice = [...handled].filter(([, n]) => n > 1).map(([id]) => id);
      expect(byFirst).toBeGreaterThanOrEqual(REACHED);
      expect(byFirst).toBeLessThan(TOTAL);
      expect(handled.size).toBe(TOTAL);
      expect(twice, `handled twice: ${twice.slice(0, 10).join(", ")}`).toEqual([]);
      const { messageCount } = await admin.checkQueue(service.amqp!.requestQueue);
      expect(messageCount).toBe(0);
      await admin.close();
    }, 60_000);
  }
});
