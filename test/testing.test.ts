/**
 * Tests of the test kit itself (`RedisTestServer`, `ChaosProxy`) against a real `redis-server`.
 * Waits use real timers: the last suite proves the kit also works under `TestClock`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { Redis, type RedisOptions } from "ioredis"
import * as Fs from "node:fs"
import * as Net from "node:net"
import { ChaosProxy, RedisTestServer } from "../src/testing/index.ts"
import { processExists, sleepReal, tcpConnect } from "./helpers.ts"

// ---------------------------------------------------------------------------------------------------------------------
// helpers (real timers only)
// ---------------------------------------------------------------------------------------------------------------------

type Outcome<A> =
  | { readonly _tag: "Ok"; readonly value: A }
  | { readonly _tag: "Error"; readonly error: unknown }
  | { readonly _tag: "Timeout" }

/** How `promise` settles within `millis` real milliseconds. */
const settleWithin = <A>(promise: Promise<A>, millis: number): Effect.Effect<Outcome<A>> =>
  Effect.promise(() =>
    new Promise<Outcome<A>>((resolve) => {
      const timer = setTimeout(() => resolve({ _tag: "Timeout" }), millis)
      promise.then(
        (value) => {
          clearTimeout(timer)
          resolve({ _tag: "Ok", value })
        },
        (error) => {
          clearTimeout(timer)
          resolve({ _tag: "Error", error })
        }
      )
    })
  )

/** Polls `check` on real timers until it returns true; false after `millis`. */
const eventually = (check: Effect.Effect<boolean>, millis = 2_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (Date.now() < deadline) {
      if (yield* check) return true
      yield* sleepReal(10)
    }
    return yield* check
  })

// ioredis' constructor wants `replyMapping` without `undefined`, which exactOptionalPropertyTypes enforces.
type Options = Omit<RedisOptions, "replyMapping">

/** A scoped ioredis client that never reconnects or queues on its own. */
const client = (url: string, options: Options = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis(url, {
        lazyConnect: true,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        connectTimeout: 2_000,
        ...options
      })
      redis.on("error", () => {})
      return redis
    }),
    (redis) => Effect.sync(() => redis.disconnect())
  )

const connected = (url: string, options: Options = {}) =>
  Effect.tap(client(url, options), (redis) => Effect.promise(() => redis.connect()))

/** Starts listening for `event` now; the returned effect waits (real timers) until it fired. */
const nextEvent = <A = unknown>(emitter: NodeJS.EventEmitter, event: string, millis = 2_000) => {
  const promise = new Promise<A>((resolve) => emitter.once(event, resolve))
  return Effect.map(settleWithin(promise, millis), (outcome) => {
    if (outcome._tag !== "Ok") throw new Error(`no "${event}" event within ${millis} ms`)
    return outcome.value
  })
}

const errorText = (outcome: Outcome<unknown>) => outcome._tag === "Error" ? String(outcome.error) : outcome._tag

// ---------------------------------------------------------------------------------------------------------------------
// RedisTestServer
// ---------------------------------------------------------------------------------------------------------------------

