/**
 * Channel names and typed channels, defined once for the whole app.
 *
 * `buildRedisChannelName` joins parts with `:` and refuses empty parts and glob characters, so that a name built from
 * user input can never subscribe to more than it says. `RedisChannel.make` pairs a name with the Schema of its
 * payload: publishing encodes (a value that does not encode never reaches the wire), subscribing decodes (a message
 * that does not decode becomes an `Invalid` event, carrying its `DecodeError`, instead of ending the stream).
 * `RedisChannel.registry` defines an app's channels in one place, under one prefix.
 *
 * **Example**
 *
 * ```ts
 * import { Schema } from "effect"
 * import { RedisChannel } from "effect-redis-resilience"
 *
 * export const Channels = RedisChannel.registry("shop", {
 *   orderPlaced: Schema.Struct({ id: Schema.String, total: Schema.Number }),
 *   stockChanged: Schema.Struct({ sku: Schema.String, count: Schema.Number })
 * })
 * Channels.orderPlaced.name // "shop:orderPlaced"
 * ```
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { redactValues } from "./internal/errors/scrub.ts"
import { DecodeError, EncodeError, type RedisError } from "./RedisError.ts"
import { RedisService } from "./RedisService.ts"

/**
 * A channel name part was empty or contained a glob character (`*`, `?`, `[`, `]`).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidChannelName extends Data.TaggedError("InvalidChannelName")<{
  readonly message: string
  readonly name: string
}> {}

const GLOB = /[*?[\]]/

/**
 * Checks a complete channel name (for plain, non-pattern subscriptions and publishing).
 *
 * @since 0.1.0
 * @category names
 */
export const validateChannelName = (name: string): InvalidChannelName | undefined => {
  if (name.length === 0) return new InvalidChannelName({ message: "A channel name cannot be empty", name })
  if (GLOB.test(name)) {
    return new InvalidChannelName({
      message: `Channel name ${JSON.stringify(name)} contains a glob character (*, ?, [ or ]); ` +
        "use a pattern subscription if a pattern is meant",
      name
    })
  }
  return undefined
}

/**
 * Joins parts with `:`. Throws `InvalidChannelName` for an empty part or a part with a glob character.
 *
 * @since 0.1.0
 * @category names
 */
export const buildRedisChannelName = (...parts: ReadonlyArray<string>): string => {
  if (parts.length === 0) throw new InvalidChannelName({ message: "A channel name needs at least one part", name: "" })
  parts.forEach((part, index) => {
    if (part.length === 0) {
      throw new InvalidChannelName({
        message: `Channel name part ${index} is empty in ${JSON.stringify(parts.join(":"))}`,
        name: parts.join(":")
      })
    }
    if (GLOB.test(part)) {
      throw new InvalidChannelName({
        message: `Channel name part ${JSON.stringify(part)} contains a glob character (*, ?, [ or ])`,
        name: parts.join(":")
      })
    }
  })
  return parts.join(":")
}

const TypeId = "~effect-redis-resilience/RedisChannel"

/**
 * A channel with a typed payload. The payload travels as JSON.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisChannel<A, I = unknown> {
  readonly [TypeId]: typeof TypeId
  readonly name: string
  readonly schema: Schema.Codec<A, I>
  /** Encodes a payload for the wire; fails with `EncodeError` (nothing is sent). */
  readonly encode: (value: A) => Effect.Effect<string, EncodeError>
  /** Decodes a message from the wire; fails with `DecodeError`. */
  readonly decode: (message: string) => Effect.Effect<A, DecodeError>
}

/**
 * A channel, or a plain channel name.
 *
 * @since 0.1.0
 * @category models
 */
export type ChannelLike = string | RedisChannel<any, any>

/**
 * @since 0.1.0
 * @category guards
 */
export const isRedisChannel = (u: unknown): u is RedisChannel<unknown, unknown> =>
  typeof u === "object" && u !== null && TypeId in u

/**
 * The name of a channel or of a plain name.
 *
 * @since 0.1.0
 * @category names
 */
