/**
 * A real `redis-server` process for tests: spawned on a free loopback port in a fresh temporary
 * directory, controllable (stop, start, restart on the same port, freeze with SIGSTOP, kill client
 * connections) and killed when its scope closes.
 *
 * Every wait in this module uses real timers, never Effect's `Clock`, so the kit works unchanged
 * inside `it.effect` tests that run under `TestClock`.
 *
 * @since 0.1.0
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { Redis } from "ioredis"

/**
 * Options of {@link make}. All are optional.
 *
 * - `args`: extra `redis-server` arguments, appended last so they override the kit's defaults.
 * - `password`: sets `requirepass`; `url` then carries it.
 * - `appendOnly`: AOF with `appendfsync always`, so written data survives `stop`/`start`/`restart`.
 * - `port`: fixed port; by default a free loopback port is picked (and re-picked if another process
 *   wins the race for it).
 * - `binary`: the executable to spawn, default `"redis-server"` (looked up on `PATH`).
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisTestServerOptions {
  readonly args?: ReadonlyArray<string> | undefined
  readonly password?: string | undefined
  readonly appendOnly?: boolean | undefined
  readonly port?: number | undefined
  readonly binary?: string | undefined
}

/**
 * A running (or deliberately stopped/paused) `redis-server` owned by a scope.
 *
 * Admin operations (`command`, `clientCount`, `killClients`) use a short-lived direct connection per
 * call, so they keep working across `stop`/`start` and are never affected by a `ChaosProxy` in front
 * of the server. While the server is paused they wait up to 5 s and then fail (`command`) or die
 * (`clientCount`, `killClients`). While it is stopped, `clientCount` and `killClients` return `0`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisTestServer {
  /** Always `"127.0.0.1"`. */
  readonly host: string
  readonly port: number
  /** `redis://127.0.0.1:PORT`, or `redis://:PASSWORD@127.0.0.1:PORT` when a password is set. */
  readonly url: string
  /** SIGTERM (SIGKILL after 2 s) and wait until the process exited. No-op when already stopped. */
  readonly stop: Effect.Effect<void>
  /** Start again on the same port and wait until it answers PING. No-op when already running. */
  readonly start: Effect.Effect<void, RedisTestServerError>
  /** `stop` then `start`, on the same port. */
  readonly restart: Effect.Effect<void, RedisTestServerError>
  /** Freeze the process with SIGSTOP: connections stay open, nothing is answered. */
  readonly pause: Effect.Effect<void>
  /** Unfreeze the process with SIGCONT. */
  readonly resume: Effect.Effect<void>
  /**
   * `CLIENT KILL TYPE <type> SKIPME yes` (default type `"normal"`); returns how many connections were
   * killed. The kit's admin connection is never killed.
   */
  readonly killClients: (type?: "normal" | "pubsub" | "replica" | "master") => Effect.Effect<number>
  /** Connected clients, not counting the kit's own admin connection. */
  readonly clientCount: Effect.Effect<number>
  /** Run one admin command, e.g. `command("GET", "k")`; resolves with the raw ioredis reply. */
  readonly command: (...args: ReadonlyArray<string>) => Effect.Effect<unknown, RedisTestServerError>
  /** Process id of the running server, `undefined` while stopped. */
  readonly pid: Effect.Effect<number | undefined>
}

