import type { AmiFrame } from './frame.js';

/**
 * Command action output, whatever the Asterisk version: `Output:` lines (14 and later) or the raw body of a legacy
 * `Response: Follows` frame (13 and older). Always an array, unlike asterisk-manager's `res.output`, which is a plain
 * string when the command printed one line.
 */
export function commandOutput(frame: AmiFrame): string[] {
  return frame.output ?? [];
}

export interface TaskprocessorRow {
  name: string;
  processed: number;
  inQueue: number;
  maxDepth: number;
  lowWater: number;
  highWater: number;
}

/**
 * Parses `core show taskprocessors`. Columns (16/18): Processor, Processed, In Queue, Max Depth, Low water,
 * High water; newer 20.x/22.x append `Low time(us)` and `High time(us)`, which are ignored. Rows that do not have a
 * name followed by five integers (the header, blank lines, the `N taskprocessors` summary) are skipped.
 */
export function parseTaskprocessors(lines: readonly string[]): TaskprocessorRow[] {
  const rows: TaskprocessorRow[] = [];
  for (const line of lines) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 6) continue;
    const [name, ...rest] = cols as [string, ...string[]];
    const nums = rest.slice(0, 5).map((c) => (/^\d+$/.test(c) ? Number(c) : Number.NaN));
    if (nums.some((n) => !Number.isFinite(n))) continue;
    const [processed, inQueue, maxDepth, lowWater, highWater] = nums as [number, number, number, number, number];
    rows.push({ name, processed, inQueue, maxDepth, lowWater, highWater });
  }
  return rows;
}

/** Deepest current queue, or null when the output held no taskprocessor row (e.g. the command failed). */
export function maxTaskprocessorQueue(lines: readonly string[]): number | null {
  const rows = parseTaskprocessors(lines);
  if (rows.length === 0) return null;
  let max = 0;
  for (const row of rows) if (row.inQueue > max) max = row.inQueue;
  return max;
}
