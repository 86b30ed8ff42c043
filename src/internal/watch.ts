/**
 * Optimistic transactions (WATCH ... MULTI ... EXEC) on a pinned connection of their own: the body reads through it,
 * returns the commands to commit, and a change to a watched key by anyone else aborts the commit with
 * `TransactionAborted`. The pinned connection is opened for the call and closed after it (WATCH state never leaks to
 * the shared connection, and a lost pinned connection is never replaced behind the body's back).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Connection from "./connection.ts"
import { InvalidArgument, type RedisError, TransactionAborted } from "../RedisError.ts"
import { type Command, make as makeCommand, sendOn } from "./command.ts"
import { sendBounded } from "./wire.ts"
import {
  crossSlot,
  decodeTransaction,
  rejection,
  sendTransaction,
  type Successes,
  transactionLost
} from "./transaction.ts"

/**
 * What the body of `watch` gets: a `run` on the pinned connection (reads, typically).
 *
 * @since 0.2.0
 * @category models
 */
export interface WatchTransaction {
  /** Runs a command on the pinned connection (never retried: the WATCH would be gone with the connection). */
  readonly run: <A>(command: Command<A>) => Effect.Effect<A, RedisError>
}

/**
 * Sends one command on a pinned connection with a deadline; never resent.
 *
 * @internal
 */
export const sendPinned = <A>(
  live: Connection.Live,
  name: string,
  send: () => Promise<unknown>,
  decode: (reply: unknown) => A,
  timeout: Duration.Duration
): Effect.Effect<A, RedisError> =>
  sendBounded(live, name, send, timeout).pipe(
    Effect.flatMap((reply) => Effect.try({ try: () => decode(reply), catch: (e) => e as RedisError }))
  )

// A watched key, as a command naming it (for the slot check).
const asKey = (key: string): Command<unknown> => makeCommand({ name: "WATCH", args: [key], keys: [0] })

/**
 * Runs an optimistic transaction on a pinned connection acquired in the current scope.
 *
 * @internal
 */
export const watch = <const Cs extends ReadonlyArray<Command<any>>, E, R>(
  pinned: Effect.Effect<Connection.Live, RedisError, Scope.Scope>,
  keys: ReadonlyArray<string>,
  body: (tx: WatchTransaction) => Effect.Effect<Cs, E, R>,
  options: { readonly keyPrefix: string; readonly cluster: boolean; readonly commandTimeout: Duration.Duration }
): Effect.Effect<Successes<Cs>, RedisError | E, R> =>
  Effect.scoped(Effect.gen(function*() {
    if (keys.length === 0) {
      return yield* Effect.fail(
        new InvalidArgument({ message: "WATCH needs at least one key", command: "WATCH", argument: "keys" })
      )
    }
    // Watched keys across slots would fail as a CROSSSLOT reply after the connection was opened: refuse them first.
    if (options.cluster) {
      const spans = crossSlot(keys.map(asKey), options.keyPrefix)
      if (spans !== undefined) return yield* Effect.fail(spans)
    }
    const live = yield* pinned
    const timeout = options.commandTimeout
    yield* sendPinned(live, "WATCH", () => live.client.call("WATCH", ...keys), () => undefined, timeout)
    const run = <A>(command: Command<A>) => {
      const refused = rejection(command)
      return refused !== undefined
        ? Effect.fail(refused)
        : sendPinned(live, command.name, () => sendOn(live.client, command), command.decode, timeout)
    }
    const commands = yield* body({ run })
    for (const command of commands) {
      const refused = rejection(command)
      if (refused !== undefined) return yield* Effect.fail(refused)
    }
    if (options.cluster) {
      const spans = crossSlot([...commands, ...keys.map(asKey)], options.keyPrefix)
      if (spans !== undefined) return yield* Effect.fail(spans)
    }
    const replies = yield* sendPinned(
      live,
      "EXEC",
      () => sendTransaction(live.client, commands),
      (reply) => reply as Awaited<ReturnType<typeof sendTransaction>>,
      timeout
    ).pipe(Effect.mapError(transactionLost))
    if (replies === null) {
      return yield* Effect.fail(
        new TransactionAborted({
          message: `A watched key changed before EXEC (${keys.length} key(s) watched); nothing was applied`,
          keys
        })
      )
    }
    return yield* Effect.try({
      try: () => decodeTransaction(commands, replies, live) as Successes<Cs>,
      catch: (e) => e as RedisError
    })
  }))
