/**
 * Redis Cluster: one circuit breaker per master. A command's transient failures (timeouts, LOADING, ...) count
 * against the master its key routes to, so one frozen master opens its own circuit and the commands routed to the
 * others keep working. The layer's breaker still speaks for the cluster as a whole (connection attempts, every master
 * failing). Each node's breaker is made on its first failure and probes its master with a PING of its own.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { Cluster } from "ioredis"
import { slotOf } from "./slot.ts"
import { sendBounded } from "../wire.ts"
import type * as Health from "../../Health.ts"
import * as CircuitBreaker from "../breaker.ts"
import type { Client, Live } from "../connection.ts"
import { address, masterNodes as masters, ownedSlot, slotsOf } from "./cluster.ts"
import { pingNode } from "../heartbeat.ts"
import type { CircuitOpen } from "../../RedisError.ts"

/**
 * The breakers of a Cluster's masters, by address ("host:port").
 *
 * @internal
 */
export interface NodeBreakers {
  /** The master a key routes to now (the Cluster's slot map, with `keyPrefix`), if known. */
  readonly nodeOf: (client: Client, key: string) => string | undefined
  /** Whether that master's circuit is not closed (synchronous: the hot path). */
  readonly isOpen: (node: string) => boolean
  readonly admit: (node: string, command: string) => Effect.Effect<void, CircuitOpen>
  readonly onFailure: (node: string) => Effect.Effect<void>
  /**
   * The master's connection was lost under a command. Every command in flight on it fails at once: the loss counts
   * once per `lossWindow`, however many commands it failed.
   */
  readonly onLoss: (node: string) => Effect.Effect<void>
  /** Cheap when no master has failed: one counter read. */
  readonly onSuccess: (node: string) => Effect.Effect<void>
  /** The status of every master that has a breaker. */
  readonly statuses: () => ReadonlyMap<string, Health.CircuitStatus>
}

/**
 * Per-master breakers for the Cluster connection `current`, living in the current scope.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(options: {
  readonly policy: CircuitBreaker.BreakerPolicy
  readonly keyPrefix: string
  readonly probeTimeout: Duration.Duration
  readonly lossWindow: Duration.Duration
  readonly current: () => Live | undefined
  readonly onTransition?: ((node: string, status: Health.CircuitStatus) => Effect.Effect<void>) | undefined
}): Effect.fn.Return<NodeBreakers, never, Scope.Scope> {
  const scope = yield* Effect.scope
  const breakers = new Map<string, CircuitBreaker.CircuitBreaker>()
  const creating = yield* Semaphore.make(1)
  // Masters whose breaker is not closed with no failures: while 0, a success costs nothing.
  let unhealthy = 0
  const lastLoss = new Map<string, number>()
  const lossWindowMillis = Duration.toMillis(options.lossWindow)

  const troubled = (breaker: CircuitBreaker.CircuitBreaker): boolean => {
    const state = breaker.current()
    return state._tag !== "Closed" || state.failures > 0
  }

  const recount = () => {
    let count = 0
    for (const breaker of breakers.values()) if (troubled(breaker)) count++
    unhealthy = count
  }

  // A master that left the slot map (a failover, a resharding) gets no commands: its probe passes. One that still owns
  // slots but has no connection now (the heartbeat dropped it) is not known to answer: the probe fails, and runs again
  // after the next open period.
  const probe = (node: string) =>
    Effect.suspend(() => {
      const live = options.current()
      if (live === undefined) return Effect.void
      const target = masters(live.client).find((n) => address(n) === node)
      if (target !== undefined) return pingNode(live, target, options.probeTimeout)
      const slot = ownedSlot(live.client as Cluster, node)
      // No command reaches a master whose circuit is open, so nothing would open its connection again: the probe
      // reads a key of one of its slots, which makes the Cluster client connect to it.
      return slot === undefined ? Effect.void : probeSlot(live, slot)
    })

  // A key (as given, before keyPrefix) for each slot, found once when a probe needs one.
  let keysBySlot: Map<number, string> | undefined
  const keyForSlot = (slot: number): string => {
    if (keysBySlot === undefined) {
      keysBySlot = new Map()
      for (let i = 0; keysBySlot.size < 16_384; i++) {
        const key = `probe:${i}`
        const at = slotOf(options.keyPrefix + key)
        if (!keysBySlot.has(at)) keysBySlot.set(at, key)
      }
    }
    return keysBySlot.get(slot)!
  }
  const probeSlot = (live: Live, slot: number) =>
    Effect.asVoid(sendBounded(live, "EXISTS", () => live.client.call("EXISTS", keyForSlot(slot)), options.probeTimeout))

  const breakerOf = (node: string): Effect.Effect<CircuitBreaker.CircuitBreaker> =>
    Effect.suspend(() => {
      const existing = breakers.get(node)
      if (existing !== undefined) return Effect.succeed(existing)
      return creating.withPermits(1)(Effect.suspend(() => {
        const again = breakers.get(node)
        if (again !== undefined) return Effect.succeed(again)
        return Effect.gen(function*() {
          const breaker = yield* CircuitBreaker.make(options.policy, {
            onTransition: (state) => {
              recount()
              const status = CircuitBreaker.status(state)
              return options.onTransition === undefined ? Effect.void : options.onTransition(node, status)
            }
          })
          yield* breaker.run(probe(node))
          breakers.set(node, breaker)
          return breaker
        }).pipe(Scope.provide(scope))
      }))
    })

  const onFailure = (node: string) =>
    Effect.flatMap(breakerOf(node), (breaker) => Effect.andThen(breaker.onFailure, Effect.sync(recount)))

  return {
    nodeOf: (client, key) => slotsOf(client as Cluster)[slotOf(options.keyPrefix + key)]?.[0],
    isOpen: (node) => {
      const breaker = breakers.get(node)
      return breaker !== undefined && breaker.current()._tag !== "Closed"
    },
    admit: (node, command) => Effect.flatMap(breakerOf(node), (breaker) => breaker.admit(command)),
    onFailure,
    onLoss: (node) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const last = lastLoss.get(node)
        if (last !== undefined && now - last < lossWindowMillis) return Effect.void
        lastLoss.set(node, now)
        return onFailure(node)
      }),
    onSuccess: (node) =>
      unhealthy === 0 ? Effect.void : Effect.suspend(() => {
        const breaker = breakers.get(node)
        return breaker === undefined ? Effect.void : Effect.andThen(breaker.onSuccess, Effect.sync(recount))
      }),
    statuses: () => {
      recount()
      return new Map([...breakers].map(([node, breaker]) => [node, CircuitBreaker.status(breaker.current())]))
    }
  }
})
