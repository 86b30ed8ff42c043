/**
 * The subscriber's registry on its own (no Redis): delivery to every local stream of a key and to no other, overflow
 * drops counted and reported by the Gap that follows, Gap/Resubscribed after a lost connection, refusals ending the
 * streams, and the bookkeeping (first/last stream, in-flight SUBSCRIBE) the connection relies on. Time is an argument.
 */
import { assert, describe, it } from "@effect/vitest"
import { DateTime, Duration, Effect, Queue, Stream } from "effect"
import * as Registry from "../src/internal/subscriber/registry.ts"
import { isRefusal, verb } from "../src/internal/subscriber/wire.ts"
import { commandTimedOut, ConnectionReset, type RedisError, ReplyError } from "../src/RedisError.ts"
import type { SubscriptionEvent } from "../src/RedisSubscriber.ts"

/** A local stream with a buffer of `size`, registered for `key` at `now`. */
const local = (
  registry: Registry.Registry,
  kind: Registry.Kind,
  key: string,
  options: { readonly size?: number; readonly now?: number; readonly sending?: boolean } = {}
) =>
  Effect.gen(function*() {
    const queue = yield* Queue.dropping<SubscriptionEvent<string>, RedisError>(options.size ?? 16)
    const local = Registry.makeLocal(queue, options.now ?? 0)
    const first = Registry.add(registry, kind, key, local, options.sending ?? false)
    return { local, queue, first }
  })

/** Events as plain values (times in millis), so that whole sequences compare with deepStrictEqual. */
const plain = (event: SubscriptionEvent<string>): Record<string, unknown> => {
  switch (event._tag) {
    case "Gap":
      return {
        _tag: event._tag,
        channel: event.channel,
        from: DateTime.toEpochMillis(event.from),
        to: DateTime.toEpochMillis(event.to),
        reason: event.reason,
        dropped: event.dropped
      }
    case "Message":
      return event.pattern === undefined
        ? { _tag: event._tag, channel: event.channel, message: event.message }
        : { _tag: event._tag, channel: event.channel, message: event.message, pattern: event.pattern }
    default:
      return event
  }
}

/** What a local stream has been offered so far (and it is taken out of its buffer). */
const drain = (queue: Queue.Queue<SubscriptionEvent<string>, RedisError>) =>
  Effect.map(Queue.clear(queue), (events) => events.map(plain))

const message = (channel: string, text: string, pattern?: string): Extract<SubscriptionEvent, { _tag: "Message" }> =>
  pattern === undefined
    ? { _tag: "Message", channel, message: text }
    : { _tag: "Message", channel, message: text, pattern }

const noPermission = new ReplyError({ message: "NOPERM no permission", code: "NOPERM", command: "SUBSCRIBE" })

