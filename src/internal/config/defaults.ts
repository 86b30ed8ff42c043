/**
 * The documented defaults, as a resolved config.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type { ResolvedRedisConfig } from "../../RedisConfig.ts"
import { makeResolved } from "./redact.ts"

export const defaultHeartbeat = { interval: Duration.seconds(1), timeout: Duration.millis(500), misses: 2 } as const

/**
 * The documented defaults: `127.0.0.1:6379`, db 0, no TLS, connectTimeout 5 s, commandTimeout 2 s,
 * acquireTimeout 1 s, reconnect 100 ms × 2 up to 5 s with jitter and a 50 ms debounce, heartbeat every 1 s with a
 * 500 ms timeout and 2 misses, breaker 5 failures / 1 s open up to 30 s, Standalone, no auto-pipelining,
 * `awaitReady: false`.
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
  tracing: { queryText: false },
  ioredis: {},
  awaitReady: false
})

