/**
 * Plumbing shared by the process-backed test kit modules (`RedisTestServer`, `RedisTestSentinel`,
 * `RedisTestCluster`): spawning and terminating processes, free ports, temporary directories, short-lived
 * admin connections, polling and output tails. Internal: not exported from `effect-redis-resilience/testing`.
 *
 * Every wait here uses real timers, never Effect's `Clock`, so the kit works under `TestClock`.
 *
 * @internal
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"

/**
 * The error class of the calling module (`RedisTestServerError`, ...): the helpers fail with it, so each
 * module's public error type stays its own.
 */
export type ErrorClass<E> = new(args: { readonly message: string; readonly cause?: unknown }) => E

/** Every process and admin connection of the kit listens or connects on loopback only. */
export const host = "127.0.0.1"

/** How long `terminate` waits after SIGTERM, and again after SIGKILL. */
const exitTimeoutMillis = 2_000
/** Characters of a process' output kept for error messages. */
const outputTailLength = 4_000
/** How often `poll` checks. */
const pollMillis = 50

// ---------------------------------------------------------------------------------------------------------------------
// time
// ---------------------------------------------------------------------------------------------------------------------

/** Sleeps on a real timer: Effect's `Clock` may be a `TestClock` that never advances. */
const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/**
 * Runs `check` every 50 ms (real time) until it returns `undefined` (ready); fails with an `error` of
 * message `message(lastReason)` after `timeoutMillis`. A failing check counts as "not ready yet".
 */
export const poll = <E extends { readonly message: string }>(
  check: Effect.Effect<string | undefined, E>,
  timeoutMillis: number,
  message: (reason: string) => string,
  error: ErrorClass<E>
): Effect.Effect<void, E> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (true) {
      const reason = yield* check.pipe(Effect.catch((error) => Effect.succeed(error.message)))
      if (reason === undefined) return
      if (Date.now() >= deadline) return yield* Effect.fail(new error({ message: message(reason) }))
      yield* sleepReal(pollMillis)
    }
  })

// ---------------------------------------------------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------------------------------------------------

/** Whether the process has exited (by itself or by a signal). */
export const hasExited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null

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
export const terminate = (child: ChildProcess): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (hasExited(child)) return
    child.kill("SIGCONT")
    child.kill("SIGTERM")
    if (yield* waitExit(child, exitTimeoutMillis)) return
    child.kill("SIGKILL")
    yield* waitExit(child, exitTimeoutMillis)
  }).pipe(Effect.uninterruptible)

/** The processes and admin connections one kit object owns. */
export interface Owned {
  /** Admin connections open right now; pass it to {@link admin}. */
  readonly clients: Set<Redis>
  /** Owns `child` from now on; `onExit` runs when it exits. */
  readonly track: (child: ChildProcess, onExit: () => void) => void
}

/**
 * Closing the scope runs `onClose`, disconnects every admin connection and terminates every tracked
 * process that is still running.
 */
export const makeOwned = (onClose: () => void): Effect.Effect<Owned, never, Scope.Scope> =>
  Effect.gen(function*() {
    const processes = new Set<ChildProcess>()
    const clients = new Set<Redis>()
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        onClose()
        for (const client of clients) client.disconnect()
        clients.clear()
        for (const child of processes) yield* terminate(child)
        processes.clear()
      })
    )
    return {
      clients,
      track: (child, onExit) => {
        processes.add(child)
        child.once("exit", () => {
          processes.delete(child)
          onExit()
        })
      }
    }
  })

/** `output` with `chunk` appended, cut to its last 4000 characters. */
export const appendOutput = (output: string, chunk: Buffer): string =>
  (output + chunk.toString("utf8")).slice(-outputTailLength)

/** The end of an error message: `"; <label>:\n<output>"`, or `" (no output)"`. */
export const outputTail = (output: string, label: string): string => {
  const trimmed = output.trim()
  return trimmed === "" ? " (no output)" : `; ${label}:\n${trimmed}`
}

/** `cause`'s message when it is an `Error`, else `cause` as a string. */
export const errorMessage = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/**
 * The message for a process that could not be spawned: for a missing executable, how to install it
 * (`aptPackages` on Debian/Ubuntu, `redis` with Homebrew).
 */