/**
 * Starting the server failed (not installed, port taken, did not answer PING in time) or an admin
 * command failed. The message includes the tail of the server's output where there is one.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisTestServerError extends Data.TaggedError("RedisTestServerError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

const host = "127.0.0.1"
const adminName = "redis-test-server-admin"
const readyTimeoutMillis = 5_000
const adminTimeoutMillis = 5_000
const exitTimeoutMillis = 2_000
const portAttempts = 5
const outputTailLength = 4_000

/**
 * Spawns `redis-server` on a free loopback port (or `options.port`) with persistence off (unless
 * `appendOnly`), a fresh temporary `dir` and protected mode off, and waits until it answers PING
 * (at most 5 s). Closing the scope kills the process, closes admin connections and removes the
 * temporary directory.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { RedisTestServer } from "effect-redis-resilience/testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* RedisTestServer.make({ appendOnly: true })
 *   yield* server.command("SET", "k", "v")
 *   yield* server.restart
 *   return yield* server.command("GET", "k") // "v"
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: RedisTestServerOptions
) => Effect.Effect<RedisTestServer, RedisTestServerError, Scope.Scope> = Effect.fnUntraced(function*(
  options?: RedisTestServerOptions
) {
  const binary = options?.binary ?? "redis-server"
  const password = options?.password
  const dir = yield* Effect.acquireRelease(
    Effect.try({
      try: () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "redis-test-server-")),
      catch: (cause) => new RedisTestServerError({ message: `could not create a temporary directory: ${cause}`, cause })
    }),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )

  const spawned = new Set<ChildProcess>()
  const admins = new Set<Redis>()
  let current: ChildProcess | undefined
  let paused = false
  let closed = false
  let output = ""

  // Registered after the temp dir, so it runs before the dir is removed.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      closed = true
      current = undefined
      paused = false
      for (const client of admins) client.disconnect()
      admins.clear()
      for (const child of spawned) yield* terminate(child)
      spawned.clear()
    })
  )

  const serverArgs = (port: number): Array<string> => [
    "--port",
    String(port),
    "--bind",
    host,
    "--save",
    "",
    "--appendonly",
    options?.appendOnly ? "yes" : "no",
    ...(options?.appendOnly ? ["--appendfsync", "always"] : []),
    "--dir",
    dir,
    "--daemonize",
    "no",
    "--protected-mode",
    "no",
    "--loglevel",
    "warning",
    ...(password !== undefined ? ["--requirepass", password] : []),
    ...(options?.args ?? [])
  ]

  const appendOutput = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-outputTailLength)
  }

  const admin = <A>(port: number, run: (client: Redis) => Promise<A>, timeoutMillis = adminTimeoutMillis) =>
    Effect.callback<A, RedisTestServerError>((resume) => {
      const client = new Redis({
        host,
        port,
        password,
        // RESP2 keeps replies in their classic shape (CONFIG GET is a flat array) and skips HELLO.
        protocol: 2,
        connectionName: adminName,
        disableClientInfo: true,
        lazyConnect: true,
        retryStrategy: () => null,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        connectTimeout: timeoutMillis
      })
      client.on("error", () => {})
      admins.add(client)
      let done = false
      const finish = (effect: Effect.Effect<A, RedisTestServerError>, quit: boolean) => {
        if (done) return
        done = true
        clearTimeout(timer)
        if (!quit) {
          client.disconnect()
          admins.delete(client)
          resume(effect)
          return
        }
        // Waiting for QUIT's reply means the server has dropped this connection before the next admin call.
        // Bounded, because the server may be paused right after answering.
        let quitTimer: ReturnType<typeof setTimeout> | undefined
        const quitted = new Promise<void>((resolve) => {
          quitTimer = setTimeout(resolve, 500)
          client.quit().then(() => resolve(), () => resolve())
        })
        void quitted.then(() => {
          clearTimeout(quitTimer)
          client.disconnect()
          admins.delete(client)
          resume(effect)
        })
      }
      const timer = setTimeout(() => {
        const message = `admin connection to ${host}:${port} timed out after ${timeoutMillis} ms`
        finish(Effect.fail(new RedisTestServerError({ message })), false)
      }, timeoutMillis)
      client.connect().then(() => run(client)).then(
        (value) => finish(Effect.succeed(value), true),
        (cause) =>
          finish(
            Effect.fail(new RedisTestServerError({ message: `admin command failed: ${errorMessage(cause)}`, cause })),
            false
          )
      )
      return Effect.sync(() => {
        done = true
        clearTimeout(timer)
        admins.delete(client)
        client.disconnect()
      })
    })

  const spawnServer = (port: number) =>
    Effect.callback<ChildProcess, RedisTestServerError>((resume) => {
      let child: ChildProcess
      try {
        child = spawn(binary, serverArgs(port), { stdio: ["ignore", "pipe", "pipe"] })
      } catch (cause) {
        resume(Effect.fail(spawnError(binary, cause)))
        return
      }
      const onSpawn = () => {
        child.off("error", onError)
        child.on("error", () => {})
        resume(Effect.succeed(child))
      }
      const onError = (cause: unknown) => {
        child.off("spawn", onSpawn)
        resume(Effect.fail(spawnError(binary, cause)))
      }
      child.once("spawn", onSpawn)
      child.once("error", onError)
      child.stdout?.on("data", appendOutput)
      child.stderr?.on("data", appendOutput)
      spawned.add(child)
      child.once("exit", () => {
        spawned.delete(child)
        if (current === child) {
          current = undefined
          paused = false
        }
      })
      return Effect.sync(() => {
        child.kill("SIGKILL")
      })
    })

  const waitUntilReady = Effect.fnUntraced(function*(child: ChildProcess, port: number) {
    const deadline = Date.now() + readyTimeoutMillis
    while (true) {
      if (hasExited(child)) {
        return yield* new RedisTestServerError({
          message: `${binary} exited (${exitDescription(child)}) before answering PING on port ${port}${
            outputTail(output)
          }`
        })
      }
      const remaining = deadline - Date.now()
      if (remaining <= 0) {
        return yield* new RedisTestServerError({
          message: `${binary} did not answer PING on port ${port} within ${readyTimeoutMillis} ms${outputTail(output)}`
        })
      }
      const answered = yield* admin(port, (client) => client.ping(), Math.min(remaining, 1_000)).pipe(
        Effect.as(true),
        Effect.catch(() => Effect.succeed(false))
      )
      if (answered) return
      yield* sleepReal(20)
    }
  })

  const launch = Effect.fnUntraced(function*(port: number) {
    if (closed) {
      return yield* new RedisTestServerError({ message: "the RedisTestServer's scope is closed" })
    }
    output = ""
    const child = yield* spawnServer(port)
    current = child
    paused = false
    yield* waitUntilReady(child, port).pipe(
      Effect.tapError(() =>
        Effect.gen(function*() {
          if (current === child) current = undefined
          yield* terminate(child)
        })
      )
    )
  })

  let port: number
  if (options?.port !== undefined) {
    port = options.port
    yield* launch(port)
  } else {
    let attempt = 1
    while (true) {
      const candidate = yield* freePort
      const result = yield* Effect.result(launch(candidate))
      if (result._tag === "Success") {
        port = candidate
        break
      }
      // Another process may take the port between our probe and redis binding it.
      if (attempt >= portAttempts || !result.failure.message.includes("Address already in use")) {
        return yield* result.failure
      }
      attempt++
    }
  }

  const lock = yield* Semaphore.make(1)
  const adminLock = yield* Semaphore.make(1)

  const stopUnlocked = Effect.suspend(() => {
    const child = current
    current = undefined
    paused = false
    return child === undefined ? Effect.void : terminate(child)
  })

  const startUnlocked = Effect.suspend(() => current !== undefined ? Effect.void : launch(port))

  const withRunningAdmin = <A>(onStopped: A, run: (client: Redis) => Promise<A>) =>
    adminLock.withPermit(Effect.suspend(() => current === undefined ? Effect.succeed(onStopped) : admin(port, run)))

  const killClients = (type: "normal" | "pubsub" | "replica" | "master" = "normal"): Effect.Effect<number> =>
    withRunningAdmin(0, (client) =>
      client.call("CLIENT", "KILL", "TYPE", type, "SKIPME", "yes").then((reply) => Number(reply))).pipe(
        Effect.orDie
      )

  const clientCount: Effect.Effect<number> = withRunningAdmin(0, async (client) => {
    const own = Number(await client.call("CLIENT", "ID"))
    const list = String(await client.call("CLIENT", "LIST"))
    return list
      .split("\n")
      .map((line) => parseClientLine(line))
      .filter((fields) => fields.id !== undefined && Number(fields.id) !== own && fields.name !== adminName)
      .length
  }).pipe(Effect.orDie)

  const command = (...args: ReadonlyArray<string>): Effect.Effect<unknown, RedisTestServerError> => {
    const [name, ...rest] = args
    if (name === undefined) {
      return Effect.fail(new RedisTestServerError({ message: "command needs at least a command name" }))
    }
    return adminLock.withPermit(admin(port, (client) => client.call(name, ...rest)))
  }

  return {
    host,
    port,
    url: `redis://${password !== undefined ? `:${encodeURIComponent(password)}@` : ""}${host}:${port}`,
    stop: lock.withPermit(stopUnlocked),
    start: lock.withPermit(startUnlocked),
    restart: lock.withPermit(Effect.andThen(stopUnlocked, startUnlocked)),
    pause: Effect.sync(() => {
      if (current !== undefined && !paused) {
        current.kill("SIGSTOP")
        paused = true
      }
    }),
    resume: Effect.sync(() => {
      if (current !== undefined && paused) {
        current.kill("SIGCONT")
        paused = false
      }
    }),
    killClients,
    clientCount,
    command,
    pid: Effect.sync(() => current?.pid)
  } satisfies RedisTestServer
})

/** Sleeps on a real timer: Effect's `Clock` may be a `TestClock` that never advances. */
const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