export const nameOf = (channel: ChannelLike): string => typeof channel === "string" ? channel : channel.name

/**
 * Defines a typed channel. `name` is a string or the parts of one (joined with `buildRedisChannelName`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, I>(options: {
  readonly name: string | ReadonlyArray<string>
  readonly schema: Schema.Codec<A, I>
}): RedisChannel<A, I> => {
  const name = typeof options.name === "string"
    ? buildRedisChannelName(...options.name.split(":"))
    : buildRedisChannelName(...options.name)
  const json = Schema.fromJsonString(Schema.toCodecJson(options.schema))
  const encodeJson = Schema.encodeEffect(json)
  const decodeJson = Schema.decodeUnknownEffect(json)
  return {
    [TypeId]: TypeId,
    name,
    schema: options.schema,
    encode: (value) =>
      encodeJson(value).pipe(
        Effect.mapError((cause) =>
          new EncodeError({ message: `Cannot encode a channel's payload: ${redactValues(cause.message)}`, cause })
        )
      ),
    decode: (message) =>
      decodeJson(message).pipe(
        Effect.mapError((cause) =>
          new DecodeError({
            message: `A channel's message does not match its schema: ${redactValues(cause.message)}`,
            cause
          })
        )
      )
  }
}

/**
 * Defines an app's channels in one place: `registry(prefix, { key: schema })` gives `{ key: RedisChannel }` with
 * names `prefix:key`. Throws `InvalidChannelName` for a bad name.
 *
 * @since 0.1.0
 * @category constructors
 */
export const registry = <const Schemas extends Record<string, Schema.Codec<any, any>>>(
  prefix: string | ReadonlyArray<string>,
  schemas: Schemas
): { readonly [K in keyof Schemas]: RedisChannel<Schemas[K]["Type"], Schemas[K]["Encoded"]> } => {
  const parts = typeof prefix === "string" ? prefix.split(":") : prefix
  const out: Record<string, RedisChannel<any, any>> = {}
  for (const [key, schema] of Object.entries(schemas)) {
    out[key] = make({ name: [...parts, key], schema })
  }
  return out as any
}

/**
 * Options of `publish`.
 *
 * @since 0.1.0
 * @category publishing
 */
export interface PublishOptions {
  /**
   * Publish with `SPUBLISH` (sharded pub/sub, Redis >= 7): only subscribers of a `RedisSubscriber` with
   * `sharded: true` (`SSUBSCRIBE`) receive it, and classic ones do not. On a Cluster it goes to the master owning the
   * channel's slot. Default false (`PUBLISH`).
   */
  readonly sharded?: boolean | undefined
}

/**
 * Publishes on a channel. A typed channel encodes the value with its Schema first: a value that does not encode fails
 * with `EncodeError` and nothing is sent. Returns the number of subscribers that received it. Not idempotent: never
 * resent after a connection failure. `{ sharded: true }` publishes with `SPUBLISH`, for sharded subscribers.
 *
 * @since 0.1.0
 * @category publishing
 */
export const publish: {
  <A, I>(
    channel: RedisChannel<A, I>,
    value: A,
    options?: PublishOptions
  ): Effect.Effect<number, RedisError | InvalidChannelName, RedisService>
  (
    channel: string,
    message: string,
    options?: PublishOptions
  ): Effect.Effect<number, RedisError | InvalidChannelName, RedisService>
} = (
  channel: ChannelLike,
  value: unknown,
  options?: PublishOptions
): Effect.Effect<number, RedisError | InvalidChannelName, RedisService> =>
  Effect.gen(function*() {
    const name = nameOf(channel)
    const invalid = validateChannelName(name)
    if (invalid !== undefined) return yield* invalid
    const message = typeof channel === "string" ? String(value) : yield* channel.encode(value)
    const redis = yield* RedisService
    return options?.sharded === true
      ? yield* redis.command<number>("SPUBLISH", [name, message])
      : yield* redis.publish(name, message)
  })