describe("subscriber registry: delivery", () => {
  it.effect("a message reaches every local stream of its key, in order, and no stream of another key or kind", () =>
    Effect.gen(function*() {
      const registry = Registry.make()
      const a1 = yield* local(registry, "channel", "a")
      const a2 = yield* local(registry, "channel", "a")
      const a3 = yield* local(registry, "channel", "a")
      const b = yield* local(registry, "channel", "b")
      const pattern = yield* local(registry, "pattern", "a")
      assert.deepStrictEqual([a1.first, a2.first, a3.first, b.first, pattern.first], [true, false, false, true, true])

      Registry.deliver(registry, "channel", "a", message("a", "one"), 1)
      Registry.deliver(registry, "channel", "a", message("a", "two"), 2)
      Registry.deliver(registry, "channel", "nobody", message("nobody", "lost"), 3)
      Registry.deliver(registry, "pattern", "a", message("a:x", "three", "a"), 4)

      const expected = [
        { _tag: "Message", channel: "a", message: "one" },
        { _tag: "Message", channel: "a", message: "two" }
      ]
      for (const stream of [a1, a2, a3]) assert.deepStrictEqual(yield* drain(stream.queue), expected)
      assert.deepStrictEqual(yield* drain(b.queue), [])
      assert.deepStrictEqual(yield* drain(pattern.queue), [
        { _tag: "Message", channel: "a:x", message: "three", pattern: "a" }
      ])
    }))

  it.effect("a slow stream loses the newest messages; the next event it gets is a Gap counting them", () =>
    Effect.gen(function*() {
      const registry = Registry.make()
      const slow = yield* local(registry, "channel", "a", { size: 2 })
      const fast = yield* local(registry, "channel", "a", { size: 100 })
      for (let i = 1; i <= 5; i++) Registry.deliver(registry, "channel", "a", message("a", `m${i}`), 10 + i)
      // Still full: a sixth is dropped too, and not reported yet (there is no room for the Gap).
      Registry.deliver(registry, "channel", "a", message("a", "m6"), 20)
      assert.deepStrictEqual(slow.local.dropped, 4)
      assert.deepStrictEqual((yield* drain(slow.queue)).map((e) => e.message ?? e._tag), ["m1", "m2"])

      // Room again: the Gap (from the first drop to now, with the count) comes before the message.
      Registry.deliver(registry, "channel", "a", message("a", "m7"), 30)
      assert.deepStrictEqual(yield* drain(slow.queue), [
        { _tag: "Gap", channel: "a", from: 13, to: 30, reason: "overflow", dropped: 4 },
        { _tag: "Message", channel: "a", message: "m7" }
      ])
      // Reported once: the count starts again from zero.
      assert.deepStrictEqual([slow.local.overflowFrom, slow.local.dropped], [undefined, 0])
      Registry.deliver(registry, "channel", "a", message("a", "m8"), 31)
      assert.deepStrictEqual(yield* drain(slow.queue), [{ _tag: "Message", channel: "a", message: "m8" }])
      // The other stream of the channel lost nothing.
      assert.strictEqual((yield* drain(fast.queue)).length, 8)
    }))

  it.effect("room for the Gap but not for the message: that message opens the next gap", () =>
    Effect.gen(function*() {
      const registry = Registry.make()
      const slow = yield* local(registry, "channel", "a", { size: 2 })
      for (let i = 1; i <= 3; i++) Registry.deliver(registry, "channel", "a", message("a", `m${i}`), i)
      yield* Queue.take(slow.queue)
      Registry.deliver(registry, "channel", "a", message("a", "m4"), 10)
      assert.deepStrictEqual(yield* drain(slow.queue), [
        { _tag: "Message", channel: "a", message: "m2" },
        { _tag: "Gap", channel: "a", from: 3, to: 10, reason: "overflow", dropped: 1 }
      ])
      Registry.deliver(registry, "channel", "a", message("a", "m5"), 20)
      assert.deepStrictEqual(yield* drain(slow.queue), [
        { _tag: "Gap", channel: "a", from: 10, to: 20, reason: "overflow", dropped: 1 },
        { _tag: "Message", channel: "a", message: "m5" }
      ])
    }))

  it.effect("a pattern's overflow Gap names the channel of the message that found room", () =>
    Effect.gen(function*() {
      const registry = Registry.make()
      const slow = yield* local(registry, "pattern", "news:*", { size: 1 })
      const pmessage = (channel: string, text: string) => message(channel, text, "news:*")
      Registry.deliver(registry, "pattern", "news:*", pmessage("news:a", "one"), 1)
      Registry.deliver(registry, "pattern", "news:*", pmessage("news:b", "two"), 2)
      yield* Queue.take(slow.queue)
      Registry.deliver(registry, "pattern", "news:*", pmessage("news:c", "three"), 5)
      assert.deepStrictEqual(yield* drain(slow.queue), [
        { _tag: "Gap", channel: "news:c", from: 2, to: 5, reason: "overflow", dropped: 1 }
      ])
    }))
})

describe("subscriber registry: reconnects", () => {
  it.effect("after a lost connection: Gap (from the first loss to the resubscription) then Resubscribed, once", () =>
    Effect.gen(function*() {
      const registry = Registry.make()
      const channel = yield* local(registry, "channel", "a", { now: 0 })
      const pattern = yield* local(registry, "pattern", "p:*", { now: 0 })
      Registry.deliver(registry, "channel", "a", message("a", "before"), 50)
      Registry.connectionLost(registry, 100)
      // A stream registered while disconnected missed nothing: it only hears that the subscription is live.
      const late = yield* local(registry, "channel", "a", { now: 150 })
      // Lost again before the resubscription was answered: the same gap goes on.
      Registry.connectionLost(registry, 160)
      Registry.resubscribed(registry, 200)

      assert.deepStrictEqual(yield* drain(channel.queue), [
        { _tag: "Message", channel: "a", message: "before" },
        { _tag: "Gap", channel: "a", from: 100, to: 200, reason: "disconnected", dropped: undefined },
        { _tag: "Resubscribed", channel: "a" }
      ])
      assert.deepStrictEqual(yield* drain(pattern.queue), [
        { _tag: "Gap", channel: "p:*", from: 100, to: 200, reason: "disconnected", dropped: undefined },
        { _tag: "Resubscribed", channel: "p:*" }
      ])
      assert.deepStrictEqual(yield* drain(late.queue), [{ _tag: "Resubscribed", channel: "a" }])

      // Reported: a later resubscription with no loss in between (or the first connection) tells nothing.
      Registry.resubscribed(registry, 300)
      assert.deepStrictEqual(yield* drain(channel.queue), [])
      assert.strictEqual(registry.lostAt, undefined)
    }))

  it.effect("a stream registered at the very moment of the loss gets the Gap", () =>
    Effect.gen(function*() {
      const registry = Registry.make()
      const stream = yield* local(registry, "channel", "a", { now: 100 })
      Registry.connectionLost(registry, 100)
      Registry.resubscribed(registry, 101)
      assert.deepStrictEqual((yield* drain(stream.queue)).map((e) => e._tag), ["Gap", "Resubscribed"])
    }))

  it.effect("a full stream: the disconnection Gap is dropped and counted like a message, then reported", () =>
    Effect.gen(function*() {
      const registry = Registry.make()
      const full = yield* local(registry, "channel", "a", { size: 1 })
      Registry.deliver(registry, "channel", "a", message("a", "unread"), 10)
      Registry.connectionLost(registry, 20)
      Registry.resubscribed(registry, 30)
      assert.deepStrictEqual(full.local.dropped, 2)
      yield* Queue.take(full.queue)
      Registry.deliver(registry, "channel", "a", message("a", "next"), 40)
      assert.deepStrictEqual(yield* drain(full.queue), [
        { _tag: "Gap", channel: "a", from: 30, to: 40, reason: "overflow", dropped: 2 }
      ])
    }))
})