describe("RedisTestServer", () => {
  it.live("starts on a free loopback port and answers PING", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      assert.strictEqual(server.host, "127.0.0.1")
      assert.strictEqual(server.url, `redis://127.0.0.1:${server.port}`)
      assert.isTrue(server.port > 0)
      const redis = yield* connected(server.url)
      assert.strictEqual(yield* Effect.promise(() => redis.ping()), "PONG")
      assert.strictEqual(yield* server.command("SET", "k", "v"), "OK")
      assert.strictEqual(yield* Effect.promise(() => redis.get("k")), "v")
      const pid = yield* server.pid
      assert.isDefined(pid)
      assert.isTrue(processExists(pid!))
    }), 10_000)

  it.live("several servers start side by side on distinct ports", () =>
    Effect.gen(function*() {
      const servers = yield* Effect.all(Array.from({ length: 4 }, () => RedisTestServer.make()), {
        concurrency: "unbounded"
      })
      assert.strictEqual(new Set(servers.map((server) => server.port)).size, 4)
      for (const [i, server] of servers.entries()) yield* server.command("SET", "who", String(i))
      for (const [i, server] of servers.entries()) assert.strictEqual(yield* server.command("GET", "who"), String(i))
    }), 10_000)

  it.live("clientCount counts clients but not the admin connection", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      assert.strictEqual(yield* server.clientCount, 0)
      const first = yield* connected(server.url)
      assert.strictEqual(yield* server.clientCount, 1)
      yield* connected(server.url)
      assert.strictEqual(yield* server.clientCount, 2)
      yield* Effect.promise(() => first.quit())
      assert.isTrue(yield* eventually(Effect.map(server.clientCount, (n) => n === 1)))
    }), 10_000)

  it.live("killClients disconnects normal clients and reports how many", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const a = yield* connected(server.url)
      const b = yield* connected(server.url)
      const closedA = nextEvent(a, "close")
      const closedB = nextEvent(b, "close")
      assert.strictEqual(yield* server.killClients(), 2)
      yield* closedA
      yield* closedB
      assert.strictEqual(a.status, "end")
      assert.strictEqual(yield* server.clientCount, 0)
      // The admin connection survived: it still answers.
      assert.strictEqual(yield* server.command("PING"), "PONG")
    }), 10_000)

  it.live("killClients only kills the requested type", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const subscriber = yield* connected(server.url, { protocol: 2 })
      yield* Effect.promise(() => subscriber.subscribe("news"))
      assert.strictEqual(yield* server.killClients("normal"), 0)
      assert.strictEqual(subscriber.status, "ready")
      const closed = nextEvent(subscriber, "close")
      assert.strictEqual(yield* server.killClients("pubsub"), 1)
      yield* closed
    }), 10_000)

  it.live("stop refuses connections; start comes back on the same port", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const pidBefore = yield* server.pid
      const redis = yield* connected(server.url)
      const closed = nextEvent(redis, "close")
      yield* server.stop
      yield* closed
      assert.isUndefined(yield* server.pid)
      assert.isFalse(processExists(pidBefore!))
      assert.strictEqual(yield* tcpConnect(server.port), "ECONNREFUSED")
      assert.strictEqual(yield* server.clientCount, 0)
      assert.strictEqual(yield* server.killClients(), 0)
      yield* server.stop // idempotent

      yield* server.start
      const pidAfter = yield* server.pid
      assert.isDefined(pidAfter)
      assert.notStrictEqual(pidAfter, pidBefore)
      const again = yield* connected(server.url)
      assert.strictEqual(yield* Effect.promise(() => again.ping()), "PONG")
      yield* server.start // no-op while running
      assert.strictEqual(yield* server.pid, pidAfter)
    }), 15_000)

  it.live("appendOnly keeps data across restart; the default does not", () =>
    Effect.gen(function*() {
      const durable = yield* RedisTestServer.make({ appendOnly: true })
      const volatile = yield* RedisTestServer.make()
      yield* durable.command("SET", "k", "kept")
      yield* volatile.command("SET", "k", "lost")
      yield* durable.restart
      yield* volatile.restart
      assert.strictEqual(yield* durable.command("GET", "k"), "kept")
      assert.isNull(yield* volatile.command("GET", "k"))
    }), 15_000)

  it.live("password requires AUTH and is carried by url", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make({ password: "s3cr:t" })
      assert.strictEqual(server.url, `redis://:s3cr%3At@127.0.0.1:${server.port}`)
      const anonymous = yield* client(`redis://127.0.0.1:${server.port}`, { protocol: 2, enableReadyCheck: false })
      const denied = yield* settleWithin(anonymous.connect().then(() => anonymous.ping()), 2_000)
      assert.strictEqual(denied._tag, "Error", errorText(denied))
      assert.include(errorText(denied), "NOAUTH")
      const authed = yield* connected(server.url)
      assert.strictEqual(yield* Effect.promise(() => authed.ping()), "PONG")
      // The admin connection authenticates too.
      assert.strictEqual(yield* server.command("PING"), "PONG")
      // The unauthenticated connection is still open, so it counts.
      assert.strictEqual(yield* server.clientCount, 2)
    }), 10_000)

  it.live("extra args are passed to redis-server", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make({ args: ["--maxmemory", "10mb"] })
      const reply = yield* server.command("CONFIG", "GET", "maxmemory")
      assert.deepStrictEqual(reply, ["maxmemory", String(10 * 1024 * 1024)])
    }), 10_000)

  it.live("pause freezes the server; resume lets pending commands answer", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* connected(server.url)
      yield* server.pause
      const pending = redis.ping()
      assert.strictEqual((yield* settleWithin(pending, 300))._tag, "Timeout")
      assert.strictEqual(redis.status, "ready")
      yield* server.resume
      assert.deepStrictEqual(yield* settleWithin(pending, 2_000), { _tag: "Ok", value: "PONG" })
    }), 10_000)

  it.live("stop works while paused", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const pid = yield* server.pid
      yield* server.pause
      yield* server.stop
      assert.isFalse(processExists(pid!))
      yield* server.start
      assert.strictEqual(yield* server.command("PING"), "PONG")
    }), 10_000)

  it.live("closing the scope kills the process and removes its directory", () =>
    Effect.gen(function*() {
      const { dir, pid, port } = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* RedisTestServer.make({ appendOnly: true })
        yield* server.pause // the finalizer must cope with a frozen process
        const pid = yield* server.pid
        yield* server.resume
        const reply = (yield* server.command("CONFIG", "GET", "dir")) as Array<string>
        yield* server.pause
        return { dir: reply[1]!, pid: pid!, port: server.port }
      }))
      assert.isFalse(processExists(pid))
      assert.strictEqual(yield* tcpConnect(port), "ECONNREFUSED")
      assert.isFalse(Fs.existsSync(dir))
    }), 10_000)

  it.live("a missing binary fails with installation instructions", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RedisTestServer.make({ binary: "redis-server-that-does-not-exist" }))
      assert.strictEqual(error._tag, "RedisTestServerError")
      assert.include(error.message, "redis-server-that-does-not-exist was not found on PATH")
      assert.include(error.message, `"apt-get install redis-server"`)
      assert.include(error.message, `"brew install redis"`)
    }), 10_000)

  it.live("a server that cannot start fails with its output", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RedisTestServer.make({ args: ["--no-such-directive", "x"] }))
      assert.strictEqual(error._tag, "RedisTestServerError")
      assert.include(error.message, "exited")
      assert.include(error.message, "no-such-directive")
    }), 10_000)

  it.live("a fixed port that is taken fails with the bind error", () =>
    Effect.gen(function*() {
      const blocker = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Net.Server>((resolve) => {
            const server = Net.createServer((socket) => socket.destroy())
            server.listen(0, "127.0.0.1", () => resolve(server))
          })
        ),
        (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
      )
      const port = (blocker.address() as Net.AddressInfo).port
      const error = yield* Effect.flip(RedisTestServer.make({ port }))
      assert.include(error.message, "Address already in use")
    }), 10_000)

  it.live("command failures are typed errors", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      yield* server.command("SET", "k", "v")
      const error = yield* Effect.flip(server.command("INCR", "k"))
      assert.strictEqual(error._tag, "RedisTestServerError")
      assert.include(error.message, "not an integer")
      yield* server.stop
      const stopped = yield* Effect.flip(server.command("PING"))
      assert.strictEqual(stopped._tag, "RedisTestServerError")
    }), 10_000)
})

