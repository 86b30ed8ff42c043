// npx node examples/sse-server.ts   (env: PORT, default 3000; REDIS_URL, default an embedded redis-server)
/**
 * Server-Sent Events over Redis pub/sub, with a polling fallback that keeps a page updating while Redis is down.
 *
 * - `GET /events/:channel`: the channel's messages as SSE (`retry:` hint, `id:` per message, keep-alive comments),
 *   plus `mode` events (`live` / `polling`, from `RedisSubscriber.mode`) and `gap` / `resubscribed` events.
 * - `GET /poll/:channel?since=ID`: the messages after `ID`, from the channel's Redis stream (its log) or, while Redis
 *   is unavailable, from this process's buffer of the messages it published itself.
 * - `POST /publish/:channel`: appends the body (text) to the log and publishes it; while Redis is down it is kept in
 *   this process only (see docs/pubsub.md for what that means).
 * - `GET /?channel=demo`: a page that follows the EventSource while live and polls every second while not.
 *
 * `layer(options)` is the whole server (HTTP, Redis, subscriber), so that a test can start it on a free port in its
 * own scope; `routes` and `MessageLog` are the parts.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Clock, Config, Context, DateTime, Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import {
  buildRedisChannelName,
  InvalidChannelName,
  RedisChannel,
  type RedisOptions,
  RedisService,
  RedisSubscriber,
  type SubscriptionEvent
} from "../src/index.ts"
import { RedisTestServer } from "../src/testing/index.ts"

/**
 * A message as it travels on the channel, is stored in the log and is sent to the page. `id` is a Redis stream id
 * (`<ms>-<seq>`), or one made by this process in the same format while Redis is down.
 */
export const Message = Schema.Struct({ id: Schema.String, text: Schema.String })
export type Message = typeof Message.Type

/** The answer of `POST /publish/:channel`. */
export interface Published extends Message {
  /** `redis`: in the channel's log (and published); `local`: Redis was unavailable, kept in this process only. */
  readonly stored: "redis" | "local"
  /** Subscriber connections that received it (one per server process), `null` when the PUBLISH itself failed. */
  readonly subscribers: number | null
}

/** The answer of `GET /poll/:channel`. */
export interface Polled {
  /** `redis`: read from the log (plus this process's local-only messages); `local`: from this process's buffer. */
  readonly source: "redis" | "local"
  readonly messages: ReadonlyArray<Message>
}

/** Options of the example server. */
export interface SseServerOptions {
  /** Default 3000; 0 picks a free port (read it from `HttpServer.address`). */
  readonly port?: number | undefined
  /** Default: every interface. */
  readonly host?: string | undefined
  /** Options of `RedisService` (and of the subscriber's connection). */
  readonly redis?: RedisOptions | undefined
  /** SSE comment lines sent this often so that proxies keep the stream open. Default 15 s. */
  readonly keepAlive?: Duration.Input | undefined
  /** The `retry:` hint: how long EventSource waits before reconnecting. Default 2 s. */
  readonly retry?: Duration.Input | undefined
  /** How often the page polls while not live. Default 1 s. */
  readonly pollInterval?: Duration.Input | undefined
  /** Messages per channel kept in this process's fallback buffer. Default 1000. */
  readonly bufferSize?: number | undefined
  /** Approximate length of each channel's Redis stream (XADD MAXLEN ~). Default 1000. */
  readonly historySize?: number | undefined
  /** Request and listen logs. Default true. */
  readonly log?: boolean | undefined
}

// --- ids ------------------------------------------------------------------------------------------------------------

const ID = /^(\d+)-(\d+)$/

const parseId = (id: string): readonly [number, number] | undefined => {
  const match = ID.exec(id)
  return match === null ? undefined : [Number(match[1]), Number(match[2])]
}

/** Orders stream ids (`<ms>-<seq>`) numerically, as Redis does. */
export const compareIds = (a: string, b: string): number => {
  const [am, as] = parseId(a) ?? [0, 0]
  const [bm, bs] = parseId(b) ?? [0, 0]
  return am !== bm ? am - bm : as - bs
}

// --- the log: a Redis stream per channel, and this process's fallback buffer ----------------------------------------

interface Entry extends Message {
  /** Kept in this process only: Redis was unavailable when it was published. */
  readonly local: boolean
}

const StreamEntries = Schema.Array(Schema.Tuple([Schema.String, Schema.Array(Schema.String)]))
const decodeEntries = Schema.decodeUnknownEffect(StreamEntries)

