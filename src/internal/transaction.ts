/**
 * Batches (one write, one round trip, a `Result` per command) and transactions (MULTI ... EXEC, atomic, never
 * resent): how the commands are queued on an ioredis pipeline, checked for Cluster slots, and how the replies become
 * typed results.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import { slotOf } from "./topology/slot.ts"
import type { Client, Live } from "./connection.ts"
import {
  classify,
  ConnectionClosed,
  ConnectionReset,
  CrossSlot,
  isConnectionLost,
  isRedisError,
  type RedisError,
  ReplyError
} from "../RedisError.ts"
import { type Argument, type Command, keysOf, sendOn, type Success } from "./command.ts"
import { refuse } from "./guard.ts"

/**
 * A `Result` per command of a batch, in order.
 *
 * @internal
 */
export type Results<Cs extends ReadonlyArray<Command<any>>> = {
  -readonly [K in keyof Cs]: Result.Result<Success<Cs[K]>, RedisError>
}

/**
 * The replies of a transaction, in order.
 *
 * @internal
 */
export type Successes<Cs extends ReadonlyArray<Command<any>>> = { -readonly [K in keyof Cs]: Success<Cs[K]> }

interface Pipeline {
  call(name: string, ...args: Array<Argument>): unknown
  callBuffer(name: string, ...args: Array<Argument>): unknown
  exec(): Promise<Array<[Error | null, unknown]> | null>
}

type Reply = [Error | null, unknown]

/**
 * Why a command of a batch or transaction cannot be sent at all (an invalid argument, a refused command).
 *
 * @internal
 */
export const rejection = (command: Command<unknown>): RedisError | undefined =>
  command.invalid ?? refuse(command.name, command.args)

/**
 * On a Cluster, every key of the commands must be in one hash slot (with `keyPrefix`, as ioredis sends them).
 *
 * @internal
 */
export const crossSlot = (
  commands: ReadonlyArray<Command<unknown>>,
  keyPrefix: string
): CrossSlot | undefined => {
  const keys = commands.flatMap(keysOf)
  if (keys.length < 2) return undefined
  const first = slotOf(keyPrefix + keys[0])
  if (keys.every((key) => slotOf(keyPrefix + key) === first)) return undefined
  return new CrossSlot({
    message: `The keys of these ${commands.length} command(s) are in different hash slots (${keys.length} keys); ` +
      "on Redis Cluster put them in one slot with a hash tag, e.g. {user:42}:name and {user:42}:email",
    keys
  })
}

const queue = (pipeline: Pipeline, name: string, args: ReadonlyArray<Argument>, binary: boolean): void => {
  if (binary) pipeline.callBuffer(name, ...(args as Array<Argument>))
  else pipeline.call(name, ...(args as Array<Argument>))
}

/**
 * Sends the commands in one write on an ioredis pipeline (no MULTI). Resolves with one `[error, reply]` per command.
 *
 * @internal
 */
export const sendBatch = (client: Client, commands: ReadonlyArray<Command<unknown>>): Promise<ReadonlyArray<Reply>> => {
  const pipeline = client.pipeline() as unknown as Pipeline
  for (const command of commands) queue(pipeline, command.name, command.args, command.binary)
  return pipeline.exec().then((replies) => replies ?? [])
}

/**
 * Sends MULTI, the commands and EXEC in one write. Resolves with one `[error, reply]` per command, or `null` when
 * EXEC answered nil (a watched key changed).
 *
 * @internal
 */
export const sendTransaction = (
  client: Client,
  commands: ReadonlyArray<Command<unknown>>
): Promise<ReadonlyArray<Reply> | null> => {
  const pipeline = client.multi() as unknown as Pipeline
  for (const command of commands) {
    const form = command.transactional ?? command
    queue(pipeline, form.name, form.args, command.binary)
  }
  return pipeline.exec()
}

/**
 * Decodes one reply of a batch into a `Result`: a reply error stays with its command; a decoder's `DecodeError` too.
 *
 * @internal
 */
export const decodeReply = <A>(
  command: Command<A>,
  reply: Reply | undefined,
  live: Live
): Result.Result<A, RedisError> => {
  if (reply === undefined) {
    return Result.fail(
      new ConnectionClosed({ message: `No reply for ${command.name} in the batch`, command: command.name, sent: true })
    )
  }
  const [error, value] = reply
  if (error !== null) {
    return Result.fail(classify(error, { command: command.name, sent: true, socketError: live.socketError }))
  }
  try {
    return Result.succeed(command.decode(value))
  } catch (defect) {
    if (isRedisError(defect)) return Result.fail(defect)
    throw defect
  }
}

/**
 * Decodes the replies of EXEC into the typed tuple. A command that failed inside the transaction fails the whole
 * call with its reply error (Redis applied the others: it has no rollback), and says so.
 *
 * @internal
 */
