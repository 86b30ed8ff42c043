/**
 * Pub/sub across topologies against real processes: sharded pub/sub (SSUBSCRIBE/SPUBLISH) on a standalone Redis 7 and
 * on a Redis Cluster (each channel subscribed on the master owning its slot, a killed node connection and a frozen
 * master give Gap then Resubscribed), and classic and sharded pub/sub behind Sentinel through a failover.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, Schema, Stream } from "effect"
import * as Channels from "../src/RedisChannel.ts"
import * as fc from "fast-check"
import { slotOf } from "../src/internal/topology/slot.ts"
import type { RedisOptions } from "../src/index.ts"
import * as RedisService from "../src/RedisService.ts"
import * as RedisSubscriber from "../src/RedisSubscriber.ts"
import * as RedisTestCluster from "../src/testing/RedisTestCluster.ts"
import * as RedisTestSentinel from "../src/testing/RedisTestSentinel.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { pubsubFastOptions, sleepReal, waitUntil } from "./helpers.ts"

// A PING may take 150 ms here (six or more redis-servers on two cores): a 100 ms timeout replaces connections for
// nothing under load.
const fast = {
  ...pubsubFastOptions,
  commandTimeout: "500 millis",
  heartbeat: { interval: "200 millis", timeout: "150 millis", misses: 2 },
  awaitReady: true
} satisfies RedisOptions

/** Collects a stream in the background; `items` is what arrived so far. */
const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.gen(function*() {
    const items: Array<A> = []
    const fiber = yield* Effect.forkChild(Stream.runForEach(stream, (a) => Effect.sync(() => items.push(a))))
    return { items, fiber }
  })

const tags = (events: ReadonlyArray<RedisSubscriber.SubscriptionEvent>) =>
  events.map((e) => e._tag === "Message" ? `Message:${e.message}` : e._tag)

const shardNumsub = (node: RedisTestServer.RedisTestServer, channel: string) =>
  Effect.map(node.command("PUBSUB", "SHARDNUMSUB", channel), (reply) => Number((reply as Array<unknown>)[1]))

const numsub = (node: RedisTestServer.RedisTestServer, channel: string) =>
  Effect.map(node.command("PUBSUB", "NUMSUB", channel), (reply) => Number((reply as Array<unknown>)[1]))

const currentMode = (subscriber: RedisSubscriber.RedisSubscriberShape) =>
  Effect.map(Stream.runHead(subscriber.mode), Option.getOrThrow)

/** Publishes (sharded or not) until at least one subscriber gets it; returns the attempts' duration (ms). */
const publishUntilReceived = (
  redis: RedisService.RedisServiceShape,
  channel: string,
  message: string,
  sharded: boolean,
  limitMillis: number
) =>
  Effect.gen(function*() {
    const started = Date.now()
    let last: unknown
    while (Date.now() - started < limitMillis) {
      const result = yield* Effect.result(
        Channels.publish(channel, message, { sharded }).pipe(Effect.provideService(RedisService.RedisService, redis))
      )
      if (result._tag === "Success" && result.success >= 1) return Date.now() - started
      last = result._tag === "Success" ? `${result.success} receivers` : result.failure._tag
      yield* sleepReal(50)
    }
    return yield* Effect.die(new Error(`${message} reached no subscriber within ${limitMillis} ms (last: ${last})`))
  })

