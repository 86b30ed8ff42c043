/**
 * Statistics and formatting for the benchmark: a median with its min and max over rounds, percentiles of
 * per-operation timings, and plain-text tables. No I/O and no Effect: plain functions on numbers.
 *
 * @since 0.1.0
 */

/**
 * A figure measured once per round: its median, min and max, and every round's value.
 *
 * @since 0.1.0
 * @category models
 */
export interface Spread {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly values: ReadonlyArray<number>
}

/**
 * The median (the mean of the middle two for an even count), min and max of the values. `NaN` figures when there are
 * none.
 *
 * @since 0.1.0
 * @category constructors
 */
export const spread = (values: ReadonlyArray<number>): Spread => {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, values }
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, values }
}

/**
 * The `p`-th percentile (0 to 100) of the first `count` samples, by the nearest-rank method. Sorts that part of the
 * buffer in place.
 *
 * @since 0.1.0
 * @category percentiles
 */
export const percentiles = (
  samples: Float64Array,
  count: number,
  ps: ReadonlyArray<number>
): ReadonlyArray<number> => {
  if (count === 0) return ps.map(() => Number.NaN)
  const sorted = samples.subarray(0, count).sort()
  return ps.map((p) => sorted[Math.min(count - 1, Math.max(0, Math.ceil((p / 100) * count) - 1))]!)
}

/**
 * The ratio of two figures measured in the same rounds: the median, min and max of the per-round ratios. Each round
 * runs every client back to back, so a per-round ratio compares clients under the same load; its median is what
 * survives other processes' bursts on a shared machine (the ratio of two medians would mix rounds of different load).
 *
 * @since 0.1.0
 * @category constructors
 */
export const ratio = (numerator: Spread, denominator: Spread): Spread =>
  spread(numerator.values.map((value, i) => value / denominator.values[i]!))

/**
 * Formats a number with thousands separators and no decimals (throughput), or with `digits` decimals.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatNumber = (value: number, digits = 0): string =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "-"

/**
 * `median (min–max)`.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatSpread = (value: Spread, digits = 0): string =>
  Number.isFinite(value.median)
    ? `${formatNumber(value.median, digits)} (${formatNumber(value.min, digits)}–${formatNumber(value.max, digits)})`
    : "-"

/**
 * Milliseconds, with a precision that suits the magnitude (µs below 1 ms).
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatMillis = (millis: number): string =>
  !Number.isFinite(millis)
    ? "-"
    : millis < 1
    ? `${(millis * 1000).toFixed(0)} µs`
    : millis < 100
    ? `${millis.toFixed(1)} ms`
    : millis < 1_000
    ? `${millis.toFixed(0)} ms`
    : millis < 10_000
    ? `${(millis / 1000).toFixed(2)} s`
    : `${(millis / 1000).toFixed(1)} s`

/**
 * Bytes as MiB or KiB.
 *
 * @since 0.1.0
 * @category formatting
 */
export const formatBytes = (bytes: number): string =>
  !Number.isFinite(bytes)
    ? "-"
    : Math.abs(bytes) >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(1)} MiB`
    : `${(bytes / 1024).toFixed(0)} KiB`

/**
 * A plain-text table: the first column left-aligned, the others right-aligned.
 *
 * @since 0.1.0
 * @category formatting
 */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((cell, column) =>
    Math.max(cell.length, ...rows.map((row) => (row[column] ?? "").length))
  )
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, column) => column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))
      .join("  ")
  return [line(header), widths.map((width) => "-".repeat(width)).join("  "), ...rows.map(line)].join("\n")
}