const hasExited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null

const exitDescription = (child: ChildProcess): string =>
  child.signalCode !== null ? `signal ${child.signalCode}` : `code ${child.exitCode}`

/** Resolves `true` once the process has exited, `false` if it has not after `millis`. */
const waitExit = (child: ChildProcess, millis: number): Effect.Effect<boolean> =>
  Effect.callback<boolean>((resume) => {
    if (hasExited(child)) {
      resume(Effect.succeed(true))
      return
    }
    const onExit = () => {
      clearTimeout(timer)
      resume(Effect.succeed(true))
    }
    const timer = setTimeout(() => {
      child.off("exit", onExit)
      resume(Effect.succeed(false))
    }, millis)
    child.once("exit", onExit)
    return Effect.sync(() => {
      clearTimeout(timer)
      child.off("exit", onExit)
    })
  })

/** SIGCONT (it may be paused), SIGTERM, then SIGKILL if it is still alive after 2 s. */
const terminate = (child: ChildProcess): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (hasExited(child)) return
    child.kill("SIGCONT")
    child.kill("SIGTERM")
    if (yield* waitExit(child, exitTimeoutMillis)) return
    child.kill("SIGKILL")
    yield* waitExit(child, exitTimeoutMillis)
  }).pipe(Effect.uninterruptible)