describe("slotOf", () => {
  it("slotOf matches the reference values of the Redis Cluster spec, hash tags included", () => {
    assert.strictEqual(slotOf("123456789"), 0x31c3) // CRC16/XMODEM check value
    assert.strictEqual(slotOf("foo"), 12182)
    assert.strictEqual(slotOf("{user1000}.following"), slotOf("user1000"))
    assert.strictEqual(slotOf("foo{}{bar}"), slotOf("foo{}{bar}")) // an empty tag hashes the whole name
    assert.notStrictEqual(slotOf("foo{}{bar}"), slotOf("bar"))
    assert.strictEqual(slotOf("foo{{bar}}zap"), slotOf("{bar"))
  })
  it("slotOf agrees with CRC16 over the UTF-8 bytes for any key (the ASCII fast path included)", () => {
    const table = Array.from({ length: 256 }, (_, byte) => {
      let crc = byte << 8
      for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
      return crc
    })
    const reference = (key: string): number => {
      let bytes = new TextEncoder().encode(key)
      const open = bytes.indexOf(0x7b)
      const close = open === -1 ? -1 : bytes.indexOf(0x7d, open + 1)
      if (close > open + 1) bytes = bytes.subarray(open + 1, close)
      let crc = 0
      for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ byte) & 0xff]!
      return crc % 16384
    }
    const pieces = fc.oneof(fc.constantFrom("{", "}", "{}", "user:", "é", "😀", "\u007f", "\u0080"), fc.string())
    fc.assert(fc.property(fc.array(pieces, { maxLength: 8 }), (parts) => {
      const key = parts.join("")
      assert.strictEqual(slotOf(key), reference(key), JSON.stringify(key))
    }), { numRuns: 2000 })
  })
})

