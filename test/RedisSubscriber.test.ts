/**
 * Pub/sub against a real redis-server: one shared SUBSCRIBE per channel, typed channels, gaps and resubscription
 * after CLIENT KILL, overflow, pattern subscriptions, and the polling fallback (real outage, and under TestClock).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option, Ref, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Core from "../src/internal/core.ts"
import * as Channels from "../src/RedisChannel.ts"
import { make as makeService, RedisService } from "../src/RedisService.ts"
import * as RedisSubscriber from "../src/RedisSubscriber.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { pubsubFastOptions, sleepReal, waitUntil } from "./helpers.ts"

const fast = pubsubFastOptions

/** RedisService and RedisSubscriber for a server, built in the current scope. */
const services = (url: string, options: RedisSubscriber.RedisSubscriberOptions = {}, extra: object = {}) =>
  Effect.gen(function*() {
    const layer = RedisSubscriber.RedisSubscriber.layerWith(options).pipe(
      Layer.provideMerge(RedisService.layer({ ...fast, ...extra, url }))
    )
    const context = yield* Layer.build(layer)
    return {
      redis: Context.get(context, RedisService),
      subscriber: Context.get(context, RedisSubscriber.RedisSubscriber),
      provide: <A, E>(effect: Effect.Effect<A, E, RedisService>) => Effect.provide(effect, context)
    }
  })

const numsub = (server: RedisTestServer.RedisTestServer, channel: string) =>
  Effect.map(server.command("PUBSUB", "NUMSUB", channel), (reply) => Number((reply as Array<unknown>)[1]))

/** Collects a stream in the background; `take()` returns what arrived so far. */
const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.gen(function*() {
    const items: Array<A> = []
    const fiber = yield* Effect.forkChild(Stream.runForEach(stream, (a) => Effect.sync(() => items.push(a))))
    return { items, fiber }
  })

