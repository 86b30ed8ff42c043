/**
 * How the Redis layer is configured: the options a caller passes (`RedisOptions`), the documented defaults, the
 * validation that turns options into a complete `ResolvedRedisConfig`, and `config`, which reads the same options
 * from the environment (`REDIS_URL`, `REDIS_HOST`, ...) through effect's `Config`. Every other module reads its
 * settings from a `ResolvedRedisConfig`, so this file is the single source of truth for names, defaults and limits.
 *
 * The password stays `Redacted` from the moment it is read: a resolved config prints as a redacted summary in
 * `String(...)`, `JSON.stringify`, `util.inspect` and effect's loggers (password and user name as `<redacted>`; the
 * URL is not kept), and no validation message ever quotes the password, the user name or the URL.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { NodeInspectSymbol } from "effect/Inspectable"
import * as Option from "effect/Option"
import * as Redactable from "effect/Redactable"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { ConnectionOptions } from "node:tls"

// -----------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------

/**
 * A Redis server address, used by the Sentinel and Cluster topologies.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisNode {
  readonly host: string
  readonly port: number
}

/**
 * Where Redis runs.
 *
 * - `Standalone` (the default): one server, addressed by `url` / `host` / `port`.
 * - `Sentinel`: the master called `name`, discovered through the given sentinels. `host` / `port` are ignored;
 *   `username`, `password`, `db` and `tls` apply to the master.
 * - `Cluster`: a Redis Cluster, discovered from the given seed `nodes`. `host` / `port` are ignored and `db` must be 0.
 *
 * @since 0.1.0
 * @category models
 */
export type Topology =
  | { readonly _tag: "Standalone" }
  | { readonly _tag: "Sentinel"; readonly sentinels: ReadonlyArray<RedisNode>; readonly name: string }
  | { readonly _tag: "Cluster"; readonly nodes: ReadonlyArray<RedisNode> }

