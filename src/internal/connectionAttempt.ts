/**
 * One connection attempt and one reconnect cycle of `Connection`: a new client with its listeners, connect, SELECT,
 * all under `connectTimeout`; attempts spaced by the reconnect schedule until one is ready, cut short by what the
 * topology watches (Sentinel). Also `loseUnsafe`, the one place a connection is marked lost.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schedule from "effect/Schedule"
import type { ConnectionState } from "../Health.ts"
import type { ResolvedRedisConfig } from "../RedisConfig.ts"
import { classify, ConnectionTimeout, type RedisError, scrubCause } from "../RedisError.ts"
import type { ConnectionHooks, LoopState, MutableLive } from "./connectionModel.ts"
import * as ReconnectSchedule from "./schedule.ts"
import type { Connector, CycleWatch } from "./topology/connector.ts"
import type { IORedisOptions } from "./topology/options.ts"

// Marks a connection lost, synchronously, so that `current` never hands out a broken client. The first report wins.
export const loseUnsafe = (loop: LoopState, live: MutableLive, reason: RedisError): boolean => {
  if (!Deferred.doneUnsafe(live.lost, Exit.succeed(reason))) return false
  if (loop.current === live) loop.current = undefined
  // Close the socket now: whatever is still in flight on it fails at once instead of waiting on a dead server.
  live.client.disconnect()
  return true
}

// Why an established connection closed: its last socket error, else a plain close. (ETIMEDOUT here is a socket that
// stopped answering, not a connect timeout.)
const closedReason = (live: MutableLive): RedisError =>
  classify(live.socketError ?? new Error("Connection is closed."), { sent: false, established: true })

/**
 * One connection attempt: a new client, its listeners, connect, then SELECT. The socket is torn down when the attempt
 * fails or is interrupted. ioredis' connectTimeout covers the TCP connect only; a server that accepts and never
 * answers the handshake (frozen, blackholed) is caught by the attempt's own `connectTimeout`.
 */
export const openAttempt = (
  config: ResolvedRedisConfig,
  connector: Connector,
  loop: LoopState,
  hooks: ConnectionHooks,
  overrides: Partial<IORedisOptions> | undefined
): Effect.Effect<MutableLive, RedisError> =>
  Effect.suspend(() => {
    loop.attempts++
    const client = connector.makeClient(overrides)
    const live: MutableLive = {
      client,
      generation: loop.generation + 1,
      socketError: undefined,
      lost: Deferred.makeUnsafe<RedisError>()
    }
    // ioredis throws `error` events nobody listens to: this listener is what keeps ECONNRESET from crashing the app.
    // Kept scrubbed: what ioredis emits may carry the failed command's arguments (the handshake's password).
    client.on("error", (error: unknown) => {
      live.socketError = scrubCause(error)
    })
    client.on("close", () => loseUnsafe(loop, live, closedReason(live)))
    // A Cluster ends when it gave up on every node (its own retry strategy is off).
    client.on("end", () => loseUnsafe(loop, live, closedReason(live)))
    connector.prepare(client)
    hooks.onClient?.(client)
    return Effect.callback<MutableLive, RedisError>((resume) => {
      client.connect().then(
        () =>
          connector.select(client, () => live.socketError).then(
            () => resume(Effect.succeed(live)),
            (error: unknown) => {
              client.disconnect()
              resume(Effect.fail(error as RedisError))
            }
          ),
        (error: unknown) => {
          client.disconnect()
          const cause = live.socketError ?? error
          resume(Effect.fail(classify(cause, { sent: false, connectTimeout: config.connectTimeout })))
        }
      )
    }).pipe(
      Effect.timeoutOrElse({
        duration: config.connectTimeout,
        orElse: () =>
          Effect.fail(
            new ConnectionTimeout({
              message: `Redis did not complete the connection handshake within ${
                Duration.format(config.connectTimeout)
              }`,
              phase: "connect",
              timeout: config.connectTimeout
            })
          )
      }),
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => {
          client.disconnect()
        })
      )
    )
  })

/**
 * One reconnect cycle: attempts spaced by a fresh copy of the reconnect schedule until one is ready. While an attempt
 * runs the state stays what it was ("attempt n failed, next in d"), except for the very first connection, which is
 * Connecting. Where the topology has something to watch (Sentinel: the master the sentinels name), a change cuts the
 * attempt in progress or the backoff wait short and the next attempt starts at once; the very first cycle watches
 * nothing.
 */
export const connectCycle = (
  config: ResolvedRedisConfig,
  connector: Connector,
  open: Effect.Effect<MutableLive, RedisError>,
  setState: (state: ConnectionState) => Effect.Effect<void>,
  hooks: ConnectionHooks,
  initial: boolean
): Effect.Effect<MutableLive> =>
  Effect.scoped(Effect.gen(function*() {
    const step = yield* Schedule.toStep(ReconnectSchedule.make(config.reconnect))
    const watch: CycleWatch | undefined = initial || connector.watchCycle === undefined
      ? undefined
      : yield* connector.watchCycle
    let failed = 0
    while (true) {
      if (initial && failed === 0) yield* setState({ _tag: "Connecting", attempt: 1 })
      const exit = watch === undefined
        ? yield* Effect.exit(open)
        : yield* Effect.raceFirst(Effect.exit(open), Effect.as(watch.changed, "switched" as const))
      if (exit === "switched") continue
      if (Exit.isSuccess(exit)) return exit.value
      const lastError = exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error
      failed++
      if (lastError !== undefined && hooks.onAttemptFailed !== undefined) yield* hooks.onAttemptFailed(lastError)
      const now = yield* Clock.currentTimeMillis
      const [, delay] = yield* Effect.orDie(step(now, undefined))
      yield* setState({ _tag: "Reconnecting", attempt: failed, nextDelay: delay, lastError })
      if (watch === undefined) yield* Effect.sleep(delay)
      else yield* Effect.raceFirst(Effect.sleep(delay), Effect.asVoid(watch.changed))
    }
  }))

