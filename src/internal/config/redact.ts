/**
 * How a resolved config prints: a summary with the password, the user name and TLS secrets replaced, used by
 * `String(...)`, `JSON.stringify`, `util.inspect`, effect's loggers (`Redactable`) and `RedisConfig.redact`.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import { NodeInspectSymbol } from "effect/Inspectable"
import * as Redactable from "effect/Redactable"
import type { ConnectionOptions } from "node:tls"
import type { RedisConfigSummary, ResolvedRedisConfig } from "../../RedisConfig.ts"

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
  tracing: config.tracing,
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

/** A resolved config that prints as its redacted summary. */
export const makeResolved = (fields: ResolvedRedisConfig): ResolvedRedisConfig =>
  Object.assign(Object.create(ResolvedProto), fields)