export const decodeTransaction = (
  commands: ReadonlyArray<Command<unknown>>,
  replies: ReadonlyArray<Reply>,
  live: Live
): Array<unknown> =>
  commands.map((command, i) => {
    const result = decodeReply(command, replies[i], live)
    if (Result.isSuccess(result)) return result.success
    const error = result.failure
    if (error._tag === "ReplyError") {
      throw new ReplyError({
        code: error.code,
        command: error.command,
        message: `${error.message} (command ${i + 1} of the transaction, ${command.name}; ` +
          "Redis has no rollback: the other commands were applied)"
      })
    }
    throw error
  })

/**
 * A transaction that lost its connection after it was written: EXEC either ran it whole or not at all.
 *
 * @internal
 */
export const transactionLost = (error: RedisError): RedisError => {
  const whole = " (MULTI/EXEC: applied entirely or not at all)"
  if (error._tag === "ConnectionReset" && error.sent) {
    return new ConnectionReset({ message: error.message + whole, command: "MULTI", sent: true, cause: error.cause })
  }
  if (error._tag === "ConnectionClosed" && error.sent && error.unexpected !== true) {
    return new ConnectionClosed({ message: error.message + whole, command: "MULTI", sent: true, cause: error.cause })
  }
  return error
}

/**
 * The executor of the service, as batches and transactions use it: one round trip with every policy of a command,
 * the reply decoded with the connection it came on.
 *
 * @internal
 */
export type Execute = <R, A>(
  name: string,
  idempotent: boolean,
  run: (client: Client) => Promise<R>,
  reply: (reply: R, live: Live) => A,
  key?: string | undefined
) => Effect.Effect<A, RedisError>

/**
 * The key that routes a command on a Cluster (its first), and so the breaker of the master it counts against.
 *
 * @internal
 */
export const firstKey = (command: Command<unknown>): string | undefined => {
  const at = command.keys[0]
  const key = at === undefined ? undefined : command.args[at]
  return typeof key === "string" ? key : undefined
}

const firstKeyOf = (commands: ReadonlyArray<Command<unknown>>): string | undefined => {
  for (const command of commands) {
    const key = firstKey(command)
    if (key !== undefined) return key
  }
  return undefined
}

interface Context {
  readonly execute: Execute
  readonly isCluster: boolean
  readonly keyPrefix: string
}

// Retried one by one after the batch: an idempotent command whose connection was lost, and a script the server did
// not know (NOSCRIPT: it did not run; `run` sends it with EVAL).
const retried = (command: Command<unknown>, result: Result.Result<unknown, RedisError>): boolean =>
  Result.isFailure(result) &&
  ((command.idempotent && isConnectionLost(result.failure)) ||
    (command.send !== undefined && result.failure._tag === "ReplyError" && result.failure.code === "NOSCRIPT"))

/**
 * `RedisService.batch`.
 *
 * @internal
 */
export const batch = <const Cs extends ReadonlyArray<Command<any>>>(
  commands: Cs,
  context: Context
): Effect.Effect<Results<Cs>, RedisError> =>
  Effect.suspend(() => {
    const rejected = commands.map((command): Result.Result<unknown, RedisError> | undefined => {
      const error = rejection(command)
      return error === undefined ? undefined : Result.fail(error)
    })
    const toSend = commands.filter((_, i) => rejected[i] === undefined)
    if (toSend.length === 0) return Effect.succeed(rejected as unknown as Results<Cs>)
    const spans = context.isCluster ? crossSlot(toSend, context.keyPrefix) : undefined
    if (spans !== undefined) return Effect.fail(spans)
    return context.execute(
      "BATCH",
      false,
      (client) => sendBatch(client, toSend),
      (replies, live) => toSend.map((command, i) => decodeReply(command, replies[i], live)),
      firstKeyOf(toSend)
    ).pipe(Effect.flatMap((answered) => {
      let next = 0
      const results = rejected.map((result) => result ?? answered[next++]!)
      // Sent again alone, once (not idempotent for the executor: no second retry behind this one).
      return Effect.forEach(results, (result, i) => {
        const command = commands[i]!
        return retried(command, result)
          ? Effect.result(
            context.execute(command.name, false, (client) => sendOn(client, command), command.decode, firstKey(command))
          )
          : Effect.succeed(result)
      })
    })) as Effect.Effect<Results<Cs>, RedisError>
  })

/**
 * `RedisService.multi`.
 *
 * @internal
 */
export const multi = <const Cs extends ReadonlyArray<Command<any>>>(
  commands: Cs,
  context: Context
): Effect.Effect<Successes<Cs>, RedisError> =>
  Effect.suspend(() => {
    for (const command of commands) {
      const error = rejection(command)
      if (error !== undefined) return Effect.fail(error)
    }
    if (commands.length === 0) return Effect.succeed([] as unknown as Successes<Cs>)
    const spans = context.isCluster ? crossSlot(commands, context.keyPrefix) : undefined
    if (spans !== undefined) return Effect.fail(spans)
    return context.execute("MULTI", false, (client) => sendTransaction(client, commands), (replies, live) => {
      // EXEC answers nil only after a WATCH, which the shared connection never sends.
      if (replies === null) throw new ConnectionClosed({ message: "EXEC answered nil", command: "MULTI", sent: true })
      return decodeTransaction(commands, replies, live) as Successes<Cs>
    }, firstKeyOf(commands)).pipe(Effect.mapError(transactionLost))
  })
