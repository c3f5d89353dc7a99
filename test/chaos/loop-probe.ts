/**
 * Preloaded into a process under soak (`node --import tsx --import ./test/chaos/loop-probe.ts ...`): every 2 s it
 * appends one JSON line to $SOAK_PROBE_FILE with its RSS, heap and event-loop delay (perf_hooks
 * monitorEventLoopDelay), so the soak can watch a child it cannot instrument from outside. Does nothing without it.
 */
import { appendFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.SOAK_PROBE_FILE;
if (file) {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  setInterval(() => {
    const mem = process.memoryUsage();
    const line = {
      t: Date.now(),
      rssMb: Math.round((mem.rss / 2 ** 20) * 10) / 10,
      heapMb: Math.round((mem.heapUsed / 2 ** 20) * 10) / 10,
      loopP50Ms: ms(delay.percentile(50)),
      loopP99Ms: ms(delay.percentile(99)),
      loopMaxMs: ms(delay.max),
    };
    delay.reset();
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      // The soak reads what it can; a failed write must not disturb the process under test.
    }
  }, 2000).unref();
}
