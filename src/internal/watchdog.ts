/**
 * Command deadlines without a timer per command: every command in flight is put in a FIFO with its deadline, and
 * one fiber sweeps the head of the FIFO every `tick`. All commands share one timeout, so deadlines are in insertion
 * order and a sweep stops at the first one still running. A command therefore times out between `timeout` and
 * `timeout + tick` after it was sent.
 *
 * It runs on Effect's `Clock`, so `TestClock` drives command timeouts like every other timing of the layer.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * One watched command. `settled` is set by whoever finishes it first: its reply, or the sweep.
 *
 * @since 0.1.0
 * @category models
 */
export interface Deadline {
  settled: boolean
  readonly at: number
  /** Dropped (set to undefined) by `settle`, so that a settled command's closure is not kept until the next sweep. */
  expire: (() => void) | undefined
}

/**
 * Marks a deadline settled by its reply and releases its `expire` closure at once: at high rates the FIFO would
 * otherwise keep every recent command's closure alive until the next sweep (and the garbage collector busy).
 *
 * @since 0.1.0
 * @category models
 */
export const settle = (deadline: Deadline): void => {
  deadline.settled = true
  deadline.expire = undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Watchdog {
  /**
   * Watches a command sent at `sentAt` (a reading of `now`, which the caller takes anyway to time the command):
   * `expire` runs once if the command is still unsettled at its deadline.
   */
  readonly watch: (expire: () => void, sentAt: number) => Deadline
  /** Monotonic milliseconds on the watchdog's clock (see `monotonicMillis`). */
  readonly now: () => number
}

/**
 * Monotonic milliseconds (fractional) read from a `Clock`: `performance.now()` when it is Effect's default clock (one
 * call, no BigInt), its `monotonicTimeNanosUnsafe()` otherwise, so that `TestClock` drives every deadline and duration.
 *
 * @since 0.1.0
 * @category constructors
 */
export const monotonicMillis = (clock: Clock.Clock): () => number =>
  Object.getPrototypeOf(clock) === Object.getPrototypeOf(Clock.Clock.defaultValue()) &&
    typeof performance !== "undefined"
    ? () => performance.now()
    : () => Number(clock.monotonicTimeNanosUnsafe()) / 1e6

/**
 * The sweep period for a timeout: a tenth of it, between 5 ms and 100 ms.
 *
 * @since 0.1.0
 * @category constructors
 */
export const tickFor = (timeout: Duration.Duration): Duration.Duration =>
  Duration.millis(Math.min(100, Math.max(5, Duration.toMillis(timeout) / 10)))

/**
 * Starts the watchdog in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(timeout: Duration.Duration) {
  const clock = yield* Clock.Clock
  const timeoutMillis = Duration.toMillis(timeout)
  // A ring buffer of deadlines in send order: `head` and `tail` only grow, `mask` maps them to slots, and the buffer
  // doubles when full. No splicing or truncation: the backing store stays one fast array of a stable size.
  let ring: Array<Deadline | undefined> = new Array(256).fill(undefined)
  let mask = ring.length - 1
  let head = 0
  let tail = 0

  const grow = () => {
    const next: Array<Deadline | undefined> = new Array(ring.length * 2).fill(undefined)
    for (let i = head; i < tail; i++) next[i - head] = ring[i & mask]
    tail -= head
    head = 0
    ring = next
    mask = next.length - 1
  }

  // Moves the head past settled deadlines, releasing them.
  const trim = () => {
    while (head < tail && ring[head & mask]!.settled) {
      ring[head & mask] = undefined
      head++
    }
  }

  const now = monotonicMillis(clock)

  const sweep = () => {
    const time = now()
    const expired: Array<() => void> = []
    while (head < tail) {
      const deadline = ring[head & mask]!
      if (!deadline.settled) {
        if (deadline.at > time) break
        if (deadline.expire !== undefined) expired.push(deadline.expire)
        settle(deadline)
      }
      ring[head & mask] = undefined
      head++
    }
    // Expire only once the queue is consistent: an expired command's fiber may resume at once and send (and `watch`)
    // its next command from inside this call.
    for (const expire of expired) expire()
  }

  yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(tickFor(timeout)), Effect.sync(sweep))))

  return {
    watch: (expire, sentAt) => {
      // Most commands settle long before the sweep: dropping their deadlines here keeps them young garbage.
      trim()
      const deadline: Deadline = { settled: false, at: sentAt + timeoutMillis, expire }
      if (tail - head === ring.length) grow()
      ring[tail & mask] = deadline
      tail++
      return deadline
    },
    now
  } satisfies Watchdog as Watchdog
})
