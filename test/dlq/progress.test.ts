// The replay progress bar: on a terminal only, only once a replay has taken half a second, at most
// ten redraws a second, and wiped when the replay ends (a clock of the test's own, no waiting).
import { expect, it } from "vitest";
import { progressBar } from "../../cli/dlq.js";

const step = (examined: number, replayed = examined) => ({
  total: 200,
  examined,
  replayed,
  failed: 0,
});

it("draws on a terminal after half a second, throttled, and clears the line at the end", () => {
  let now = 1_000_000;
  let err = "";
  const bar = progressBar({ isTTY: true, stderr: (s) => void (err += s) }, () => now);
  bar.update(step(10));
  now += 400;
  bar.update(step(20));
  expect(err).toBe(""); // a quick replay shows nothing
  now += 200;
  bar.update(step(100, 90));
  expect(err).toBe(
    `\r\x1b[2Kreplaying [###############...............] 100/200 examined, 90 replayed`,
  );
  now += 50;
  bar.update(step(120));
  expect(err.split("\r\x1b[2K")).toHaveLength(2); // not redrawn within 100 ms
  now += 100;
  bar.update({ total: 200, examined: 200, replayed: 198, failed: 2 });
  expect(
    err.endsWith(
      `\r\x1b[2Kreplaying [##############################] 200/200 examined, 198 replayed, 2 failed`,
    ),
  ).toBe(true);
  bar.done();
  expect(err.endsWith("\r\x1b[2K")).toBe(true);
});

it("draws nothing when stderr is not a terminal", () => {
  let now = 0;
  let err = "";
  const bar = progressBar({ isTTY: false, stderr: (s) => void (err += s) }, () => now);
  now += 10_000;
  bar.update(step(100));
  bar.done();
  expect(err).toBe("");
});