// ---------------------------------------------------------------------------------------------------------------------
// ChaosProxy
// ---------------------------------------------------------------------------------------------------------------------

describe("ChaosProxy", () => {
  it.live("forwards commands and counts connections", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      assert.strictEqual(proxy.url, `redis://127.0.0.1:${proxy.port}`)
      assert.notStrictEqual(proxy.port, server.port)
      const a = yield* connected(proxy.url)
      const b = yield* connected(proxy.url)
      yield* Effect.promise(() => a.set("k", "v"))
      assert.strictEqual(yield* Effect.promise(() => b.get("k")), "v")
      assert.strictEqual(yield* proxy.accepted, 2)
      assert.strictEqual(yield* proxy.active, 2)
      assert.strictEqual(yield* server.clientCount, 2)
      yield* Effect.promise(() => a.quit())
      assert.isTrue(yield* eventually(Effect.map(proxy.active, (n) => n === 1)))
      assert.strictEqual(yield* proxy.accepted, 2)
      assert.isTrue(yield* eventually(Effect.map(server.clientCount, (n) => n === 1)))
    }), 10_000)

  it.live("resetAll gives the client a real ECONNRESET and fails its in-flight command", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* connected(proxy.url)
      const order: Array<string> = []
      const errorEvent = nextEvent<NodeJS.ErrnoException>(redis, "error")
      redis.on("error", () => order.push("error event"))
      const inFlight = redis.blpop("never", 5).then(
        () => order.push("resolved"),
        () => order.push("rejected")
      )
      assert.isTrue(yield* eventually(Effect.map(server.clientCount, (n) => n === 1)))
      yield* proxy.resetAll
      const error = yield* errorEvent
      assert.strictEqual(error.code, "ECONNRESET")
      yield* Effect.promise(() => inFlight)
      assert.deepStrictEqual(order, ["error event", "rejected"])
      assert.strictEqual(yield* proxy.active, 0)
      // The upstream side is closed too, and the proxy keeps accepting.
      assert.isTrue(yield* eventually(Effect.map(server.clientCount, (n) => n === 0)))
      const next = yield* connected(proxy.url)
      assert.strictEqual(yield* Effect.promise(() => next.ping()), "PONG")
      assert.strictEqual(yield* proxy.accepted, 2)
    }), 10_000)

  it.live("refuse gives ECONNREFUSED to new connections only; restore listens again", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const existing = yield* connected(proxy.url)
      yield* proxy.refuse
      assert.strictEqual(yield* tcpConnect(proxy.port), "ECONNREFUSED")
      const refused = yield* client(proxy.url)
      const refusal = nextEvent<NodeJS.ErrnoException>(refused, "error")
      assert.strictEqual((yield* settleWithin(refused.connect(), 2_000))._tag, "Error")
      assert.strictEqual((yield* refusal).code, "ECONNREFUSED")
      assert.strictEqual(yield* Effect.promise(() => existing.ping()), "PONG")
      yield* proxy.refuse // idempotent
      yield* proxy.restore
      const fresh = yield* connected(proxy.url)
      assert.strictEqual(yield* Effect.promise(() => fresh.ping()), "PONG")
      assert.strictEqual(yield* proxy.accepted, 2)
      yield* proxy.restore // idempotent
    }), 10_000)

  it.live("blackhole holds traffic on open sockets; restore delivers it", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const existing = yield* connected(proxy.url)
      yield* proxy.blackhole
      const held = existing.ping()
      assert.strictEqual((yield* settleWithin(held, 300))._tag, "Timeout")
      assert.strictEqual(existing.status, "ready")
      assert.strictEqual(yield* proxy.active, 1)
      // New connections are accepted but get nothing back either.
      const fresh = yield* client(proxy.url, { connectTimeout: 10_000 })
      const handshake = fresh.connect()
      assert.strictEqual((yield* settleWithin(handshake, 300))._tag, "Timeout")
      assert.strictEqual(yield* proxy.accepted, 2)
      assert.strictEqual(yield* proxy.active, 2)
      yield* proxy.restore
      // Held bytes are delivered in order, like TCP after a partition heals.
      assert.deepStrictEqual(yield* settleWithin(held, 2_000), { _tag: "Ok", value: "PONG" })
      assert.strictEqual((yield* settleWithin(handshake, 2_000))._tag, "Ok")
      assert.strictEqual(yield* Effect.promise(() => fresh.ping()), "PONG")
    }), 10_000)

  it.live("latency delays each direction and keeps order", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* connected(proxy.url)
      yield* proxy.latency(100)
      const start = performance.now()
      assert.strictEqual(yield* Effect.promise(() => redis.ping()), "PONG")
      // 100 ms to the server plus 100 ms back.
      assert.isAtLeast(performance.now() - start, 195)
      const replies = yield* Effect.promise(() =>
        Promise.all(Array.from({ length: 50 }, () => redis.incr("counter")))
      )
      assert.deepStrictEqual(replies, Array.from({ length: 50 }, (_, i) => i + 1))
      yield* proxy.latency(0)
      assert.strictEqual(yield* Effect.promise(() => redis.ping()), "PONG")
    }), 10_000)

  it.live("closes the client side when the upstream is down or closes", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* connected(proxy.url)
      const closed = nextEvent(redis, "close")
      yield* server.killClients()
      yield* closed
      assert.isTrue(yield* eventually(Effect.map(proxy.active, (n) => n === 0)))
      yield* server.stop
      const attempt = yield* client(proxy.url)
      assert.strictEqual((yield* settleWithin(attempt.connect(), 2_000))._tag, "Error")
      assert.isTrue(yield* eventually(Effect.map(proxy.active, (n) => n === 0)))
      assert.strictEqual(yield* proxy.accepted, 2)
    }), 10_000)

  it.live("closing the scope closes every socket and the listener", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { port, redis } = yield* Effect.scoped(Effect.gen(function*() {
        const proxy = yield* ChaosProxy.make({ target: server })
        const redis = yield* Effect.promise(async () => {
          const redis = new Redis(proxy.url, { lazyConnect: true, retryStrategy: () => null })
          redis.on("error", () => {})
          await redis.connect()
          return redis
        })
        return { port: proxy.port, redis }
      }))
      yield* Effect.addFinalizer(() => Effect.sync(() => redis.disconnect()))
      assert.isTrue(yield* eventually(Effect.sync(() => redis.status === "end")))
      assert.strictEqual(yield* tcpConnect(port), "ECONNREFUSED")
      assert.isTrue(yield* eventually(Effect.map(server.clientCount, (n) => n === 0)))
    }), 10_000)
})

