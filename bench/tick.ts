// The event the messaging benches publish and consume: an Order under its own type name, on a topic
// exchange, routed by region ("tick.eu"), persistent. One description, so that every bench (grabbit
// against raw, against the peers, traced against untraced) moves the same message the same way.
import type { EventDesc } from "../runtime/src/index.js";
import { type Order, orderType } from "../test/support/messages.js";

export function tickEvent(typeName: string, exchange: string): EventDesc<Order> {
  return {
    type: orderType(typeName),
    exchange,
    exchangeKind: "topic",
    routingKeyTemplate: "tick.{region}",
    routingFields: ["region"],
    persistent: true,
    routingValues: (t: Order) => ({ region: t.region }),
  };
}

/** The i-th message of a run. */
export const tick = (i: number): Order => ({ id: `t-${i}`, region: "eu", amount: i });
