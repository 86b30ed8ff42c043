/**
 * Pieces of `RedisTestSentinel` that need none of its state: a sentinel's config file, one sentinel process
 * (spawn, stop, start, admin commands) and reading its flat RESP2 replies.
 * Internal: not exported from `effect-redis-resilience/testing`.
 *
 * Every wait here uses real timers, never Effect's `Clock`, so the kit works under `TestClock`.
 *
 * @internal
 */
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Process from "./process.ts"

const host = Process.host
const readyTimeoutMillis = 5_000
const adminTimeoutMillis = 5_000

/** What a sentinel's config says beyond its own port and id. */
export interface Monitor {
  readonly dir: string
  readonly name: string
  readonly masterPort: number
  readonly replicaPort: number
  readonly quorum: number
  readonly downAfter: number
  readonly failoverTimeout: number
}

/**
 * The config file of sentinel `index` of the sentinels on `ports` with ids `ids`. Every sentinel's config
 * names the replica and the other sentinels (with their ids) up front, so they know each other at once
 * instead of after the first hello messages (published every 2 s).
 */
export const sentinelConf = (
  monitor: Monitor,
  ports: ReadonlyArray<number>,
  ids: ReadonlyArray<string>,
  index: number
): string => {
  const { name } = monitor
  return [
    `port ${ports[index]}`,
    `bind ${host}`,
    "protected-mode no",
    "daemonize no",
    `dir "${monitor.dir}"`,
    "loglevel notice",
    `logfile ""`,
    `sentinel myid ${ids[index]}`,
    "sentinel resolve-hostnames no",
    "sentinel announce-hostnames no",
    `sentinel monitor ${name} ${host} ${monitor.masterPort} ${monitor.quorum}`,
    `sentinel down-after-milliseconds ${name} ${monitor.downAfter}`,
    `sentinel failover-timeout ${name} ${monitor.failoverTimeout}`,
    `sentinel parallel-syncs ${name} 1`,
    `sentinel known-replica ${name} ${host} ${monitor.replicaPort}`,
    ...ports.flatMap((port, other) =>
      other === index ? [] : [`sentinel known-sentinel ${name} ${host} ${port} ${ids[other]}`]
    ),
    ""
  ].join("\n")
}

/** A flat RESP2 `[field, value, ...]` reply (e.g. `SENTINEL MASTER`) as an object. */
export const fieldsOf = (reply: unknown): Record<string, string> => {
  const fields: Record<string, string> = {}
  if (!Array.isArray(reply)) return fields
  for (let i = 0; i + 1 < reply.length; i += 2) fields[String(reply[i])] = String(reply[i + 1])
  return fields
}

/** One sentinel process: the shape of `RedisTestSentinelNode`, failing with the caller's error `E`. */
export interface SentinelProcess<E> {
  readonly host: string
  readonly port: number
  readonly stop: Effect.Effect<void>
  readonly start: Effect.Effect<void, E>
  readonly command: (...args: ReadonlyArray<string>) => Effect.Effect<unknown, E>
  readonly pid: Effect.Effect<number | undefined>
}

/** What one sentinel mutates: the process running now (if any) and its output. */
interface SentinelState {
  current: ChildProcess | undefined
  /** The scope closed: `start` fails instead of spawning a process nobody would kill. */
  closed: boolean
  output: string
}

/** One sentinel's settings, what it owns and its state: what the helpers below share instead of closures. */
interface Sentinel<E> {
  readonly file: string
  readonly port: number
  readonly owned: Process.Owned
  readonly state: SentinelState
  readonly error: Process.ErrorClass<E>
}

/**
 * Writes `text` to `file`, spawns `redis-server <file> --sentinel` (listening on `port`, as `text`
 * says) and waits until it answers PING. The scope kills it.
 */
export const makeSentinel = <E>(
  file: string,
  port: number,
  text: string,
  error: Process.ErrorClass<E>
): Effect.Effect<SentinelProcess<E>, E, Scope.Scope> =>
  Effect.gen(function*() {
    const state: SentinelState = { current: undefined, closed: false, output: "" }
    const owned = yield* Process.makeOwned(() => {
      state.closed = true
      state.current = undefined
    })
    const sentinel: Sentinel<E> = { file, port, owned, state, error }

    // Written once: sentinel rewrites it (known replicas, sentinels, epochs) and `start` reuses it.
    yield* Effect.try({
      try: () => Fs.writeFileSync(file, text),
      catch: (cause) => new error({ message: `could not write ${file}: ${cause}`, cause })
    })
    yield* launch(sentinel)

    const lock = yield* Semaphore.make(1)
    return {
      host,
      port,
      stop: lock.withPermit(Effect.suspend(() => {
        const child = state.current
        state.current = undefined
        return child === undefined ? Effect.void : Process.terminate(child)
      })),
      start: lock.withPermit(Effect.suspend(() => state.current !== undefined ? Effect.void : launch(sentinel))),
      command: (...args: ReadonlyArray<string>) =>
        args.length === 0
          ? Effect.fail(new error({ message: "command needs at least a command name" }))
          : admin(sentinel, args, adminTimeoutMillis),
      pid: Effect.sync(() => state.current?.pid)
    } satisfies SentinelProcess<E>
  })

/** One command on a fresh connection (RESP2), closed afterwards; fails after `timeoutMillis`. */
const admin = <E>(sentinel: Sentinel<E>, args: ReadonlyArray<string>, timeoutMillis: number) => {
  const { port } = sentinel
  return Process.admin({
    clients: sentinel.owned.clients,
    port,
    timeoutMillis,
    run: (client) => client.call(args[0]!, ...args.slice(1)),
    quit: false,
    timeoutMessage: `sentinel ${host}:${port} did not answer within ${timeoutMillis} ms`,
    failureMessage: (cause) => `${args.join(" ")} on sentinel ${host}:${port} failed: ${Process.errorMessage(cause)}`,
    error: sentinel.error
  })
}

/** Spawns the sentinel and waits until it answers PING; a sentinel that does not is terminated. */
const launch = <E>(sentinel: Sentinel<E>): Effect.Effect<void, E> =>
  Effect.gen(function*() {
    const { state, error } = sentinel
    if (state.closed) return yield* Effect.fail(new error({ message: "the RedisTestSentinel's scope is closed" }))
    state.output = ""
    const child = yield* Process.spawnProcess("redis-server", [sentinel.file, "--sentinel"], {
      onOutput: (chunk) => {
        state.output = Process.appendOutput(state.output, chunk)
      },
      aptPackages: "redis-server redis-sentinel",
      error
    })
    sentinel.owned.track(child, () => {
      if (state.current === child) state.current = undefined
    })
    state.current = child
    yield* Process.waitUntilAnswers(child, {
      name: "sentinel",
      port: sentinel.port,
      ping: (timeoutMillis) => admin(sentinel, ["PING"], timeoutMillis),
      timeoutMillis: readyTimeoutMillis,
      output: () => state.output,
      outputLabel: "sentinel output",
      error
    }).pipe(
      Effect.tapError(() => {
        state.current = undefined
        return Process.terminate(child)
      })
    )
  })