describe("RedisSubscriber (real redis-server)", () => {
  it.effect("awaitSubscribed needs no clock: it returns under TestClock without adjusting it", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { subscriber } = yield* services(server.url, {}, { heartbeat: false })
      const news = yield* collect(subscriber.subscribe("news"))
      yield* subscriber.awaitSubscribed("news")
      yield* server.command("PUBLISH", "news", "hello")
      yield* waitUntil(Effect.sync(() => news.items.length), (n) => n === 1)
      yield* Fiber.interrupt(news.fiber)
    }))

  it.live("awaitSubscribed returns once Redis acknowledged the SUBSCRIBE (a publish right after it is delivered)", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      // Heartbeat off: its 100 ms PING timeout would drop the slowed connection below.
      const { subscriber } = yield* services(proxy.url, {}, { heartbeat: false })
      const warm = yield* collect(subscriber.subscribe("warm"))
      yield* subscriber.awaitSubscribed("warm")
      // The subscriber's connection is now slow (150 ms each way); the publisher below is a direct one.
      yield* proxy.latency(150)
      const late = yield* collect(subscriber.subscribe("late"))
      yield* subscriber.awaitSubscribed("late").pipe(Effect.timeout("3 seconds"))
      yield* server.command("PUBLISH", "late", "at once")
      yield* waitUntil(Effect.sync(() => late.items.length), (n) => n === 1)
      assert.deepStrictEqual(late.items, ["at once"])
      yield* Fiber.interrupt(warm.fiber)
    }))

  it.live("50 local streams on one channel make one SUBSCRIBE; the last one gone unsubscribes", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { redis, subscriber } = yield* services(server.url)
      // Forked from the test fiber (a fiber forked inside a concurrent forEach worker ends with that worker).
      const streams = yield* Effect.forEach(Array.from({ length: 50 }), () => collect(subscriber.subscribe("news")))
      yield* waitUntil(numsub(server, "news"), (n) => n === 1)
      assert.strictEqual(yield* redis.publish("news", "hello"), 1, "one subscribed connection")
      yield* waitUntil(Effect.sync(() => streams.every((s) => s.items.length === 1)), (ok) => ok)
      assert.deepStrictEqual(streams[0]!.items, ["hello"])
      yield* Effect.forEach(streams.slice(0, 49), (s) => Fiber.interrupt(s.fiber))
      assert.strictEqual(yield* numsub(server, "news"), 1)
      yield* Fiber.interrupt(streams[49]!.fiber)
      yield* waitUntil(numsub(server, "news"), (n) => n === 0)
      assert.deepStrictEqual((yield* subscriber.subscriptions).channels, [])
    }))

  it.live("typed channels: publish encodes, subscribe decodes, a bad message is an Invalid event", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { redis, subscriber, provide } = yield* services(server.url)
      const App = Channels.registry("shop", {
        orders: Schema.Struct({ id: Schema.String, total: Schema.Number })
      })
      assert.strictEqual(App.orders.name, "shop:orders")
      const typed = yield* collect(subscriber.subscribe(App.orders))
      const events = yield* collect(subscriber.events(App.orders))
      yield* waitUntil(numsub(server, "shop:orders"), (n) => n === 1)
      yield* provide(Channels.publish(App.orders, { id: "o1", total: 12.5 }))
      yield* redis.publish("shop:orders", "not json")
      yield* provide(Channels.publish(App.orders, { id: "o2", total: 3 }))
      yield* waitUntil(Effect.sync(() => typed.items.length), (n) => n === 2)
      assert.deepStrictEqual(typed.items, [{ id: "o1", total: 12.5 }, { id: "o2", total: 3 }])
      yield* waitUntil(Effect.sync(() => events.items.length), (n) => n === 3)
      assert.deepStrictEqual(events.items.map((e) => e._tag), ["Message", "Invalid", "Message"])
      // A value that does not encode never reaches the wire.
      const bad = yield* Effect.flip(provide(Channels.publish(App.orders, { id: 1, total: "x" } as never)))
      assert.strictEqual(bad._tag, "EncodeError")
      yield* sleepReal(50)
      assert.strictEqual(events.items.length, 3)
    }))

  it.live("invalid channel names are rejected with InvalidChannelName", () =>
    Effect.gen(function*() {
      assert.throws(() => Channels.buildRedisChannelName("app", "", "x"), /empty/)
      assert.throws(() => Channels.buildRedisChannelName("app", "user*"), /glob/)
      assert.strictEqual(Channels.buildRedisChannelName("app", "user", "42"), "app:user:42")
      const server = yield* RedisTestServer.make()
      const { subscriber } = yield* services(server.url)
      const error = yield* Effect.flip(Stream.runDrain(subscriber.subscribe("orders:*")))
      assert.strictEqual(error._tag, "InvalidChannelName")
    }))

  it.live("a channel Redis refuses (ACL NOPERM) fails its stream, without a reconnect storm", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      yield* server.command("ACL", "SETUSER", "limited", "on", ">secret", "~*", "&allowed", "+@all")
      const url = `redis://limited:secret@${server.host}:${server.port}`
      const { redis, subscriber } = yield* services(url)
      // Both registered before the subscriber connection exists: they are subscribed together when it is ready.
      const denied = yield* Effect.forkChild(Effect.flip(Stream.runDrain(subscriber.events("denied"))))
      const allowed = yield* collect(subscriber.subscribe("allowed"))
      const error = yield* Fiber.join(denied)
      assert.strictEqual(error._tag, "ReplyError")
      if (error._tag === "ReplyError") assert.strictEqual(error.code, "NOPERM")
      yield* waitUntil(numsub(server, "allowed"), (n) => n === 1)
      // And later, on a ready connection:
      const later = yield* Effect.flip(Stream.runDrain(subscriber.events("denied-too")))
      assert.strictEqual(later._tag, "ReplyError")
      yield* sleepReal(300)
      // The subscriber connection stayed: the allowed channel still works, nothing reconnected.
      assert.strictEqual(yield* redis.publish("allowed", "still here"), 1)
      yield* waitUntil(Effect.sync(() => allowed.items), (items) => items.includes("still here"))
      assert.deepStrictEqual((yield* subscriber.subscriptions).channels, ["allowed"])
      assert.isTrue((yield* server.clientCount) <= 2, "command + subscriber connections only")
    }))

  it.live("the subscriber connection reports its losses and recoveries to the service's circuit breaker", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* makeService({ ...fast, url: server.url, heartbeat: false })
      const signals = { failure: 0, success: 0 }
      // The service's core, with its breaker signals counted instead.
      const counted = Core.make(redis.config, {
        failure: Effect.sync(() => {
          signals.failure++
        }),
        success: Effect.sync(() => {
          signals.success++
        })
      })
      const subscriber = yield* RedisSubscriber.make(Core.attach({ ...redis }, counted))
      yield* collect(subscriber.subscribe("signals"))
      yield* waitUntil(numsub(server, "signals"), (n) => n === 1)
      assert.deepStrictEqual(signals, { failure: 0, success: 1 })
      yield* server.killClients("pubsub")
      yield* waitUntil(Effect.sync(() => signals.success), (n) => n === 2)
      assert.strictEqual(signals.failure, 1)
    }))

  it.live("CLIENT KILL TYPE pubsub: Gap then Resubscribed, and messages flow again", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { redis, subscriber } = yield* services(server.url)
      const events = yield* collect(subscriber.events("feed"))
      yield* waitUntil(numsub(server, "feed"), (n) => n === 1)
      yield* redis.publish("feed", "before")
      assert.strictEqual(yield* server.killClients("pubsub"), 1)
      yield* waitUntil(Effect.sync(() => events.items.some((e) => e._tag === "Resubscribed")), (ok) => ok)
      yield* redis.publish("feed", "after")
      yield* waitUntil(Effect.sync(() => events.items.length), (n) => n === 4)
      assert.deepStrictEqual(events.items.map((e) => e._tag), ["Message", "Gap", "Resubscribed", "Message"])
      const gap = events.items[1]!
      if (gap._tag === "Gap") {
        assert.strictEqual(gap.reason, "disconnected")
        assert.isTrue(gap.to.epochMilliseconds >= gap.from.epochMilliseconds)
      }
    }))

  it.live("a slow consumer gets a bounded buffer and an overflow Gap with the number dropped", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { redis, subscriber } = yield* services(server.url, { bufferSize: 5 })
      const pulled = yield* Effect.forkChild(
        Stream.runCollect(Stream.take(subscriber.events("burst"), 7))
      )
      yield* waitUntil(numsub(server, "burst"), (n) => n === 1)
      // The consumer above pulls as fast as it can; publish from a pipeline so that messages arrive in one burst.
      yield* server.command("EVAL", "for i=1,20 do redis.call('PUBLISH', 'burst', tostring(i)) end", "0")
      yield* redis.publish("burst", "21")
      const events = Array.from(yield* Fiber.join(pulled))
      const messages = events.filter((e) => e._tag === "Message").map((e) => e._tag === "Message" ? e.message : "")
      const gaps = events.filter((e) => e._tag === "Gap")
      // Whatever the scheduling, nothing is lost silently: every missing message is accounted for by a Gap.
      const dropped = gaps.reduce((n, g) => n + (g._tag === "Gap" ? g.dropped ?? 0 : 0), 0)
      assert.isTrue(gaps.length >= 1, JSON.stringify(events.map((e) => e._tag)))
      assert.strictEqual(Number(messages[messages.length - 1]) - messages.length + 1 - dropped, 1)
    }))

  it.live("pattern subscriptions deliver the channel and the pattern", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { redis, subscriber } = yield* services(server.url)
      const events = yield* collect(subscriber.psubscribe("room:*"))
      yield* waitUntil(
        Effect.map(server.command("PUBSUB", "NUMPAT"), Number),
        (n) => n === 1
      )
      yield* redis.publish("room:1", "a")
      yield* redis.publish("other", "b")
      yield* redis.publish("room:2", "c")
      yield* waitUntil(Effect.sync(() => events.items.length), (n) => n === 2)
      assert.deepStrictEqual(
        events.items.map((e) => e._tag === "Message" ? [e.channel, e.pattern, e.message] : []),
        [["room:1", "room:*", "a"], ["room:2", "room:*", "c"]]
      )
    }))

  it.live("subscribeWithFallback: live, then polling while Redis is down, then live again (polling stops)", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { redis, subscriber } = yield* services(server.url)
      const polls = yield* Ref.make(0)
      const poll = Effect.map(Ref.updateAndGet(polls, (n) => n + 1), (n) => [`polled-${n}`])
      const out = yield* collect(subscriber.subscribeWithFallback("prices", { poll, interval: "50 millis" }))
      yield* waitUntil(numsub(server, "prices"), (n) => n === 1)
      yield* redis.publish("prices", "live-1")
      yield* waitUntil(Effect.sync(() => out.items.includes("live-1")), (ok) => ok)
      yield* server.stop
      yield* waitUntil(Effect.sync(() => out.items.filter((i) => i.startsWith("polled")).length), (n) => n >= 3)
      yield* server.start
      yield* waitUntil(numsub(server, "prices"), (n) => n === 1, 10_000)
      yield* waitUntil(subscriber.mode.pipe(Stream.runHead, Effect.map(Option.getOrThrow)), (m) => m === "live")
      const pollsWhenBack = yield* Ref.get(polls)
      yield* redis.publish("prices", "live-2")
      yield* waitUntil(Effect.sync(() => out.items.includes("live-2")), (ok) => ok)
      yield* sleepReal(200)
      assert.isTrue((yield* Ref.get(polls)) <= pollsWhenBack + 1, "polling stopped once live again")
    }))
})