export const spawnErrorMessage = (binary: string, cause: unknown, aptPackages: string, verb = "start"): string =>
  cause instanceof Error && "code" in cause && cause.code === "ENOENT"
    ? `${binary} was not found on PATH. Install it, e.g. "apt-get install ${aptPackages}" (Debian/Ubuntu) ` +
      `or "brew install redis" (macOS).`
    : `could not ${verb} ${binary}: ${errorMessage(cause)}`

/**
 * Spawns `binary args` (stdout and stderr to `onOutput`) and succeeds once it has spawned. `onChild` sees the
 * child before that, as soon as `spawn` returns. Interrupted, it SIGKILLs the child.
 */
export const spawnProcess = <E>(
  binary: string,
  args: ReadonlyArray<string>,
  options: {
    readonly onOutput: (chunk: Buffer) => void
    readonly onChild?: ((child: ChildProcess) => void) | undefined
    readonly aptPackages: string
    readonly error: ErrorClass<E>
  }
): Effect.Effect<ChildProcess, E> =>
  Effect.callback<ChildProcess, E>((resume) => {
    const spawnError = (cause: unknown) =>
      new options.error({ message: spawnErrorMessage(binary, cause, options.aptPackages), cause })
    let child: ChildProcess
    try {
      child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] })
    } catch (cause) {
      resume(Effect.fail(spawnError(cause)))
      return
    }
    const onSpawn = () => {
      child.off("error", onError)
      child.on("error", () => {})
      resume(Effect.succeed(child))
    }
    const onError = (cause: unknown) => {
      child.off("spawn", onSpawn)
      resume(Effect.fail(spawnError(cause)))
    }
    child.once("spawn", onSpawn)
    child.once("error", onError)
    child.stdout?.on("data", options.onOutput)
    child.stderr?.on("data", options.onOutput)
    options.onChild?.(child)
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })

/**
 * Waits (at most `timeoutMillis`) until `ping` succeeds, trying every 20 ms; each try may take at most the
 * time left, capped at 1 s. Fails at once if the process exits, with the output tail `output()` labelled
 * `outputLabel`. The caller terminates the process on failure.
 */
export const waitUntilAnswers = <E>(
  child: ChildProcess,
  options: {
    readonly name: string
    readonly port: number
    readonly ping: (timeoutMillis: number) => Effect.Effect<unknown, unknown>
    readonly timeoutMillis: number
    readonly output: () => string
    readonly outputLabel: string
    readonly error: ErrorClass<E>
  }
): Effect.Effect<void, E> =>
  Effect.gen(function*() {
    const { name, port, timeoutMillis } = options
    const tail = () => outputTail(options.output(), options.outputLabel)
    const deadline = Date.now() + timeoutMillis
    while (true) {
      if (hasExited(child)) {
        return yield* Effect.fail(
          new options.error({
            message: `${name} exited (${exitDescription(child)}) before answering PING on port ${port}${tail()}`
          })
        )
      }
      const remaining = deadline - Date.now()
      if (remaining <= 0) {
        return yield* Effect.fail(
          new options.error({
            message: `${name} did not answer PING on port ${port} within ${timeoutMillis} ms${tail()}`
          })
        )
      }
      const answered = yield* options.ping(Math.min(remaining, 1_000)).pipe(
        Effect.as(true),
        Effect.catch(() => Effect.succeed(false))
      )
      if (answered) return
      yield* sleepReal(20)
    }
  })

// ---------------------------------------------------------------------------------------------------------------------
// ports and directories
// ---------------------------------------------------------------------------------------------------------------------

/** A port the OS reports free on loopback right now (another process may still take it before we bind). */
export const freePort = <E>(error: ErrorClass<E>): Effect.Effect<number, E> =>
  Effect.callback((resume) => {
    const server = Net.createServer()
    server.once("error", (cause) =>
      resume(Effect.fail(new error({ message: `could not find a free port: ${cause.message}`, cause }))))
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resume(Effect.succeed(port)))
    })
  })