/**
 * What a caller may configure. Every field is optional; `resolve` fills in the defaults (see `defaults` and
 * docs/configuration.md) and validates the result.
 *
 * **Precedence**: an explicit option wins over the same part of `url`, which wins over the default. For example
 * `{ url: "rediss://h:6380/2", db: 5 }` connects to `h:6380`, database 5, with TLS; `tls: false` would turn TLS off
 * even for `rediss://`.
 *
 * **Gotchas**
 *
 * - Pass `password` (or a `url` carrying one) as `Redacted.make(...)` if the options object itself may be logged:
 *   only the resolved config is guaranteed to print redacted.
 * - Durations accept any `Duration.Input` (`"2 seconds"`, `2000`, `Duration.seconds(2)`, ...) and must be finite.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisOptions {
  /**
   * `redis://[username][:password]@host[:port][/db]`, or `rediss://` for TLS. Username and password are
   * percent-decoded; IPv6 hosts are written in brackets (`redis://[::1]:6380`). Query strings are rejected.
   */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /** Default `127.0.0.1`. */
  readonly host?: string | undefined
  /** Default `6379`. */
  readonly port?: number | undefined
  /** Default `0`. */
  readonly db?: number | undefined
  /** ACL user name. Default: none (the `default` user). */
  readonly username?: string | undefined
  /** Kept `Redacted` once resolved. An empty password means no password. */
  readonly password?: string | Redacted.Redacted<string> | undefined
  /** `true`, or Node TLS options, to connect over TLS. Default `false` (`true` for `rediss://`). */
  readonly tls?: boolean | ConnectionOptions | undefined
  /** Prepended to every key (ioredis `keyPrefix`). Default `""`. */
  readonly keyPrefix?: string | undefined
  /** Sent with `CLIENT SETNAME`; printable ASCII without spaces. Default: none. */
  readonly connectionName?: string | undefined
  /** How long one connection attempt may take (TCP, TLS, AUTH, SELECT). Default 5 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /** How long a sent command may wait for its reply. Default 2 seconds. */
  readonly commandTimeout?: Duration.Input | undefined
  /** How long a command may wait for a ready connection before failing. Default 1 second. */
  readonly acquireTimeout?: Duration.Input | undefined
  /** Backoff between reconnect attempts. */
  readonly reconnect?: {
    /** First delay. Default 100 millis. */
    readonly base?: Duration.Input | undefined
    /** Growth per attempt, >= 1. Default 2. */
    readonly factor?: number | undefined
    /** Upper bound of any delay, jitter included; >= `base`. Default 5 seconds. */
    readonly cap?: Duration.Input | undefined
    /** Scale each delay by a random factor in [0.8, 1.2]. Default `true`. */
    readonly jitter?: boolean | undefined
    /** Failure signals within this window collapse into one reconnect cycle; may be 0. Default 50 millis. */
    readonly debounce?: Duration.Input | undefined
  } | undefined
  /** PING supervision of the connection; `false` disables it. */
  readonly heartbeat?:
    | {
      /** Time between PINGs. Default 1 second. */
      readonly interval?: Duration.Input | undefined
      /** How long one PING may take; <= `interval`. Default 500 millis. */
      readonly timeout?: Duration.Input | undefined
      /** Consecutive failed PINGs before the connection is dropped. Default 2. */
      readonly misses?: number | undefined
    }
    | false
    | undefined
  /** Circuit breaker in front of every command. */
  readonly breaker?: {
    /** Consecutive transient failures that open the circuit. Default 5. */
    readonly failureThreshold?: number | undefined
    /** How long the circuit stays open the first time. Default 1 second. */
    readonly openDuration?: Duration.Input | undefined
    /** The open time doubles on each re-open up to this; >= `openDuration`. Default 30 seconds. */
    readonly maxOpenDuration?: Duration.Input | undefined
  } | undefined
  /** Default `{ _tag: "Standalone" }`. */
  readonly topology?: Topology | undefined
  /**
   * ioredis auto-pipelining. The layer already sends the commands issued in one tick in one socket write on one
   * server and behind Sentinel (and is faster that way); on a Cluster, whose node sockets it does not coalesce,
   * this is the option that batches per node. Default `false`. See docs/benchmarks.md.
   */
  readonly autoPipelining?: boolean | undefined
  /**
   * ioredis options the layer does not cover, passed through to the client: e.g. `sentinelPassword`,
   * `sentinelTLS`/`enableTLSForSentinelMode`, `natMap`, `dnsLookup`, `scaleReads` (Cluster), `family`, `keepAlive`,
   * `noDelay`. The options the layer owns are refused with `InvalidRedisOptions` naming them (see `ownedIORedisOptions`):
   * retries, queueing, resending, reconnection and what has an option of its own here.
   */
  readonly ioredis?: Readonly<Record<string, unknown>> | undefined
  /**
   * `false` (default): the layer builds even while Redis is down and connects in the background. `true`: building
   * the layer waits for the first ready connection, at most `connectTimeout`, and fails otherwise.
   */
  readonly awaitReady?: boolean | undefined
}

/**
 * The complete, validated configuration every other module reads: defaults filled in, URL parsed, durations decoded.
 *
 * **Gotchas**
 *
 * Values built by `resolve` (and `defaults`) print as the `redact` summary in `String(...)`, `JSON.stringify`,
 * `util.inspect` and effect's log formatters, so the password, the user name and TLS keys never reach a log. A copy
 * made with object spread keeps `password` redacted but not the user name or the TLS options: log `redact(config)`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedRedisConfig {
  readonly host: string
  readonly port: number
  readonly db: number
  readonly username: string | undefined
  readonly password: Redacted.Redacted<string> | undefined
  /** `false` when TLS is off, `true` for Node's defaults, or the caller's TLS options. */
  readonly tls: boolean | ConnectionOptions
  readonly keyPrefix: string
  readonly connectionName: string | undefined
  readonly connectTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
  readonly acquireTimeout: Duration.Duration
  readonly reconnect: {
    readonly base: Duration.Duration
    readonly factor: number
    readonly cap: Duration.Duration
    readonly jitter: boolean
    readonly debounce: Duration.Duration
  }
  /** `undefined` when the heartbeat is disabled (`heartbeat: false`). */
  readonly heartbeat: {
    readonly interval: Duration.Duration
    readonly timeout: Duration.Duration
    readonly misses: number
  } | undefined
  readonly breaker: {
    readonly failureThreshold: number
    readonly openDuration: Duration.Duration
    readonly maxOpenDuration: Duration.Duration
  }
  readonly topology: Topology
  readonly autoPipelining: boolean
  readonly awaitReady: boolean
  /** The ioredis options passed through (see `RedisOptions.ioredis`); rendered by name only. */
  readonly ioredis: Readonly<Record<string, unknown>>
}

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

