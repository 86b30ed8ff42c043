/**
 * Classification of what ioredis and Node really produce: each case is provoked against a real redis-server (or the
 * chaos proxy in front of one), with a raw ioredis client configured as the layer configures it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "ioredis"
import * as Connection from "../src/internal/connection.ts"
import { clientOptions } from "../src/internal/topology/options.ts"
import * as RedisConfig from "../src/RedisConfig.ts"
import { classify, classifySocketError, isConnectionLost, isRedisError, isTransient } from "../src/RedisError.ts"
import * as ChaosProxy from "../src/testing/ChaosProxy.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { sleepReal, waitUntil } from "./helpers.ts"

/** A raw client with the layer's ioredis options, recording its last socket error. */
const rawClient = (url: string) =>
  Effect.gen(function*() {
    const config = yield* RedisConfig.resolve({ url, connectTimeout: "300 millis" })
    const client = new Redis(clientOptions(config))
    const state = { socketError: undefined as unknown }
    client.on("error", (error: unknown) => {
      state.socketError = error
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => client.disconnect()))
    return { client, state, config }
  })

const rejection = (promise: () => Promise<unknown>) =>
  Effect.promise(() => promise().then(() => undefined, (error: unknown) => error))

describe("RedisError.classify (real errors)", () => {
  it.live("ECONNRESET on an in-flight command: ioredis says 'Connection is closed.', we say ConnectionReset", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      const { client, state } = yield* rawClient(proxy.url)
      yield* Effect.promise(() => client.connect())
      yield* proxy.latency(200)
      const pending = rejection(() => client.incr("n"))
      yield* sleepReal(50)
      yield* proxy.resetAll
      const raw = yield* pending
      assert.strictEqual((raw as Error).message, "Connection is closed.")
      const bare = classify(raw, { command: "INCR", sent: true })
      assert.strictEqual(bare._tag, "ConnectionClosed")
      const error = classify(raw, { command: "INCR", sent: true, socketError: state.socketError })
      assert.strictEqual(error._tag, "ConnectionReset")
      if (error._tag === "ConnectionReset") {
        assert.isTrue(error.sent)
        assert.strictEqual(error.command, "INCR")
        assert.include(error.message, "may have been applied")
      }
      assert.isTrue(isTransient(error))
      assert.isTrue(isConnectionLost(error))
    }))

  it.live("a refused connection is ConnectionRefused", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      yield* server.stop
      const { client, state } = yield* rawClient(server.url)
      const raw = yield* rejection(() => client.connect())
      const error = classify(state.socketError ?? raw, { sent: false })
      assert.strictEqual(error._tag, "ConnectionRefused")
      assert.isTrue(isTransient(error))
      assert.isFalse(isConnectionLost(error))
    }))

  it.live("a server that accepts and never answers: the layer's attempt ends with ConnectionTimeout (connect)", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const proxy = yield* ChaosProxy.make({ target: server })
      yield* proxy.blackhole
      const config = yield* RedisConfig.resolve({ url: proxy.url, connectTimeout: "300 millis", heartbeat: false })
      const connection = yield* Connection.make(config)
      // ioredis' own connectTimeout covers the TCP connect only, which succeeds here; the layer bounds the handshake.
      const state = yield* waitUntil(connection.state, (s) => s._tag === "Reconnecting" && s.lastError !== undefined)
      assert.strictEqual(state._tag === "Reconnecting" ? state.lastError?._tag : undefined, "ConnectionTimeout")
      if (state._tag === "Reconnecting" && state.lastError?._tag === "ConnectionTimeout") {
        assert.strictEqual(state.lastError.phase, "connect")
      }
      const etimedout = classifySocketError(Object.assign(new Error("connect ETIMEDOUT"), { code: "ETIMEDOUT" }), {
        sent: false,
        connectTimeout: config.connectTimeout
      })
      assert.strictEqual(etimedout?._tag, "ConnectionTimeout")
    }))

  it.live("WRONGTYPE is a ReplyError with its code, not transient", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { client } = yield* rawClient(server.url)
      yield* Effect.promise(() => client.connect())
      yield* Effect.promise(() => client.lpush("l", "x"))
      const raw = yield* rejection(() => client.get("l"))
      const error = classify(raw, { command: "GET", sent: true })
      assert.strictEqual(error._tag, "ReplyError")
      if (error._tag === "ReplyError") {
        assert.strictEqual(error.code, "WRONGTYPE")
        assert.strictEqual(error.command, "GET")
      }
      assert.isFalse(isTransient(error))
      const syntax = classify(yield* rejection(() => client.call("SET", "a")), { command: "SET", sent: true })
      assert.strictEqual(syntax._tag, "ReplyError")
      if (syntax._tag === "ReplyError") assert.strictEqual(syntax.code, "ERR")
    }))

  it.live("a wrong password is a ReplyError (WRONGPASS) on connect", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make({ password: "right" })
      const url = `redis://:wrong@${server.host}:${server.port}`
      const { client, state } = yield* rawClient(url)
      const raw = yield* rejection(() => client.connect())
      const error = classify(state.socketError ?? raw, { sent: false })
      assert.strictEqual(error._tag, "ReplyError")
      if (error._tag === "ReplyError") assert.strictEqual(error.code, "WRONGPASS")
    }))

  it.live("a command on a closed client was not sent: ConnectionClosed with sent false", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const { client } = yield* rawClient(server.url)
      const raw = yield* rejection(() => client.get("k"))
      const error = classify(raw, { command: "GET", sent: false })
      assert.strictEqual(error._tag, "ConnectionClosed")
      if (error._tag === "ConnectionClosed") assert.isFalse(error.sent)
    }))

  it("errors are recognised and already-classified errors pass through", () => {
    const error = classify(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }), { command: "SET", sent: true })
    assert.strictEqual(error._tag, "ConnectionReset")
    assert.strictEqual(classify(error, { sent: false }), error)
    assert.isTrue(isRedisError(error))
    assert.isFalse(isRedisError(new Error("x")))
    const unknown = classify(new TypeError("boom"), { command: "GET", sent: true })
    assert.strictEqual(unknown._tag, "ConnectionClosed")
    assert.include(unknown.message, "boom")
    // Unknown failures keep the connection: not transient, not a lost connection.
    assert.isFalse(isTransient(unknown))
    assert.isFalse(isConnectionLost(unknown))
  })
})
