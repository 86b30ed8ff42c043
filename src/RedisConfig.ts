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
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { ConnectionOptions } from "node:tls"
import { InvalidRedisOptions } from "./internal/config/checks.ts"
import * as Defaults from "./internal/config/defaults.ts"
import * as IORedisOptions from "./internal/config/ioredis.ts"
import * as Redact from "./internal/config/redact.ts"
import * as Resolve from "./internal/config/resolve.ts"

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
   * ioredis auto-pipelining. The layer already sends the commands issued in one tick in one socket write (on a
   * Cluster, one per node), and is faster that way than with this option on every topology measured. Default `false`.
   * See docs/benchmarks.md.
   */
  readonly autoPipelining?: boolean | undefined
  /**
   * ioredis options the layer does not cover, passed through to the client: e.g. `sentinelPassword`,
   * `sentinelTLS`/`enableTLSForSentinelMode`, `natMap`, `dnsLookup`, `scaleReads` (Cluster), `family`, `keepAlive`,
   * `noDelay`. The options the layer owns are refused with `InvalidRedisOptions` naming them
   * (see `ownedIORedisOptions`):
   * retries, queueing, resending, reconnection and what has an option of its own here.
   */
  readonly ioredis?: Readonly<Record<string, unknown>> | undefined
  /**
   * `false` (default): the layer builds even while Redis is down and connects in the background. `true`: building
   * the layer waits for the first ready connection, at most `connectTimeout`, and fails otherwise.
   */
  readonly awaitReady?: boolean | undefined
  /**
   * Spans. `queryText: true` adds OpenTelemetry's `db.query.text` to command spans, sanitized: the command name, then
   * `key` for each key position and `?` for every other argument (`SET key ?`, `HSET key ? ?`), never a key or a
   * value. Default `{ queryText: false }`: spans carry the command name only (`db.operation.name`).
   */
  readonly tracing?: { readonly queryText?: boolean | undefined } | undefined
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
  readonly tracing: { readonly queryText: boolean }
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
export { InvalidRedisOptions }

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
  readonly tracing: { readonly queryText: boolean }
  readonly ioredis: ReadonlyArray<string>
}

/**
 * A printable summary of a resolved config (see `RedisConfigSummary`). This is what resolved configs show in
 * `String(...)`, `JSON.stringify`, `util.inspect` and logs; call it to log a config copied with spread.
 *
 * @since 0.1.0
 * @category redaction
 */
export const redact: (config: ResolvedRedisConfig) => RedisConfigSummary = Redact.redact

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
export const defaults: ResolvedRedisConfig = Defaults.defaults

// -----------------------------------------------------------------------------
// resolve
// -----------------------------------------------------------------------------

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
export const resolve: (options?: RedisOptions) => Effect.Effect<ResolvedRedisConfig, InvalidRedisOptions> =
  Resolve.resolve

/**
 * The ioredis options `RedisOptions.ioredis` refuses, with what to use instead.
 *
 * @since 0.2.0
 * @category options
 */
export const ownedIORedisOptions: ReadonlyMap<string, string> = IORedisOptions.ownedIORedisOptions

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
