/**
 * Typed replies beyond strings: `withSchema` decodes a command's string reply with an effect `Schema` (a number, a
 * JSON document, a branded id, ...). Running the command then fails with `DecodeError` when the reply does not fit.
 *
 * @internal
 */
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as O from "effect/Option"
import * as Schema from "effect/Schema"
import { DecodeError } from "../../RedisError.ts"
import { type Command, decodeFailure, keysOf, map } from "../command.ts"

/**
 * The replies `withSchema` decodes: a string, an optional string, lists of them, or a record of strings.
 *
 * @since 0.2.0
 * @category models
 */
export type SchemaReply =
  | string
  | O.Option<string>
  | ReadonlyArray<string>
  | ReadonlyArray<O.Option<string>>
  | Readonly<Record<string, string>>

/**
 * The reply of a command decoded with a Schema of `A`: the same shape, with `A` in place of each string.
 *
 * @since 0.2.0
 * @category models
 */
export type WithSchema<R, A> = [R] extends [string] ? A
  : [R] extends [O.Option<string>] ? O.Option<A>
  : [R] extends [ReadonlyArray<O.Option<string>>] ? ReadonlyArray<O.Option<A>>
  : [R] extends [ReadonlyArray<string>] ? ReadonlyArray<A>
  : [R] extends [Readonly<Record<string, string>>] ? Record<string, A>
  : never

/**
 * Decodes a command's reply with a Schema whose encoded side is a string: `get` gives `Option<A>` (the Schema applies
 * inside the Option; a missing key stays `None`), `mget`/`hmget` a list of them, `hgetall` a record, `lrange` a list.
 * A reply that does not fit fails the run with `DecodeError` (the Schema's error as its `cause`; the message names the
 * command, never the value).
 *
 * **Example**
 *
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Command, RedisService } from "effect-redis-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const redis = yield* RedisService
 *   // Option<number>; DecodeError when the value is not a number
 *   return yield* redis.run(Command.withSchema(Command.get("visits"), Schema.FiniteFromString))
 * })
 * ```
 *
 * @since 0.2.0
 * @category combinators
 */
export const withSchema: {
  <A>(schema: Schema.Codec<A, string>): <R extends SchemaReply>(self: Command<R>) => Command<WithSchema<R, A>>
  <R extends SchemaReply, A>(self: Command<R>, schema: Schema.Codec<A, string>): Command<WithSchema<R, A>>
} = dual(2, <R extends SchemaReply, A>(
  self: Command<R>,
  schema: Schema.Codec<A, string>
): Command<WithSchema<R, A>> => {
  const decode = Schema.decodeUnknownExit(schema)
  const key = keysOf(self)[0]
  const one = (value: unknown): A => {
    if (typeof value !== "string") throw decodeFailure(self.name, "a string", value)
    const exit = decode(value)
    if (Exit.isSuccess(exit)) return exit.value
    throw new DecodeError({
      message: `${self.name}: the reply does not match the schema`,
      ...(key === undefined ? {} : { key }),
      cause: exit.cause
    })
  }
  const optionOrOne = (value: unknown) => (O.isOption(value) ? O.map(value, one) : one(value))
  return map(self, (reply: R): unknown => {
    if (typeof reply === "string" || O.isOption(reply)) return optionOrOne(reply)
    if (Array.isArray(reply)) return reply.map(optionOrOne)
    const out: Record<string, A> = {}
    for (const [field, value] of Object.entries(reply)) {
      if (field === "__proto__") Object.defineProperty(out, field, { value: one(value), enumerable: true })
      else out[field] = one(value)
    }
    return out
  }) as Command<WithSchema<R, A>>
})
