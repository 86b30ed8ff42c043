/**
 * A value that does not encode with its Schema fails with `EncodeError` (not `DecodeError`), sends nothing, and its
 * rendering does not carry the value.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as util from "node:util"
import * as RedisChannel from "../src/RedisChannel.ts"
import * as RedisService from "../src/RedisService.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { fastOptions } from "./helpers.ts"

const SECRET = 1.5e-9

describe("EncodeError", () => {
  it.live("a typed channel's payload that does not encode: EncodeError, nothing published, the value not rendered", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url })
      const channel = RedisChannel.make({ name: "amounts", schema: Schema.Int })
      const error = yield* Effect.flip(
        RedisChannel.publish(channel, SECRET).pipe(Effect.provideService(RedisService.RedisService, redis))
      )
      assert.strictEqual(error._tag, "EncodeError")
      for (const text of [JSON.stringify(error), util.inspect(error, { depth: null }), String(error)]) {
        assert.notInclude(text, String(SECRET))
      }
      const info = String(yield* server.command("INFO", "stats"))
      assert.include(info, "pubsub_channels:0")
      assert.match(info, /total_commands_processed:\d+/)
      // Nothing reached the server: no PUBLISH was ever processed.
      const commandstats = String(yield* server.command("INFO", "commandstats"))
      assert.notInclude(commandstats, "cmdstat_publish")
    }))
})
