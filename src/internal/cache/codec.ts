/**
 * What stands between a cached value and its stored text: encoding under a size limit, counted in UTF-8 bytes, and
 * the `DecodeError` a stored value and the `EncodeError` a value to write turn into. Pure: no Redis, no clock.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import type * as Schema from "effect/Schema"
import type { ValueCodec } from "../../RedisCache.ts"
import { DecodeError, EncodeError } from "../../RedisError.ts"
import { redactValues } from "../errors/scrub.ts"

/** What encoding a value for a write gave. */
export type Encoded =
  | { readonly _tag: "Encoded"; readonly text: string }
  | { readonly _tag: "Unencodable"; readonly failure: Exit.Failure<unknown, Schema.SchemaError> }
  | { readonly _tag: "TooLarge"; readonly bytes: number; readonly maxBytes: number }

/** The message of a Schema failure, for logs and error messages. */
export const schemaMessage = (exit: Exit.Failure<unknown, Schema.SchemaError>): string => {
  const error = Cause.squash(exit.cause)
  // What the Schema expected, never the value it was given.
  return redactValues(error instanceof Error ? error.message : String(error))
}

/**
 * The UTF-8 size of `text` when it is larger than `max`, else `undefined`. Short strings are not counted at all: a
 * UTF-16 unit is at most 3 bytes, so `length * 3 <= max` cannot exceed.
 */
export const exceeds = (text: string, max: number): number | undefined => {
  if (text.length * 3 <= max) return undefined
  const bytes = Buffer.byteLength(text, "utf8")
  return bytes > max ? bytes : undefined
}

/** Encodes `value`, refusing text over `maxBytes` (no limit when `undefined`). */
export const encodeForWrite = <A>(codec: ValueCodec<A>, value: A, maxBytes: number | undefined): Encoded => {
  const encoded = codec.encode(value)
  if (Exit.isFailure(encoded)) return { _tag: "Unencodable", failure: encoded }
  const bytes = maxBytes === undefined ? undefined : exceeds(encoded.value, maxBytes)
  return bytes === undefined
    ? { _tag: "Encoded", text: encoded.value }
    : { _tag: "TooLarge", bytes, maxBytes: maxBytes! }
}

/** The message of `ValueTooLarge`, also logged when a computed value is too large to cache. */
export const tooLargeMessage = (bytes: number, maxBytes: number): string =>
  `A value is ${bytes} bytes encoded, more than the limit of ${maxBytes}; it was not written`

/** A value to write that its Schema does not encode: nothing was sent. */
export const cannotEncode = (key: string, failure: Exit.Failure<unknown, Schema.SchemaError>): EncodeError =>
  new EncodeError({
    message: `Cannot encode the value: ${schemaMessage(failure)}`,
    key,
    cause: Cause.squash(failure.cause)
  })

/** A stored value that its Schema does not decode. */
export const doesNotMatch = (key: string, failure: Exit.Failure<unknown, Schema.SchemaError>): DecodeError =>
  new DecodeError({
    message: `The value stored does not match its schema: ${schemaMessage(failure)}`,
    key,
    cause: Cause.squash(failure.cause)
  })
