/**
 * Sentinel: every connection attempt asks the sentinels for the current master (ioredis checks its role), and while a
 * reconnect cycle runs the sentinels are asked which master they name, so that a completed failover cuts the attempt
 * in progress (typically stuck in the handshake of the frozen old master) or the backoff wait short.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis as IORedis } from "ioredis"
import type { ResolvedRedisConfig, Topology } from "../../RedisConfig.ts"
import type { CycleWatch } from "./connector.ts"
import { connectionOptions } from "./options.ts"
import { single } from "./standalone.ts"

/** How often a reconnect cycle behind Sentinel asks the sentinels which master they name. */
export const sentinelPoll: Duration.Duration = Duration.millis(200)

type SentinelTopology = Extract<Topology, { readonly _tag: "Sentinel" }>

export const make = (config: ResolvedRedisConfig, topology: SentinelTopology) => {
  // The sentinel asked last is asked first by the next cycle's watch.
  const index = { value: 0 }
  return single(config, "sentinel", {
    // `failoverDetector` closes the connection when the sentinels announce a new master, and the next attempt finds
    // it. `sentinelRetryStrategy` is off: the layer's schedule spaces the attempts.
    makeClient: (overrides) =>
      new IORedis<"legacy">({
        ...connectionOptions(config, overrides),
        sentinels: topology.sentinels.map((node) => ({ host: node.host, port: node.port })),
        name: topology.name,
        role: "master",
        sentinelRetryStrategy: () => null,
        failoverDetector: true
      }),
    mastersMove: true,
    // The master moves: only the database is known in advance.
    serverAttributes: { "db.namespace": String(config.db) },
    watchCycle: Effect.map(
      watchSentinels(topology.sentinels, topology.name, config.commandTimeout, index),
      namedMaster
    )
  })
}

/**
 * Asks sentinels which master they name (`SENTINEL get-master-addr-by-name`), over one connection at a time.
 */
export interface SentinelWatch {
  /** `host:port` of the master, or `undefined` when no sentinel answered this time (the next one is asked next). */
  readonly ask: Effect.Effect<string | undefined>
}

/**
 * A `SentinelWatch` owned by the current scope: it keeps one connection to a sentinel, moves to the next sentinel when
 * one fails or takes longer than `timeout` (`index` keeps which one, across watches), and closes its connection with
 * the scope.
 */
export const watchSentinels = (
  sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>,
  name: string,
  timeout: Duration.Duration,
  index: { value: number } = { value: 0 }
): Effect.Effect<SentinelWatch, never, Scope.Scope> =>
  Effect.gen(function*() {
    let client: IORedis | undefined
    const drop = () => {
      client?.disconnect()
      client = undefined
      index.value = (index.value + 1) % sentinels.length
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => client?.disconnect()))
    const ask = Effect.suspend(() => {
      if (client === undefined) {
        const sentinel = sentinels[index.value % sentinels.length]!
        client = new IORedis<"legacy">({
          host: sentinel.host,
          port: sentinel.port,
          lazyConnect: true,
          retryStrategy: () => null,
          enableOfflineQueue: true,
          maxRetriesPerRequest: 0,
          disconnectTimeout: 0,
          connectTimeout: Duration.toMillis(timeout)
        })
        client.on("error", () => {})
      }
      const asked = client
      return Effect.tryPromise(() => asked.call("SENTINEL", "get-master-addr-by-name", name)).pipe(
        Effect.timeout(timeout),
        Effect.map((reply) =>
          Array.isArray(reply) && reply.length >= 2 ? `${String(reply[0])}:${String(reply[1])}` : undefined
        ),
        Effect.catchCause(() =>
          Effect.sync(() => {
            if (client === asked) drop()
            return undefined
          })
        )
      )
    })
    return { ask }
  })

/**
 * One cycle's watch: the first answer is its baseline (asked at once, so that the attempt is not held up by it);
 * `changed` completes when the sentinels name another master, polling every `sentinelPoll`. It runs alongside each
 * attempt and each backoff wait of the cycle, which share the baseline.
 */
export const namedMaster = (watch: SentinelWatch): CycleWatch => {
  let named: string | undefined
  const changed = Effect.gen(function*() {
    while (true) {
      if (named !== undefined) yield* Effect.sleep(sentinelPoll)
      const now = yield* watch.ask
      if (now === undefined) {
        if (named === undefined) yield* Effect.sleep(sentinelPoll)
        continue
      }
      if (named === undefined) named = now
      else if (now !== named) {
        named = now
        return now
      }
    }
  })
  return { changed }
}