const pageSize = 100

/**
 * Where messages are kept: each channel's Redis stream (`sse:log:<channel>`, the history every instance shares) and,
 * per channel, a bounded buffer of the messages this process published itself, the only source while Redis is down.
 */
export class MessageLog extends Context.Service<MessageLog, {
  /** The typed pub/sub channel (`sse:<name>`); fails with `InvalidChannelName` for an empty name or a glob. */
  readonly channel: (name: string) => Effect.Effect<RedisChannel.RedisChannel<Message, typeof Message.Encoded>, InvalidChannelName>
  /** Appends to the log and publishes; while Redis is unavailable, keeps the message in this process only. */
  readonly publish: (name: string, text: string) => Effect.Effect<Published, InvalidChannelName>
  /** The messages after `since` (at most 100); the latest ones when `since` is undefined. */
  readonly since: (name: string, since: string | undefined) => Effect.Effect<Polled, InvalidChannelName>
  /** Notes an id seen on the channel, so that ids made while Redis is down sort after it. */
  readonly observe: (name: string, id: string) => void
}>()("examples/sse-server/MessageLog") {
  static readonly layer = (options: SseServerOptions = {}): Layer.Layer<MessageLog, never, RedisService> =>
    Layer.effect(MessageLog, makeMessageLog(options))
}

const makeMessageLog = Effect.fnUntraced(function*(options: SseServerOptions) {
  const redis = yield* RedisService
  const clock = yield* Clock.Clock
  const bufferSize = options.bufferSize ?? 1000
  const historySize = options.historySize ?? 1000
  const channels = new Map<string, RedisChannel.RedisChannel<Message, typeof Message.Encoded>>()
  const buffers = new Map<string, Array<Entry>>()
  const lastIds = new Map<string, readonly [number, number]>()

  const channel = (name: string) =>
    Effect.suspend(() => {
      const known = channels.get(name)
      if (known !== undefined) return Effect.succeed(known)
      return Effect.try({
        try: () => RedisChannel.make({ name: ["sse", name], schema: Message }),
        catch: (error) =>
          error instanceof InvalidChannelName
            ? error
            : new InvalidChannelName({ message: String(error), name })
      }).pipe(Effect.tap((typed) => Effect.sync(() => channels.set(name, typed))))
    })

  const logKey = (name: string) => buildRedisChannelName("sse", "log", name)

  const observe = (name: string, id: string): void => {
    const parsed = parseId(id)
    const last = lastIds.get(name)
    if (parsed !== undefined && (last === undefined || compareIds(id, `${last[0]}-${last[1]}`) > 0)) {
      lastIds.set(name, parsed)
    }
  }

  // Same format as Redis' ids, after every id this process has seen on the channel: unique in this process only.
  const nextLocalId = (name: string): string => {
    const now = clock.currentTimeMillisUnsafe()
    const [ms, seq] = lastIds.get(name) ?? [0, -1]
    const next: readonly [number, number] = now > ms ? [now, 0] : [ms, seq + 1]
    lastIds.set(name, next)
    return `${next[0]}-${next[1]}`
  }

  const remember = (name: string, entry: Entry): void => {
    observe(name, entry.id)
    let buffer = buffers.get(name)
    if (buffer === undefined) {
      buffer = []
      buffers.set(name, buffer)
    }
    buffer.push(entry)
    // Two publishes may complete out of order; keep the buffer sorted by id.
    if (buffer.length > 1 && compareIds(buffer[buffer.length - 2]!.id, entry.id) > 0) {
      buffer.sort((a, b) => compareIds(a.id, b.id))
    }
    if (buffer.length > bufferSize) buffer.splice(0, buffer.length - bufferSize)
  }

  const buffered = (name: string, since: string | undefined): ReadonlyArray<Entry> => {
    const buffer = buffers.get(name) ?? []
    return since === undefined
      ? buffer.slice(-pageSize)
      : buffer.filter((e) => compareIds(e.id, since) > 0).slice(0, pageSize)
  }

  // Trying Redis while it is known to be down would only add acquireTimeout to every request.
  const redisUsable = Effect.map(redis.health, (health) => health.connection === "ready" && health.circuit === "closed")

  const toMessage = ({ id, text }: Message): Message => ({ id, text })

  const publish = (name: string, text: string) =>
    Effect.gen(function*() {
      const typed = yield* channel(name)
      const appended = (yield* redisUsable)
        ? yield* Effect.result(
          redis.command<string>("XADD", [logKey(name), "MAXLEN", "~", historySize, "*", "text", text])
        )
        : undefined
      if (appended === undefined || appended._tag === "Failure") {
        // Not in Redis (or, after a CommandTimeout, maybe in Redis too: then pages may see it twice).
        const id = nextLocalId(name)
        remember(name, { id, text, local: true })
        return { id, text, stored: "local", subscribers: null } satisfies Published
      }
      const id = appended.success
      remember(name, { id, text, local: false })
      // In the log even if PUBLISH fails: pollers and catch-up polls still get it, live pages miss it.
      const subscribers = yield* RedisChannel.publish(typed, { id, text }).pipe(
        Effect.provideService(RedisService, redis),
        Effect.map((n): number | null => n),
        Effect.orElseSucceed(() => null)
      )
      return { id, text, stored: "redis", subscribers } satisfies Published
    })

  const since = (name: string, after: string | undefined) =>
    Effect.gen(function*() {
      yield* channel(name)
      const local = buffered(name, after)
      const fallback: Polled = { source: "local", messages: local.map(toMessage) }
      if (!(yield* redisUsable)) return fallback
      const read = yield* Effect.result(
        (after === undefined
          ? redis.command("XREVRANGE", [logKey(name), "+", "-", "COUNT", pageSize], { idempotent: true })
          : redis.command("XRANGE", [logKey(name), `(${after}`, "+", "COUNT", pageSize], { idempotent: true })).pipe(
            Effect.flatMap(decodeEntries)
          )
      )
      if (read._tag === "Failure") return fallback
      const entries = after === undefined ? [...read.success].reverse() : read.success
      const fromRedis = entries.map(([id, fields]): Message => {
        observe(name, id)
        const at = fields.indexOf("text")
        return { id, text: at >= 0 ? fields[at + 1] ?? "" : "" }
      })
      // Messages kept in this process while Redis was down are in no log: add them, in id order. When Redis returned a
      // full page after `since`, local ones past its last id wait for the next page.
      const full = after !== undefined && fromRedis.length === pageSize
      const lastRedisId = fromRedis[fromRedis.length - 1]?.id
      const localOnly = local.filter((e) =>
        e.local && !(full && lastRedisId !== undefined && compareIds(e.id, lastRedisId) > 0)
      )
      const merged = [...fromRedis, ...localOnly.map(toMessage)].sort((a, b) => compareIds(a.id, b.id))
      const messages = after === undefined ? merged.slice(-pageSize) : merged.slice(0, pageSize)
      return { source: "redis", messages } satisfies Polled
    })

  return MessageLog.of({ channel, publish, since, observe })
})