/** Whether `port` can be bound on loopback right now. */
export const canListen = (port: number): Effect.Effect<boolean> =>
  Effect.callback<boolean>((resume) => {
    const server = Net.createServer()
    server.once("error", () => resume(Effect.succeed(false)))
    server.listen(port, host, () => server.close(() => resume(Effect.succeed(true))))
  })

/** A fresh temporary directory `<tmpdir>/<prefix>XXXXXX`, removed with everything in it when the scope closes. */
export const tempDir = <E>(prefix: string, error: ErrorClass<E>): Effect.Effect<string, E, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix)),
      catch: (cause) => new error({ message: `could not create a temporary directory: ${cause}`, cause })
    }),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )

// ---------------------------------------------------------------------------------------------------------------------
// admin connections and replies
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Runs `run` on a fresh RESP2 connection to `host:port`, closed afterwards; fails after `timeoutMillis`.
 * The connection sits in `clients` while open, so a closing scope can disconnect it.
 */
export const admin = <A, E>(options: {
  readonly clients: Set<Redis>
  readonly port: number
  readonly password?: string | undefined
  readonly connectionName?: string | undefined
  readonly timeoutMillis: number
  readonly run: (client: Redis) => Promise<A>
  /**
   * After a success, wait (at most 500 ms) for QUIT's reply, so the server has dropped this connection before
   * the next admin call.
   */
  readonly quit: boolean
  readonly timeoutMessage: string
  readonly failureMessage: (cause: unknown) => string
  readonly error: ErrorClass<E>
}): Effect.Effect<A, E> =>
  Effect.callback<A, E>((resume) => {
    const { clients, port, timeoutMillis } = options
    const client = new Redis({
      host,
      port,
      password: options.password,
      // RESP2 keeps replies in their classic shape (CONFIG GET is a flat array) and skips HELLO.
      protocol: 2,
      connectionName: options.connectionName,
      disableClientInfo: true,
      lazyConnect: true,
      retryStrategy: () => null,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: timeoutMillis
    })
    client.on("error", () => {})
    clients.add(client)
    let done = false
    const release = () => {
      client.disconnect()
      clients.delete(client)
    }
    const finish = (effect: Effect.Effect<A, E>, quit: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (!quit) {
        release()
        resume(effect)
        return
      }
      // Bounded, because the server may be paused right after answering.
      let quitTimer: ReturnType<typeof setTimeout> | undefined
      const quitted = new Promise<void>((resolve) => {
        quitTimer = setTimeout(resolve, 500)
        client.quit().then(() => resolve(), () => resolve())
      })
      void quitted.then(() => {
        clearTimeout(quitTimer)
        release()
        resume(effect)
      })
    }
    const timer = setTimeout(
      () => finish(Effect.fail(new options.error({ message: options.timeoutMessage })), false),
      timeoutMillis
    )
    client.connect().then(() => options.run(client)).then(
      (value) => finish(Effect.succeed(value), options.quit),
      (cause) => finish(Effect.fail(new options.error({ message: options.failureMessage(cause), cause })), false)
    )
    return Effect.sync(() => {
      done = true
      clearTimeout(timer)
      clients.delete(client)
      client.disconnect()
    })
  })

/** What `ask` needs of a server (a `RedisTestServer`): its port and a way to run a command on it. */
export interface Askable {
  readonly port: number
  readonly command: (...args: ReadonlyArray<string>) => Effect.Effect<unknown, { readonly message: string }>
}

/** `server.command(...args)`, its error restated as `error` naming the command and the server. */
export const ask = <E>(
  server: Askable,
  args: ReadonlyArray<string>,
  error: ErrorClass<E>
): Effect.Effect<unknown, E> =>
  Effect.mapError(
    server.command(...args),
    (cause) => new error({ message: `${args.join(" ")} on ${host}:${server.port} failed: ${cause.message}`, cause })
  )

/** Parses `INFO` / `CLUSTER INFO` output into `field -> value`. */
export const parseInfo = (reply: string): Record<string, string> => {
  const fields: Record<string, string> = {}
  for (const line of reply.split("\n")) {
    const index = line.indexOf(":")
    if (index > 0 && !line.startsWith("#")) fields[line.slice(0, index)] = line.slice(index + 1).trim()
  }
  return fields
}
