/**
 * `RedisOptions.ioredis`: ioredis options the layer does not cover pass through; the ones it owns are refused with
 * `InvalidRedisOptions` naming them; passed options are rendered by name only (a sentinelPassword never prints).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import { inspect } from "node:util"
import * as RedisConfig from "../src/RedisConfig.ts"
import * as RedisService from "../src/RedisService.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { fastOptions } from "./helpers.ts"

describe("RedisOptions.ioredis", () => {
  it.effect("the options the layer owns are refused, naming them and what to use instead", () =>
    Effect.gen(function*() {
      for (const name of ["retryStrategy", "enableOfflineQueue", "maxRetriesPerRequest", "autoResendUnfulfilledCommands"]) {
        const exit = yield* Effect.exit(RedisConfig.resolve({ ioredis: { [name]: 1 } }))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
          const error = reason?._tag === "Fail" ? reason.error : undefined
          assert.strictEqual(error?._tag, "InvalidRedisOptions")
          assert.strictEqual(error?.field, `ioredis.${name}`)
        }
      }
    }))

  it.effect("passed options are rendered by name only", () =>
    Effect.gen(function*() {
      const config = yield* RedisConfig.resolve({ ioredis: { sentinelPassword: "s3cr3t-sentinel", noDelay: true } })
      for (const text of [JSON.stringify(config), inspect(config, { depth: 10 }), String(config)]) {
        assert.notInclude(text, "s3cr3t-sentinel")
      }
      assert.include(JSON.stringify(config), "sentinelPassword")
    }))

  it.live("a layer with options passed through works against a real server; a layer option given there is refused", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const refused = yield* RedisService.make({ ...fastOptions, url: server.url, ioredis: { connectionName: "x" } })
        .pipe(Effect.flip)
      assert.strictEqual(refused._tag, "InvalidRedisOptions")
      const ok = yield* RedisService.make({ ...fastOptions, url: server.url, ioredis: { family: 4, keepAlive: 1000 } })
      assert.isTrue(yield* ok.set("k", "v"))
      assert.deepStrictEqual(yield* ok.get("k"), Option.some("v"))
    })))
})
