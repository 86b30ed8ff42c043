/**
 * The command path of the shared connection: breaker check, wait for a ready connection (`acquireTimeout`), deadline
 * (`commandTimeout`, on the Watchdog), metrics, span, classification of the failure, and one retry of an idempotent
 * command after a lost connection.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as CircuitBreaker from "./breaker.ts"
import type * as Connection from "./connection.ts"
import type * as Metrics from "./metrics.ts"
import type * as RedisConfig from "../RedisConfig.ts"
import {
  classify,
  commandTimedOut,
  isConnectionLost,
  isRedisError,
  isTransient,
  isWrongRole,
  type RedisError
} from "../RedisError.ts"
import * as Spans from "./spans.ts"
import * as Watchdog from "./watchdog.ts"
import type { NodeBreakers } from "./topology/clusterBreakers.ts"

// Failures of an attempt that did not reach the server.
const neverSent = (error: RedisError): boolean => {
  switch (error._tag) {
    case "ConnectionTimeout":
    case "CircuitOpen":
    case "ConnectionRefused":
    case "TlsHandshakeFailed":
      return true
    case "ConnectionReset":
    case "ConnectionClosed":
      return !error.sent
    default:
      return false
  }
}

// A retry is an event on the call's one span (when there is a span): which failure caused it.
const retryEvent = (error: RedisError): Effect.Effect<void> =>
  Effect.currentSpan.pipe(
    Effect.flatMap((span) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => span.event("redis.retry", clock.currentTimeNanosUnsafe(), { "error.type": error._tag }))
      )
    ),
    Effect.ignore
  )

/**
 * One call through the executor: the command's name (metrics, spans, errors), whether it may be retried after a lost
 * connection, how to send it, how to turn its reply into the result, and the key that routes it on a Cluster.
 *
 * @internal
 */
export interface Call<A> {
  readonly name: string
  readonly idempotent: boolean
  readonly run: Run<unknown>
  readonly reply: Reply<A>
  readonly key: string | undefined
}

/** @internal */
export type Run<A> = (client: Connection.Client) => Promise<A>
// Turns the reply into the operation's result inside the command's own callback (no `Effect.map` step).
// The connection is given too, for replies that carry per-command failures (a batch's) to classify.
type Reply<A> = (reply: unknown, live: Connection.Live) => A
const asIs = <A>(reply: unknown): A => reply as A

/**
 * The command path shared by every operation.
 *
 * @internal
 *
 * The healthy case (circuit closed, connection ready) is one `Effect.callback` around the ioredis promise: the breaker
 * check, the metrics and the error mapping are plain function calls, so that the layer costs next to nothing over a
 * bare `Effect.tryPromise`. Everything else (waiting for a connection, failing fast, retrying) takes the slow path.
 */
