/**
 * Lua scripts as commands. `RedisScript.make({ lua, keys })` gives a function from keys and arguments to a `Command`;
 * running it sends EVALSHA, and when the server does not know the script (NOSCRIPT: after a restart, a failover or
 * SCRIPT FLUSH) sends it with EVAL on the same connection: safe, since the script did not run.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { RedisScript, RedisService } from "effect-redis-resilience"
 *
 * // Sets the key only when it holds the expected value; 1 when it did.
 * const compareAndSet = RedisScript.make<number>({
 *   lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0",
 *   keys: 1
 * })
 *
 * const program = Effect.gen(function*() {
 *   const redis = yield* RedisService
 *   return yield* redis.run(compareAndSet(["config:version"], ["41", "42"]))
 * })
 * ```
 *
 * **Gotchas**
 *
 * - A script is not retried after a lost connection unless declared `idempotent: true` (it may have run).
 * - Inside `multi` the script is queued as EVAL (a NOSCRIPT inside MULTI could not be answered by a resend).
 * - Keys must be passed as keys (not in `args`): `keyPrefix` is added to them, and on a Cluster they route the call.
 *
 * @since 0.2.0
 */
import { createHash } from "node:crypto"
import { type Argument, type Command, make as makeCommand, type Sender } from "./internal/command.ts"
import { InvalidArgument } from "./RedisError.ts"

/**
 * Options of `make`.
 *
 * @since 0.2.0
 * @category models
 */
export interface RedisScriptOptions<A> {
  /** The Lua source. */
  readonly lua: string
  /** How many of the script's arguments are keys (KEYS[1..n]). */
  readonly keys: number
  /** Whether running it twice has the effect of running it once. Default `false`: never resent. */
  readonly idempotent?: boolean | undefined
  /** Whether it only reads. Default `false`. */
  readonly readOnly?: boolean | undefined
  /** Read the reply as bytes. Default `false`. */
  readonly binary?: boolean | undefined
  /** Turns the raw reply into `A` (throw a `DecodeError` for one that does not fit). Default: as it is. */
  readonly decode?: ((reply: unknown) => A) | undefined
}

/**
 * A script: call it with its keys and arguments to get the `Command` that runs it.
 *
 * @since 0.2.0
 * @category models
 */
export interface RedisScript<A> {
  (keys: ReadonlyArray<string>, args?: ReadonlyArray<Argument>): Command<A>
  readonly lua: string
  /** The SHA1 of the source, as EVALSHA names it. */
  readonly sha: string
}

const isNoScript = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "message" in cause && typeof cause.message === "string" &&
  cause.message.startsWith("NOSCRIPT")

/**
 * Defines a script.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <A = unknown>(options: RedisScriptOptions<A>): RedisScript<A> => {
  const sha = shaOf(options.lua)
  const script = (keys: ReadonlyArray<string>, args: ReadonlyArray<Argument> = []): Command<A> => {
    const command = toCommand(options, sha, keys, args)
    return keys.length === options.keys ? command : {
      ...command,
      invalid: new InvalidArgument({
        message: `The script takes ${options.keys} key(s), ${keys.length} given`,
        command: "EVALSHA",
        argument: "keys"
      })
    }
  }
  return Object.assign(script, { lua: options.lua, sha })
}

/**
 * The SHA1 of a script's source.
 *
 * @internal
 */
export const shaOf = (lua: string): string => createHash("sha1").update(lua).digest("hex")

/**
 * The command that runs a script with these keys and arguments (however many keys).
 *
 * @internal
 */
export const toCommand = <A>(
  options: Omit<RedisScriptOptions<A>, "keys">,
  sha: string,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<Argument>
): Command<A> => {
  const tail: ReadonlyArray<Argument> = [keys.length, ...keys, ...args]
  const send = (client: Sender): Promise<unknown> => {
    const call = options.binary === true ? client.callBuffer : client.call
    return call.call(client, "EVALSHA", sha, ...tail).catch((cause: unknown) =>
      isNoScript(cause) ? call.call(client, "EVAL", options.lua, ...tail) : Promise.reject(cause)
    )
  }
  return makeCommand<A>({
    name: "EVALSHA",
    args: [sha, ...tail],
    keys: keys.map((_, i) => i + 2),
    idempotent: options.idempotent,
    readOnly: options.readOnly,
    binary: options.binary,
    decode: options.decode,
    transactional: { name: "EVAL", args: [options.lua, ...tail] },
    send
  })
}
