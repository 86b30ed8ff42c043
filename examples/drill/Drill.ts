/**
 * The chaos drill as one effect: start (or reach) Redis behind the chaos proxy, build the layer under test, run the
 * workload while the faults are injected one after the other, show the dashboard, then check the ledger against
 * the server and return the report. `examples/drill.ts` is the command line around it; tests run it directly.
 *
 * Everything lives in the caller's scope: closing it (Ctrl-C) interrupts every fiber, closes every socket and stops
 * the embedded server.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import { buildRedisChannelName, type RedisOptions, RedisService, RedisSubscriber } from "../../src/index.ts"
import * as Dashboard from "./Dashboard.ts"
import * as Faults from "./Faults.ts"
import * as Monitor from "./Monitor.ts"
import * as Plan from "./Plan.ts"
import * as Report from "./Report.ts"
import * as Runner from "./Runner.ts"
import * as Target from "./Target.ts"
import * as Workload from "./Workload.ts"

export { DrillError } from "./Target.ts"

/**
 * Options of `run`.
 *
 * @since 0.1.0
 * @category models
 */
export interface DrillOptions {
  readonly durationSeconds: number
  readonly scenario: Plan.Scenario
  readonly display: Dashboard.Display
  /** Drill against this server instead of an embedded one. */
  readonly redisUrl?: string | undefined
  /** Where the dashboard writes. Default: stdout. */
  readonly write?: ((text: string) => void) | undefined
}

/**
 * The layer settings of the drill: shorter than the defaults, so that every fault is detected and recovered from
 * within its few seconds.
 *
 * @since 0.1.0
 * @category settings
 */
export const settings = {
  connectTimeout: "1 second",
  commandTimeout: "1 second",
  acquireTimeout: "500 millis",
  reconnect: { base: "50 millis", cap: "1 second", debounce: "50 millis" },
  heartbeat: { interval: "300 millis", timeout: "250 millis", misses: 2 },
  breaker: { failureThreshold: 5, openDuration: "500 millis", maxOpenDuration: "2 seconds" }
} as const satisfies RedisOptions

/** Slack for timers and a busy event loop on top of every bound. */
const MARGIN_MILLIS = 500

const ms = Duration.toMillis

// `disruptive`: how many disruptive faults were injected (a soak knows only at the end).
const boundsOf = (config: RedisService["Service"]["config"], disruptive: number): Report.Bounds => {
  const attempt = ms(config.acquireTimeout) + ms(config.commandTimeout)
  const heartbeat = config.heartbeat!
  const callMillis = Object.fromEntries(Workload.operations.map((operation) => [
    operation,
    (Workload.isRetried(operation) ? 2 : 1) * attempt + MARGIN_MILLIS
  ])) as Report.Bounds["callMillis"]
  return {
    callMillis,
    detectionMillis: ms(heartbeat.interval) * heartbeat.misses + ms(heartbeat.timeout) + MARGIN_MILLIS,
    recoveryMillis: ms(config.reconnect.cap) + ms(config.connectTimeout) + ms(config.breaker.maxOpenDuration) + 1_000,
    connectionsOpened: 1 + disruptive + 2
  }
}

const settingsOf = (config: RedisService["Service"]["config"]): Report.Settings => ({
  connectTimeoutMs: ms(config.connectTimeout),
  commandTimeoutMs: ms(config.commandTimeout),
  acquireTimeoutMs: ms(config.acquireTimeout),
  reconnect: {
    baseMs: ms(config.reconnect.base),
    capMs: ms(config.reconnect.cap),
    debounceMs: ms(config.reconnect.debounce)
  },
  heartbeat: {
    intervalMs: ms(config.heartbeat!.interval),
    timeoutMs: ms(config.heartbeat!.timeout),
    misses: config.heartbeat!.misses
  },
  breaker: {
    failureThreshold: config.breaker.failureThreshold,
    openDurationMs: ms(config.breaker.openDuration),
    maxOpenDurationMs: ms(config.breaker.maxOpenDuration)
  }
})

const BATCH = 500

// The ledger against what the server holds, over a direct connection (not the proxy, not the layer).
const verify = (target: Target.Target, prefix: string, ledger: Workload.Ledger) =>
  target.inspect("verifying the ledger", async (client): Promise<Report.Verification> => {
    const keys = [...ledger.writes.keys()]
    let writesPresent = 0
    let writesMissing = 0
    let writesWrong = 0
    const examples: Array<string> = []
    for (let i = 0; i < keys.length; i += BATCH) {
      const batch = keys.slice(i, i + BATCH)
      const values = await client.mget(batch.map((key) => prefix + key))
      batch.forEach((key, j) => {
        const value = values[j]
        if (value === ledger.writes.get(key)) return void writesPresent++
        if (value === null || value === undefined) writesMissing++
        else writesWrong++
        if (examples.length < 5) examples.push(`${key}: expected ${ledger.writes.get(key)}, found ${value ?? "(nil)"}`)
      })
    }
    const counter = Number(await client.get(prefix + ledger.counter.key) ?? 0)
    const onceCounter = Number(await client.get(prefix + ledger.exactlyOnce.key) ?? 0)
    return { writesPresent, writesMissing, writesWrong, examples, counter, onceCounter }
  })

// Against a server of someone else's, the drill leaves nothing behind.
const cleanup = (target: Target.Target, prefix: string) =>
  target.inspect("cleaning up", async (client) => {
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
      if (keys.length > 0) await client.unlink(...keys)
      cursor = next
    } while (cursor !== "0")
  })

