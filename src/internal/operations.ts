/**
 * The service's own operations over the executor: GET/SET/MGET/DEL/INCR/PEXPIRE/PUBLISH with ioredis' direct methods
 * (the cheapest path for the commands programs run most), the raw `command` (refused when it would poison the shared
 * connection), and `run` for typed commands, with an idempotency key when asked.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { ResolvedRedisConfig } from "../RedisConfig.ts"
import type { RedisError } from "../RedisError.ts"
import type { CommandArgument, CommandOptions, RunOptions, SetOptions } from "../RedisService.ts"
import { buffer, type Command, integer, optional, sendOn } from "./command.ts"
import type * as Executor from "./executor.ts"
import { refuse } from "./guard.ts"
import { withIdempotencyKey } from "./idempotency.ts"
import * as Transaction from "./transaction.ts"
import { queryText } from "./spans.ts"
import * as Validate from "./validate.ts"

const isWritten = (reply: unknown): boolean => reply !== null
const integerReply = { DEL: integer("DEL"), INCR: integer("INCR"), INCRBY: integer("INCRBY") }
const optionalBuffer = optional(buffer("GET"))
const isOne = (reply: number): boolean => reply === 1

// The sanitized query texts of the operations with a fixed shape (see `Spans.queryText`): made once.
const getText = () => "GET key"
const setText = () => "SET key ?"
const incrText = () => "INCR key"
const incrByText = () => "INCRBY key ?"
const expireText = () => "PEXPIRE key ?"
const publishText = () => "PUBLISH ? ?"
const same = <A>(reply: unknown): A => reply as A
const allKeys = (count: number): ReadonlyArray<number> => Array.from({ length: Math.min(count, 32) }, (_, i) => i)

export const make = (config: ResolvedRedisConfig, execute: ReturnType<typeof Executor.make>) => {
  const get = (key: string) => execute("GET", true, (client) => client.get(key), Option.fromNullishOr, key, getText)

  const set = (key: string, value: string, setOptions?: SetOptions) =>
    Effect.suspend(() => {
      const args: Array<string | number> = [key, value]
      if (setOptions?.ttl !== undefined) {
        // A TTL of zero, negative or not a number is refused before anything is sent (Redis would reject it).
        const millis = Validate.ttlMillis("SET", "ttl", setOptions.ttl)
        if (typeof millis !== "number") return Effect.fail(millis)
        args.push("PX", millis)
      }
      if (setOptions?.mode !== undefined) args.push(setOptions.mode)
      return execute(
        "SET",
        setOptions?.mode !== "NX",
        // The plain form takes ioredis' cheaper `set` path; options need the argument list.
        args.length === 2 ? (client) => client.set(key, value) : (client) => client.call("SET", args),
        isWritten,
        key,
        args.length === 2 ? setText : () => queryText("SET", args.length, [0])
      )
    })

  const mget = (keys: ReadonlyArray<string>) =>
    keys.length === 0
      ? Effect.succeed([])
      : execute(
        "MGET",
        true,
        (client) => client.mget(keys as Array<string>),
        (values) => values.map(Option.fromNullishOr),
        keys[0],
        () => queryText("MGET", keys.length, allKeys(keys.length))
      )

  const del = (...keys: ReadonlyArray<string | ReadonlyArray<string>>) => {
    // Arrays are accepted (and flattened without spreading) so that a million keys do not overflow the stack.
    const all = keys.length === 1 && typeof keys[0] !== "string" ? keys[0]! : keys.flat()
    return all.length === 0
      ? Effect.succeed(0)
      : execute(
        "DEL",
        true,
        (client) => client.call("DEL", all as Array<string>),
        integerReply.DEL,
        all[0],
        () => queryText("DEL", all.length, allKeys(all.length))
      )
  }

  // Never a wrong number: a reply beyond 2^53 fails with DecodeError.
  const incr = (key: string, by?: number) =>
    by === undefined
      ? execute("INCR", false, (client) => client.incr(key), integerReply.INCR, key, incrText)
      : Effect.suspend(() => {
        const n = Validate.integer("INCRBY", "by", by)
        return typeof n !== "number"
          ? Effect.fail(n)
          : execute("INCRBY", false, (client) => client.incrby(key, n), integerReply.INCRBY, key, incrByText)
      })

  const getBuffer = (key: string) =>
    execute("GET", true, (client) => client.getBuffer(key), optionalBuffer, key, getText)

  const expire = (key: string, ttl: Duration.Input) =>
    Effect.suspend(() => {
      // PEXPIRE 0 (or a negative one) would delete the key: refused, like SET's TTL.
      const millis = Validate.ttlMillis("PEXPIRE", "ttl", ttl)
      return typeof millis !== "number"
        ? Effect.fail(millis)
        : execute("PEXPIRE", true, (client) => client.pexpire(key, millis), isOne, key, expireText)
    })

  const publish = (channel: string, message: string) =>
    execute("PUBLISH", false, (client) => client.publish(channel, message), same<number>, undefined, publishText)

  return { get, set, mget, del, incr, getBuffer, expire, publish, ...raw(config, execute) }
}

/**
 * The raw `command` (refused when it would poison the shared connection) and `run` for typed commands, with an
 * idempotency key when asked.
 */
const raw = (config: ResolvedRedisConfig, execute: ReturnType<typeof Executor.make>) => {
  const command = <A = unknown>(
    name: string,
    args: ReadonlyArray<CommandArgument>,
    commandOptions?: CommandOptions
  ): Effect.Effect<A, RedisError> => {
    const refused = refuse(name, args)
    return refused !== undefined ? Effect.fail(refused) : execute(
      name.toUpperCase(),
      commandOptions?.idempotent ?? false,
      (client) => client.call(name, args as Array<CommandArgument>) as Promise<A>,
      same<A>,
      undefined,
      // A raw command's key positions are not known: every argument is a `?`.
      () => queryText(name.toUpperCase(), args.length)
    )
  }

  const runOne = <A>(command: Command<A>): Effect.Effect<A, RedisError> => {
    // A catalog command never needs the shared connection's refusal check; an argument it refused still fails it.
    const refused = command.vetted === true ? command.invalid : Transaction.rejection(command)
    return refused !== undefined
      ? Effect.fail(refused)
      : execute(
        command.name,
        command.idempotent,
        (client) => sendOn(client, command),
        command.decode,
        Transaction.firstKey(command),
        // The command is its own query text (name, arguments, key positions): nothing made per call.
        command
      )
  }
  const run = <A>(command: Command<A>, runOptions?: RunOptions): Effect.Effect<A, RedisError> => {
    if (runOptions?.idempotencyKey === undefined) return runOne(command)
    const ttl = runOptions.idempotencyTtl === undefined
      ? undefined
      : Validate.ttlMillis("RUN", "idempotencyTtl", runOptions.idempotencyTtl)
    return typeof ttl === "object"
      ? Effect.fail(ttl)
      : runOne(withIdempotencyKey(
        command,
        runOptions.idempotencyKey,
        config.keyPrefix,
        ttl === undefined ? undefined : Duration.millis(ttl)
      ))
  }

  return { command, run }
}
