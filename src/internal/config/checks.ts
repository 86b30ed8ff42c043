/**
 * The checks `RedisConfig.resolve` is made of: each takes an option's path and value and either returns the value
 * typed or fails with an `InvalidRedisOptions` naming the path. Messages never quote a password, a user name or a URL.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { RedisNode, Topology } from "../../RedisConfig.ts"

/**
 * The options were rejected. `field` names the option path (`"port"`, `"reconnect.factor"`,
 * `"topology.nodes[1].port"`, `"url"`); `message` says what is wrong.
 *
 * **Gotchas**
 *
 * The message never quotes the password or the URL (which may carry the password), and, for the same reason, the
 * error does not keep the `URL` parser's exception as a cause.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRedisOptions extends Schema.TaggedError<InvalidRedisOptions>()("InvalidRedisOptions", {
  field: Schema.String,
  message: Schema.String
}) {}

export type Check<A> = Effect.Effect<A, InvalidRedisOptions>

export const invalid = (field: string, message: string): Check<never> =>
  Effect.fail(new InvalidRedisOptions({ field, message: `${field}: ${message}` }))

export const describe = (value: unknown): string => typeof value === "string" ? JSON.stringify(value) : String(value)

export const isPort = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535

export const checkPort = (field: string, value: unknown): Check<number> =>
  isPort(value) ? Effect.succeed(value) : invalid(field, `must be an integer in 1..65535, got ${describe(value)}`)

export const checkHost = (field: string, value: unknown): Check<string> =>
  typeof value === "string" && value.length > 0
    ? Effect.succeed(value)
    : invalid(field, `must be a non-empty string, got ${describe(value)}`)

export const checkInteger = (field: string, value: unknown, min: number): Check<number> =>
  typeof value === "number" && Number.isInteger(value) && value >= min
    ? Effect.succeed(value)
    : invalid(field, `must be an integer >= ${min}, got ${describe(value)}`)

export const checkBoolean = (field: string, value: unknown): Check<boolean> =>
  typeof value === "boolean" ? Effect.succeed(value) : invalid(field, `must be a boolean, got ${describe(value)}`)

export const checkString = (field: string, value: unknown): Check<string> =>
  typeof value === "string" ? Effect.succeed(value) : invalid(field, `must be a string, got ${describe(value)}`)

export const checkDuration = (
  field: string,
  input: Duration.Input,
  options?: { readonly allowZero?: boolean }
): Check<Duration.Duration> => {
  const decoded = Duration.fromInput(input)
  if (Option.isNone(decoded)) {
    return invalid(field, `must be a Duration.Input such as "2 seconds" or 2000 (millis), got ${describe(input)}`)
  }
  const duration = decoded.value
  if (!Duration.isFinite(duration)) return invalid(field, `must be finite, got ${Duration.format(duration)}`)
  if (Duration.isNegative(duration) || (Duration.isZero(duration) && options?.allowZero !== true)) {
    return invalid(field, `must be ${options?.allowZero === true ? ">= 0" : "> 0"}, got ${Duration.format(duration)}`)
  }
  return Effect.succeed(duration)
}

// CLIENT SETNAME rejects spaces and anything outside printable ASCII.
export const checkConnectionName = (value: unknown): Check<string> =>
  typeof value === "string" && /^[!-~]+$/.test(value)
    ? Effect.succeed(value)
    : invalid("connectionName", `must be non-empty printable ASCII without spaces, got ${describe(value)}`)

export const checkTopology = (topology: unknown): Check<Topology> => {
  const nodes = (field: string, value: unknown): Check<ReadonlyArray<RedisNode>> =>
    Array.isArray(value) && value.length > 0
      ? Effect.forEach(value, (node: unknown, i) =>
        Effect.all({
          host: checkHost(`${field}[${i}].host`, (node as Partial<RedisNode> | undefined)?.host),
          port: checkPort(`${field}[${i}].port`, (node as Partial<RedisNode> | undefined)?.port)
        }))
      : invalid(field, "must be a non-empty array of { host, port }")
  const tag = (topology as { readonly _tag?: unknown } | undefined)?._tag
  switch (tag) {
    case "Standalone":
      return Effect.succeed({ _tag: "Standalone" })
    case "Sentinel": {
      const sentinel = topology as Extract<Topology, { _tag: "Sentinel" }>
      return Effect.all({
        sentinels: nodes("topology.sentinels", sentinel.sentinels),
        name: checkHost("topology.name", sentinel.name)
      }).pipe(Effect.map(({ name, sentinels }) => ({ _tag: "Sentinel", sentinels, name })))
    }
    case "Cluster":
      return nodes("topology.nodes", (topology as Extract<Topology, { _tag: "Cluster" }>).nodes).pipe(
        Effect.map((nodes) => ({ _tag: "Cluster", nodes }))
      )
    default:
      return invalid("topology", `_tag must be "Standalone", "Sentinel" or "Cluster", got ${describe(tag)}`)
  }
}

/** The option if given, else the fallback. */
export const orElse = <A>(value: A | undefined, fallback: A): A => value === undefined ? fallback : value