const header = (plan: Plan.Plan, target: Target.Target): string => {
  const { schedule } = plan
  const seconds = (millis: number) => (millis / 1000).toFixed(1)
  const faults = plan.soak
    ? `random faults every ${seconds(plan.minGapMillis)}-${seconds(2 * plan.slotMillis - plan.minGapMillis)} s ` +
      `(${Faults.kinds.filter((kind) => !plan.skipped.includes(kind)).join(", ")}), ` +
      `each held ${seconds(Plan.soakRanges.holdMillis.min)}-${seconds(plan.holdMillis)} s`
    : `${schedule.length} faults (` +
      (schedule.length === 1 ? Faults.catalog[schedule[0]!.kind].title : schedule.map((f) => f.kind).join(", ")) +
      `), each held ${seconds(plan.holdMillis)} s`
  return `Chaos drill: --scenario ${plan.scenario}, ${plan.totalMillis / 1000} s, ${faults}\n` +
    (plan.skipped.length > 0 ? `Skipped (need the embedded server): ${plan.skipped.join(", ")}\n` : "") +
    `Redis: ${target.label}, behind the chaos proxy on ${target.proxy.host}:${target.proxy.port}\n` +
    "Workload: 3 readers, 2 writers, 2 incrementers, 2 exactly-once incrementers (idempotency keys), " +
    "1 publisher, 1 subscriber with polling fallback\n\n"
}

/**
 * The plan a scenario and a duration give, or why they do not fit.
 *
 * @since 0.1.0
 * @category plan
 */
export const planFor = (
  options: Pick<DrillOptions, "durationSeconds" | "scenario" | "redisUrl">
): Effect.Effect<Plan.Plan, Target.DrillError> =>
  Result.match(Plan.plan(options.scenario, options.durationSeconds, options.redisUrl === undefined), {
    onFailure: (message) => Effect.fail(new Target.DrillError({ message })),
    onSuccess: Effect.succeed
  })

/**
 * Runs the drill and returns its report (whose `passed` says whether every check held). Fails with `DrillError`
 * when it cannot run (bad options, Redis unreachable, `redis-server` missing).
 *
 * @since 0.1.0
 * @category running
 */
export const run = Effect.fnUntraced(function*(
  options: DrillOptions
): Effect.fn.Return<Report.Report, Target.DrillError, Scope.Scope> {
  const plan = yield* planFor(options)
  const write = options.write ?? ((text: string) => void process.stdout.write(text))
  const target = yield* Target.make(options.redisUrl)
  const runId = Math.random().toString(36).slice(2, 8)
  const prefix = `drill:${runId}:`
  if (target.kind === "url") yield* Effect.addFinalizer(() => Effect.ignore(cleanup(target, prefix)))

  const layer = RedisSubscriber.layer.pipe(
    Layer.provideMerge(RedisService.layer({
      ...target.options,
      ...settings,
      keyPrefix: prefix,
      connectionName: "drill",
      awaitReady: true
    }))
  )
  const context = yield* Layer.build(layer).pipe(
    Effect.mapError((error) => new Target.DrillError({ message: `The Redis layer did not start: ${error.message}` }))
  )
  const redis = Context.get(context, RedisService)
  const subscriber = Context.get(context, RedisSubscriber)
  // The connections bound is set again once the faults are known.
  const limits = boundsOf(redis.config, 0)
  if (options.display !== "none") write(header(plan, target))

  const timeline = Monitor.makeTimeline()
  const monitor = yield* Monitor.make(timeline, redis, subscriber)
  const workload = yield* Workload.start({
    timeline,
    channel: buildRedisChannelName("drill", runId, "events"),
    guardMillis: 3 * limits.callMillis.GET,
    // 10 minutes (for a server of someone else's), or twice the drill: nothing may expire while the drill runs.
    ttl: Duration.seconds(Math.max(600, 2 * options.durationSeconds))
  }).pipe(Effect.provide(context))
  const runner = Runner.makeRunner(plan, {
    target,
    redis,
    monitor,
    stats: workload.stats,
    probeKey: "probe",
    recoveryWaitMillis: limits.recoveryMillis + 2_000,
    detectionWaitMillis: limits.detectionMillis
  })
  const dashboard = yield* Dashboard.start(options.display, {
    monitor,
    stats: workload.stats,
    runner,
    redis,
    target,
    pubsub: workload.pubsub,
    write,
    columns: () => process.stdout.columns ?? 100
  })

  yield* runner.run
  yield* dashboard.stop
  yield* workload.stop
  const elapsedMillis = timeline.now()

  const verification = yield* verify(target, prefix, workload.ledger)
  const health = yield* redis.health
  const phases = Runner.injected(runner.phases)
  const bounds = boundsOf(redis.config, phases.filter((phase) => phase.spec.disruptive).length)
  return Report.make({
    target,
    plan,
    phases,
    stats: workload.stats,
    ledger: workload.ledger,
    pubsub: workload.pubsub,
    outbox: workload.outbox,
    verification,
    bounds,
    settings: settingsOf(redis.config),
    elapsedMillis,
    connection: {
      reconnects: health.reconnects,
      connectionsOpened: health.connectionsOpened,
      proxyAccepted: yield* target.proxy.accepted,
      state: health.connection,
      circuit: health.circuit
    },
    losses: monitor.losses.map((loss) => loss.at)
  })
})