// -----------------------------------------------------------------------------
// redaction
// -----------------------------------------------------------------------------

/**
 * A resolved config that is safe to print: durations formatted (`"5s"`), the password and the user name replaced by
 * `"<redacted>"` (an ACL user name is half of a credential), and TLS options reduced to their plain settings with
 * `key`, `passphrase`, `pfx` and every non-primitive value replaced.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisConfigSummary {
  readonly host: string
  readonly port: number
  readonly db: number
  readonly username: string | undefined
  readonly password: string | undefined
  readonly tls: boolean | Readonly<Record<string, string | number | boolean | null>>
  readonly keyPrefix: string
  readonly connectionName: string | undefined
  readonly connectTimeout: string
  readonly commandTimeout: string
  readonly acquireTimeout: string
  readonly reconnect: {
    readonly base: string
    readonly factor: number
    readonly cap: string
    readonly jitter: boolean
    readonly debounce: string
  }
  readonly heartbeat: { readonly interval: string; readonly timeout: string; readonly misses: number } | false
  readonly breaker: {
    readonly failureThreshold: number
    readonly openDuration: string
    readonly maxOpenDuration: string
  }
  readonly topology: Topology
  readonly autoPipelining: boolean
  readonly awaitReady: boolean
  readonly ioredis: ReadonlyArray<string>
}

const secretTlsKeys: ReadonlySet<string> = new Set(["key", "passphrase", "pfx", "secureContext", "pskCallback"])

const redactTls = (tls: boolean | ConnectionOptions): RedisConfigSummary["tls"] => {
  if (typeof tls === "boolean") return tls
  const out: Record<string, string | number | boolean | null> = {}
  for (const [key, value] of Object.entries(tls)) {
    if (value === undefined) continue
    if (secretTlsKeys.has(key)) out[key] = "<redacted>"
    else if (value === null || typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
      out[key] = value
    } else out[key] = "<set>"
  }
  return out
}

/**
 * A printable summary of a resolved config (see `RedisConfigSummary`). This is what resolved configs show in
 * `String(...)`, `JSON.stringify`, `util.inspect` and logs; call it to log a config copied with spread.
 *
 * @since 0.1.0
 * @category redaction
 */
export const redact = (config: ResolvedRedisConfig): RedisConfigSummary => ({
  host: config.host,
  port: config.port,
  db: config.db,
  username: config.username === undefined ? undefined : "<redacted>",
  password: config.password === undefined ? undefined : String(config.password),
  tls: redactTls(config.tls),
  keyPrefix: config.keyPrefix,
  connectionName: config.connectionName,
  connectTimeout: Duration.format(config.connectTimeout),
  commandTimeout: Duration.format(config.commandTimeout),
  acquireTimeout: Duration.format(config.acquireTimeout),
  reconnect: {
    base: Duration.format(config.reconnect.base),
    factor: config.reconnect.factor,
    cap: Duration.format(config.reconnect.cap),
    jitter: config.reconnect.jitter,
    debounce: Duration.format(config.reconnect.debounce)
  },
  heartbeat: config.heartbeat === undefined ? false : {
    interval: Duration.format(config.heartbeat.interval),
    timeout: Duration.format(config.heartbeat.timeout),
    misses: config.heartbeat.misses
  },
  breaker: {
    failureThreshold: config.breaker.failureThreshold,
    openDuration: Duration.format(config.breaker.openDuration),
    maxOpenDuration: Duration.format(config.breaker.maxOpenDuration)
  },
  topology: config.topology,
  autoPipelining: config.autoPipelining,
  awaitReady: config.awaitReady,
  // Names only: a sentinelPassword or a TLS key must not be printed.
  ioredis: Object.keys(config.ioredis)
})

