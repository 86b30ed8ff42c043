/**
 * One dedicated (pinned) connection: opened with the shared connection's options and policies, used by one caller at a
 * time (blocking commands, `RedisPersistence.reserve`), never reconnected. A lost connection is done: what was in
 * flight fails with `sent: true` and is never resent, later sends fail with `sent: false`. Interrupting a command
 * destroys the socket at once, so that a BLPOP nobody waits for any more cannot pop an element later.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type * as Connection from "./connection.ts"
import * as Core from "./core.ts"
import { queryText } from "./spans.ts"
import {
  CircuitOpen,
  classify,
  commandTimedOut,
  ConnectionClosed,
  InvalidArgument,
  isConnectionLost,
  isRedisError,
  isTransient,
  isWrongRole,
  type RedisError
} from "../RedisError.ts"
import type { RedisServiceShape } from "../RedisService.ts"
import { type Command, make as makeCommand, sendOn } from "./command.ts"

/**
 * A dedicated connection.
 *
 * @internal
 */
export interface Dedicated {
  /**
   * Sends one command. Its deadline is `commandTimeout`, plus `blockFor` for a blocking command; a `blockFor` of zero
   * (or infinite) means "until answered": no deadline. A timeout or an interruption destroys the connection.
   */
  readonly send: <A>(command: Command<A>, blockFor?: Duration.Duration | undefined) => Effect.Effect<A, RedisError>
  /** Whether it can take another command (not lost, not destroyed, not closed). */
  readonly usable: () => boolean
  /** Destroys the socket (what is in flight fails at once) and closes the connection's scope. */
  readonly close: Effect.Effect<void>
}

const ping = makeCommand<unknown>({ name: "PING", idempotent: true, readOnly: true })

/**
 * Fails with `CircuitOpen` (and its `retryAfter`) while the layer's breaker is not closed, without opening a socket.
 * The circuit is read from `health`; only when it is not closed does a PING on the shared connection fetch the
 * breaker's own refusal (a circuit that closed meanwhile lets the call through).
 *
 * @internal
 */
export const admit = (redis: RedisServiceShape, command: string): Effect.Effect<void, CircuitOpen> =>
  Effect.flatMap(redis.health, (health) =>
    health.circuit === "closed" ? Effect.void : redis.run(ping).pipe(
      Effect.asVoid,
      Effect.catch((error) =>
        error._tag === "CircuitOpen"
          ? Effect.fail(new CircuitOpen({ message: error.message, retryAfter: error.retryAfter, command }))
          : Effect.void
      )
    ))

/**
 * Opens one dedicated connection in the current scope: it waits at most `acquireTimeout` for it (retrying by the
 * reconnect schedule meanwhile), fails fast with `CircuitOpen` while the breaker is open, and reports failed attempts
 * to connect, command timeouts, transient reply errors and successes to the layer's breaker (its core's signals). No
 * heartbeat runs on it: a blocking command would hold the PING.
 *
 * @internal
 */
export const open = Effect.fnUntraced(function*(redis: RedisServiceShape, role: Core.Role) {
  const core = Core.of(redis)
  const { config, signals } = core
  // Counted and traced under `<name>:<role>`, with the role's other connections.
  const observe = core.observe(role)
  yield* admit(redis, role.toUpperCase())
  const scope = yield* Scope.fork(yield* Effect.scope, "sequential")
  let lost = false
  // Failed attempts to open count towards the breaker; a loss does not: one reset drops the shared connection (which
  // counts it, once) and every dedicated one at the same time, and must not count as many failures.
  const connection = yield* core.open(role, {
    // A lost dedicated connection is done: stop its reconnect loop rather than open a socket nobody will use. The
    // scope is closed from outside the loop's fiber, which the close interrupts.
    onLost: () =>
      Effect.andThen(
        Effect.sync(() => {
          lost = true
        }),
        Effect.forkDetach(Scope.close(scope, Exit.void))
      ).pipe(Effect.asVoid)
  }).pipe(Scope.provide(scope))
  const live = yield* connection.acquire(role.toUpperCase()).pipe(
    Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
  )
  yield* signals.success

  const usable = () => !lost && connection.current() === live
  const destroy = (reason: RedisError) => Effect.asVoid(connection.invalidate(live, reason))
  const pinned: Pinned = { config, signals, connection, live }

  const send = <A>(command: Command<A>, blockFor?: Duration.Duration | undefined): Effect.Effect<A, RedisError> =>
    Effect.suspend(() => {
      const name = command.name
      if (command.invalid !== undefined) return Effect.fail(command.invalid)
      if (!usable()) {
        return Effect.fail(
          new ConnectionClosed({
            message: `The dedicated connection was lost; ${name} was not sent (take another connection)`,
            command: name,
            sent: false
          })
        )
      }
      const run = call(pinned, command)
      const deadline = deadlineOf(config.commandTimeout, blockFor)
      return observe(
        name,
        deadline === undefined ? run : Effect.timeoutOrElse(run, {
          duration: deadline,
          orElse: () => Effect.andThen(signals.failure, Effect.fail(commandTimedOut(name, deadline)))
        }),
        () => queryText(name, command.args.length, command.keys)
      )
    })

  const close = Effect.andThen(
    destroy(new ConnectionClosed({ message: "The dedicated connection was closed", sent: false })),
    Scope.close(scope, Exit.void)
  )
  return { send, usable, close } satisfies Dedicated as Dedicated
})

interface Pinned {
  readonly config: Core.Core["config"]
  readonly signals: Core.BreakerSignals
  readonly connection: Connection.Connection
  readonly live: Connection.Live
}

