/**
 * How the command catalog builds its commands: values as strings or bytes, keys given one by one or as arrays, the
 * two shapes of command (a read; a write, idempotent or not, as the table in `traits.ts` says), and the checks made
 * at construction. A refused argument (a zero TTL, a negative count, a NaN score) becomes the command's `invalid`:
 * running it fails with that `InvalidArgument` and nothing is sent. Messages name the argument, never its value.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as O from "effect/Option"
import { InvalidArgument } from "../../RedisError.ts"
import { type Argument, type Command, vetted } from "../command.ts"
import { type CommandName, type ReadName, traitsFor, type WriteName } from "./traits.ts"

/**
 * A value sent as an argument: a string (sent as UTF-8) or bytes (sent as they are, so that any value round-trips).
 *
 * @since 0.2.0
 * @category models
 */
export type Value = string | Buffer

/**
 * Keys given one by one or as arrays: `del("a", "b")`, `del(keys)`.
 *
 * @since 0.2.0
 * @category models
 */
export type Keys = ReadonlyArray<string | ReadonlyArray<string>>

/** @internal */
export const flatten = (keys: Keys): ReadonlyArray<string> =>
  // One array is taken as it is, not spread: a million keys must not overflow the stack.
  keys.length === 1 && typeof keys[0] !== "string" ? keys[0]! : keys.flat()

/** `count` positions from `from`, every `step`-th (MSET's keys are every other argument). @internal */
export const positions = (from: number, count: number, step = 1): Array<number> =>
  Array.from({ length: count }, (_, i) => from + i * step)

interface BuildOptions {
  readonly binary?: boolean | undefined
  readonly invalid?: InvalidArgument | undefined
}

/**
 * A command of any kind: whether it is idempotent (retried once after a lost connection) and read-only comes from
 * the table in `traits.ts`, for its name and arguments.
 *
 * @internal
 */
export const command = <A>(
  name: CommandName,
  args: ReadonlyArray<Argument>,
  keys: ReadonlyArray<number>,
  decode: (reply: unknown) => A,
  options?: BuildOptions
): Command<A> =>
  vetted(name, args, keys, traitsFor(name, args), decode, options?.binary ?? false, options?.invalid)

/** A read: a command the table lists as read-only (hence idempotent). @internal */
export const read: <A>(
  name: ReadName,
  args: ReadonlyArray<Argument>,
  keys: ReadonlyArray<number>,
  decode: (reply: unknown) => A,
  options?: BuildOptions
) => Command<A> = command

/** A write: whether it is idempotent comes from the table (for some, from the arguments: SET NX). @internal */
export const write: <A>(
  name: WriteName,
  args: ReadonlyArray<Argument>,
  keys: ReadonlyArray<number>,
  decode: (reply: unknown) => A,
  options?: BuildOptions
) => Command<A> = command

/**
 * The checks of one command's arguments. Each returns a value to send (a placeholder when refused) and remembers
 * the first refusal in `invalid`.
 *
 * @internal
 */
export class Check {
  readonly command: string
  invalid: InvalidArgument | undefined = undefined

  constructor(command: string) {
    this.command = command
  }

  /** Refuses `argument` (the first refusal wins). */
  refuse(argument: string, requirement: string): void {
    this.invalid ??= new InvalidArgument({
      message: `${this.command}: ${argument} ${requirement}`,
      command: this.command,
      argument
    })
  }

  /** Whole milliseconds, a sub-millisecond duration rounded up; zero, negative, NaN and infinite are refused. */
  millis(argument: string, input: Duration.Input): number {
    const ms = toMillis(input)
    if (ms > 0 && Number.isFinite(ms)) return Math.ceil(ms)
    this.refuse(argument, "must be a positive, finite duration")
    return 1
  }

  /** Whole seconds, rounded up (a TTL never ends earlier than asked); as `millis`. */
  seconds(argument: string, input: Duration.Input): number {
    return Math.ceil(this.millis(argument, input) / 1000)
  }

  /** Whole milliseconds where zero is allowed (an idle time). */
  idle(argument: string, input: Duration.Input): number {
    const ms = toMillis(input)
    if (ms >= 0 && Number.isFinite(ms)) return Math.ceil(ms)
    this.refuse(argument, "must be a finite duration, zero or more")
    return 0
  }

  /** A unix time in milliseconds (a `Date` or a number of milliseconds), zero or more. */
  epochMillis(argument: string, at: Date | number): number {
    const ms = typeof at === "number" ? at : at.getTime()
    if (ms >= 0 && Number.isFinite(ms)) return Math.ceil(ms)
    this.refuse(argument, "must be a valid time, not before 1970")
    return 0
  }

  /** A safe integer, zero or more. */
  count(argument: string, n: number): number {
    if (Number.isSafeInteger(n) && n >= 0) return n
    this.refuse(argument, "must be an integer, zero or more")
    return 0
  }

  /** A safe integer, one or more. */
  positive(argument: string, n: number): number {
    if (Number.isSafeInteger(n) && n > 0) return n
    this.refuse(argument, "must be an integer, one or more")
    return 1
  }

  /** A safe integer (negative allowed). */
  integer(argument: string, n: number): number {
    if (Number.isSafeInteger(n)) return n
    this.refuse(argument, "must be an integer")
    return 0
  }

  /** A finite number. */
  finite(argument: string, n: number): number {
    if (Number.isFinite(n)) return n
    this.refuse(argument, "must be a finite number")
    return 0
  }

  /** A sorted-set score or score bound: NaN refused, infinities sent as Redis spells them. */
  score(argument: string, n: number): Argument {
    if (Number.isNaN(n) || typeof n !== "number") {
      this.refuse(argument, "must be a number (not NaN)")
      return 0
    }
    return n === Infinity ? "+inf" : n === -Infinity ? "-inf" : n
  }

  /** At least one of something (a command that takes none is a Redis syntax error). */
  nonEmpty(argument: string, size: number): void {
    if (size === 0) this.refuse(argument, "must not be empty")
  }
}

const toMillis = (input: Duration.Input): number => {
  const duration = Duration.fromInput(input)
  // A NaN number becomes a zero duration; both are refused by the callers.
  return O.isSome(duration) && !(typeof input === "number" && Number.isNaN(input))
    ? Duration.toMillis(duration.value)
    : Number.NaN
}
