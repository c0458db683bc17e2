// @ts-check
// Percentiles and markdown tables.

/**
 * Nearest-rank percentile (no interpolation: every reported value was really measured).
 * @param {number[]} sorted ascending
 * @param {number} p 0..100
 */
function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** @param {number[]} values @returns {{ count: number; p50: number | null; p99: number | null; max: number | null; mean: number | null }} */
export function summarize(values) {
  const sorted = Float64Array.from(values).sort();
  const list = Array.from(sorted);
  const mean = list.length ? list.reduce((sum, value) => sum + value, 0) / list.length : null;
  return { count: list.length, p50: percentile(list, 50), p99: percentile(list, 99), max: list.length ? list[list.length - 1] : null, mean };
}

/** @param {number | null | undefined} value @param {number} [digits] */
export function fmt(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : value.toFixed(digits);
}

/** @param {string[]} header @param {(string | number)[][]} rows */
export function markdownTable(header, rows) {
  const lines = [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`];
  for (const row of rows) lines.push(`| ${row.join(" | ")} |`);
  return lines.join("\n");
}
