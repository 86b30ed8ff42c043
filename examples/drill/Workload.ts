/**
 * The drill's workload: concurrent fibers that use Redis the way an app does, through `RedisService` and
 * `RedisSubscriber`, and keep a local ledger of what Redis acknowledged so that the report can check it afterwards.
 *
 * Readers GET keys whose SET was acknowledged and compare the value; writers SET unique keys; incrementers INCR one
 * counter and count acknowledged increments and the failed ones that may have been applied (`sent: true`);
 * exactly-once incrementers INCR another with idempotency keys (`ExactlyOnce.ts`); a publisher appends to an
 * in-memory outbox (standing for the app's database) and PUBLISHes; a subscriber reads the channel with
 * `subscribeWithFallback`, polling the outbox while pub/sub is down.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import {
  type RedisError,
  RedisService,
  type RedisServiceShape,
  RedisSubscriber,
  type RedisSubscriberShape
} from "../../src/index.ts"
import * as ExactlyOnce from "./ExactlyOnce.ts"
import type { Timeline } from "./Monitor.ts"

/**
 * The operations the workload runs.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = "GET" | "SET" | "INCR" | "INCR-once" | "PUBLISH"

/**
 * @since 0.1.0
 * @category models
 */
export const operations: ReadonlyArray<Operation> = ["GET", "SET", "INCR", "INCR-once", "PUBLISH"]

/**
 * Whether the layer retries the operation once after a lost connection (so it may take two attempts): the idempotent
 * ones, and an INCR with an idempotency key.
 *
 * @since 0.1.0
 * @category models
 */
export const isRetried = (operation: Operation): boolean =>
  operation === "GET" || operation === "SET" || operation === "INCR-once"

/**
 * The tag recorded for a call that did not complete within the drill's guard: the layer let it hang.
 *
 * @since 0.1.0
 * @category models
 */
export const HUNG = "Hung"

/**
 * Figures of one operation.
 *
 * @since 0.1.0
 * @category models
 */
export interface OperationFigures {
  calls: number
  ok: number
  failed: number
  hung: number
  /** The slowest call, failed ones included. */
  maxMillis: number
  /** Durations of the successful calls. */
  readonly durations: Array<number>
}

/**
 * What happened in the last dashboard interval.
 *
 * @since 0.1.0
 * @category models
 */
export interface Window {
  readonly millis: number
  readonly ok: number
  readonly failed: number
  readonly durations: ReadonlyArray<number>
  readonly errors: ReadonlyMap<string, number>
}

/**
 * Call figures, updated by every call.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly byOperation: Readonly<Record<Operation, OperationFigures>>
  /** Failed calls by error tag, since the start. */
  readonly errors: ReadonlyMap<string, number>
  /** Returns the figures since the previous call and starts a new window. */
  readonly takeWindow: () => Window
  /** Called synchronously for every failed call (detection of a fault), with when the call started. */
  readonly onFailure: (listener: FailureListener) => void
}

/**
 * Told of every failed call: when it failed and when it started (ms since the start of the drill).
 *
 * @since 0.1.0
 * @category models
 */
export type FailureListener = (at: number, operation: Operation, tag: string, startedAt: number) => void

/**
 * What Redis acknowledged, kept locally.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ledger {
  /** Acknowledged SETs: key (without the key prefix) -> value. */
  readonly writes: ReadonlyMap<string, string>
  readonly reads: {
    /** Successful GETs of a key whose SET was acknowledged before the GET started. */
    checked: number
    /** Of those, the ones that did not return the written value. */
    wrong: number
    readonly examples: Array<string>
  }
  readonly counter: {
    readonly key: string
    /** INCRs that returned a value. */
    acknowledged: number
    /** INCRs that failed after they were sent (`sent: true`): they may have been applied. */
    maybeApplied: number
    /** INCRs that failed before they were sent: not applied. */
    notApplied: number
  }
  /** The exactly-once incrementers: INCRs with idempotency keys, retried until they succeed. */
  readonly exactlyOnce: ExactlyOnce.ExactlyOnceFigures
}

/**
 * Pub/sub figures.
 *
 * @since 0.1.0
 * @category models
 */
