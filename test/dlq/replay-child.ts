// A replay that crashes: run by replay-crash.test.ts as its own process. It replays the DLQ named in
// DLQ_QUEUE through the runtime API (the built package, not the test aliases) and SIGKILLs itself
// right after the CRASH_AFTER-th confirmed replay: no cleanup, no close, like a machine going away.
import { AmqpConnection } from "@grabbit/runtime/amqp";
import { DeadLetterQueue } from "@grabbit/runtime/dlq";
import { silentLogger } from "@grabbit/runtime";

process.stdin.on("end", () => process.exit(1));
process.stdin.resume();

const crashAfter = Number(process.env.CRASH_AFTER);
const connection = await AmqpConnection.connect({
  urls: process.env.AMQP_URL ?? "amqp://127.0.0.1",
  logger: silentLogger(),
});
const dlq = new DeadLetterQueue(connection, process.env.DLQ_QUEUE!);
let replayed = 0;
await dlq.replay({
  window: Number(process.env.WINDOW),
  onReplayed: (d) => {
    process.stdout.write(`replayed ${d.messageId}\n`);
    if (++replayed === crashAfter) process.kill(process.pid, "SIGKILL");
  },
});
process.stdout.write("finished without crashing\n");
process.exit(0);