describe("subscriber registry: refusals and bookkeeping", () => {
  it.effect("a refused key ends its streams with the error, after what they buffered; other keys go on", () =>
    Effect.gen(function*() {
      const registry = Registry.make()
      const a1 = yield* local(registry, "channel", "a")
      const a2 = yield* local(registry, "channel", "a")
      const b = yield* local(registry, "channel", "b")
      Registry.deliver(registry, "channel", "a", message("a", "buffered"), 1)
      Registry.refuse(registry, "channel", "a", noPermission)

      for (const stream of [a1, a2]) {
        const seen: Array<unknown> = []
        const error = yield* Effect.flip(
          Stream.runForEach(Stream.fromQueue(stream.queue), (event) => Effect.sync(() => seen.push(plain(event))))
        )
        assert.deepStrictEqual(seen, [{ _tag: "Message", channel: "a", message: "buffered" }])
        assert.strictEqual(error, noPermission)
      }
      // Forgotten: not subscribed again by the next connection, and nothing more is delivered to the old streams.
      assert.deepStrictEqual(Registry.keys(registry, "channel"), ["b"])
      Registry.deliver(registry, "channel", "b", message("b", "still"), 2)
      assert.strictEqual((yield* drain(b.queue)).length, 1)
      // The refused streams' teardown sends no UNSUBSCRIBE, even once a newer stream registered the key again.
      const again = yield* local(registry, "channel", "a")
      assert.isTrue(again.first)
      assert.isFalse(Registry.remove(registry, "channel", "a", a1.local))
      assert.deepStrictEqual(Registry.keys(registry, "channel"), ["b", "a"])
    }))

  it.effect("only the last stream of a key unsubscribes it; the first SUBSCRIBE is in flight until settled", () =>
    Effect.gen(function*() {
      const registry = Registry.make()
      const one = yield* local(registry, "channel", "a", { sending: true })
      const two = yield* local(registry, "channel", "a", { sending: true })
      assert.isFalse(Registry.isAcknowledged(registry, "a"))
      Registry.settle(registry, "channel", "a")
      assert.isTrue(Registry.isAcknowledged(registry, "a"))
      assert.isFalse(Registry.isAcknowledged(registry, "unknown"))

      assert.isFalse(Registry.remove(registry, "channel", "a", one.local))
      assert.isFalse(Registry.remove(registry, "channel", "a", one.local))
      assert.deepStrictEqual(Registry.keys(registry, "channel"), ["a"])
      assert.isTrue(Registry.remove(registry, "channel", "a", two.local))
      assert.deepStrictEqual(Registry.keys(registry, "channel"), [])

      // Registered while no connection is ready: nothing is in flight (the next connection subscribes it).
      yield* local(registry, "channel", "c", { sending: false })
      assert.isTrue(Registry.isAcknowledged(registry, "c"))
      // The last stream gone while its first SUBSCRIBE was in flight: a later registration does not inherit it.
      const gone = yield* local(registry, "channel", "e", { sending: true })
      assert.isTrue(Registry.remove(registry, "channel", "e", gone.local))
      yield* local(registry, "channel", "e", { sending: false })
      assert.isTrue(Registry.isAcknowledged(registry, "e"))
      // A pattern of the same name is a different key.
      yield* local(registry, "pattern", "d", { sending: true })
      assert.isFalse(Registry.isAcknowledged(registry, "d"))
    }))
})

describe("subscriber wire", () => {
  it("refusals are the reply errors Redis means for good, not 'not now', 'wrong node' or a broken connection", () => {
    assert.isTrue(isRefusal(noPermission))
    assert.isFalse(isRefusal(new ReplyError({ message: "MOVED 866 127.0.0.1:7001", code: "MOVED" })))
    assert.isFalse(isRefusal(new ReplyError({ message: "ASK 866 127.0.0.1:7001", code: "ASK" })))
    assert.isFalse(isRefusal(new ReplyError({ message: "LOADING Redis is loading", code: "LOADING" })))
    assert.isFalse(isRefusal(new ConnectionReset({ message: "read ECONNRESET", sent: true })))
    assert.isFalse(isRefusal(commandTimedOut("SUBSCRIBE", Duration.seconds(1))))
  })

  it("patterns stay classic when channels are sharded", () => {
    assert.deepStrictEqual(
      [verb("channel", true, false), verb("channel", false, false), verb("channel", true, true)],
      ["SUBSCRIBE", "UNSUBSCRIBE", "SSUBSCRIBE"]
    )
    assert.deepStrictEqual(
      [verb("channel", false, true), verb("pattern", true, true), verb("pattern", false, false)],
      ["SUNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE"]
    )
  })
})