export interface PubSubFigures {
  readonly channel: string
  /** Messages in the outbox (the app's record of what it published). */
  published: number
  /** PUBLISH calls Redis acknowledged. */
  acknowledged: number
  /** Distinct messages the subscriber received. */
  readonly delivered: Set<number>
  live: number
  /** Received from the fallback's polling while pub/sub was down. */
  polled: number
  /** Received only from the catch-up poll the drill runs on every `Gap` and every return to live delivery. */
  caughtUp: number
  duplicates: number
  gaps: number
  resubscribed: number
  failure: string | undefined
}

/**
 * A message the publisher meant to publish: when (ms since the start), and how many subscribers Redis said received
 * it (`undefined` when the PUBLISH failed).
 *
 * @since 0.1.0
 * @category models
 */
export interface OutboxEntry {
  readonly seq: number
  readonly at: number
  receivers: number | undefined
}

/**
 * A running workload.
 *
 * @since 0.1.0
 * @category models
 */
export interface Workload {
  readonly stats: Stats
  readonly ledger: Ledger
  readonly pubsub: PubSubFigures
  /** The outbox: every message the publisher meant to publish. */
  readonly outbox: ReadonlyArray<OutboxEntry>
  /**
   * Stops the workload gracefully: every fiber finishes the call it is in (so every outcome is in the ledger), the
   * exactly-once incrementers settle their pending keys, then the subscriber gets a moment to receive what is still in
   * flight.
   */
  readonly stop: Effect.Effect<void>
}

/**
 * Workload options.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkloadOptions {
  readonly timeline: Timeline
  readonly channel: string
  /** A call still running after this long counts as hung and is interrupted. */
  readonly guardMillis: number
  readonly readers?: number | undefined
  readonly writers?: number | undefined
  readonly incrementers?: number | undefined
  /** INCRs with idempotency keys. Default 2. */
  readonly exactlyOnceIncrementers?: number | undefined
  /**
   * When what the workload writes expires (SETs, and the exactly-once incrementers' recorded replies): longer than
   * the drill, or a key would read as lost and a late retry would apply its INCR again.
   */
  readonly ttl: Duration.Input
  /** Pause between two calls of one fiber. Default 20 ms. */
  readonly pauseMillis?: number | undefined
}

// The typed error of a failed call (undefined for a success or a defect).
const failureOf = (exit: Exit.Exit<unknown, RedisError>): RedisError | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return reason?._tag === "Fail" ? reason.error : undefined
}

/**
 * The `q`-quantile (0..1) of some durations, 0 when there are none.
 *
 * @since 0.1.0
 * @category figures
 */
export const percentile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

const makeStats = (timeline: Timeline) => {
  const figures = (): OperationFigures => ({ calls: 0, ok: 0, failed: 0, hung: 0, maxMillis: 0, durations: [] })
  const byOperation: Record<Operation, OperationFigures> = {
    GET: figures(),
    SET: figures(),
    INCR: figures(),
    "INCR-once": figures(),
    PUBLISH: figures()
  }
  const errors = new Map<string, number>()
  const listeners: Array<FailureListener> = []
  let windowStart = timeline.now()
  let window = { ok: 0, failed: 0, durations: [] as Array<number>, errors: new Map<string, number>() }

  const record = (operation: Operation, startedAt: number, millis: number, tag: string | undefined) => {
    const entry = byOperation[operation]
    entry.calls++
    if (millis > entry.maxMillis) entry.maxMillis = millis
    if (tag === undefined) {
      entry.ok++
      entry.durations.push(millis)
      window.ok++
      window.durations.push(millis)
      return
    }
    entry.failed++
    if (tag === HUNG) entry.hung++
    errors.set(tag, (errors.get(tag) ?? 0) + 1)
    window.failed++
    window.errors.set(tag, (window.errors.get(tag) ?? 0) + 1)
    const at = timeline.now()
    for (const listener of listeners) listener(at, operation, tag, startedAt)
  }

  const stats: Stats = {
    byOperation,
    errors,
    takeWindow: () => {
      const now = timeline.now()
      const taken = { ...window, millis: now - windowStart }
      windowStart = now
      window = { ok: 0, failed: 0, durations: [], errors: new Map() }
      return taken
    },
    onFailure: (listener) => {
      listeners.push(listener)
    }
  }
  return { stats, record }
}

type Recorder = (operation: Operation, startedAt: number, millis: number, tag: string | undefined) => void