export const make = (
  config: RedisConfig.ResolvedRedisConfig,
  connection: Connection.Connection,
  breaker: CircuitBreaker.CircuitBreaker,
  stats: Metrics.CommandStats,
  watchdog: Watchdog.Watchdog,
  nodes?: NodeBreakers | undefined
) => {
  const commandTimeout = config.commandTimeout
  // Durations on the watchdog's monotonic milliseconds (performance.now() with the default clock; TestClock drives
  // it too). One reading per command dates both its deadline and its duration.
  const now = watchdog.now
  const elapsed = (start: number) => (now() - start) / 1000

  const { nodeOf, report, succeeded, wrongRole } = reporter(connection, breaker, nodes)

  // One server, Sentinel: the shared socket is corked for the tick. Cluster: the connection of the master each key
  // routes to, so that each node's commands of a tick go out in one write.
  const cork = connection.connector.corks ? corker() : nodes !== undefined ? nodeCorker() : undefined

  const timedOut = (name: string) => commandTimedOut(name, commandTimeout)

  // `call.idempotent` allows a retry after a lost connection; `canRetry` is false on the retry itself (one retry at
  // most). No interrupt handler: a command interrupted by its caller (its own timeout, say) keeps its deadline, and is
  // counted by what happened on the wire (`ok` when the reply comes, `CommandTimeout` when it does not); its resume is
  // then a no-op, so nothing reaches the breaker or the connection. An interrupt handler would cost every command a
  // finalizer on the fiber's stack (~10% of the layer's own cost without I/O).
  const send = <A>(
    call: Call<A>,
    canRetry: boolean,
    live: Connection.Live,
    start: number,
    sentAt: number,
    resume: (effect: Effect.Effect<A, RedisError>) => void,
    node: string | undefined
  ): void => {
    const name = call.name
    // `start` times the whole call (a wait for a connection included); the deadline counts from the send.
    const deadline = watchdog.watch(() => {
      const error = timedOut(name)
      stats.record(name, error._tag, elapsed(start))
      resume(Effect.andThen(report(call, live, error), Effect.fail(error)))
    }, sentAt)
    // ioredis rejects with the same "Connection is closed." whether or not it wrote the command: a client that has
    // already ended writes nothing.
    const sent = live.client.status !== "end"
    cork?.(live.client, node)
    let promise: Promise<unknown>
    try {
      promise = call.run(live.client)
    } catch (cause) {
      promise = Promise.reject(cause)
    }
    promise.then(
      (value) => {
        if (deadline.settled) return
        Watchdog.settle(deadline)
        stats.record(name, "ok", elapsed(start))
        let result: A
        try {
          result = call.reply(value, live)
        } catch (defect) {
          // A decoder rejects a reply that does not fit with a DecodeError; anything else thrown is a bug.
          return resume(isRedisError(defect) ? Effect.fail(defect) : Effect.die(defect))
        }
        resume(succeeded(node, result))
      },
      (cause: unknown) => {
        if (deadline.settled) return
        Watchdog.settle(deadline)
        const error = classify(cause, { command: name, sent, socketError: live.socketError, commandTimeout })
        stats.record(name, error._tag, elapsed(start))
        const reported = report(call, live, error)
        // An idempotent command whose connection broke under it runs once more, on the next connection; so does any
        // command that reached a replica (READONLY: it was not applied).
        resume(
          canRetry && ((call.idempotent && isConnectionLost(error)) || wrongRole(error))
            ? Effect.andThen(reported, Effect.andThen(retryEvent(error), retried(call, error)))
            : Effect.andThen(reported, Effect.fail(error))
        )
      }
    )
  }

  const rejected = <A>(call: Call<A>, canRetry: boolean, start: number, node?: string): Effect.Effect<A, RedisError> =>
    (node === undefined ? breaker.admit(call.name) : nodes!.admit(node, call.name)).pipe(
      Effect.tapError((error) => Effect.sync(() => stats.record(call.name, error._tag, elapsed(start)))),
      Effect.andThen(attempt(call, canRetry))
    )

  const waitThenSend = <A>(call: Call<A>, canRetry: boolean, start: number) =>
    connection.acquire(call.name).pipe(
      Effect.tapError((error) =>
        Effect.andThen(
          Effect.sync(() => stats.record(call.name, error._tag, elapsed(start))),
          report(call, undefined, error)
        )
      ),
      Effect.flatMap((live) => {
        const node = nodeOf(call, live)
        return node !== undefined && nodes!.isOpen(node)
          ? rejected(call, canRetry, start, node)
          : Effect.callback<A, RedisError>((resume) => send(call, canRetry, live, start, now(), resume, node))
      })
    )

  // The body of one attempt, run inside an `Effect.callback`.
  const register = <A>(call: Call<A>, canRetry: boolean, resume: (effect: Effect.Effect<A, RedisError>) => void) => {
    const start = now()
    if (breaker.current()._tag !== "Closed") return resume(rejected(call, canRetry, start))
    const live = connection.current()
    if (live === undefined) return resume(waitThenSend(call, canRetry, start))
    const node = nodeOf(call, live)
    if (node !== undefined && nodes!.isOpen(node)) return resume(rejected(call, canRetry, start, node))
    return send(call, canRetry, live, start, start, resume, node)
  }

  // The retry of a command that was sent: if the retry never reaches the server (no connection in time, the circuit
  // open, ...), the caller gets the first failure, whose `sent: true` is the truth (the first send may have been
  // applied, e.g. by a frozen server once it resumes), not the retry's "never sent".
  const retried = <A>(call: Call<A>, first: RedisError): Effect.Effect<A, RedisError> =>
    Effect.catch(attempt(call, false), (error) => Effect.fail(neverSent(error) ? first : error))

  const attempt = <A>(call: Call<A>, canRetry: boolean): Effect.Effect<A, RedisError> =>
    Effect.callback<A, RedisError>((resume) => register(call, canRetry, resume))

  const spans = Spans.make(connection.connector.serverAttributes, config.tracing.queryText)

  // Spans are created when the program installed a tracer (OTLP, ...): with Effect's default in-memory tracer nobody
  // reads them, and a span costs more than the rest of the command path together. The check runs inside the command's
  // own callback (the running fiber is the current one there), which saves an `Effect.withFiber` step per command.
  function execute<A>(name: string, idempotent: boolean, run: Run<A>): Effect.Effect<A, RedisError>
  function execute<R, A>(
    name: string,
    idempotent: boolean,
    run: Run<R>,
    reply: (reply: R, live: Connection.Live) => A,
    key?: string | undefined,
    query?: Spans.QueryText | undefined
  ): Effect.Effect<A, RedisError>
  function execute<A>(
    name: string,
    idempotent: boolean,
    run: Run<unknown>,
    reply: Reply<A> = asIs,
    key?: string,
    query?: Spans.QueryText
  ) {
    const call: Call<A> = { name, idempotent, run, reply, key }
    return Effect.callback<A, RedisError>((resume) => {
      const fiber = Fiber.getCurrent()
      if (fiber !== undefined && spans.traced(fiber)) {
        const span = spans.spanFor(name, query)
        return resume(Effect.withSpan(Effect.tapError(attempt(call, true), Spans.errorType), span.name, span.options))
      }
      return register(call, true, resume)
    })
  }
  return execute
}

