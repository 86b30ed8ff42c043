/**
 * Test kit for code that talks to Redis: real `redis-server` processes on free ports
 * (`RedisTestServer`, `RedisTestCluster`, `RedisTestSentinel`) and a fault-injecting TCP proxy
 * (`ChaosProxy`). All are scoped and use real timers only, so they work inside `it.effect` tests
 * running under `TestClock`.
 *
 * @since 0.1.0
 */

/**
 * Spawns and controls a real `redis-server` for the lifetime of a scope.
 *
 * @since 0.1.0
 */
export * as RedisTestServer from "./RedisTestServer.ts"

/**
 * A TCP proxy that injects resets, refusals, blackholes and latency between a client and Redis.
 *
 * @since 0.1.0
 */
export * as ChaosProxy from "./ChaosProxy.ts"

/**
 * A real Redis Cluster (masters + replicas on free ports) for the lifetime of a scope.
 *
 * @since 0.1.0
 */
export * as RedisTestCluster from "./RedisTestCluster.ts"

/**
 * A Sentinel-managed master and replica, with sentinels, for the lifetime of a scope.
 *
 * @since 0.1.0
 */
export * as RedisTestSentinel from "./RedisTestSentinel.ts"
