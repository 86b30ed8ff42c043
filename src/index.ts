/**
 * effect-redis-resilience: one Redis connection for Effect programs that stays up, fails fast and tells the truth
 * when Redis does not.
 *
 * @since 0.1.0
 */
export {
  type CommandArgument,
  type CommandOptions,
  getKey,
  getMultipleKeys,
  isIdempotent,
  RedisService,
  type RedisServiceShape,
  type RunOptions,
  setKey,
  type SetOptions
} from "./RedisService.ts"

export type { Results, ScanKeyOptions, ScanOptions, Successes, WatchTransaction } from "./RedisService.ts"

/** Redis commands as typed values: `Command.hgetall(key)`, `Command.zrange(key, 0, -1, { withScores: true })`, ... */
export * as Command from "./Command.ts"
export type { Command as RedisCommand } from "./Command.ts"

/** Lua scripts as commands: `RedisScript.make({ lua, keys })`, EVALSHA with a reload on NOSCRIPT. */
export * as RedisScript from "./RedisScript.ts"

export {
  CircuitOpen,
  classify,
  CommandTimeout,
  ConnectionClosed,
  ConnectionRefused,
  ConnectionReset,
  CommandRefused,
  ConnectionTimeout,
  CrossSlot,
  DecodeError,
  EncodeError,
  InvalidArgument,
  isConnectionLost,
  isRedisError,
  isTransient,
  type RedisError,
  ReplyError,
  scrubCause,
  scrubMessage,
  TlsHandshakeFailed,
  TransactionAborted
} from "./RedisError.ts"

export { InvalidRedisOptions, type RedisOptions, type ResolvedRedisConfig, type Topology } from "./RedisConfig.ts"

export {
  type DeliveryMode,
  type FallbackOptions,
  RedisSubscriber,
  type RedisSubscriberOptions,
  type RedisSubscriberShape,
  type SubscriptionEvent
} from "./RedisSubscriber.ts"

export {
  buildRedisChannelName,
  type ChannelLike,
  InvalidChannelName,
  type PublishOptions
} from "./RedisChannel.ts"

/** Typed channels: `RedisChannel.make({ name, schema })`, `RedisChannel.registry(prefix, schemas)`. */
export * as RedisChannel from "./RedisChannel.ts"

/** Cache-aside with single-flight and fail-open reads: `RedisCache.make({ prefix, schema, ttl })`. */
export * as RedisCache from "./RedisCache.ts"
export { getAs, setAs, ValueTooLarge } from "./RedisCache.ts"

/** Blocking commands (BLPOP, BLMOVE, XREADGROUP BLOCK, ...) on a bounded pool of dedicated connections. */
export {
  type PoppedMember,
  RedisBlocking,
  type RedisBlockingOptions,
  type RedisBlockingShape,
  type Side,
  type StreamEntry,
  type StreamRead
} from "./RedisBlocking.ts"

/** Stream consumer groups, at-least-once: `RedisStream.consume(options, handler)`, `RedisStream.add(...)`. */
export * as RedisStream from "./RedisStream.ts"

/** effect's `Redis` service (`effect/persistence/Redis`) on this library's connection: `RedisPersistence.layer`. */
export * as RedisPersistence from "./RedisPersistence.ts"

/** Options, defaults and validation: `RedisConfig.resolve(options)`, `RedisConfig.config` (environment). */
export * as RedisConfig from "./RedisConfig.ts"

/** The health snapshot, connection states and metrics: `Health.connectionStatus(state)`, `Health.commands`, ... */
export * as Health from "./Health.ts"
export type { CircuitStatus, ConnectionState, ConnectionStatus, NodeHealth, RedisHealth } from "./Health.ts"

/** Readiness and liveness for HTTP probes: `RedisHealthCheck.ready`, `.live`, `.layerHttp`. */
export * as RedisHealthCheck from "./RedisHealthCheck.ts"
