/**
 * A TCP proxy for tests that sits between a client and Redis and injects network faults on demand:
 * real connection resets (RST, so the client reads `ECONNRESET`), a refusing port, a blackhole that
 * holds every byte, and added latency.
 *
 * Every delay in this module uses real timers, never Effect's `Clock`, so the proxy works unchanged
 * inside `it.effect` tests that run under `TestClock`.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * Options of {@link make}: where to forward to, and an optional fixed listening port (default: a free
 * loopback port).
 *
 * @since 0.1.0
 * @category models
 */
export interface ChaosProxyOptions {
  readonly target: { readonly host: string; readonly port: number }
  readonly port?: number | undefined
}

/**
 * A running proxy owned by a scope. Faults apply to every connection, open or new, until `restore`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChaosProxy {
  /** Always `"127.0.0.1"`. */
  readonly host: string
  readonly port: number
  /** `redis://127.0.0.1:PORT`: point the client under test here instead of at the server. */
  readonly url: string
  /**
   * Reset every open client-side socket with a TCP RST (the client reads `ECONNRESET`) and close its
   * upstream socket. The proxy keeps accepting new connections.
   */
  readonly resetAll: Effect.Effect<void>
  /**
   * From now on nothing is forwarded in either direction; sockets stay open and new connections are
   * accepted. Bytes are held, not dropped: `restore` delivers them in order, as TCP does when a
   * partition heals.
   */
  readonly blackhole: Effect.Effect<void>
  /** Delay every forwarded chunk by `millis` in both directions, keeping their order. `0` turns it off. */
  readonly latency: (millis: number) => Effect.Effect<void>
  /**
   * Stop listening (the port number is kept), so new connections get `ECONNREFUSED`. Open connections
   * keep working; combine with `resetAll` to drop them too.
   */
  readonly refuse: Effect.Effect<void>
  /**
   * Back to normal forwarding: listen again on the same port if refused, no latency, no blackhole.
   * Bytes held by a blackhole or latency are delivered at once, in order. Dies with a `ChaosProxyError`
   * if another process took the port while it was refused.
   */
  readonly restore: Effect.Effect<void>
  /** Total client connections accepted since `make`. */
  readonly accepted: Effect.Effect<number>
  /** Client-side connections open right now. */
  readonly active: Effect.Effect<number>
}

/**
 * The proxy could not listen (port in use, permission denied).
 *
 * @since 0.1.0
 * @category errors
 */
export class ChaosProxyError extends Data.TaggedError("ChaosProxyError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

const host = "127.0.0.1"

interface Pending {
  readonly chunk: Buffer
  readonly due: number
}

/** One direction of a proxied connection: holds chunks while faults say so, delivers them in order. */
interface Pipe {
  readonly queue: Array<Pending>
  timer: ReturnType<typeof setTimeout> | undefined
  /** The source ended cleanly: end the destination once the queue is delivered. */
  ended: boolean
}

interface Link {
  readonly client: Net.Socket
  readonly upstream: Net.Socket
  readonly toUpstream: Pipe
  readonly toClient: Pipe
}

/** Everything one proxy mutates, in one place: its listener, the faults in force and the open links. */
interface ProxyState {
  readonly target: { readonly host: string; readonly port: number }
  readonly links: Set<Link>
  listener: Net.Server | undefined
  blackholed: boolean
  /** Added latency in milliseconds; `0` forwards at once. */
  delay: number
  accepted: number
  /** The scope closed: connections arriving late are destroyed and `restore` does not listen again. */
  closed: boolean
}

/**
 * Starts a proxy on `127.0.0.1` forwarding to `options.target`. Each accepted connection opens its own
 * upstream connection; when either side closes or fails, the other side is closed too. Closing the
 * scope destroys every socket and closes the listener.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { ChaosProxy, RedisTestServer } from "effect-redis-resilience/testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* RedisTestServer.make()
 *   const proxy = yield* ChaosProxy.make({ target: server })
 *   // ... connect the client under test to proxy.url, then:
 *   yield* proxy.resetAll // the client reads ECONNRESET
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: ChaosProxyOptions
) => Effect.Effect<ChaosProxy, ChaosProxyError, Scope.Scope> = Effect.fnUntraced(function*(options: ChaosProxyOptions) {
  const state: ProxyState = {
    target: { host: options.target.host, port: options.target.port },
    links: new Set(),
    listener: undefined,
    blackholed: false,
    delay: 0,
    accepted: 0,
    closed: false
  }

  const port = yield* Effect.acquireRelease(listen(state, options.port ?? 0), () => Effect.sync(() => close(state)))

  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    resetAll: Effect.sync(() => resetAll(state)),
    blackhole: Effect.sync(() => blackhole(state)),
    latency: (millis: number) =>
      Effect.sync(() => {
        state.delay = Math.max(0, millis)
      }),
    refuse: Effect.sync(() => stopListening(state)),
    restore: Effect.suspend(() => {
      state.blackholed = false
      state.delay = 0
      flushAll(state)
      const relisten = state.listener === undefined && !state.closed
      return relisten ? Effect.orDie(Effect.asVoid(listen(state, port))) : Effect.void
    }),
    accepted: Effect.sync(() => state.accepted),
    active: Effect.sync(() => state.links.size)
  } satisfies ChaosProxy
})

// ---------------------------------------------------------------------------------------------------------------------
// listening
// ---------------------------------------------------------------------------------------------------------------------

/** Listens on `port` (`0`: any free one) and succeeds with the port bound; the server becomes `state.listener`. */
const listen = (state: ProxyState, port: number): Effect.Effect<number, ChaosProxyError> =>
  Effect.callback<number, ChaosProxyError>((resume) => {
    const server = Net.createServer({ noDelay: true }, (client) => onConnection(state, client))
    const onError = (cause: Error) => {
      const message = `could not listen on ${host}:${port}: ${cause.message}`
      resume(Effect.fail(new ChaosProxyError({ message, cause })))
    }
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      server.on("error", () => {})
      state.listener = server
      const address = server.address()
      resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : port))
    })
    return Effect.sync(() => {
      if (state.listener === server) state.listener = undefined
      server.close()
    })
  })

