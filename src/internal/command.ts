/**
 * The core of `Command`: the record every Redis command is described by (name, encoded arguments, reply decoder,
 * idempotency, read-only, key positions, binary reply) and the decoders the command table is built from.
 *
 * @internal
 */
import type * as Option from "effect/Option"
import * as O from "effect/Option"
import { DecodeError, type InvalidArgument } from "../RedisError.ts"

/**
 * An argument as sent on the wire.
 *
 * @since 0.2.0
 * @category models
 */
export type Argument = string | number | Buffer

/** @internal */
export const TypeId = "~effect-redis-resilience/Command" as const

/**
 * A Redis command as a value: everything the layer needs to run it and to know what it may do.
 *
 * `A` is the decoded reply. Build commands with the constructors of the `Command` module (`Command.get(key)`, ...) or
 * with `Command.make` for anything else; run them with `RedisService.run`, `batch` or `multi`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Command<out A> {
  readonly [TypeId]: { readonly _A: (_: never) => A }
  /** The command name, upper case (a subcommand such as `XGROUP CREATE` sends its first word as `name`). */
  readonly name: string
  /** The encoded arguments, keys included (ioredis adds `keyPrefix` to them). */
  readonly args: ReadonlyArray<Argument>
  /** The positions of the keys in `args` (for Cluster slot checks and idempotency markers). */
  readonly keys: ReadonlyArray<number>
  /** Whether running it twice has the effect of running it once: only these are retried after a lost connection. */
  readonly idempotent: boolean
  /** Whether it only reads. */
  readonly readOnly: boolean
  /** Whether the reply is read as bytes (`Buffer`) instead of UTF-8 strings. */
  readonly binary: boolean
  /** Turns the raw reply into `A`; throws a `DecodeError` for a reply that does not fit. */
  readonly decode: (reply: unknown) => A
  /** Set when an argument was refused at construction: running the command fails with it, nothing is sent. */
  readonly invalid?: InvalidArgument | undefined
  /**
   * The form to queue inside MULTI, where a NOSCRIPT could not be answered by a resend (scripts: EVAL).
   *
   * @internal
   */
  readonly transactional?: { readonly name: string; readonly args: ReadonlyArray<Argument> } | undefined
  /**
   * How to send it, when not `client.call(name, ...args)` (scripts: EVALSHA, then EVAL on NOSCRIPT).
   *
   * @internal
   */
  readonly send?: ((client: Sender) => Promise<unknown>) | undefined
  /**
   * Built by the typed catalog, whose commands never change the shared connection's state nor block it: the shared
   * connection's refusal check is skipped for it.
   *
   * @internal
   */
  readonly vetted?: boolean | undefined
}

/**
 * The part of an ioredis client a command is sent through.
 *
 * @internal
 */
export interface Sender {
  readonly call: (name: string, ...args: Array<Argument>) => Promise<unknown>
  readonly callBuffer: (name: string, ...args: Array<Argument>) => Promise<unknown>
}

/**
 * The reply type of a command.
 *
 * @since 0.2.0
 * @category models
 */
export type Success<C> = C extends Command<infer A> ? A : never

/**
 * What `make` takes.
 *
 * @since 0.2.0
 * @category models
 */
export interface MakeOptions<A> {
  readonly name: string
  readonly args?: ReadonlyArray<Argument> | undefined
  /** Positions of the keys in `args`. Default: none. */
  readonly keys?: ReadonlyArray<number> | undefined
  /** Default `false`: never retried after a lost connection. */
  readonly idempotent?: boolean | undefined
  /** Default `false`. */
  readonly readOnly?: boolean | undefined
  /** Default `false`. */
  readonly binary?: boolean | undefined
  /** Default: the reply as it is (a cast). */
  readonly decode?: ((reply: unknown) => A) | undefined
  /** An argument refused at construction (see `Command.invalid`). */
  readonly invalid?: InvalidArgument | undefined
  /** @internal */
  readonly transactional?: { readonly name: string; readonly args: ReadonlyArray<Argument> } | undefined
  /** @internal */
  readonly send?: ((client: Sender) => Promise<unknown>) | undefined
}