const freePort: Effect.Effect<number, RedisTestServerError> = Effect.callback((resume) => {
  const server = Net.createServer()
  server.once("error", (cause) =>
    resume(Effect.fail(new RedisTestServerError({ message: `could not find a free port: ${cause.message}`, cause }))))
  server.listen(0, host, () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const spawnError = (binary: string, cause: unknown): RedisTestServerError =>
  isErrnoException(cause) && cause.code === "ENOENT"
    ? new RedisTestServerError({
      message: `${binary} was not found on PATH. Install it, e.g. "apt-get install redis-server" (Debian/Ubuntu) ` +
        `or "brew install redis" (macOS).`,
      cause
    })
    : new RedisTestServerError({ message: `could not start ${binary}: ${errorMessage(cause)}`, cause })

const isErrnoException = (u: unknown): u is NodeJS.ErrnoException => u instanceof Error && "code" in u

const errorMessage = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

const outputTail = (output: string): string => {
  const trimmed = output.trim()
  return trimmed === "" ? " (no output)" : `; server output:\n${trimmed}`
}

const parseClientLine = (line: string): Record<string, string | undefined> => {
  const fields: Record<string, string | undefined> = {}
  for (const pair of line.trim().split(" ")) {
    const index = pair.indexOf("=")
    if (index > 0) fields[pair.slice(0, index)] = pair.slice(index + 1)
  }
  return fields
}