const stopListening = (state: ProxyState): void => {
  const server = state.listener
  state.listener = undefined
  // close() stops accepting at once; its callback would wait for open connections, so do not wait.
  server?.close()
}

/** The scope's finalizer: no more connections, every socket destroyed. */
const close = (state: ProxyState): void => {
  state.closed = true
  stopListening(state)
  for (const link of [...state.links]) {
    drop(state, link)
    link.client.destroy()
    link.upstream.destroy()
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// links
// ---------------------------------------------------------------------------------------------------------------------

const makePipe = (): Pipe => ({ queue: [], timer: undefined, ended: false })

const onConnection = (state: ProxyState, client: Net.Socket): void => {
  if (state.closed) {
    client.destroy()
    return
  }
  state.accepted++
  client.setNoDelay(true)
  const upstream = Net.connect({ host: state.target.host, port: state.target.port })
  upstream.setNoDelay(true)
  const link: Link = { client, upstream, toUpstream: makePipe(), toClient: makePipe() }
  state.links.add(link)
  client.on("data", (chunk: Buffer) => forward(state, link.toUpstream, upstream, chunk))
  upstream.on("data", (chunk: Buffer) => forward(state, link.toClient, client, chunk))
  client.on("end", () => endFrom(state, link.toUpstream, upstream))
  upstream.on("end", () => endFrom(state, link.toClient, client))
  // A failure on one side is passed on as a close of the other; errors themselves stay local.
  client.on("error", () => upstream.destroy())
  upstream.on("error", () => client.destroy())
  client.on("close", () => {
    drop(state, link)
    upstream.destroy()
  })
  // Redis closing (or failing) ends the client side once the bytes already read are delivered.
  upstream.on("close", () => endFrom(state, link.toClient, client))
}

/** Forgets `link` and whatever it still held; its sockets are the caller's to close. */
const drop = (state: ProxyState, link: Link): void => {
  if (!state.links.delete(link)) return
  clearTimeout(link.toUpstream.timer)
  clearTimeout(link.toClient.timer)
  link.toUpstream.queue.length = 0
  link.toClient.queue.length = 0
}

const resetAll = (state: ProxyState): void => {
  for (const link of [...state.links]) {
    drop(state, link)
    link.upstream.destroy()
    if (!link.client.destroyed) link.client.resetAndDestroy()
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// pipes: forwarding under faults
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Delivers what is due (everything when `flush`) and sets a timer for the next chunk. Nothing moves while
 * blackholed.
 */
const pump = (state: ProxyState, pipe: Pipe, destination: Net.Socket, flush: boolean): void => {
  if (pipe.timer !== undefined) {
    clearTimeout(pipe.timer)
    pipe.timer = undefined
  }
  if (state.blackholed || destination.destroyed) return
  const now = performance.now()
  while (pipe.queue.length > 0) {
    const head = pipe.queue[0]!
    if (!flush && head.due > now) {
      pipe.timer = setTimeout(() => pump(state, pipe, destination, false), Math.ceil(head.due - now))
      return
    }
    pipe.queue.shift()
    destination.write(head.chunk)
  }
  if (pipe.ended && !destination.destroyed) destination.end()
}

/** Writes at once when no fault is in force and nothing is queued before it, so order is kept. */
const forward = (state: ProxyState, pipe: Pipe, destination: Net.Socket, chunk: Buffer): void => {
  if (!state.blackholed && state.delay === 0 && pipe.queue.length === 0) {
    destination.write(chunk)
    return
  }
  pipe.queue.push({ chunk, due: performance.now() + state.delay })
  if (pipe.timer === undefined) pump(state, pipe, destination, false)
}

const endFrom = (state: ProxyState, pipe: Pipe, destination: Net.Socket): void => {
  if (pipe.ended) return
  pipe.ended = true
  if (pipe.timer === undefined) pump(state, pipe, destination, false)
}

const blackhole = (state: ProxyState): void => {
  state.blackholed = true
  for (const link of state.links) {
    clearTimeout(link.toUpstream.timer)
    clearTimeout(link.toClient.timer)
    link.toUpstream.timer = undefined
    link.toClient.timer = undefined
  }
}

const flushAll = (state: ProxyState): void => {
  for (const link of state.links) {
    pump(state, link.toUpstream, link.upstream, true)
    pump(state, link.toClient, link.client, true)
  }
}