const ResolvedProto = {
  toJSON(this: ResolvedRedisConfig) {
    return redact(this)
  },
  toString(this: ResolvedRedisConfig) {
    return `RedisConfig(${JSON.stringify(redact(this))})`
  },
  [NodeInspectSymbol](this: ResolvedRedisConfig) {
    return redact(this)
  },
  [Redactable.symbolRedactable](this: ResolvedRedisConfig) {
    return redact(this)
  }
}

const defaultHeartbeat = { interval: Duration.seconds(1), timeout: Duration.millis(500), misses: 2 } as const

const makeResolved = (fields: ResolvedRedisConfig): ResolvedRedisConfig =>
  Object.assign(Object.create(ResolvedProto), fields)

// -----------------------------------------------------------------------------
// defaults
// -----------------------------------------------------------------------------

/**
 * The documented defaults: `127.0.0.1:6379`, db 0, no TLS, connectTimeout 5 s, commandTimeout 2 s,
 * acquireTimeout 1 s, reconnect 100 ms × 2 up to 5 s with jitter and a 50 ms debounce, heartbeat every 1 s with a
 * 500 ms timeout and 2 misses, breaker 5 failures / 1 s open up to 30 s, Standalone, no auto-pipelining,
 * `awaitReady: false`.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaults: ResolvedRedisConfig = makeResolved({
  host: "127.0.0.1",
  port: 6379,
  db: 0,
  username: undefined,
  password: undefined,
  tls: false,
  keyPrefix: "",
  connectionName: undefined,
  connectTimeout: Duration.seconds(5),
  commandTimeout: Duration.seconds(2),
  acquireTimeout: Duration.seconds(1),
  reconnect: {
    base: Duration.millis(100),
    factor: 2,
    cap: Duration.seconds(5),
    jitter: true,
    debounce: Duration.millis(50)
  },
  heartbeat: defaultHeartbeat,
  breaker: {
    failureThreshold: 5,
    openDuration: Duration.seconds(1),
    maxOpenDuration: Duration.seconds(30)
  },
  topology: { _tag: "Standalone" },
  autoPipelining: false,
  ioredis: {},
  awaitReady: false
})

// -----------------------------------------------------------------------------
// validation
// -----------------------------------------------------------------------------

type Check<A> = Effect.Effect<A, InvalidRedisOptions>

const invalid = (field: string, message: string): Check<never> =>
  Effect.fail(new InvalidRedisOptions({ field, message: `${field}: ${message}` }))

const describe = (value: unknown): string => typeof value === "string" ? JSON.stringify(value) : String(value)

const isPort = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535

const checkPort = (field: string, value: unknown): Check<number> =>
  isPort(value) ? Effect.succeed(value) : invalid(field, `must be an integer in 1..65535, got ${describe(value)}`)

const checkHost = (field: string, value: unknown): Check<string> =>
  typeof value === "string" && value.length > 0
    ? Effect.succeed(value)
    : invalid(field, `must be a non-empty string, got ${describe(value)}`)

const checkInteger = (field: string, value: unknown, min: number): Check<number> =>
  typeof value === "number" && Number.isInteger(value) && value >= min
    ? Effect.succeed(value)
    : invalid(field, `must be an integer >= ${min}, got ${describe(value)}`)

const checkBoolean = (field: string, value: unknown): Check<boolean> =>
  typeof value === "boolean" ? Effect.succeed(value) : invalid(field, `must be a boolean, got ${describe(value)}`)

const checkString = (field: string, value: unknown): Check<string> =>
  typeof value === "string" ? Effect.succeed(value) : invalid(field, `must be a string, got ${describe(value)}`)

const checkDuration = (
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
const checkConnectionName = (value: unknown): Check<string> =>
  typeof value === "string" && /^[!-~]+$/.test(value)
    ? Effect.succeed(value)
    : invalid("connectionName", `must be non-empty printable ASCII without spaces, got ${describe(value)}`)

const checkTopology = (topology: unknown): Check<Topology> => {
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

// -----------------------------------------------------------------------------
// url
// -----------------------------------------------------------------------------

interface UrlParts {
  readonly tls: boolean
  readonly host: string | undefined
  readonly port: number | undefined
  readonly db: number | undefined
  readonly username: string | undefined
  readonly password: string | undefined
}

const nonEmpty = (s: string): string | undefined => s.length > 0 ? s : undefined

// Never quote the input or keep the parser's exception: both may contain the password.
const parseUrl = (url: string): Check<UrlParts> => {
  const scheme = /^(rediss?):\/\//i.exec(url)?.[1]?.toLowerCase()
  if (scheme === undefined) return invalid("url", "must start with redis:// or rediss://")
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return invalid("url", "is not a valid URL (a password with reserved characters must be percent-encoded)")
  }
  if (parsed.search !== "" || parsed.hash !== "") {
    return invalid("url", "must not have a query string or fragment; use the options instead")
  }
  const dbMatch = /^\/(\d+)?$/.exec(parsed.pathname)
  if (parsed.pathname !== "" && dbMatch === null) {
    return invalid("url", "path must be empty or /<db>, with db a non-negative integer")
  }
  const port = parsed.port === "" ? undefined : Number(parsed.port)
  if (port !== undefined && !isPort(port)) return invalid("url", "port must be an integer in 1..65535")
  let username: string
  let password: string
  try {
    username = decodeURIComponent(parsed.username)
    password = decodeURIComponent(parsed.password)
  } catch {
    return invalid("url", "username or password has a malformed percent-encoding")
  }
  const host = parsed.hostname.startsWith("[") && parsed.hostname.endsWith("]")
    ? parsed.hostname.slice(1, -1)
    : parsed.hostname
  return Effect.succeed({
    tls: scheme === "rediss",
    host: nonEmpty(host),
    port,
    db: dbMatch?.[1] === undefined ? undefined : Number(dbMatch[1]),
    username: nonEmpty(username),
    password: nonEmpty(password)
  })
}

// -----------------------------------------------------------------------------
// resolve
// -----------------------------------------------------------------------------

const orElse = <A>(value: A | undefined, fallback: A): A => value === undefined ? fallback : value

const resolvePassword = (
  option: string | Redacted.Redacted<string> | undefined,
  fromUrl: string | undefined
): Check<Redacted.Redacted<string> | undefined> => {
  if (option === undefined) return Effect.succeed(fromUrl === undefined ? undefined : Redacted.make(fromUrl))
  const value: unknown = Redacted.isRedacted(option) ? Redacted.value(option) : option
  if (typeof value !== "string") return invalid("password", "must be a string or a Redacted string")
  if (value === "") return Effect.succeed(undefined)
  return Effect.succeed(Redacted.isRedacted(option) ? option : Redacted.make(value))
}

const resolveHeartbeat = Effect.fnUntraced(function*(
  options: Exclude<RedisOptions["heartbeat"], false | undefined>
) {
  const interval = yield* checkDuration("heartbeat.interval", orElse(options.interval, defaultHeartbeat.interval))
  const timeout = yield* checkDuration("heartbeat.timeout", orElse(options.timeout, defaultHeartbeat.timeout))
  if (Duration.isGreaterThan(timeout, interval)) {
    return yield* invalid(
      "heartbeat.timeout",
      `must be <= heartbeat.interval (${Duration.format(interval)}), got ${Duration.format(timeout)}`
    )
  }
  const misses = yield* checkInteger("heartbeat.misses", orElse(options.misses, defaultHeartbeat.misses), 1)
  return { interval, timeout, misses }
})

/**
 * Fills in the defaults, parses `url`, decodes the durations and validates everything, failing with the first
 * problem found as an `InvalidRedisOptions` naming the option.
 *
 * **Details**
 *
 * Precedence: explicit option > the same part of `url` > default. An empty `username` or `password` means none.
 *
 * Limits: `port` integer 1..65535; `db` integer >= 0 (0 with a Cluster topology); durations finite and > 0
 * (`reconnect.debounce` may be 0); `reconnect.cap >= reconnect.base`; `reconnect.factor` finite and >= 1;
 * `heartbeat.timeout <= heartbeat.interval`; `heartbeat.misses` and `breaker.failureThreshold` integers >= 1;
 * `breaker.maxOpenDuration >= breaker.openDuration`; Sentinel needs a `name` and at least one sentinel, Cluster at
 * least one node, each with a non-empty host and a valid port.
 *
 * **Example**
 *
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { RedisConfig } from "effect-redis-resilience"
 *
 * const program = Effect.gen(function*() {
 *   const config = yield* RedisConfig.resolve({
 *     url: Redacted.make("rediss://app:s3cret@redis.internal:6380/2"),
 *     commandTimeout: "500 millis"
 *   })
 *   yield* Effect.log(config) // password shows as <redacted>
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = Effect.fnUntraced(function*(
  options: RedisOptions = {}
): Effect.fn.Return<ResolvedRedisConfig, InvalidRedisOptions> {
  const rawUrl = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
  if (rawUrl !== undefined && typeof rawUrl !== "string") {
    return yield* invalid("url", "must be a string or a Redacted string")
  }
  const url: Partial<UrlParts> = rawUrl === undefined ? {} : yield* parseUrl(rawUrl)

  const host = yield* checkHost("host", orElse(options.host, orElse(url.host, defaults.host)))
  const port = yield* checkPort("port", orElse(options.port, orElse(url.port, defaults.port)))
  const db = yield* checkInteger("db", orElse(options.db, orElse(url.db, defaults.db)), 0)
  const rawUsername = orElse(options.username, url.username)
  // Never quoted: a user name is half of a credential.
  const username = rawUsername === undefined
    ? undefined
    : typeof rawUsername === "string"
    ? rawUsername
    : yield* invalid("username", "must be a string")
  const password = yield* resolvePassword(options.password, url.password)
  const tls = options.tls === undefined ? orElse(url.tls, defaults.tls) : options.tls
  if (typeof tls !== "boolean" && (typeof tls !== "object" || tls === null)) {
    return yield* invalid("tls", `must be a boolean or node:tls ConnectionOptions, got ${describe(tls)}`)
  }
  const keyPrefix = yield* checkString("keyPrefix", orElse(options.keyPrefix, defaults.keyPrefix))
  const connectionName = options.connectionName === undefined
    ? undefined
    : yield* checkConnectionName(options.connectionName)

  const connectTimeout = yield* checkDuration(
    "connectTimeout",
    orElse(options.connectTimeout, defaults.connectTimeout)
  )
  const commandTimeout = yield* checkDuration(
    "commandTimeout",
    orElse(options.commandTimeout, defaults.commandTimeout)
  )
  const acquireTimeout = yield* checkDuration(
    "acquireTimeout",
    orElse(options.acquireTimeout, defaults.acquireTimeout)
  )

  const reconnectOptions = options.reconnect ?? {}
  const base = yield* checkDuration("reconnect.base", orElse(reconnectOptions.base, defaults.reconnect.base))
  const factor = orElse(reconnectOptions.factor, defaults.reconnect.factor)
  if (typeof factor !== "number" || !Number.isFinite(factor) || factor < 1) {
    return yield* invalid("reconnect.factor", `must be a finite number >= 1, got ${describe(factor)}`)
  }
  const cap = yield* checkDuration("reconnect.cap", orElse(reconnectOptions.cap, defaults.reconnect.cap))
  if (Duration.isLessThan(cap, base)) {
    return yield* invalid(
      "reconnect.cap",
      `must be >= reconnect.base (${Duration.format(base)}), got ${Duration.format(cap)}`
    )
  }
  const jitter = yield* checkBoolean("reconnect.jitter", orElse(reconnectOptions.jitter, defaults.reconnect.jitter))
  const debounce = yield* checkDuration(
    "reconnect.debounce",
    orElse(reconnectOptions.debounce, defaults.reconnect.debounce),
    { allowZero: true }
  )

  const heartbeat = options.heartbeat === false ? undefined : yield* resolveHeartbeat(options.heartbeat ?? {})

  const breakerOptions = options.breaker ?? {}
  const failureThreshold = yield* checkInteger(
    "breaker.failureThreshold",
    orElse(breakerOptions.failureThreshold, defaults.breaker.failureThreshold),
    1
  )
  const openDuration = yield* checkDuration(
    "breaker.openDuration",
    orElse(breakerOptions.openDuration, defaults.breaker.openDuration)
  )
  const maxOpenDuration = yield* checkDuration(
    "breaker.maxOpenDuration",
    orElse(breakerOptions.maxOpenDuration, defaults.breaker.maxOpenDuration)
  )
  if (Duration.isLessThan(maxOpenDuration, openDuration)) {
    return yield* invalid(
      "breaker.maxOpenDuration",
      `must be >= breaker.openDuration (${Duration.format(openDuration)}), got ${Duration.format(maxOpenDuration)}`
    )
  }

  const topology = yield* checkTopology(orElse(options.topology, defaults.topology))
  if (topology._tag === "Cluster" && db !== 0) {
    return yield* invalid("db", `must be 0 with a Cluster topology (Redis Cluster has only database 0), got ${db}`)
  }
  const autoPipelining = yield* checkBoolean(
    "autoPipelining",
    orElse(options.autoPipelining, defaults.autoPipelining)
  )
  const awaitReady = yield* checkBoolean("awaitReady", orElse(options.awaitReady, defaults.awaitReady))
  const ioredis = options.ioredis ?? {}
  if (typeof ioredis !== "object" || ioredis === null || Array.isArray(ioredis)) {
    return yield* invalid("ioredis", "must be an object of ioredis options")
  }
  for (const name of Object.keys(ioredis)) {
    const instead = ownedIORedisOptions.get(name)
    if (instead !== undefined) return yield* invalid(`ioredis.${name}`, `is owned by the layer; ${instead}`)
  }

  return makeResolved({
    host,
    port,
    db,
    username,
    password,
    tls,
    keyPrefix,
    connectionName,
    connectTimeout,
    commandTimeout,
    acquireTimeout,
    reconnect: { base, factor, cap, jitter, debounce },
    heartbeat,
    breaker: { failureThreshold, openDuration, maxOpenDuration },
    topology,
    autoPipelining,
    awaitReady,
    ioredis
  })
})

const layerOwns = "the layer does this itself (reconnect schedule, breaker, acquireTimeout, resends)"

/**
 * The ioredis options `RedisOptions.ioredis` refuses, with what to use instead.
 *
 * @since 0.2.0
 * @category options
 */
