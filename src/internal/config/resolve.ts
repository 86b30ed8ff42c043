/**
 * `RedisConfig.resolve`, in steps: the URL, the address and credentials, the timeouts, the reconnect schedule, the
 * heartbeat, the breaker, then the topology and the rest. Each step fails with the first problem it finds.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { RedisOptions, ResolvedRedisConfig } from "../../RedisConfig.ts"
import {
  type Check,
  checkBoolean,
  checkConnectionName,
  checkDuration,
  checkHost,
  checkInteger,
  checkPort,
  checkString,
  checkTopology,
  describe,
  invalid,
  type InvalidRedisOptions,
  orElse
} from "./checks.ts"
import { defaultHeartbeat, defaults } from "./defaults.ts"
import { ownedIORedisOptions } from "./ioredis.ts"
import { makeResolved } from "./redact.ts"
import { parseUrl, type UrlParts } from "./url.ts"

export const resolve = Effect.fnUntraced(function*(
  options: RedisOptions = {}
): Effect.fn.Return<ResolvedRedisConfig, InvalidRedisOptions> {
  const rawUrl = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
  if (rawUrl !== undefined && typeof rawUrl !== "string") {
    return yield* invalid("url", "must be a string or a Redacted string")
  }
  const url: Partial<UrlParts> = rawUrl === undefined ? {} : yield* parseUrl(rawUrl)
  const server = yield* resolveServer(options, url)
  const timeouts = yield* resolveTimeouts(options)
  const reconnect = yield* resolveReconnect(options.reconnect ?? {})
  const heartbeat = options.heartbeat === false ? undefined : yield* resolveHeartbeat(options.heartbeat ?? {})
  const breaker = yield* resolveBreaker(options.breaker ?? {})
  const topology = yield* checkTopology(orElse(options.topology, defaults.topology))
  if (topology._tag === "Cluster" && server.db !== 0) {
    return yield* invalid(
      "db",
      `must be 0 with a Cluster topology (Redis Cluster has only database 0), got ${server.db}`
    )
  }
  const autoPipelining = yield* checkBoolean(
    "autoPipelining",
    orElse(options.autoPipelining, defaults.autoPipelining)
  )
  const awaitReady = yield* checkBoolean("awaitReady", orElse(options.awaitReady, defaults.awaitReady))
  const queryText = yield* checkBoolean(
    "tracing.queryText",
    orElse(options.tracing?.queryText, defaults.tracing.queryText)
  )
  const ioredis = yield* resolveIORedis(options.ioredis)
  return makeResolved({
    ...server,
    ...timeouts,
    reconnect,
    heartbeat,
    breaker,
    topology,
    autoPipelining,
    awaitReady,
    tracing: { queryText },
    ioredis
  })
})

// Where and as whom: explicit option > the same part of the URL > default.
const resolveServer = Effect.fnUntraced(function*(options: RedisOptions, url: Partial<UrlParts>) {
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
  return { host, port, db, username, password, tls, keyPrefix, connectionName }
})

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

const resolveTimeouts = Effect.fnUntraced(function*(options: RedisOptions) {
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
  return { connectTimeout, commandTimeout, acquireTimeout }
})

const resolveReconnect = Effect.fnUntraced(function*(options: NonNullable<RedisOptions["reconnect"]>) {
  const base = yield* checkDuration("reconnect.base", orElse(options.base, defaults.reconnect.base))
  const factor = orElse(options.factor, defaults.reconnect.factor)
  if (typeof factor !== "number" || !Number.isFinite(factor) || factor < 1) {
    return yield* invalid("reconnect.factor", `must be a finite number >= 1, got ${describe(factor)}`)
  }
  const cap = yield* checkDuration("reconnect.cap", orElse(options.cap, defaults.reconnect.cap))
  if (Duration.isLessThan(cap, base)) {
    return yield* invalid(
      "reconnect.cap",
      `must be >= reconnect.base (${Duration.format(base)}), got ${Duration.format(cap)}`
    )
  }
  const jitter = yield* checkBoolean("reconnect.jitter", orElse(options.jitter, defaults.reconnect.jitter))
  const debounce = yield* checkDuration(
    "reconnect.debounce",
    orElse(options.debounce, defaults.reconnect.debounce),
    { allowZero: true }
  )
  return { base, factor, cap, jitter, debounce }
})

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

const resolveBreaker = Effect.fnUntraced(function*(options: NonNullable<RedisOptions["breaker"]>) {
  const failureThreshold = yield* checkInteger(
    "breaker.failureThreshold",
    orElse(options.failureThreshold, defaults.breaker.failureThreshold),
    1
  )
  const openDuration = yield* checkDuration(
    "breaker.openDuration",
    orElse(options.openDuration, defaults.breaker.openDuration)
  )
  const maxOpenDuration = yield* checkDuration(
    "breaker.maxOpenDuration",
    orElse(options.maxOpenDuration, defaults.breaker.maxOpenDuration)
  )
  if (Duration.isLessThan(maxOpenDuration, openDuration)) {
    return yield* invalid(
      "breaker.maxOpenDuration",
      `must be >= breaker.openDuration (${Duration.format(openDuration)}), got ${Duration.format(maxOpenDuration)}`
    )
  }
  return { failureThreshold, openDuration, maxOpenDuration }
})

// Passed through to ioredis, except what the layer owns (refused by name, with what to use instead).
const resolveIORedis = (ioredis: RedisOptions["ioredis"]): Check<Readonly<Record<string, unknown>>> => {
  const given: unknown = ioredis ?? {}
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    return invalid("ioredis", "must be an object of ioredis options")
  }
  for (const name of Object.keys(given)) {
    const instead = ownedIORedisOptions.get(name)
    if (instead !== undefined) return invalid(`ioredis.${name}`, `is owned by the layer; ${instead}`)
  }
  return Effect.succeed(given as Readonly<Record<string, unknown>>)
}