// --- Server-Sent Events ---------------------------------------------------------------------------------------------

/** One SSE event. `data` must be one line (JSON is). */
const frame = (options: { readonly event?: string; readonly id?: string; readonly data: string }): string =>
  (options.id === undefined ? "" : `id: ${options.id}\n`) +
  (options.event === undefined ? "" : `event: ${options.event}\n`) +
  `data: ${options.data}\n\n`

const eventFrame = (event: SubscriptionEvent<Message>): string => {
  switch (event._tag) {
    case "Message":
      return frame({ id: event.message.id, data: JSON.stringify(event.message) })
    case "Gap":
      return frame({
        event: "gap",
        data: JSON.stringify({
          from: DateTime.formatIso(event.from),
          to: DateTime.formatIso(event.to),
          reason: event.reason,
          dropped: event.dropped ?? null
        })
      })
    case "Resubscribed":
      return frame({ event: "resubscribed", data: JSON.stringify({ channel: event.channel }) })
    case "Invalid":
      return frame({ event: "invalid", data: JSON.stringify({ error: event.error.message }) })
  }
}

/**
 * The SSE body of one `GET /events/:channel`: a `retry:` hint, then the subscription's events, the delivery mode
 * and keep-alive comments, until the client goes away (the request fiber is interrupted and the local subscription
 * ends; the last one on the channel sends UNSUBSCRIBE).
 */