const variance = { _A: (_: never) => _ }

/**
 * Describes any command. Prefer the typed constructors; this is for what they do not cover.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = <A = unknown>(options: MakeOptions<A>): Command<A> => ({
  [TypeId]: variance,
  name: options.name.toUpperCase(),
  args: options.args ?? [],
  keys: options.keys ?? [],
  idempotent: options.idempotent ?? false,
  readOnly: options.readOnly ?? false,
  binary: options.binary ?? false,
  decode: options.decode ?? ((reply) => reply as A),
  invalid: options.invalid,
  transactional: options.transactional,
  send: options.send,
  vetted: false
})

/**
 * A command of the typed catalog, built as it is: its name is already upper case and its flags come from the
 * catalog's table (see internal/commands/arguments.ts). Cheaper than `make`, which normalizes what a caller gives.
 *
 * @internal
 */
export const vetted = <A>(
  name: string,
  args: ReadonlyArray<Argument>,
  keys: ReadonlyArray<number>,
  flags: { readonly idempotent: boolean; readonly readOnly: boolean },
  decode: (reply: unknown) => A,
  binary: boolean,
  invalid: InvalidArgument | undefined
): Command<A> => ({
  [TypeId]: variance,
  name,
  args,
  keys,
  idempotent: flags.idempotent,
  readOnly: flags.readOnly,
  binary,
  decode,
  invalid,
  transactional: undefined,
  send: undefined,
  vetted: true
})

/**
 * Whether a value is a `Command`.
 *
 * @since 0.2.0
 * @category guards
 */
export const isCommand = (u: unknown): u is Command<unknown> => typeof u === "object" && u !== null && TypeId in u

/**
 * The same command with its reply mapped (the function may throw a `DecodeError`).
 *
 * @since 0.2.0
 * @category combinators
 */
export const map = <A, B>(self: Command<A>, f: (a: A) => B): Command<B> => ({
  ...self,
  [TypeId]: variance,
  decode: (reply) => f(self.decode(reply))
})

/**
 * The key arguments of a command, as given (without `keyPrefix`).
 *
 * @since 0.2.0
 * @category getters
 */
export const keysOf = (self: Command<unknown>): ReadonlyArray<string> =>
  self.keys.flatMap((i) => {
    const arg = self.args[i]
    return arg === undefined ? [] : [Buffer.isBuffer(arg) ? arg.toString("latin1") : String(arg)]
  })

/**
 * Sends a command on a client (no deadline, no classification: the caller adds those).
 *
 * @internal
 */
export const sendOn = (client: Sender, self: Command<unknown>): Promise<unknown> => {
  if (self.send !== undefined) return self.send(client)
  if (self.binary) return client.callBuffer(self.name, ...(self.args as Array<Argument>))
  // The commands programs run most go through ioredis' own method, a few dozen nanoseconds cheaper than `call`.
  const method = self.vetted === true ? direct.get(self.name) : undefined
  return method !== undefined
    ? (client as unknown as Record<string, (...args: Array<Argument>) => Promise<unknown>>)[method]!(
      ...(self.args as Array<Argument>)
    )
    : client.call(self.name, ...(self.args as Array<Argument>))
}

// Catalog commands sent through ioredis' method of the same name: plain commands that ioredis neither transforms the
// arguments nor the reply of, so that the reply is what `call` would give.
const direct: ReadonlyMap<string, string> = new Map([
  ["GET", "get"],
  ["SET", "set"],
  ["MGET", "mget"],
  ["DEL", "del"],
  ["EXISTS", "exists"],
  ["INCR", "incr"],
  ["INCRBY", "incrby"],
  ["DECR", "decr"],
  ["HGET", "hget"],
  ["EXPIRE", "expire"],
  ["PEXPIRE", "pexpire"]
])