// One command on the pinned connection, without a deadline (the caller adds it).
const call = <A>({ config, connection, live, signals }: Pinned, command: Command<A>): Effect.Effect<A, RedisError> =>
  Effect.callback<A, RedisError>((resume) => {
    const name = command.name
    let settled = false
    // ioredis rejects with the same "Connection is closed." whether or not it wrote the command: a client that has
    // already ended writes nothing.
    const sent = live.client.status !== "end"
    let promise: Promise<unknown>
    try {
      promise = sendOn(live.client, command)
    } catch (cause) {
      promise = Promise.reject(cause)
    }
    promise.then(
      (reply) => {
        if (settled) return
        settled = true
        let value: A
        try {
          value = command.decode(reply)
        } catch (defect) {
          return resume(isRedisError(defect) ? Effect.fail(defect) : Effect.die(defect))
        }
        resume(Effect.as(signals.success, value))
      },
      (cause: unknown) => {
        if (settled) return
        settled = true
        const error = classify(cause, {
          command: name,
          sent,
          socketError: live.socketError,
          commandTimeout: config.commandTimeout
        })
        // A lost connection is done (not counted, see `open`); so is one whose server became a replica (READONLY, or
        // UNBLOCKED for a blocked command): the next connection finds the new master. Other transient failures count
        // (LOADING, ...).
        resume(
          isConnectionLost(error) || isWrongRole(error) || (error._tag === "ReplyError" && error.code === "UNBLOCKED")
            ? Effect.andThen(connection.invalidate(live, error), Effect.fail(error))
            : isTransient(error)
            ? Effect.andThen(signals.failure, Effect.fail(error))
            : Effect.fail(error)
        )
      }
    )
    // Interrupted (by the caller, or by the deadline): the reply may still come, so the connection is destroyed
    // now; a blocking pop it was waiting for can no longer take an element.
    return Effect.suspend(() => {
      if (settled) return Effect.void
      settled = true
      return Effect.asVoid(connection.invalidate(live, interrupted(name)))
    })
  })

const interrupted = (command: string) =>
  new ConnectionClosed({
    message: `${command} was interrupted; its dedicated connection was closed`,
    command,
    sent: true
  })

/**
 * The deadline of a command: `commandTimeout`, plus the block of a blocking command; none for a block of zero or an
 * infinite one.
 *
 * @internal
 */
export const deadlineOf = (
  commandTimeout: Duration.Duration,
  blockFor: Duration.Duration | undefined
): Duration.Duration | undefined =>
  blockFor === undefined
    ? commandTimeout
    : Duration.isZero(blockFor) || !Duration.isFinite(blockFor)
    ? undefined
    : Duration.sum(commandTimeout, blockFor)

/**
 * The bounded block that stands in for a block of zero ("until answered"): the heartbeat's detection time
 * (`interval` x `misses`), at least a second; 2 seconds without a heartbeat.
 *
 * @internal
 */
export const blockSlice = (
  heartbeat: { readonly interval: Duration.Duration; readonly misses: number } | undefined
): Duration.Duration =>
  heartbeat === undefined
    ? Duration.seconds(2)
    : Duration.max(Duration.seconds(1), Duration.times(heartbeat.interval, heartbeat.misses))

/**
 * A block of zero as a loop of bounded blocks of `slice`: a dedicated connection has no heartbeat, and a frozen
 * server or a silent network would otherwise hold the call until TCP keep-alive gives up (hours). A block that timed
 * out (`None`) popped nothing, so blocking again is safe; each block has its deadline (`deadlineOf`: slice +
 * commandTimeout), so a frozen server is noticed within that.
 *
 * @internal
 */
export const untilAnswered = <A, E, R>(
  slice: Duration.Duration,
  attempt: (block: Duration.Duration) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const once: Effect.Effect<A, E, R> = Effect.flatMap(
    attempt(slice),
    (result) => Option.isOption(result) && Option.isNone(result) ? once : Effect.succeed(result)
  )
  return once
}

/**
 * A block time, validated: a negative or not-a-number timeout is refused before anything is sent; an infinite one is
 * zero (block until answered).
 *
 * @internal
 */
export const blockTime = (
  command: string,
  timeout: Duration.Input,
  argument = "timeout"
): Effect.Effect<Duration.Duration, InvalidArgument> => {
  const refused = () =>
    Effect.fail(
      new InvalidArgument({
        message: `${command}: the ${argument} must be a duration of zero or more (zero blocks until answered)`,
        command,
        argument
      })
    )
  if (typeof timeout === "number" && Number.isNaN(timeout)) return refused()
  if (typeof timeout === "string" && /nan/i.test(timeout)) return refused()
  const duration = Duration.fromInput(timeout)
  if (Option.isNone(duration) || Duration.isNegative(duration.value)) return refused()
  return Effect.succeed(Duration.isFinite(duration.value) ? duration.value : Duration.zero)
}

/**
 * A block in seconds, as BLPOP and friends take it. A block under a millisecond is rounded up: `0` would mean forever.
 *
 * @internal
 */
export const toSecondsArgument = (block: Duration.Duration): string =>
  Duration.isZero(block) ? "0" : String(Math.ceil(Duration.toMillis(block)) / 1000)

/**
 * A block in milliseconds, as XREAD BLOCK takes it (rounded up, for the same reason).
 *
 * @internal
 */
export const toMillisArgument = (block: Duration.Duration): string =>
  Duration.isZero(block) ? "0" : String(Math.ceil(Duration.toMillis(block)))