describe("Sharded pub/sub on a standalone Redis 7", () => {
  it.live("50 local streams make one SSUBSCRIBE; SPUBLISH reaches them, PUBLISH does not; patterns stay classic", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fast, url: server.url })
      const subscriber = yield* RedisSubscriber.make(redis, { sharded: true })
      const streams = yield* Effect.forEach(Array.from({ length: 50 }), () => collect(subscriber.subscribe("news")))
      const pattern = yield* collect(subscriber.psubscribe("room:*"))
      yield* waitUntil(shardNumsub(server, "news"), (n) => n === 1)
      assert.strictEqual(yield* numsub(server, "news"), 0, "no classic SUBSCRIBE")
      yield* waitUntil(currentMode(subscriber), (m) => m === "live")
      // Classic PUBLISH does not reach a sharded subscription; SPUBLISH does, once for the one connection.
      assert.strictEqual(yield* redis.publish("news", "classic"), 0)
      const provide = Effect.provideService(RedisService.RedisService, redis)
      assert.strictEqual(yield* provide(Channels.publish("news", "sharded", { sharded: true })), 1)
      assert.strictEqual(yield* redis.command<number>("SPUBLISH", ["news", "by-command"]), 1)
      yield* waitUntil(Effect.sync(() => streams.every((s) => s.items.length === 2)), (ok) => ok)
      assert.deepStrictEqual(streams[0]!.items, ["sharded", "by-command"])
      // A pattern is a classic PSUBSCRIBE on the same subscriber: PUBLISH reaches it.
      assert.strictEqual(yield* redis.publish("room:1", "hello"), 1)
      yield* waitUntil(Effect.sync(() => pattern.items.length), (n) => n === 1)
      yield* Effect.forEach(streams.slice(0, 49), (s) => Fiber.interrupt(s.fiber))
      assert.strictEqual(yield* shardNumsub(server, "news"), 1)
      yield* Fiber.interrupt(streams[49]!.fiber)
      yield* waitUntil(shardNumsub(server, "news"), (n) => n === 0)
      assert.deepStrictEqual((yield* subscriber.subscriptions).channels, [])
    }))

  it.live("typed channels and keyPrefix: the wire name is prefixed as SPUBLISH's is, streams see the plain name", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fast, url: server.url, keyPrefix: "app:" })
      const subscriber = yield* RedisSubscriber.make(redis, { sharded: true })
      const orders = Channels.make({ name: ["shop", "orders"], schema: Schema.Struct({ id: Schema.String }) })
      const events = yield* collect(subscriber.events(orders))
      yield* waitUntil(shardNumsub(server, "app:shop:orders"), (n) => n === 1)
      const provide = Effect.provideService(RedisService.RedisService, redis)
      assert.strictEqual(yield* provide(Channels.publish(orders, { id: "o1" }, { sharded: true })), 1)
      yield* server.command("SPUBLISH", "app:shop:orders", "not json")
      yield* waitUntil(Effect.sync(() => events.items.length), (n) => n === 2)
      const [first, second] = events.items
      assert.deepStrictEqual(first, { _tag: "Message", channel: "shop:orders", message: { id: "o1" } })
      assert.strictEqual(second?._tag, "Invalid")
    }))

  it.live("CLIENT KILL TYPE pubsub: Gap then Resubscribed, live only after SSUBSCRIBE again, messages flow again", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fast, url: server.url })
      const subscriber = yield* RedisSubscriber.make(redis, { sharded: true })
      const events = yield* collect(subscriber.events("feed"))
      const modes = yield* collect(subscriber.mode)
      yield* waitUntil(shardNumsub(server, "feed"), (n) => n === 1)
      yield* waitUntil(Effect.sync(() => modes.items.at(-1)), (m) => m === "live")
      assert.strictEqual(yield* redis.command<number>("SPUBLISH", ["feed", "before"]), 1)
      yield* waitUntil(Effect.sync(() => events.items.length), (n) => n === 1)
      const modesBefore = modes.items.length
      assert.strictEqual(yield* server.killClients("pubsub"), 1)
      yield* waitUntil(Effect.sync(() => events.items.some((e) => e._tag === "Resubscribed")), (ok) => ok)
      // Resubscribed comes once the SSUBSCRIBE was answered: the server counts the subscription again.
      assert.strictEqual(yield* shardNumsub(server, "feed"), 1)
      assert.deepStrictEqual(modes.items.slice(modesBefore), ["polling", "live"])
      assert.strictEqual(yield* redis.command<number>("SPUBLISH", ["feed", "after"]), 1)
      yield* waitUntil(Effect.sync(() => events.items.length), (n) => n === 4)
      assert.deepStrictEqual(tags(events.items), ["Message:before", "Gap", "Resubscribed", "Message:after"])
      const gap = events.items[1]!
      assert.isTrue(gap._tag === "Gap" && gap.reason === "disconnected")
    }))

  it.live("a slow consumer gets an overflow Gap with the number dropped (sharded)", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fast, url: server.url })
      const subscriber = yield* RedisSubscriber.make(redis, { sharded: true, bufferSize: 5 })
      const pulled = yield* Effect.forkChild(Stream.runCollect(Stream.take(subscriber.events("burst"), 7)))
      yield* waitUntil(shardNumsub(server, "burst"), (n) => n === 1)
      yield* server.command("EVAL", "for i=1,20 do redis.call('SPUBLISH', KEYS[1], tostring(i)) end", "1", "burst")
      yield* redis.command("SPUBLISH", ["burst", "21"])
      const events = Array.from(yield* Fiber.join(pulled))
      const messages = events.filter((e) => e._tag === "Message").map((e) => e._tag === "Message" ? e.message : "")
      const gaps = events.filter((e) => e._tag === "Gap")
      const dropped = gaps.reduce((n, g) => n + (g._tag === "Gap" ? g.dropped ?? 0 : 0), 0)
      assert.isTrue(gaps.length >= 1, JSON.stringify(tags(events)))
      assert.isTrue(gaps.every((g) => g._tag === "Gap" && g.reason === "overflow"))
      assert.strictEqual(Number(messages[messages.length - 1]) - messages.length + 1 - dropped, 1)
    }))
})

/** Channel names owned by `count` different masters (asked of the cluster: CLUSTER KEYSLOT + CLUSTER NODES). */
const channelsOnDistinctMasters = (cluster: RedisTestCluster.RedisTestCluster, count: number) =>
  Effect.gen(function*() {
    const byMaster = new Map<number, string>()
    for (let i = 0; byMaster.size < count && i < 100; i++) {
      const channel = `shard:${i}`
      const owner = yield* cluster.masterOf(channel)
      if (!byMaster.has(owner.port)) byMaster.set(owner.port, channel)
    }
    assert.strictEqual(byMaster.size, count)
    return [...byMaster.values()]
  })

