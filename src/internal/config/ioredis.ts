/**
 * The ioredis options `RedisOptions.ioredis` refuses because the layer owns them, with what to use instead.
 *
 * @internal
 */

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