describe("RedisSubscriber fallback (TestClock)", () => {
  it.effect("polls exactly every interval while the subscriber is down, not at all while live", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      yield* server.stop
      const { subscriber } = yield* services(server.url, {}, { heartbeat: false })
      const polls = yield* Ref.make(0)
      const poll = Effect.as(Ref.update(polls, (n) => n + 1), ["p"])
      const out = yield* collect(subscriber.subscribeWithFallback("ticker", { poll, interval: "1 second" }))
      // Down from the start: the first poll runs at once, then one per second of virtual time.
      yield* waitUntil(Ref.get(polls), (n) => n === 1)
      yield* TestClock.adjust("999 millis")
      yield* sleepReal(20)
      assert.strictEqual(yield* Ref.get(polls), 1)
      yield* TestClock.adjust("1 millis")
      yield* waitUntil(Ref.get(polls), (n) => n === 2)
      yield* TestClock.adjust("1 second")
      yield* waitUntil(Ref.get(polls), (n) => n === 3)
      assert.deepStrictEqual(out.items, ["p", "p", "p"])
      // Back: once the subscriber is ready (and the circuit closed), polling stops.
      yield* server.start
      for (let i = 0; i < 50; i++) {
        const mode = Option.getOrThrow(yield* Stream.runHead(subscriber.mode))
        if (mode === "live") break
        yield* TestClock.adjust("100 millis")
        yield* sleepReal(10)
      }
      assert.strictEqual(Option.getOrThrow(yield* Stream.runHead(subscriber.mode)), "live")
      const atLive = yield* Ref.get(polls)
      yield* TestClock.adjust("10 seconds")
      yield* sleepReal(20)
      assert.strictEqual(yield* Ref.get(polls), atLive)
    }))
})