describe("Sharded pub/sub on Redis Cluster", () => {
  it.live("each channel is SSUBSCRIBEd on its slot's master; a killed node connection: Gap then Resubscribed", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisTestCluster.make()
      const redis = yield* RedisService.make({ ...fast, topology: { _tag: "Cluster", nodes: cluster.startupNodes } })
      const subscriber = yield* RedisSubscriber.make(redis, { sharded: true })
      const channels = yield* channelsOnDistinctMasters(cluster, 3)
      // Our slot function agrees with the server's.
      for (const channel of channels) {
        const slot = yield* (yield* cluster.masterOf(channel)).command("CLUSTER", "KEYSLOT", channel)
        assert.strictEqual(slotOf(channel), Number(slot))
      }
      const streams = yield* Effect.forEach(channels, (channel) => collect(subscriber.events(channel)))
      const masters = yield* cluster.currentMasters
      for (const channel of channels) {
        const owner = yield* cluster.masterOf(channel)
        yield* waitUntil(shardNumsub(owner, channel), (n) => n === 1)
        // Only the owner has the subscription (a sharded channel lives on its shard only).
        for (const master of masters) {
          if (master.port !== owner.port) assert.strictEqual(yield* shardNumsub(master, channel), 0)
        }
      }
      yield* waitUntil(currentMode(subscriber), (m) => m === "live")
      const provide = Effect.provideService(RedisService.RedisService, redis)
      for (const channel of channels) {
        assert.strictEqual(yield* provide(Channels.publish(channel, `${channel}:before`, { sharded: true })), 1)
      }
      yield* waitUntil(Effect.sync(() => streams.every((s) => s.items.length === 1)), (ok) => ok)
      // Kill the sharded subscriber connection on one owner: the whole cluster client is replaced, so every channel
      // (on every shard) is told about a gap, then subscribed again on its owner.
      const victim = yield* cluster.masterOf(channels[0]!)
      assert.strictEqual(yield* victim.killClients("pubsub"), 1)
      yield* waitUntil(
        Effect.sync(() => streams.every((s) => s.items.some((e) => e._tag === "Resubscribed"))),
        (ok) => ok
      )
      for (const channel of channels) {
        assert.strictEqual(yield* shardNumsub(yield* cluster.masterOf(channel), channel), 1)
        assert.strictEqual(yield* provide(Channels.publish(channel, `${channel}:after`, { sharded: true })), 1)
      }
      yield* waitUntil(Effect.sync(() => streams.every((s) => s.items.length === 4)), (ok) => ok)
      streams.forEach((s, i) =>
        assert.deepStrictEqual(tags(s.items), [
          `Message:${channels[i]}:before`,
          "Gap",
          "Resubscribed",
          `Message:${channels[i]}:after`
        ])
      )
    }))

  it.live("a frozen master: the channel is subscribed again on the promoted replica, Gap then Resubscribed", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisTestCluster.make()
      const redis = yield* RedisService.make({ ...fast, topology: { _tag: "Cluster", nodes: cluster.startupNodes } })
      const subscriber = yield* RedisSubscriber.make(redis, { sharded: true })
      const channel = "orders:eu"
      const master = yield* cluster.masterOf(channel)
      const events = yield* collect(subscriber.events(channel))
      yield* waitUntil(shardNumsub(master, channel), (n) => n === 1)
      // Until it has arrived (a connection replaced meanwhile, with its Gap, would lose one).
      yield* waitUntil(
        Effect.andThen(
          publishUntilReceived(redis, channel, "before", true, 2_000),
          Effect.andThen(sleepReal(50), Effect.sync(() => tags(events.items).includes("Message:before")))
        ),
        (arrived) => arrived
      )
      yield* master.pause
      const frozenAt = Date.now()
      const beforeFreeze = events.items.length
      const resubscribed = yield* waitUntil(
        Effect.sync(() => events.items.findIndex((e, i) => i >= beforeFreeze && e._tag === "Resubscribed")),
        (i) => i !== -1,
        15_000
      ).pipe(Effect.ensuring(master.resume))
      const took = Date.now() - frozenAt
      yield* Effect.logInfo(`cluster sharded failover: Resubscribed ${took} ms after SIGSTOP`)
      assert.isTrue(took < 10_000, `resubscribed after ${took} ms`)
      // Every node's view of the promotion may take a moment (the kit asks one of them).
      const view = yield* waitUntil(
        Effect.result(cluster.masterOf(channel)),
        (r) => r._tag === "Success" && r.success.port !== master.port
      )
      if (view._tag === "Failure") return yield* Effect.die(view.failure)
      const promoted = view.success
      assert.strictEqual(yield* shardNumsub(promoted, channel), 1)
      // The publishing (command) connection fails over on its own; give it the same bound as the subscriber.
      const publishedAfter = yield* publishUntilReceived(redis, channel, "after", true, 10_000)
      yield* Effect.logInfo(`cluster sharded failover: SPUBLISH reached it ${publishedAfter} ms after Resubscribed`)
      yield* waitUntil(Effect.sync(() => events.items.at(-1)), (e) => e?._tag === "Message")
      assert.include(tags(events.items).slice(0, beforeFreeze), "Message:before")
      assert.deepStrictEqual(tags(events.items).slice(resubscribed - 1), ["Gap", "Resubscribed", "Message:after"])
    }))
})