export const eventStream = (
  subscriber: RedisSubscriber["Service"],
  log: MessageLog["Service"],
  name: string,
  typed: RedisChannel.RedisChannel<Message, typeof Message.Encoded>,
  options: SseServerOptions = {}
): Stream.Stream<string> => {
  const retry = Math.round(Duration.toMillis(Duration.fromInputUnsafe(options.retry ?? "2 seconds")))
  const messages = subscriber.events(typed).pipe(
    Stream.tap((event) => Effect.sync(() => event._tag === "Message" && log.observe(name, event.message.id))),
    Stream.map(eventFrame),
    // The subscription itself failed (e.g. a NOPERM reply): say so and end, so that EventSource reconnects.
    Stream.orElseSucceed((error) =>
      frame({ event: "error", data: JSON.stringify({ error: error._tag, message: error.message }) })
    )
  )
  const modes = Stream.map(subscriber.mode, (mode) => frame({ event: "mode", data: mode }))
  const keepAlive = Stream.tick(options.keepAlive ?? "15 seconds").pipe(Stream.drop(1), Stream.as(": keep-alive\n\n"))
  return Stream.concat(
    Stream.succeed(`retry: ${retry}\n\n`),
    Stream.merge(messages, Stream.merge(modes, keepAlive), { haltStrategy: "left" })
  )
}

// --- routes ---------------------------------------------------------------------------------------------------------

const badRequest = (message: string) => HttpServerResponse.jsonUnsafe({ error: message }, { status: 400 })

const maxBody = 64 * 1024

/** The routes; they need `RedisSubscriber` and `MessageLog`. */
export const routes = (options: SseServerOptions = {}) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const subscriber = yield* RedisSubscriber
    const log = yield* MessageLog
    const pollInterval = Math.round(Duration.toMillis(Duration.fromInputUnsafe(options.pollInterval ?? "1 second")))
    const channelParam = Effect.map(HttpRouter.params, (params) => params.channel ?? "")

    yield* router.add("GET", "/", HttpServerResponse.html(page(pollInterval)))

    yield* router.add(
      "GET",
      "/events/:channel",
      Effect.gen(function*() {
        const name = yield* channelParam
        const typed = yield* log.channel(name)
        return HttpServerResponse.stream(Stream.encodeText(eventStream(subscriber, log, name, typed, options)), {
          contentType: "text/event-stream",
          headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
        })
      }).pipe(Effect.catchTag("InvalidChannelName", (e) => Effect.succeed(badRequest(e.message))))
    )

    yield* router.add(
      "GET",
      "/poll/:channel",
      Effect.gen(function*() {
        const name = yield* channelParam
        const search = yield* HttpServerRequest.ParsedSearchParams
        const since = typeof search.since === "string" && search.since !== "" ? search.since : undefined
        if (since !== undefined && !ID.test(since)) return badRequest("since must be a message id (<ms>-<seq>)")
        const polled = yield* log.since(name, since)
        return HttpServerResponse.jsonUnsafe(polled, { headers: { "cache-control": "no-store" } })
      }).pipe(Effect.catchTag("InvalidChannelName", (e) => Effect.succeed(badRequest(e.message))))
    )

    yield* router.add(
      "POST",
      "/publish/:channel",
      Effect.gen(function*() {
        const name = yield* channelParam
        const request = yield* HttpServerRequest.HttpServerRequest
        const text = yield* request.text
        if (Buffer.byteLength(text) > maxBody) {
          return HttpServerResponse.jsonUnsafe({ error: "message too large" }, { status: 413 })
        }
        const published = yield* log.publish(name, text)
        return HttpServerResponse.jsonUnsafe(published, { status: published.stored === "redis" ? 200 : 202 })
      }).pipe(
        Effect.catchTag("InvalidChannelName", (e) => Effect.succeed(badRequest(e.message))),
        Effect.catchTag("HttpServerError", () => Effect.succeed(badRequest("could not read the request body")))
      )
    )
  }))

/**
 * The whole server: HTTP on @effect/platform-node, `RedisService`, `RedisSubscriber` and the `MessageLog`. Build it in
 * a scope (or `Layer.launch` it); closing the scope stops the server and closes every Redis connection.
 */
export const layer = (options: SseServerOptions = {}) => {
  const redis = RedisService.layer(options.redis)
  const services = Layer.mergeAll(MessageLog.layer(options), RedisSubscriber.layer).pipe(Layer.provideMerge(redis))
  const log = options.log ?? true
  return HttpRouter.serve(routes(options), { disableLogger: !log, disableListenLog: !log }).pipe(
    Layer.provide(services),
    Layer.provideMerge(NodeHttpServer.layer(createServer, {
      port: options.port ?? 3000,
      ...(options.host === undefined ? {} : { host: options.host }),
      // Open SSE streams never end by themselves: do not wait long for them on shutdown.
      gracefulShutdownTimeout: "1 second"
    }))
  )
}

// --- the page -------------------------------------------------------------------------------------------------------