export const ownedIORedisOptions: ReadonlyMap<string, string> = new Map([
  ["retryStrategy", `use reconnect: { base, factor, cap, jitter, debounce }; ${layerOwns}`],
  ["reconnectOnError", layerOwns],
  ["enableOfflineQueue", `use acquireTimeout; ${layerOwns}`],
  ["maxRetriesPerRequest", `use acquireTimeout and the breaker; ${layerOwns}`],
  ["autoResendUnfulfilledCommands", layerOwns],
  ["autoResubscribe", "RedisSubscriber resubscribes and reports the gap"],
  ["lazyConnect", layerOwns],
  ["commandTimeout", "use commandTimeout"],
  ["connectTimeout", "use connectTimeout"],
  ["enableAutoPipelining", "use autoPipelining"],
  ["host", "use url, host or topology"],
  ["port", "use url, port or topology"],
  ["path", "use url, host or topology"],
  ["db", "use db"],
  ["username", "use username"],
  ["password", "use password"],
  ["tls", "use tls"],
  ["keyPrefix", "use keyPrefix"],
  ["connectionName", "use connectionName"],
  ["sentinels", "use topology: { _tag: \"Sentinel\", sentinels, name }"],
  ["name", "use topology: { _tag: \"Sentinel\", sentinels, name }"],
  ["role", "the layer connects to the master"],
  ["sentinelRetryStrategy", layerOwns],
  ["failoverDetector", layerOwns],
  ["clusterRetryStrategy", layerOwns],
  ["retryDelayOnFailover", layerOwns],
  ["retryDelayOnClusterDown", layerOwns],
  ["retryDelayOnTryAgain", layerOwns],
  ["retryDelayOnMoved", layerOwns],
  ["maxRedirections", layerOwns],
  ["slotsRefreshTimeout", "the layer bounds it by commandTimeout"],
  ["redisOptions", "pass the node options at the top level of ioredis"],
  ["disconnectTimeout", layerOwns],
  ["enableReadyCheck", layerOwns]
])

