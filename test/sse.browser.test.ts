/**
 * The SSE example (examples/sse-server.ts) in a real browser: Debian's chromium driven by playwright-core against a
 * real redis-server. Messages arrive over the EventSource while live; with Redis stopped the page says "polling" and
 * keeps updating from /poll (the server's own buffer); with Redis back it is live again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import * as Fs from "node:fs"
import { chromium, type Page } from "playwright-core"
import * as SseServer from "../examples/sse-server.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { pubsubFastOptions, sleepReal } from "./helpers.ts"

const chromiumPath = "/usr/bin/chromium"

const fast = pubsubFastOptions

interface PageState {
  readonly mode: string
  readonly polls: number
  readonly gaps: number
  readonly resubscribed: number
  readonly messages: ReadonlyArray<{ readonly text: string; readonly live: boolean; readonly polled: boolean }>
}

// Evaluated in the page (a string, so that this file needs no DOM types).
const readState = `(() => ({
  mode: document.getElementById("mode").textContent,
  polls: Number(document.body.dataset.polls ?? 0),
  gaps: Number(document.body.dataset.gaps ?? 0),
  resubscribed: Number(document.body.dataset.resubscribed ?? 0),
  messages: [...document.querySelectorAll("#messages li")].map((li) => ({
    text: li.textContent,
    live: li.dataset.live === "yes",
    polled: li.dataset.polled === "yes"
  }))
}))()`

const stateOf = (page: Page) => Effect.promise(() => page.evaluate<PageState>(readState))

/** Polls the page (real time) until `predicate` holds; fails with the page's last state after `timeoutMillis`. */
const waitForPage = (page: Page, what: string, predicate: (state: PageState) => boolean, timeoutMillis = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (true) {
      const state = yield* stateOf(page)
      if (predicate(state)) return state
      if (Date.now() > deadline) {
        return yield* Effect.die(
          new Error(`page: ${what} not within ${timeoutMillis} ms; page state: ${JSON.stringify(state)}`)
        )
      }
      yield* sleepReal(20)
    }
  })

const message = (state: PageState, text: string) => state.messages.find((m) => m.text === text)

/** Active subscriptions of a channel on the server (PUBSUB NUMSUB), 0 while it is stopped. */
const numsub = (server: RedisTestServer.RedisTestServer, channel: string) =>
  server.command("PUBSUB", "NUMSUB", channel).pipe(
    Effect.map((reply) => Number((reply as Array<unknown>)[1])),
    Effect.orElseSucceed(() => 0)
  )

const waitForNumsub = (server: RedisTestServer.RedisTestServer, channel: string, expected: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 5_000
    while ((yield* numsub(server, channel)) !== expected) {
      if (Date.now() > deadline) {
        return yield* Effect.die(new Error(`PUBSUB NUMSUB ${channel} did not become ${expected} within 5 s`))
      }
      yield* sleepReal(10)
    }
  })

describe("SSE example in chromium", () => {
  it.live("live over SSE, polling with Redis stopped (and still updating), live again with Redis back", () =>
    Effect.gen(function*() {
      if (!Fs.existsSync(chromiumPath)) {
        assert.fail(
          `chromium not found at ${chromiumPath}: this test drives Debian's chromium with playwright-core. ` +
            `Install it with "apt-get install chromium" (.ci/run does so when it is missing).`
        )
      }
      const started = Date.now()
      const timings: Array<string> = []
      const mark = (label: string) => timings.push(`${label} ${Date.now() - started} ms`)

      const redis = yield* RedisTestServer.make()
      const context = yield* Layer.build(
        SseServer.layer({ port: 0, host: "127.0.0.1", log: false, redis: { ...fast, url: redis.url } })
      )
      const address = Context.get(context, HttpServer.HttpServer).address
      assert.strictEqual(address._tag, "InetAddressV4")
      const base = `http://127.0.0.1:${address._tag === "InetAddressV4" ? address.port : 0}`
      mark("servers up")

      const publish = (text: string) =>
        Effect.promise(async () => {
          const response = await fetch(`${base}/publish/news`, { method: "POST", body: text })
          return { status: response.status, body: (await response.json()) as SseServer.Published }
        })

      // launch() gives chromium a fresh temporary profile of its own and removes it on close.
      const browser = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            chromium.launch({
              executablePath: chromiumPath,
              args: [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync"
              ],
              timeout: 10_000
            }),
          catch: (cause) => new Error(`could not launch ${chromiumPath} with playwright-core: ${cause}`)
        }),
        (browser) => Effect.promise(() => browser.close())
      )
      const page = yield* Effect.promise(() => browser.newPage())
      const pageErrors: Array<string> = []
      page.on("pageerror", (error) => pageErrors.push(error.message))
      yield* Effect.promise(() => page.goto(`${base}/?channel=news`))
      mark("page loaded")

      // 1. Live: the page follows the EventSource, and a published message arrives over it.
      yield* waitForPage(page, "live", (s) => s.mode === "live" && s.polls === 0)
      yield* waitForNumsub(redis, "sse:news", 1)
      const first = yield* publish("m1")
      assert.strictEqual(first.status, 200)
      assert.strictEqual(first.body.stored, "redis")
      assert.strictEqual(first.body.subscribers, 1)
      const live1 = yield* waitForPage(page, "m1 over the EventSource", (s) => message(s, "m1")?.live === true)
      assert.strictEqual(live1.mode, "live")
      mark("m1 live")

      // 2. Redis stopped: the page says polling and keeps updating from the server's own buffer.
      yield* redis.stop
      yield* waitForPage(page, "polling", (s) => s.mode === "polling")
      mark("polling")
      for (const text of ["m2", "m3"]) {
        const sent = yield* publish(text)
        assert.strictEqual(sent.status, 202, "accepted, kept in the server's buffer")
        assert.strictEqual(sent.body.stored, "local")
        const polled = yield* waitForPage(page, `${text} by polling`, (s) => message(s, text) !== undefined)
        assert.deepStrictEqual(message(polled, text), { text, live: false, polled: true })
        assert.strictEqual(polled.mode, "polling")
      }
      mark("m2, m3 polled")

      // 3. Redis back: resubscribed (the page is told about the gap), live again, and messages arrive live.
      yield* redis.start
      const back = yield* waitForPage(page, "live again", (s) => s.mode === "live" && s.resubscribed >= 1, 10_000)
      assert.isAtLeast(back.gaps, 1, "the page was told about the gap")
      yield* waitForNumsub(redis, "sse:news", 1)
      mark("live again")
      const last = yield* publish("m4")
      assert.strictEqual(last.body.stored, "redis")
      const live4 = yield* waitForPage(page, "m4 over the EventSource", (s) => message(s, "m4")?.live === true)
      assert.strictEqual(live4.mode, "live")
      mark("m4 live")

      // Nothing lost, nothing shown twice; m2 and m3 only ever came by polling.
      yield* sleepReal(100)
      const final = yield* stateOf(page)
      assert.deepStrictEqual(final.messages.map((m) => m.text), ["m1", "m2", "m3", "m4"])
      assert.isFalse(message(final, "m2")!.live)
      assert.isFalse(message(final, "m3")!.live)
      assert.deepStrictEqual(pageErrors, [])
      console.log(`sse.browser timings: ${timings.join(", ")}`)
    }), 25_000)
})