// ---------------------------------------------------------------------------------------------------------------
// Decoders: each throws a DecodeError naming the command when the reply does not have the expected shape.
// ---------------------------------------------------------------------------------------------------------------

/** @internal */
export const decodeFailure = (command: string, expected: string, reply: unknown): DecodeError =>
  new DecodeError({
    message: `${command}: expected ${expected} in the reply, got ${
      reply === null ? "null" : Array.isArray(reply) ? "an array" : typeof reply
    }`
  })

/** @internal */
export const integer = (command: string) => (reply: unknown): number => {
  if (typeof reply === "number") {
    if (!Number.isSafeInteger(reply)) throw unsafeInteger(command)
    return reply
  }
  // ioredis hands integers beyond 2^53 over as strings (stringNumbers) or as imprecise numbers: never a wrong number.
  if (typeof reply === "string" && /^-?\d+$/.test(reply)) {
    const n = Number(reply)
    if (!Number.isSafeInteger(n)) throw unsafeInteger(command)
    return n
  }
  throw decodeFailure(command, "an integer", reply)
}

const unsafeInteger = (command: string) =>
  new DecodeError({
    message: `${command}: the integer reply is beyond 2^53 and cannot be a JavaScript number exactly ` +
      "(use the command's bigint form)"
  })

/** @internal */
export const bigint = (command: string) => (reply: unknown): bigint => {
  if (typeof reply === "number" && Number.isSafeInteger(reply)) return BigInt(reply)
  if (typeof reply === "string" && /^-?\d+$/.test(reply)) return BigInt(reply)
  throw decodeFailure(command, "an integer", reply)
}

/** @internal */
export const float = (command: string) => (reply: unknown): number => {
  const n = typeof reply === "number" ? reply : typeof reply === "string" ? parseRedisFloat(reply) : Number.NaN
  if (Number.isNaN(n)) throw decodeFailure(command, "a number", reply)
  return n
}

const parseRedisFloat = (s: string): number =>
  s === "inf" || s === "+inf" ? Infinity : s === "-inf" ? -Infinity : s.trim() === "" ? Number.NaN : Number(s)

/** @internal */
export const boolean = (command: string) => (reply: unknown): boolean => integer(command)(reply) === 1

/** @internal */
export const ok = (command: string) => (reply: unknown): void => {
  if (reply !== "OK") throw decodeFailure(command, "OK", reply)
}

/** @internal */
export const written = (_command: string) => (reply: unknown): boolean => reply !== null

/** @internal */
export const string = (command: string) => (reply: unknown): string => {
  if (typeof reply === "string") return reply
  if (Buffer.isBuffer(reply)) return reply.toString()
  throw decodeFailure(command, "a string", reply)
}

/** @internal */
export const buffer = (command: string) => (reply: unknown): Buffer => {
  if (Buffer.isBuffer(reply)) return reply
  if (typeof reply === "string") return Buffer.from(reply)
  throw decodeFailure(command, "bytes", reply)
}

/** @internal */
export const optional = <A>(decode: (reply: unknown) => A) => (reply: unknown): Option.Option<A> =>
  reply === null || reply === undefined ? O.none() : O.some(decode(reply))

/** @internal */
export const array = <A>(command: string, decode: (reply: unknown) => A) => (reply: unknown): ReadonlyArray<A> => {
  if (!Array.isArray(reply)) throw decodeFailure(command, "an array", reply)
  return reply.map(decode)
}

/** @internal */
export const record = (command: string) => (reply: unknown): Record<string, string> => {
  // ioredis may already have turned the flat list into an object (its HGETALL reply transformer).
  if (typeof reply === "object" && reply !== null && !Array.isArray(reply) && !Buffer.isBuffer(reply)) {
    const out: Record<string, string> = {}
    for (const [field, value] of Object.entries(reply)) out[field] = string(command)(value)
    return out
  }
  if (!Array.isArray(reply)) throw decodeFailure(command, "an array of fields and values", reply)
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < reply.length; i += 2) out[string(command)(reply[i])] = string(command)(reply[i + 1])
  return out
}
