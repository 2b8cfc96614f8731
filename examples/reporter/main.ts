// The Reporter alone: node --import tsx examples/reporter/main.ts
// Env: REPORTER_AMQP_URL (else AMQP_URL), REPORTER_QUEUE (example.reporter), EXAMPLE_TOKENS. Prints the summary every 5 s
// when it changed, and once more on exit.

import { tokensFromEnv } from "../shared/auth.js";
import { closeOnSignal, connectOrExit, env } from "../shared/main.js";
import { startReporter } from "./reporter.js";

const connection = await connectOrExit("reporter");
const reporter = await startReporter({ connection, queue: env("REPORTER_QUEUE", "example.reporter"), tokens: tokensFromEnv(), log: console.log });
let last = "";
const print = () => {
  const text = JSON.stringify(reporter.summary());
  if (text !== last) console.log(`reporter: ${text}`);
  last = text;
};
const timer = setInterval(print, 5000);
closeOnSignal("reporter", async () => {
  clearInterval(timer);
  await reporter.close();
  await connection.close();
  last = ""; // print the final summary even when unchanged
  print();
});
