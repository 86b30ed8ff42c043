import { assert, describe, it } from "@effect/vitest"
import { Cause, ConfigProvider, Duration, Effect, Exit, Logger, Redacted } from "effect"
import fc from "fast-check"
import * as util from "node:util"
import * as RedisConfig from "../src/RedisConfig.ts"

const PASSWORD = "Hunter2-very-secret"
const USERNAME = "acl-user-name-4f2a"

const resolveSync = (options?: RedisConfig.RedisOptions) => Effect.runSync(RedisConfig.resolve(options))
const millis = (duration: Duration.Duration) => Duration.toMillis(duration)
const passwordOf = (config: RedisConfig.ResolvedRedisConfig) =>
  config.password === undefined ? undefined : Redacted.value(config.password)

describe("RedisConfig", () => {
  describe("defaults", () => {
    it.effect("resolve() fills in every documented default", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve()
        assert.strictEqual(config.host, "127.0.0.1")
        assert.strictEqual(config.port, 6379)
        assert.strictEqual(config.db, 0)
        assert.isUndefined(config.username)
        assert.isUndefined(config.password)
        assert.strictEqual(config.tls, false)
        assert.strictEqual(config.keyPrefix, "")
        assert.isUndefined(config.connectionName)
        assert.strictEqual(millis(config.connectTimeout), 5_000)
        assert.strictEqual(millis(config.commandTimeout), 2_000)
        assert.strictEqual(millis(config.acquireTimeout), 1_000)
        assert.strictEqual(millis(config.reconnect.base), 100)
        assert.strictEqual(config.reconnect.factor, 2)
        assert.strictEqual(millis(config.reconnect.cap), 5_000)
        assert.strictEqual(config.reconnect.jitter, true)
        assert.strictEqual(millis(config.reconnect.debounce), 50)
        assert.isDefined(config.heartbeat)
        assert.strictEqual(millis(config.heartbeat!.interval), 1_000)
        assert.strictEqual(millis(config.heartbeat!.timeout), 500)
        assert.strictEqual(config.heartbeat!.misses, 2)
        assert.strictEqual(config.breaker.failureThreshold, 5)
        assert.strictEqual(millis(config.breaker.openDuration), 1_000)
        assert.strictEqual(millis(config.breaker.maxOpenDuration), 30_000)
        assert.deepStrictEqual(config.topology, { _tag: "Standalone" })
        assert.strictEqual(config.autoPipelining, false)
        assert.strictEqual(config.awaitReady, false)
      }))

    it.effect("`defaults` is what resolve({}) produces", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({})
        assert.deepStrictEqual(RedisConfig.redact(config), RedisConfig.redact(RedisConfig.defaults))
      }))

    it.effect("partial groups keep the defaults of the fields they omit", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({
          reconnect: { factor: 3 },
          heartbeat: { misses: 4 },
          breaker: { failureThreshold: 2 }
        })
        assert.strictEqual(config.reconnect.factor, 3)
        assert.strictEqual(millis(config.reconnect.base), 100)
        assert.strictEqual(millis(config.reconnect.cap), 5_000)
        assert.strictEqual(config.heartbeat?.misses, 4)
        assert.strictEqual(millis(config.heartbeat!.interval), 1_000)
        assert.strictEqual(config.breaker.failureThreshold, 2)
        assert.strictEqual(millis(config.breaker.maxOpenDuration), 30_000)
      }))

    it.effect("heartbeat: false disables the heartbeat", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({ heartbeat: false })
        assert.isUndefined(config.heartbeat)
      }))

    it.effect("durations accept any Duration.Input", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({
          connectTimeout: "3 seconds",
          commandTimeout: 250,
          acquireTimeout: Duration.millis(40),
          reconnect: { base: { milliseconds: 20 }, cap: [1, 0], debounce: 0 }
        })
        assert.strictEqual(millis(config.connectTimeout), 3_000)
        assert.strictEqual(millis(config.commandTimeout), 250)
        assert.strictEqual(millis(config.acquireTimeout), 40)
        assert.strictEqual(millis(config.reconnect.base), 20)
        assert.strictEqual(millis(config.reconnect.cap), 1_000)
        assert.strictEqual(millis(config.reconnect.debounce), 0)
      }))

    it.effect("accepts the boundary values", () =>
      Effect.gen(function*() {
        const low = yield* RedisConfig.resolve({
          port: 1,
          reconnect: { base: "1 second", cap: "1 second", factor: 1 },
          heartbeat: { interval: "300 millis", timeout: "300 millis", misses: 1 },
          breaker: { failureThreshold: 1, openDuration: "2 seconds", maxOpenDuration: "2 seconds" }
        })
        assert.strictEqual(low.port, 1)
        assert.strictEqual(low.reconnect.factor, 1)
        assert.strictEqual(millis(low.reconnect.cap), millis(low.reconnect.base))
        assert.strictEqual(millis(low.heartbeat!.timeout), millis(low.heartbeat!.interval))
        assert.strictEqual(millis(low.breaker.maxOpenDuration), millis(low.breaker.openDuration))
        const high = yield* RedisConfig.resolve({ port: 65535 })
        assert.strictEqual(high.port, 65535)
      }))

    it.effect("keeps Sentinel and Cluster topologies", () =>
      Effect.gen(function*() {
        const sentinels = [{ host: "s1", port: 26379 }, { host: "s2", port: 26380 }]
        const sentinel = yield* RedisConfig.resolve({ topology: { _tag: "Sentinel", sentinels, name: "mymaster" } })
        assert.deepStrictEqual(sentinel.topology, { _tag: "Sentinel", sentinels, name: "mymaster" })
        const nodes = [{ host: "10.0.0.1", port: 7000 }]
        const cluster = yield* RedisConfig.resolve({ topology: { _tag: "Cluster", nodes } })
        assert.deepStrictEqual(cluster.topology, { _tag: "Cluster", nodes })
      }))
  })

  describe("url", () => {
    it.effect("redis://host:port", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({ url: "redis://cache.internal:6380" })
        assert.strictEqual(config.host, "cache.internal")
        assert.strictEqual(config.port, 6380)
        assert.strictEqual(config.db, 0)
        assert.strictEqual(config.tls, false)
        assert.isUndefined(config.username)
        assert.isUndefined(config.password)
      }))

    it.effect("rediss:// turns TLS on and keeps the default port", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({ url: "rediss://cache.internal" })
        assert.strictEqual(config.tls, true)
        assert.strictEqual(config.port, 6379)
      }))

    it.effect("user:password@ and /db", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({ url: `redis://app:${PASSWORD}@h:7000/5` })
        assert.strictEqual(config.username, "app")
        assert.strictEqual(passwordOf(config), PASSWORD)
        assert.strictEqual(config.host, "h")
        assert.strictEqual(config.port, 7000)
        assert.strictEqual(config.db, 5)
      }))

    it.effect("password only (:password@) and username only (user@)", () =>
      Effect.gen(function*() {
        const passwordOnly = yield* RedisConfig.resolve({ url: `redis://:${PASSWORD}@h` })
        assert.isUndefined(passwordOnly.username)
        assert.strictEqual(passwordOf(passwordOnly), PASSWORD)
        const userOnly = yield* RedisConfig.resolve({ url: "redis://app@h" })
        assert.strictEqual(userOnly.username, "app")
        assert.isUndefined(userOnly.password)
        const empty = yield* RedisConfig.resolve({ url: "redis://:@h" })
        assert.isUndefined(empty.username)
        assert.isUndefined(empty.password)
      }))

    it.effect("percent-encoded username and password are decoded", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({ url: "redis://us%40er:p%40ss%3A%2F%23%3F%20x@h" })
        assert.strictEqual(config.username, "us@er")
        assert.strictEqual(passwordOf(config), "p@ss:/#? x")
      }))

    it.effect("IPv6 hosts lose their brackets", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({ url: "redis://[::1]:6380" })
        assert.strictEqual(config.host, "::1")
        assert.strictEqual(config.port, 6380)
        const full = yield* RedisConfig.resolve({ url: "rediss://u:p@[2001:db8::7]/3" })
        assert.strictEqual(full.host, "2001:db8::7")
        assert.strictEqual(full.db, 3)
      }))

    it.effect("an empty path or / means db 0, an empty host the default host, the scheme is case-insensitive", () =>
      Effect.gen(function*() {
        const slash = yield* RedisConfig.resolve({ url: "redis://h/" })
        assert.strictEqual(slash.db, 0)
        const noHost = yield* RedisConfig.resolve({ url: "redis:///4" })
        assert.strictEqual(noHost.host, "127.0.0.1")
        assert.strictEqual(noHost.db, 4)
        const upper = yield* RedisConfig.resolve({ url: "REDISS://h" })
        assert.strictEqual(upper.tls, true)
      }))

    it.effect("a Redacted url is read the same way", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({ url: Redacted.make(`redis://app:${PASSWORD}@h:6390/1`) })
        assert.strictEqual(config.port, 6390)
        assert.strictEqual(config.db, 1)
        assert.strictEqual(passwordOf(config), PASSWORD)
      }))

    it.effect.each([
      { label: "another scheme", url: `http://u:${PASSWORD}@h:6379` },
      { label: "no // after the scheme", url: `redis:${PASSWORD}@h` },
      { label: "not a URL", url: `${PASSWORD} at h` },
      { label: "an unparseable authority", url: `redis://u:${PASSWORD}/x@h` },
      { label: "port 0", url: `redis://u:${PASSWORD}@h:0` },
      { label: "port out of range", url: `redis://u:${PASSWORD}@h:70000` },
      { label: "db not a number", url: `redis://u:${PASSWORD}@h/abc` },
      { label: "db negative", url: `redis://u:${PASSWORD}@h/-1` },
      { label: "db fractional", url: `redis://u:${PASSWORD}@h/1.5` },
      { label: "a nested path", url: `redis://u:${PASSWORD}@h/1/2` },
      { label: "a query string", url: `redis://u:${PASSWORD}@h/1?db=2` },
      { label: "a fragment", url: `redis://u:${PASSWORD}@h/1#x` },
      { label: "malformed percent-encoding", url: `redis://u:${PASSWORD}%E0%A4%A@h` }
    ])("rejects $label with field url, without quoting it", ({ url }) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(RedisConfig.resolve({ url }))
        assert.strictEqual(error._tag, "InvalidRedisOptions")
        assert.strictEqual(error.field, "url")
        assert.notInclude(error.message, PASSWORD)
        assert.notInclude(error.message, url)
        assert.notInclude(String(error), PASSWORD)
      }))
  })

  describe("precedence", () => {
    it.effect("explicit options override every part of the url", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({
          url: "rediss://url-user:url-pass@url-host:1111/1",
          host: "opt-host",
          port: 2222,
          db: 2,
          username: "opt-user",
          password: Redacted.make("opt-pass"),
          tls: false
        })
        assert.strictEqual(config.host, "opt-host")
        assert.strictEqual(config.port, 2222)
        assert.strictEqual(config.db, 2)
        assert.strictEqual(config.username, "opt-user")
        assert.strictEqual(passwordOf(config), "opt-pass")
        assert.strictEqual(config.tls, false)
      }))

    it.effect("url parts the options leave unset still apply", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({ url: "rediss://u:p@url-host:1111/3", port: 2222 })
        assert.strictEqual(config.host, "url-host")
        assert.strictEqual(config.port, 2222)
        assert.strictEqual(config.db, 3)
        assert.strictEqual(config.username, "u")
        assert.strictEqual(passwordOf(config), "p")
        assert.strictEqual(config.tls, true)
      }))

    it.effect("TLS options replace the url's tls flag; a Redacted password is kept as given", () =>
      Effect.gen(function*() {
        const tls = { servername: "redis.example.com", rejectUnauthorized: true }
        const password = Redacted.make(PASSWORD)
        const config = yield* RedisConfig.resolve({ url: "redis://h", tls, password })
        assert.strictEqual(config.tls, tls)
        assert.strictEqual(config.password, password)
      }))

    it.effect("an empty password option means no password, even with one in the url", () =>
      Effect.gen(function*() {
        const config = yield* RedisConfig.resolve({ url: `redis://:${PASSWORD}@h`, password: "" })
        assert.isUndefined(config.password)
      }))
  })

  describe("validation", () => {
    const cases: ReadonlyArray<{ readonly field: string; readonly options: RedisConfig.RedisOptions }> = [
      { field: "host", options: { host: "" } },
      { field: "port", options: { port: 0 } },
      { field: "port", options: { port: 65536 } },
      { field: "port", options: { port: 6379.5 } },
      { field: "port", options: { port: Number.NaN } },
      { field: "db", options: { db: -1 } },
      { field: "db", options: { db: 1.5 } },
      { field: "db", options: { db: 1, topology: { _tag: "Cluster", nodes: [{ host: "n", port: 7000 }] } } },
      { field: "tls", options: { tls: "yes" as unknown as boolean } },
      { field: "connectionName", options: { connectionName: "has space" } },
      { field: "connectionName", options: { connectionName: "" } },
      { field: "connectTimeout", options: { connectTimeout: 0 } },
      { field: "connectTimeout", options: { connectTimeout: "ten seconds" as Duration.Input } },
      { field: "connectTimeout", options: { connectTimeout: "Infinity" } },
      { field: "commandTimeout", options: { commandTimeout: -1 } },
      { field: "acquireTimeout", options: { acquireTimeout: "-1 seconds" } },
      { field: "reconnect.base", options: { reconnect: { base: 0 } } },
      { field: "reconnect.factor", options: { reconnect: { factor: 0.5 } } },
      { field: "reconnect.factor", options: { reconnect: { factor: Number.POSITIVE_INFINITY } } },
      { field: "reconnect.factor", options: { reconnect: { factor: Number.NaN } } },
      { field: "reconnect.cap", options: { reconnect: { base: "200 millis", cap: "100 millis" } } },
      { field: "reconnect.cap", options: { reconnect: { cap: "10 millis" } } },
      { field: "reconnect.jitter", options: { reconnect: { jitter: "no" as unknown as boolean } } },
      { field: "reconnect.debounce", options: { reconnect: { debounce: -1 } } },
      { field: "heartbeat.interval", options: { heartbeat: { interval: 0 } } },
      { field: "heartbeat.timeout", options: { heartbeat: { timeout: 0 } } },
      { field: "heartbeat.timeout", options: { heartbeat: { interval: "1 second", timeout: "1001 millis" } } },
      { field: "heartbeat.timeout", options: { heartbeat: { interval: "200 millis" } } },
      { field: "heartbeat.misses", options: { heartbeat: { misses: 0 } } },
      { field: "heartbeat.misses", options: { heartbeat: { misses: 1.5 } } },
      { field: "breaker.failureThreshold", options: { breaker: { failureThreshold: 0 } } },
      { field: "breaker.failureThreshold", options: { breaker: { failureThreshold: 2.5 } } },
      { field: "breaker.openDuration", options: { breaker: { openDuration: 0 } } },
      { field: "breaker.maxOpenDuration", options: { breaker: { maxOpenDuration: "500 millis" } } },
      {
        field: "breaker.maxOpenDuration",
        options: { breaker: { openDuration: "10 seconds", maxOpenDuration: "5 seconds" } }
      },
      { field: "topology", options: { topology: { _tag: "Ring" } as unknown as RedisConfig.Topology } },
      { field: "topology.sentinels", options: { topology: { _tag: "Sentinel", sentinels: [], name: "m" } } },
      {
        field: "topology.name",
        options: { topology: { _tag: "Sentinel", sentinels: [{ host: "s", port: 1 }], name: "" } }
      },
      {
        field: "topology.sentinels[1].port",
        options: {
          topology: { _tag: "Sentinel", sentinels: [{ host: "s", port: 1 }, { host: "s", port: 0 }], name: "m" }
        }
      },
      { field: "topology.nodes", options: { topology: { _tag: "Cluster", nodes: [] } } },
      {
        field: "topology.nodes[0].host",
        options: { topology: { _tag: "Cluster", nodes: [{ host: "", port: 7000 }] } }
      },
      { field: "autoPipelining", options: { autoPipelining: "yes" as unknown as boolean } },
      { field: "awaitReady", options: { awaitReady: 1 as unknown as boolean } }
    ]

    it.effect.each(cases)("$field: rejects $options", ({ field, options }) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(RedisConfig.resolve({ ...options, password: PASSWORD }))
        assert.instanceOf(error, RedisConfig.InvalidRedisOptions)
        assert.strictEqual(error._tag, "InvalidRedisOptions")
        assert.strictEqual(error.field, field)
        assert.include(error.message, field)
        assert.notInclude(error.message, PASSWORD)
      }))

    it.effect("the error is catchable by tag", () =>
      Effect.gen(function*() {
        const field = yield* RedisConfig.resolve({ port: 0 }).pipe(
          Effect.map(() => "none"),
          Effect.catchTag("InvalidRedisOptions", (error) => Effect.succeed(error.field))
        )
        assert.strictEqual(field, "port")
      }))
  })

  describe("the password is never printed", () => {
    const tlsKey = "-----BEGIN PRIVATE KEY-----tls-key-material"
    const resolved = () =>
      resolveSync({
        url: `rediss://${USERNAME}:${encodeURIComponent(PASSWORD)}@h:6380/1`,
        tls: { key: tlsKey, passphrase: PASSWORD, servername: "redis.example.com" }
      })

    it("resolved config: String, JSON.stringify, util.inspect, redact", () => {
      const config = resolved()
      assert.strictEqual(passwordOf(config), PASSWORD)
      const printed = [String(config), `${config}`, JSON.stringify(config), util.inspect(config, { depth: 10 })]
      for (const text of printed) {
        assert.notInclude(text, PASSWORD)
        assert.notInclude(text, USERNAME)
        assert.notInclude(text, tlsKey)
        assert.include(text, "<redacted>")
        assert.include(text, "redis.example.com")
      }
      const summary = RedisConfig.redact(config)
      assert.strictEqual(summary.password, "<redacted>")
      assert.strictEqual(summary.username, "<redacted>")
      assert.deepStrictEqual(summary.tls, {
        key: "<redacted>",
        passphrase: "<redacted>",
        servername: "redis.example.com"
      })
      assert.strictEqual(summary.commandTimeout, "2s")
    })

    it("a spread copy still keeps the password redacted", () => {
      const copy = { ...resolved(), tls: true }
      assert.notInclude(JSON.stringify(copy), PASSWORD)
      assert.notInclude(util.inspect(copy, { depth: 10 }), PASSWORD)
    })

    it("errors: String, JSON.stringify, util.inspect, Cause.pretty", () => {
      const exits = [
        Effect.runSyncExit(RedisConfig.resolve({ password: PASSWORD, port: 0 })),
        Effect.runSyncExit(RedisConfig.resolve({ url: `redis://:${PASSWORD}@h:0` })),
        Effect.runSyncExit(RedisConfig.resolve({ url: `redis://:${PASSWORD}/@h` })),
        Effect.runSyncExit(RedisConfig.resolve({ url: `redis://:${PASSWORD}@h/x` }))
      ]
      for (const exit of exits) {
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isSuccess(exit)) continue
        const error = Cause.squash(exit.cause)
        for (const printed of [String(error), JSON.stringify(error), util.inspect(error), Cause.pretty(exit.cause)]) {
          assert.notInclude(printed, PASSWORD)
          assert.include(printed, "InvalidRedisOptions")
        }
      }
    })

    it.effect("logs, in every built-in format", () =>
      Effect.gen(function*() {
        const lines: Array<string> = []
        const collect = (format: (options: Logger.Options<unknown>) => unknown) =>
          Logger.make((options) => {
            const line = format(options)
            lines.push(typeof line === "string" ? line : JSON.stringify(line))
          })
        const loggers = Logger.layer([
          collect((options) => Logger.formatSimple.log(options)),
          collect((options) => Logger.formatLogFmt.log(options)),
          collect((options) => Logger.formatJson.log(options)),
          collect((options) => Logger.formatStructured.log(options))
        ])
        const config = resolved()
        const error = yield* Effect.flip(RedisConfig.resolve({ password: PASSWORD, db: -1 }))
        yield* Effect.gen(function*() {
          yield* Effect.log("redis config", config)
          yield* Effect.logError("invalid options", error)
          yield* Effect.logError(Cause.fail(error))
        }).pipe(Effect.provide(loggers))
        assert.strictEqual(lines.length, 12)
        for (const line of lines) {
          assert.notInclude(line, PASSWORD)
          assert.notInclude(line, USERNAME)
          assert.notInclude(line, tlsKey)
        }
        assert.isTrue(lines.some((line) => line.includes("<redacted>")))
      }))
  })

  describe("config (environment)", () => {
    const fromEnv = (env: Record<string, string>) => ConfigProvider.fromEnv({ env })

    it.effect("reads every REDIS_* variable", () =>
      Effect.gen(function*() {
        const options = yield* RedisConfig.config.parse(fromEnv({
          REDIS_URL: `redis://app:${PASSWORD}@url-host:1111/1`,
          REDIS_HOST: "env-host",
          REDIS_PORT: "6390",
          REDIS_USERNAME: "env-user",
          REDIS_PASSWORD: "env-pass",
          REDIS_DB: "4",
          REDIS_TLS: "true",
          REDIS_KEY_PREFIX: "app:",
          REDIS_CONNECT_TIMEOUT: "3 seconds",
          REDIS_COMMAND_TIMEOUT: "750 millis",
          REDIS_ACQUIRE_TIMEOUT: "200 millis",
          REDIS_AUTO_PIPELINING: "true"
        }))
        assert.isTrue(Redacted.isRedacted(options.url))
        assert.isTrue(Redacted.isRedacted(options.password))
        assert.notInclude(JSON.stringify(options), PASSWORD)
        assert.notInclude(JSON.stringify(options), "env-pass")

        const config = yield* RedisConfig.resolve(options)
        assert.strictEqual(config.host, "env-host")
        assert.strictEqual(config.port, 6390)
        assert.strictEqual(config.db, 4)
        assert.strictEqual(config.username, "env-user")
        assert.strictEqual(passwordOf(config), "env-pass")
        assert.strictEqual(config.tls, true)
        assert.strictEqual(config.keyPrefix, "app:")
        assert.strictEqual(millis(config.connectTimeout), 3_000)
        assert.strictEqual(millis(config.commandTimeout), 750)
        assert.strictEqual(millis(config.acquireTimeout), 200)
        assert.strictEqual(config.autoPipelining, true)
      }))

    it.effect("REDIS_URL alone, read from the current ConfigProvider", () =>
      Effect.gen(function*() {
        const options = yield* RedisConfig.config
        const config = yield* RedisConfig.resolve(options)
        assert.strictEqual(config.host, "cache")
        assert.strictEqual(config.port, 6380)
        assert.strictEqual(config.db, 2)
        assert.strictEqual(config.tls, true)
        assert.strictEqual(passwordOf(config), PASSWORD)
      }).pipe(
        Effect.provideService(
          ConfigProvider.ConfigProvider,
          fromEnv({ REDIS_URL: `rediss://:${PASSWORD}@cache:6380/2` })
        )
      ))

    it.effect("an empty environment yields no options, hence the defaults", () =>
      Effect.gen(function*() {
        const options = yield* RedisConfig.config.parse(fromEnv({ REDIS_PASSWORD: "", OTHER: "x" }))
        assert.deepStrictEqual(options, {})
        const config = yield* RedisConfig.resolve(options)
        assert.deepStrictEqual(RedisConfig.redact(config), RedisConfig.redact(RedisConfig.defaults))
      }))

    it.effect("REDIS_TLS=false turns off the TLS of a rediss:// REDIS_URL", () =>
      Effect.gen(function*() {
        const options = yield* RedisConfig.config.parse(fromEnv({ REDIS_URL: "rediss://h", REDIS_TLS: "false" }))
        const config = yield* RedisConfig.resolve(options)
        assert.strictEqual(config.tls, false)
      }))

    it.effect.each([
      { name: "REDIS_PORT", value: "abc" },
      { name: "REDIS_PORT", value: "70000" },
      { name: "REDIS_DB", value: "two" },
      { name: "REDIS_TLS", value: "maybe" },
      { name: "REDIS_CONNECT_TIMEOUT", value: "2000" },
      { name: "REDIS_COMMAND_TIMEOUT", value: "soon" }
    ])("a malformed $name=$value is a ConfigError", ({ name, value }) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(RedisConfig.config.parse(fromEnv({ [name]: value })))
        assert.strictEqual(error._tag, "ConfigError")
      }))

    it.effect("range checks happen in resolve: REDIS_DB=-1 fails with field db", () =>
      Effect.gen(function*() {
        const options = yield* RedisConfig.config.parse(fromEnv({ REDIS_DB: "-1" }))
        const error = yield* Effect.flip(RedisConfig.resolve(options))
        assert.strictEqual(error.field, "db")
      }))
  })

  describe("properties", () => {
    it("any valid port and db round-trip through a URL", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 65535 }), fc.nat({ max: 1_000_000 }), fc.boolean(), (port, db, tls) => {
          const config = resolveSync({ url: `${tls ? "rediss" : "redis"}://h:${port}/${db}` })
          assert.strictEqual(config.port, port)
          assert.strictEqual(config.db, db)
          assert.strictEqual(config.tls, tls)
        })
      )
    })

    it("any percent-encoded username and password round-trip, and the password is never printed", () => {
      const text = fc.string({ unit: "grapheme", minLength: 1, maxLength: 24 })
      fc.assert(
        fc.property(text.filter((s) => !s.includes("SECRET")), text, (username, secret) => {
          const password = `SECRET-${secret}`
          const config = resolveSync({
            url: `redis://${encodeURIComponent(username)}:${encodeURIComponent(password)}@h`
          })
          assert.strictEqual(config.username, username)
          assert.strictEqual(passwordOf(config), password)
          assert.notInclude(String(config), password)
          assert.notInclude(JSON.stringify(config), password)
          assert.notInclude(util.inspect(config), password)
        })
      )
    })

    it("any port outside 1..65535 is rejected with field port", () => {
      fc.assert(
        fc.property(
          fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 65536 }), fc.double({ noInteger: true })),
          (port) => {
            const exit = Effect.runSyncExit(RedisConfig.resolve({ port }))
            assert.isTrue(Exit.isFailure(exit))
            if (Exit.isFailure(exit)) {
              assert.strictEqual((Cause.squash(exit.cause) as RedisConfig.InvalidRedisOptions).field, "port")
            }
          }
        )
      )
    })
  })
})
