/**
 * The Redis the drill runs against: an embedded `redis-server` started with the test kit (append-only file, fsync
 * on every write, so acknowledged writes survive the restart fault), or the server `REDIS_URL` names. Either way a
 * `ChaosProxy` stands in front of it and the layer under test connects to the proxy, so every fault is injected at
 * the proxy (and, for the embedded server only, at the process: freeze and restart).
 *
 * `inspect` opens a short-lived direct connection that bypasses the proxy and the layer: the report checks the
 * ledger against what the server really holds.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import * as Tls from "node:tls"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis as IORedis } from "ioredis"
import { classify, RedisConfig, type RedisOptions } from "../../src/index.ts"
import * as ChaosProxy from "../../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../../src/testing/RedisTestServer.ts"

/**
 * The drill could not run: bad input, Redis unreachable, `redis-server` missing. The message says what to do.
 *
 * @since 0.1.0
 * @category errors
 */
export class DrillError extends Data.TaggedError("DrillError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The Redis under test and the proxy in front of it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Target {
  readonly kind: "embedded" | "url"
  /** What the drill runs against, without credentials. */
  readonly label: string
  /** The embedded server (freeze and restart need it); `undefined` with `REDIS_URL`. */
  readonly server: RedisTestServer.RedisTestServer | undefined
  readonly proxy: ChaosProxy.ChaosProxy
  /** Connection options of the layer under test: the proxy's address, the target's credentials, db and TLS. */
  readonly options: RedisOptions
  /** Runs `run` on a fresh direct connection to the server (not through the proxy, not through the layer). */
  readonly inspect: <A>(
    what: string,
    run: (client: IORedis) => Promise<A>
  ) => Effect.Effect<A, DrillError>
}

const errorText = (cause: unknown): string => {
  const error = classify(cause, { sent: false })
  return error._tag === "ReplyError" ? error.message : `${error._tag}: ${error.message}`
}

// A plain ioredis client with the target's address, credentials, db, TLS and key prefix: the drill checks the server
// itself, beside the layer, so it uses none of the layer's machinery.
const directClient = (config: RedisConfig.ResolvedRedisConfig): IORedis =>
  new IORedis({
    host: config.host,
    port: config.port,
    db: config.db,
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: Redacted.value(config.password) }),
    ...(config.tls === false ? {} : { tls: config.tls === true ? {} : config.tls }),
    ...(config.keyPrefix === "" ? {} : { keyPrefix: config.keyPrefix }),
    connectionName: "drill-inspect",
    lazyConnect: true,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0
  })

const makeInspect = (config: RedisConfig.ResolvedRedisConfig) =>
<A>(what: string, run: (client: IORedis) => Promise<A>): Effect.Effect<A, DrillError> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const inspected = {
        client: directClient(config),
        socketError: undefined as unknown
      }
      // Without a listener ioredis rethrows socket errors; the last one says why a connect failed, where the
      // rejection only says "Connection is closed.".
      inspected.client.on("error", (error: unknown) => {
        inspected.socketError = error
      })
      return inspected
    }),
    (inspected) =>
      Effect.tryPromise({
        try: () => inspected.client.connect().then(() => run(inspected.client)),
        catch: (cause) => {
          const reason = errorText(inspected.socketError ?? cause)
          return new DrillError({ message: `${what}: ${reason}`, cause })
        }
      }).pipe(
        Effect.timeoutOrElse({
          duration: "5 seconds",
          orElse: () => Effect.fail(new DrillError({ message: `${what}: no answer within 5 seconds` }))
        })
      ),
    (inspected) => Effect.sync(() => inspected.client.disconnect())
  )

const serverVersion = (info: unknown): string => /redis_version:(\S+)/.exec(String(info))?.[1] ?? "?"

/**
 * Starts the embedded server (or checks that `redisUrl` answers) and the proxy in front of it, in the current scope.
 * Fails with a `DrillError` saying what to do when `redis-server` is missing or `redisUrl` is invalid or unreachable.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(
  redisUrl: string | undefined
): Effect.fn.Return<Target, DrillError, Scope.Scope> {
  if (redisUrl === undefined) {
    const server = yield* RedisTestServer.make({ appendOnly: true }).pipe(
      Effect.mapError((error) =>
        new DrillError({ message: `Could not start the embedded redis-server: ${error.message}`, cause: error })
      )
    )
    const config = yield* RedisConfig.resolve({ url: server.url, connectTimeout: "2 seconds" }).pipe(Effect.orDie)
    const inspect = makeInspect(config)
    const version = serverVersion(yield* inspect("INFO", (client) => client.info("server")))
    const proxy = yield* startProxy(server.host, server.port)
    return {
      kind: "embedded",
      label: `embedded redis-server ${version} on ${server.host}:${server.port} (appendonly, fsync always)`,
      server,
      proxy,
      options: { host: proxy.host, port: proxy.port },
      inspect
    } satisfies Target
  }

  const config = yield* RedisConfig.resolve({ url: redisUrl, connectTimeout: "3 seconds" }).pipe(
    Effect.mapError((error) => new DrillError({ message: `REDIS_URL is not a valid Redis URL: ${error.message}` }))
  )
  const address = `${config.tls === false ? "redis" : "rediss"}://${config.host}:${config.port}/${config.db}`
  const inspect = makeInspect(config)
  const version = yield* inspect("INFO", (client) => client.info("server")).pipe(
    Effect.map(serverVersion),
    Effect.mapError((error) =>
      new DrillError({
        message: `Cannot use REDIS_URL ${address}: ${error.message.replace(/^INFO: /, "").replace(/\.$/, "")}. ` +
          "Start Redis there, fix REDIS_URL, or unset it to drill against an embedded redis-server.",
        cause: error
      })
    )
  )
  const proxy = yield* startProxy(config.host, config.port)
  // TLS goes through the proxy untouched; the certificate is checked against the real host, not the proxy's.
  const tls = config.tls === false ? undefined : {
    ...(config.tls === true ? {} : config.tls),
    ...(Net.isIP(config.host) === 0 ? { servername: config.host } : {}),
    checkServerIdentity: (_host: string, cert: Tls.PeerCertificate) => Tls.checkServerIdentity(config.host, cert)
  }
  return {
    kind: "url",
    label: `REDIS_URL ${address} (redis ${version})`,
    server: undefined,
    proxy,
    options: { url: redisUrl, host: proxy.host, port: proxy.port, ...(tls === undefined ? {} : { tls }) },
    inspect
  } satisfies Target
})

const startProxy = (host: string, port: number) =>
  ChaosProxy.make({ target: { host, port } }).pipe(
    Effect.mapError((error) => new DrillError({ message: `Could not start the chaos proxy: ${error.message}` }))
  )
