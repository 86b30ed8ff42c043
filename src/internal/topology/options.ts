/**
 * The ioredis options every connection of the layer runs with, whatever the topology: ioredis only moves bytes; it
 * never reconnects, queues, resends or resubscribes by itself.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Redacted from "effect/Redacted"
import type { Redis as IORedis, RedisOptions } from "ioredis"
import type { NodeHealth } from "../../Health.ts"
import type { ResolvedRedisConfig } from "../../RedisConfig.ts"
import { classify, databaseRefused } from "../../RedisError.ts"

/** ioredis options, less `replyMapping`: replies keep ioredis' default (RESP2-compatible) shapes. */
export type IORedisOptions = Omit<RedisOptions, "replyMapping">

/**
 * The ioredis options this library runs with. For a Cluster these are the options of each node connection.
 *
 * **Gotchas**
 *
 * There is no `db`: ioredis would send its SELECT during the handshake and, when the server refuses it, report the
 * refusal as an `error` event and use the connection anyway, in database 0. The connection sends the SELECT itself, as
 * part of the connection attempt, and fails the attempt when it is refused (see `select`).
 */
export const clientOptions = (config: ResolvedRedisConfig): IORedisOptions => ({
  host: config.host,
  port: config.port,
  ...(config.username === undefined ? {} : { username: config.username }),
  ...(config.password === undefined ? {} : { password: Redacted.value(config.password) }),
  ...(config.tls === false ? {} : { tls: config.tls === true ? {} : config.tls }),
  ...(config.keyPrefix === "" ? {} : { keyPrefix: config.keyPrefix }),
  ...(config.connectionName === undefined ? {} : { connectionName: config.connectionName }),
  lazyConnect: true,
  retryStrategy: () => null,
  reconnectOnError: null,
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  autoResubscribe: false,
  maxRetriesPerRequest: 0,
  // A connection the layer drops is closed at once: ioredis would otherwise wait up to 2 s for a frozen server to close
  // its side before destroying the socket, and fail the commands it holds only then.
  disconnectTimeout: 0,
  enableAutoPipelining: config.autoPipelining,
  connectTimeout: Duration.toMillis(config.connectTimeout)
  // No ioredis commandTimeout: a timer per command is costly; the layer's Watchdog enforces it instead.
})

// ioredis options of a Cluster itself (not of its node connections).
const clusterOptionNames: ReadonlySet<string> = new Set([
  "natMap",
  "dnsLookup",
  "scaleReads",
  "slotsRefreshInterval",
  "useSRVRecords",
  "resolveSrv"
])

/**
 * `RedisOptions.ioredis` (already checked for the options the layer owns), split: the Cluster-level ones go to the
 * Cluster, the rest to every connection.
 */
export const passedThrough = (config: ResolvedRedisConfig): {
  readonly cluster: Partial<Record<string, unknown>>
  readonly connection: Partial<IORedisOptions>
} => {
  const passed = Object.entries(config.ioredis)
  return {
    cluster: Object.fromEntries(passed.filter(([name]) => clusterOptionNames.has(name))),
    connection: Object.fromEntries(passed.filter(([name]) => !clusterOptionNames.has(name)))
  }
}

/** The options of one connection: the layer's, the passed-through ones, then the caller's overrides. */
export const connectionOptions = (
  config: ResolvedRedisConfig,
  overrides: Partial<IORedisOptions> = {}
): IORedisOptions => ({ ...clientOptions(config), ...passedThrough(config).connection, ...overrides })

/**
 * Selects the `db` option's database on a connection that just opened, as the last step of the attempt. A refusal
 * (the index is beyond the server's `databases`, or the ACL user may not run SELECT) rejects with the `ReplyError` of
 * `databaseRefused`, so that the attempt fails and no command runs in database 0 instead; any other failure rejects
 * with its classification. Database 0 needs no SELECT.
 */
export const select = (client: IORedis, db: number, socketError: () => unknown): Promise<void> =>
  db === 0 ? Promise.resolve() : client.select(db).then(
    () => undefined,
    (error: unknown) => {
      const classified = classify(error, { command: "SELECT", sent: true, socketError: socketError() })
      throw classified._tag === "ReplyError" ? databaseRefused(db, error) : classified
    }
  )

/** One node as `RedisHealth` shows it: the address it is connected to, its role and ioredis' status. */
export const describeNode = (node: IORedis, role: "master" | "replica"): NodeHealth => {
  const stream = node.stream as { remoteAddress?: string; remotePort?: number } | undefined
  const host = stream?.remoteAddress ?? node.options.host ?? "?"
  const port = stream?.remotePort ?? node.options.port ?? 0
  return { address: `${host.includes(":") ? `[${host}]` : host}:${port}`, role, status: node.status }
}