// -----------------------------------------------------------------------------
// config
// -----------------------------------------------------------------------------

/**
 * Reads `RedisOptions` from the environment (or whichever `ConfigProvider` is current). Every variable is
 * optional; a missing one leaves the option unset so `resolve` applies the default.
 *
 * | Variable | Option | Format |
 * | --- | --- | --- |
 * | `REDIS_URL` | `url` | `redis://...` / `rediss://...`, read as `Redacted` |
 * | `REDIS_HOST` | `host` | string |
 * | `REDIS_PORT` | `port` | integer 1..65535 |
 * | `REDIS_USERNAME` | `username` | string |
 * | `REDIS_PASSWORD` | `password` | string, read as `Redacted` |
 * | `REDIS_DB` | `db` | integer |
 * | `REDIS_TLS` | `tls` | `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`) |
 * | `REDIS_KEY_PREFIX` | `keyPrefix` | string |
 * | `REDIS_CONNECT_TIMEOUT` | `connectTimeout` | duration string, e.g. `5 seconds`, `500 millis` |
 * | `REDIS_COMMAND_TIMEOUT` | `commandTimeout` | duration string |
 * | `REDIS_ACQUIRE_TIMEOUT` | `acquireTimeout` | duration string |
 * | `REDIS_AUTO_PIPELINING` | `autoPipelining` | `true`/`false` |
 *
 * **Gotchas**
 *
 * A malformed value (`REDIS_PORT=abc`, `REDIS_CONNECT_TIMEOUT=2000` without a unit) fails with a `ConfigError`;
 * range checks (`REDIS_DB=-1`) happen later, in `resolve`. Empty variables count as missing.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<RedisOptions> = Config.all({
  url: Config.option(Config.Redacted("REDIS_URL")),
  host: Config.option(Config.String("REDIS_HOST")),
  port: Config.option(Config.Port("REDIS_PORT")),
  username: Config.option(Config.String("REDIS_USERNAME")),
  password: Config.option(Config.Redacted("REDIS_PASSWORD")),
  db: Config.option(Config.Int("REDIS_DB")),
  tls: Config.option(Config.Boolean("REDIS_TLS")),
  keyPrefix: Config.option(Config.String("REDIS_KEY_PREFIX")),
  connectTimeout: Config.option(Config.Duration("REDIS_CONNECT_TIMEOUT")),
  commandTimeout: Config.option(Config.Duration("REDIS_COMMAND_TIMEOUT")),
  acquireTimeout: Config.option(Config.Duration("REDIS_ACQUIRE_TIMEOUT")),
  autoPipelining: Config.option(Config.Boolean("REDIS_AUTO_PIPELINING"))
}).pipe(Config.map((env): RedisOptions => {
  const options: Record<string, unknown> = {}
  for (const [key, value] of Object.entries<Option.Option<unknown>>(env)) {
    if (Option.isSome(value)) options[key] = value.value
  }
  return options as RedisOptions
}))