/**
 * What a call's outcome tells the rest of the layer, and the master it routes to (Cluster with per-master breakers).
 *
 * @internal
 */
const reporter = (
  connection: Connection.Connection,
  breaker: CircuitBreaker.CircuitBreaker,
  nodes: NodeBreakers | undefined
) => {
  // The master a call's key routes to (Cluster with per-master breakers), else undefined.
  const nodeOf = nodes === undefined
    ? () => undefined
    : (call: Call<unknown>, live: Connection.Live | undefined) =>
      call.key === undefined || live === undefined ? undefined : nodes.nodeOf(live.client, call.key)

  // What a failed command tells the rest of the layer: a broken connection is replaced (the loss counts once towards
  // the breaker, through the connection, however many commands were in flight); other transient failures count each,
  // towards the breaker of the master the key routes to on a Cluster, else the layer's.
  // READONLY means "wrong node" only where the master can move (Sentinel, Cluster); on one server it is a plain reply.
  const wrongRole = connection.connector.mastersMove ? isWrongRole : () => false
  // On a Cluster a lost connection is one node's: the slot map is refreshed and the Cluster client stays.
  const report = (call: Call<unknown>, live: Connection.Live | undefined, error: RedisError): Effect.Effect<void> => {
    if (isConnectionLost(error) || wrongRole(error)) {
      if (live === undefined) return Effect.void
      // Cluster: the master's own breaker hears of it (once per loss); the Cluster client stays.
      const node = isConnectionLost(error) ? nodeOf(call, live) : undefined
      return node === undefined
        ? connection.lost(live, error)
        : Effect.andThen(nodes!.onLoss(node), connection.lost(live, error))
    }
    if (!isTransient(error)) return Effect.void
    const node = nodeOf(call, live)
    return node === undefined ? breaker.onFailure : nodes!.onFailure(node)
  }

  // `node`: the master the call's key routed to when it was sent (see `nodeOf`).
  const succeeded = <A>(node: string | undefined, result: A): Effect.Effect<A> => {
    const state = breaker.current()
    const healthy = state._tag === "Closed" && state.failures === 0
    if (node === undefined) return healthy ? Effect.succeed(result) : Effect.as(breaker.onSuccess, result)
    const told = healthy ? nodes!.onSuccess(node) : Effect.andThen(breaker.onSuccess, nodes!.onSuccess(node))
    return Effect.as(told, result)
  }

  return { nodeOf, report, succeeded, wrongRole }
}

type Corkable = {
  readonly stream?: { cork(): void; uncork(): void; writable?: boolean } | undefined
  readonly commandQueue?: { readonly length: number } | undefined
}

// The socket worth corking: one with replies awaited (a lone command, at concurrency 1, is written at once, not a tick
// later) that is open.
const corkable = (redis: Corkable | undefined) => {
  if (redis === undefined || redis.commandQueue?.length === 0) return undefined
  const stream = redis.stream
  return stream === undefined || stream.writable === false ? undefined : stream
}

/**
 * Commands issued in the same tick go out in one write: the socket is corked at the first and uncorked once the
 * tick's work is done (process.nextTick runs after the current microtasks, where the fibers resumed by one batch of
 * replies issue their next commands). A lone command is not corked. A Cluster corks per node (`nodeCorker`).
 *
 * @internal
 */
const corker = () => {
  let corked: { uncork(): void } | undefined
  const uncork = () => {
    const stream = corked
    corked = undefined
    stream?.uncork()
  }
  return (client: Connection.Client, _node: string | undefined): void => {
    if (corked !== undefined) return
    const stream = corkable(client as Corkable)
    if (stream === undefined) return
    stream.cork()
    corked = stream
    process.nextTick(uncork)
  }
}

/**
 * The Cluster's corker: the connection of the master a key routes to (found in ioredis' pool by the address the slot
 * map names) is corked until the event loop's poll phase is over (`setImmediate`), when every node's replies of this
 * turn have been read and the commands they released were issued. A command without a key is written at once.
 *
 * @internal
 */
const nodeCorker = () => {
  let corked: Array<{ uncork(): void }> = []
  const uncork = () => {
    const streams = corked
    corked = []
    for (const stream of streams) stream.uncork()
  }
  return (client: Connection.Client, node: string | undefined): void => {
    if (node === undefined) return
    const pool = (client as unknown as { readonly connectionPool?: { getInstanceByKey(key: string): unknown } })
      .connectionPool
    const stream = corkable(pool?.getInstanceByKey(node) as Corkable | undefined)
    if (stream === undefined || corked.includes(stream)) return
    stream.cork()
    if (corked.length === 0) setImmediate(uncork)
    corked.push(stream)
  }
}