describe("Pub/sub behind Sentinel", () => {
  for (const sharded of [false, true]) {
    it.live(`${sharded ? "sharded" : "classic"}: a frozen master, Gap then Resubscribed on the promoted replica`, () =>
      Effect.gen(function*() {
        const sentinel = yield* RedisTestSentinel.make()
        const topology = {
          _tag: "Sentinel" as const,
          name: sentinel.name,
          sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port }))
        }
        const redis = yield* RedisService.make({ ...fast, topology })
        const subscriber = yield* RedisSubscriber.make(redis, { sharded })
        const count = sharded ? shardNumsub : numsub
        const events = yield* collect(subscriber.events("alerts"))
        yield* waitUntil(count(sentinel.master, "alerts"), (n) => n === 1)
        yield* publishUntilReceived(redis, "alerts", "before", sharded, 2_000)
        yield* waitUntil(Effect.sync(() => events.items.length), (n) => n === 1)
        yield* sentinel.master.pause
        const frozenAt = Date.now()
        yield* waitUntil(
          Effect.sync(() => events.items.some((e) => e._tag === "Resubscribed")),
          (ok) => ok,
          15_000
        ).pipe(Effect.ensuring(sentinel.master.resume))
        const took = Date.now() - frozenAt
        yield* Effect.logInfo(`sentinel ${sharded ? "sharded" : "classic"}: Resubscribed ${took} ms after SIGSTOP`)
        assert.isTrue(took < 10_000, `resubscribed after ${took} ms`)
        // The subscription lives on the promoted replica now.
        assert.deepStrictEqual(yield* sentinel.currentMaster, { host: "127.0.0.1", port: sentinel.replica.port })
        assert.strictEqual(yield* count(sentinel.replica, "alerts"), 1)
        const publishedAfter = yield* publishUntilReceived(redis, "alerts", "after", sharded, 5_000)
        yield* Effect.logInfo(`sentinel ${sharded ? "sharded" : "classic"}: publish reached it in ${publishedAfter} ms`)
        yield* waitUntil(Effect.sync(() => events.items.length), (n) => n === 4)
        assert.deepStrictEqual(tags(events.items), ["Message:before", "Gap", "Resubscribed", "Message:after"])
      }))
  }
})
