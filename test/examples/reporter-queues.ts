// The queues a test's own Reporter declares (its queue, dead-letter queue and the retry delays the
// example configures): they expire on their own (x-expires), but a test deletes them when it ends.
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { AMQP_URL } from "../support/broker.js";

const RETRY_DELAYS_MS = [1000, 5000, 30000];

export async function deleteReporterQueues(queue: string): Promise<void> {
  const connection = await AmqpConnection.connect({ urls: AMQP_URL });
  try {
    const channel = await (await connection.waitForSession()).createChannel();
    for (const q of [queue, `${queue}.dlq`, ...RETRY_DELAYS_MS.map((ms) => `${queue}.retry.${ms}`)])
      await channel.deleteQueue(q).catch(() => undefined);
  } finally {
    await connection.close();
  }
}