// ---------------------------------------------------------------------------------------------------------------------
// TestClock
// ---------------------------------------------------------------------------------------------------------------------

describe("under TestClock", () => {
  it.effect("make, restart, pause/resume and ChaosProxy work without adjusting the clock", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Clock.currentTimeMillis, 0)
      const server = yield* RedisTestServer.make({ appendOnly: true })
      const proxy = yield* ChaosProxy.make({ target: server })
      const redis = yield* connected(proxy.url)
      yield* Effect.promise(() => redis.set("k", "v"))

      yield* server.pause
      const pending = redis.ping()
      assert.strictEqual((yield* settleWithin(pending, 200))._tag, "Timeout")
      yield* server.resume
      assert.strictEqual((yield* settleWithin(pending, 2_000))._tag, "Ok")

      yield* proxy.latency(20)
      assert.strictEqual(yield* Effect.promise(() => redis.ping()), "PONG")
      yield* proxy.restore

      const closed = nextEvent(redis, "close")
      yield* server.restart
      yield* closed
      assert.strictEqual(yield* server.command("GET", "k"), "v")
      assert.strictEqual(yield* server.killClients(), 0)
      assert.strictEqual(yield* server.clientCount, 0)

      yield* proxy.refuse
      yield* proxy.restore
      const again = yield* connected(proxy.url)
      assert.strictEqual(yield* Effect.promise(() => again.get("k")), "v")
      yield* proxy.resetAll
      yield* server.stop
      yield* server.start
      assert.strictEqual(yield* Clock.currentTimeMillis, 0)
    }), 15_000)
})