// Every call is timed and guarded: one that outlives the guard is recorded as hung and interrupted.
const makeCall = (timeline: Timeline, guardMillis: number, record: Recorder) =>
<A>(operation: Operation, effect: Effect.Effect<A, RedisError>): Effect.Effect<Exit.Exit<A, RedisError>> =>
  Effect.suspend(() => {
    const startedAt = timeline.now()
    return effect.pipe(
      Effect.exit,
      Effect.timeoutOption(guardMillis),
      Effect.map((outcome) => {
        const millis = timeline.now() - startedAt
        if (Option.isNone(outcome)) {
          record(operation, startedAt, millis, HUNG)
          return Exit.die(new Error(`${operation} hung`)) as Exit.Exit<A, RedisError>
        }
        const error = failureOf(outcome.value)
        record(operation, startedAt, millis, Exit.isSuccess(outcome.value) ? undefined : error?._tag ?? "Defect")
        return outcome.value
      })
    )
  })

/**
 * Starts the workload in the current scope (closing the scope interrupts it; `stop` ends it gracefully).
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = Effect.fnUntraced(function*(
  options: WorkloadOptions
): Effect.fn.Return<Workload, never, RedisService | RedisSubscriber | Scope.Scope> {
  const redis = yield* RedisService
  const subscriber = yield* RedisSubscriber
  const { timeline } = options
  const pauseMillis = options.pauseMillis ?? 20
  const { stats, record } = makeStats(timeline)
  const call = makeCall(timeline, options.guardMillis, record)
  const writes = new Map<string, string>()
  const writeKeys: Array<string> = []
  const once = ExactlyOnce.make({ redis, call, idempotencyTtl: options.ttl })
  const ledger: Ledger = {
    writes,
    reads: { checked: 0, wrong: 0, examples: [] },
    counter: { key: "counter", acknowledged: 0, maybeApplied: 0, notApplied: 0 },
    exactlyOnce: once.figures
  }
  let stopping = false

  const worker = (step: (n: number) => Effect.Effect<void>, pause: number) =>
    Effect.gen(function*() {
      let n = 0
      while (!stopping) {
        yield* step(n++)
        yield* Effect.sleep(pause)
      }
    })

  const read = (worker: number) => (n: number) =>
    Effect.gen(function*() {
      if (writeKeys.length === 0) return yield* Effect.asVoid(call("GET", redis.get(`nothing:${worker}:${n}`)))
      const key = writeKeys[Math.floor(Math.random() * writeKeys.length)]!
      const expected = writes.get(key)
      const exit = yield* call("GET", redis.get(key))
      if (Exit.isFailure(exit)) return
      ledger.reads.checked++
      const got = exit.value
      if (Option.isNone(got) || got.value !== expected) {
        ledger.reads.wrong++
        if (ledger.reads.examples.length < 5) {
          ledger.reads.examples.push(`${key}: expected ${expected}, got ${Option.getOrElse(got, () => "(nil)")}`)
        }
      }
    })

  const write = (worker: number) => (n: number) =>
    Effect.gen(function*() {
      const key = `w:${worker}:${n}`
      const value = `${worker}.${n}.${Math.random().toString(36).slice(2, 8)}`
      const exit = yield* call("SET", redis.set(key, value, { ttl: options.ttl }))
      if (Exit.isSuccess(exit) && exit.value) {
        writes.set(key, value)
        writeKeys.push(key)
      }
    })

  const increment = (_n: number) =>
    Effect.gen(function*() {
      const exit = yield* call("INCR", redis.incr(ledger.counter.key))
      if (Exit.isSuccess(exit)) ledger.counter.acknowledged++
      else if (ExactlyOnce.mayHaveBeenApplied(exit)) ledger.counter.maybeApplied++
      else ledger.counter.notApplied++
    })

  const pubsub = yield* startPubSub(redis, subscriber, timeline, options.channel, call)
  const workers = [
    ...Array.from({ length: options.readers ?? 3 }, (_, i) => worker(read(i), pauseMillis)),
    ...Array.from({ length: options.writers ?? 2 }, (_, i) => worker(write(i), pauseMillis)),
    ...Array.from({ length: options.incrementers ?? 2 }, () => worker(increment, pauseMillis)),
    ...Array.from({ length: options.exactlyOnceIncrementers ?? 2 }, (_, i) => worker(once.step(i), pauseMillis)),
    worker(pubsub.publish, 100)
  ]
  const fibers = yield* Effect.forEach(workers, (effect) => Effect.forkScoped(effect))

  const stop = Effect.gen(function*() {
    stopping = true
    yield* Fiber.joinAll(fibers)
    yield* once.settle
    yield* pubsub.stop
  })

  return { stats, ledger, pubsub: pubsub.figures, outbox: pubsub.outbox, stop }
})

// The publisher's step, and the subscriber with its fallback, its catch-up and its event counts.
const startPubSub = Effect.fnUntraced(function*(
  redis: RedisServiceShape,
  subscriber: RedisSubscriberShape,
  timeline: Timeline,
  channel: string,
  call: ReturnType<typeof makeCall>
) {
  const outbox: Array<OutboxEntry> = []
  const figures: PubSubFigures = {
    channel,
    published: 0,
    acknowledged: 0,
    delivered: new Set(),
    live: 0,
    polled: 0,
    caughtUp: 0,
    duplicates: 0,
    gaps: 0,
    resubscribed: 0,
    failure: undefined
  }

  const publish = (n: number) =>
    Effect.gen(function*() {
      const entry: OutboxEntry = { seq: n + 1, at: timeline.now(), receivers: undefined }
      outbox.push(entry)
      figures.published++
      const exit = yield* call("PUBLISH", redis.publish(channel, String(entry.seq)))
      if (Exit.isSuccess(exit)) {
        figures.acknowledged++
        entry.receivers = exit.value
      }
    })

  // Polling stands for reading the app's own database: it returns what was published and not received yet.
  const poll = Effect.sync(() =>
    outbox.filter((entry) => !figures.delivered.has(entry.seq)).map((entry) => `poll:${entry.seq}`)
  )
  const deliver = (message: string, source: "live" | "polled" | "caughtUp") => {
    const seq = Number(message.startsWith("poll:") ? message.slice(5) : message)
    if (figures.delivered.has(seq)) {
      figures.duplicates++
      return
    }
    figures.delivered.add(seq)
    figures[source]++
  }
  const receive = subscriber.subscribeWithFallback(channel, { poll, interval: "200 millis" }).pipe(
    Stream.runForEach((message) =>
      Effect.sync(() => deliver(message, message.startsWith("poll:") ? "polled" : "live"))
    ),
    Effect.catch((error) =>
      Effect.sync(() => {
        figures.failure = `${error._tag}: ${error.message}`
        timeline.emit("pubsub", `subscriber stream failed: ${figures.failure}`)
      })
    )
  )
  // The fallback's polling stops as soon as the subscriber is live again; what was published after its last poll and
  // before that (a PUBLISH that failed while the circuit was open, or one just before the SUBSCRIBE) reaches neither.
  // So the drill catches up once more, on every `Gap` and on every return to live delivery, and counts what only that
  // catch-up brought (see docs/drill.md).
  // Only what was published before the trigger and has not arrived 250 ms later counts: a message in flight is live.
  const catchUp = Effect.suspend(() => {
    const before = timeline.now()
    return Effect.andThen(
      Effect.sleep(250),
      Effect.sync(() => {
        for (const entry of outbox) {
          if (entry.at <= before && !figures.delivered.has(entry.seq)) deliver(String(entry.seq), "caughtUp")
        }
      })
    )
  })
  const watchMode = subscriber.mode.pipe(
    Stream.changes,
    Stream.drop(1),
    Stream.runForEach((mode) => mode === "live" ? catchUp : Effect.void)
  )
  const watchGaps = subscriber.events(channel).pipe(
    Stream.runForEach((event) =>
      event._tag === "Gap"
        ? Effect.andThen(Effect.sync(() => figures.gaps++), catchUp)
        : Effect.sync(() => {
          if (event._tag === "Resubscribed") figures.resubscribed++
        })
    ),
    Effect.ignore
  )
  const listeners = yield* Effect.forEach([receive, watchGaps, watchMode], (effect) => Effect.forkScoped(effect))

  // Messages still in flight, or waiting for the next poll, get a moment to arrive.
  const stop = Effect.gen(function*() {
    const deadline = performance.now() + 1_000
    while (performance.now() < deadline && outbox.some((entry) => !figures.delivered.has(entry.seq))) {
      yield* Effect.sleep(20)
    }
    yield* Fiber.interruptAll(listeners)
  })

  return { figures, outbox, publish, stop }
})