const page = (pollInterval: number): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>effect-redis-resilience: SSE with a polling fallback</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem; max-width: 40rem; }
  #mode { font-weight: bold; padding: 0 .4em; border-radius: .3em; }
  #mode.live { background: #c8f0c8; } #mode.polling { background: #f8e0a0; }
  #messages li[data-polled]:not([data-live])::after { content: " (polled)"; color: #888; }
</style>
</head>
<body>
<h1>Channel <code id="channel"></code>: <span id="mode">connecting</span></h1>
<form id="publish"><input id="text" autocomplete="off" placeholder="message"> <button>Publish</button></form>
<ul id="messages"></ul>
<script type="module">
const channel = new URLSearchParams(location.search).get("channel") || "demo"
const path = encodeURIComponent(channel)
const modeEl = document.getElementById("mode")
const list = document.getElementById("messages")
document.getElementById("channel").textContent = channel

// Ids are Redis stream ids, "<ms>-<seq>": ordered numerically.
const parse = (id) => id.split("-").map(Number)
const after = (a, b) => { const [am, as] = parse(a), [bm, bs] = parse(b); return am !== bm ? am > bm : as > bs }
const items = new Map() // id -> <li>
let cursor = null // the greatest id shown
let timer = null
let inFlight = 0
const count = (name) => { document.body.dataset[name] = String(Number(document.body.dataset[name] ?? 0) + 1) }

// One <li> per id, whichever way it came first; data-live / data-polled say which ways it came.
const show = (message, via) => {
  let li = items.get(message.id)
  if (li === undefined) {
    li = document.createElement("li")
    li.textContent = message.text
    li.dataset.id = message.id
    items.set(message.id, li)
    list.append(li)
    if (cursor === null || after(message.id, cursor)) cursor = message.id
  }
  li.dataset[via] = "yes"
}

// Asks for everything after the cursor: from Redis' log when it is up, from the server's own buffer when not.
const poll = async () => {
  inFlight++
  document.body.dataset.polls = String(inFlight)
  try {
    const response = await fetch("/poll/" + path + (cursor === null ? "" : "?since=" + cursor), { cache: "no-store" })
    if (response.ok) for (const message of (await response.json()).messages) show(message, "polled")
  } catch {} finally {
    inFlight--
    document.body.dataset.polls = String(inFlight)
  }
}

const setMode = (mode) => {
  modeEl.textContent = mode
  modeEl.className = mode
  if (mode === "live") {
    clearInterval(timer)
    timer = null
  } else if (timer === null) {
    timer = setInterval(poll, ${pollInterval})
  }
  // Either way, catch up once: what was published while switching is in the log (or in the server's buffer).
  poll()
}

const events = new EventSource("/events/" + path)
events.onopen = () => poll()
events.onmessage = (event) => show(JSON.parse(event.data), "live")
events.addEventListener("mode", (event) => setMode(event.data))
// Pub/sub lost messages (reconnect or overflow): the log has them.
events.addEventListener("gap", () => { count("gaps"); poll() })
events.addEventListener("resubscribed", () => { count("resubscribed"); poll() })
events.addEventListener("invalid", (event) => console.warn("invalid message", event.data))
// The stream itself broke (server restarting, network): poll until EventSource is back and says live.
events.onerror = () => { if (modeEl.textContent !== "polling") setMode("polling") }

document.getElementById("publish").onsubmit = async (event) => {
  event.preventDefault()
  const input = document.getElementById("text")
  if (input.value === "") return
  await fetch("/publish/" + path, { method: "POST", body: input.value })
  input.value = ""
}
</script>
</body>
</html>
`

// --- main -----------------------------------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  const port = yield* Config.Port("PORT").pipe(Config.withDefault(3000))
  const url = yield* Config.option(Config.String("REDIS_URL"))
  const redisUrl = Option.isSome(url) ? url.value : (yield* RedisTestServer.make()).url
  yield* Effect.log(`Redis: ${Option.isSome(url) ? "REDIS_URL" : "embedded redis-server"} at ${redisUrl}`)
  return yield* Layer.launch(layer({
    port,
    redis: {
      url: redisUrl,
      // Come back within a second or so of Redis returning, rather than up to the 5 s / 30 s defaults.
      reconnect: { cap: "1 second" },
      breaker: { openDuration: "500 millis", maxOpenDuration: "2 seconds" }
    }
  }))
})

if (import.meta.main) NodeRuntime.runMain(Effect.scoped(main))
