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
import type { ChildProcess } from "node:child_process"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { Redis } from "ioredis"
import * as Process from "./internal/process.ts"

/**
 * Options of {@link make}. All are optional.
 *
 * - `args`: extra `redis-server` arguments, appended last so they override the kit's defaults.
 * - `password`: sets `requirepass`; `url` then carries it.
 * - `appendOnly`: AOF with `appendfsync always`, so written data survives `stop`/`start`/`restart`.
 * - `port`: fixed port; by default a free loopback port is picked (and re-picked if another process
 *   wins the race for it).
 * - `binary`: the executable to spawn, default `"redis-server"` (looked up on `PATH`).
 * - `tls`: also serve TLS, on `tlsPort`, with these PEM files (client certificates are not required). The plain
 *   `port` stays open (the kit's admin connections use it).
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
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string } | undefined
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
  /** The TLS port, when the server was started with `tls`. */
  readonly tlsPort: number | undefined
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

const host = Process.host
const adminName = "redis-test-server-admin"
const readyTimeoutMillis = 5_000
const adminTimeoutMillis = 5_000
const portAttempts = 5

/** What one server mutates: the process running now (if any), whether it is frozen, and its output. */
interface ServerState {
  current: ChildProcess | undefined
  paused: boolean
  /** The scope closed: `start` fails instead of spawning a process nobody would kill. */
  closed: boolean
  output: string
}

/** One server's settings, what it owns and its state: what the helpers below share instead of closures. */
interface Server {
  readonly options: RedisTestServerOptions | undefined
  readonly binary: string
  readonly password: string | undefined
  readonly dir: string
  readonly owned: Process.Owned
  readonly state: ServerState
  /** Admin calls of the public API run one at a time. */
  readonly adminLock: Semaphore.Semaphore
}

/** The ports a server listens on; chosen once, kept across `stop`/`start`. */
interface Ports {
  readonly port: number
  readonly tlsPort: number | undefined
}

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
  const password = options?.password
  const dir = yield* Process.tempDir("redis-test-server-", RedisTestServerError)
  const state: ServerState = { current: undefined, paused: false, closed: false, output: "" }

  // Made after the temp dir, so its processes are gone before the dir is removed.
  const owned = yield* Process.makeOwned(() => {
    state.closed = true
    state.current = undefined
    state.paused = false
  })

  const binary = options?.binary ?? "redis-server"
  const server: Server = { options, binary, password, dir, owned, state, adminLock: yield* Semaphore.make(1) }
  const ports = yield* launchFirst(server)
  const { port, tlsPort } = ports
  const lock = yield* Semaphore.make(1)

  const stopUnlocked = Effect.suspend(() => stopProcess(state))
  const startUnlocked = Effect.suspend(() => state.current !== undefined ? Effect.void : launch(server, ports))

  return {
    host,
    port,
    tlsPort,
    url: `redis://${password !== undefined ? `:${encodeURIComponent(password)}@` : ""}${host}:${port}`,
    stop: lock.withPermit(stopUnlocked),
    start: lock.withPermit(startUnlocked),
    restart: lock.withPermit(Effect.andThen(stopUnlocked, startUnlocked)),
    pause: Effect.sync(() => {
      if (state.current !== undefined && !state.paused) {
        state.current.kill("SIGSTOP")
        state.paused = true
      }
    }),
    resume: Effect.sync(() => {
      if (state.current !== undefined && state.paused) {
        state.current.kill("SIGCONT")
        state.paused = false
      }
    }),
    killClients: (type?: "normal" | "pubsub" | "replica" | "master") => killClients(server, port, type),
    clientCount: clientCount(server, port),
    command: (...args: ReadonlyArray<string>) => command(server, port, args),
    pid: Effect.sync(() => state.current?.pid)
  } satisfies RedisTestServer
})

// ---------------------------------------------------------------------------------------------------------------------
// the process and admin connections (real timers only)
// ---------------------------------------------------------------------------------------------------------------------

const tlsArgs = (options: RedisTestServerOptions | undefined, tlsPort: number | undefined): Array<string> =>
  options?.tls === undefined || tlsPort === undefined ? [] : [
    "--tls-port",
    String(tlsPort),
    "--tls-cert-file",
    options.tls.certFile,
    "--tls-key-file",
    options.tls.keyFile,
    "--tls-ca-cert-file",
    options.tls.caFile,
    "--tls-auth-clients",
    "no"
  ]

const serverArgs = (server: Server, ports: Ports): Array<string> => [
  "--port",
  String(ports.port),
  "--bind",
  host,
  "--save",
  "",
  "--appendonly",
  server.options?.appendOnly ? "yes" : "no",
  ...(server.options?.appendOnly ? ["--appendfsync", "always"] : []),
  "--dir",
  server.dir,
  "--daemonize",
  "no",
  "--protected-mode",
  "no",
  "--loglevel",
  "warning",
  ...(server.password !== undefined ? ["--requirepass", server.password] : []),
  ...tlsArgs(server.options, ports.tlsPort),
  ...(server.options?.args ?? [])
]

/** Runs `run` on a fresh admin connection to `port`, closed (with QUIT) afterwards. */
const admin = <A>(
  server: Server,
  port: number,
  run: (client: Redis) => Promise<A>,
  timeoutMillis = adminTimeoutMillis
): Effect.Effect<A, RedisTestServerError> =>
  Process.admin({
    clients: server.owned.clients,
    port,
    password: server.password,
    connectionName: adminName,
    timeoutMillis,
    run,
    quit: true,
    timeoutMessage: `admin connection to ${host}:${port} timed out after ${timeoutMillis} ms`,
    failureMessage: (cause) => `admin command failed: ${Process.errorMessage(cause)}`,
    error: RedisTestServerError
  })

const spawnServer = (server: Server, ports: Ports): Effect.Effect<ChildProcess, RedisTestServerError> =>
  Process.spawnProcess(server.binary, serverArgs(server, ports), {
    onOutput: (chunk) => {
      server.state.output = Process.appendOutput(server.state.output, chunk)
    },
    onChild: (child) =>
      server.owned.track(child, () => {
        if (server.state.current === child) {
          server.state.current = undefined
          server.state.paused = false
        }
      }),
    aptPackages: "redis-server",
    error: RedisTestServerError
  })

const waitUntilReady = (server: Server, child: ChildProcess, port: number): Effect.Effect<void, RedisTestServerError> =>
  Process.waitUntilAnswers(child, {
    name: server.binary,
    port,
    ping: (timeoutMillis) => admin(server, port, (client) => client.ping(), timeoutMillis),
    timeoutMillis: readyTimeoutMillis,
    output: () => server.state.output,
    outputLabel: "server output",
    error: RedisTestServerError
  })

/** Spawns the server on `ports` and waits until it answers PING; a server that does not is terminated. */
const launch = Effect.fnUntraced(function*(server: Server, ports: Ports) {
  const { state } = server
  if (state.closed) {
    return yield* new RedisTestServerError({ message: "the RedisTestServer's scope is closed" })
  }
  state.output = ""
  const child = yield* spawnServer(server, ports)
  state.current = child
  state.paused = false
  yield* waitUntilReady(server, child, ports.port).pipe(
    Effect.tapError(() =>
      Effect.gen(function*() {
        if (state.current === child) state.current = undefined
        yield* Process.terminate(child)
      })
    )
  )
})

/** The first launch: on `options.port`, or on a free port, picked again if another process wins the race for it. */
const launchFirst = Effect.fnUntraced(function*(server: Server) {
  const options = server.options
  if (options?.port !== undefined) {
    const tlsPort = options.tls !== undefined ? yield* Process.freePort(RedisTestServerError) : undefined
    const ports: Ports = { port: options.port, tlsPort }
    yield* launch(server, ports)
    return ports
  }
  let attempt = 1
  while (true) {
    const candidate = yield* Process.freePort(RedisTestServerError)
    let tlsPort: number | undefined
    if (options?.tls !== undefined) {
      tlsPort = yield* Process.freePort(RedisTestServerError)
      if (tlsPort === candidate) continue
    }
    const ports: Ports = { port: candidate, tlsPort }
    const result = yield* Effect.result(launch(server, ports))
    if (result._tag === "Success") return ports
    // Another process may take the port between our probe and redis binding it.
    if (attempt >= portAttempts || !result.failure.message.includes("Address already in use")) {
      return yield* result.failure
    }
    attempt++
  }
})

const stopProcess = (state: ServerState): Effect.Effect<void> => {
  const child = state.current
  state.current = undefined
  state.paused = false
  return child === undefined ? Effect.void : Process.terminate(child)
}

/** `run` on an admin connection while the server runs; `onStopped` while it is stopped. */
const withRunningAdmin = <A>(
  server: Server,
  port: number,
  onStopped: A,
  run: (client: Redis) => Promise<A>
): Effect.Effect<A, RedisTestServerError> =>
  server.adminLock.withPermit(
    Effect.suspend(() => server.state.current === undefined ? Effect.succeed(onStopped) : admin(server, port, run))
  )

const killClients = (
  server: Server,
  port: number,
  type: "normal" | "pubsub" | "replica" | "master" = "normal"
): Effect.Effect<number> =>
  withRunningAdmin(server, port, 0, (client) =>
    client.call("CLIENT", "KILL", "TYPE", type, "SKIPME", "yes").then((reply) => Number(reply))).pipe(Effect.orDie)

const clientCount = (server: Server, port: number): Effect.Effect<number> =>
  withRunningAdmin(server, port, 0, async (client) => {
    const own = Number(await client.call("CLIENT", "ID"))
    const list = String(await client.call("CLIENT", "LIST"))
    return list
      .split("\n")
      .map((line) => parseClientLine(line))
      .filter((fields) => fields.id !== undefined && Number(fields.id) !== own && fields.name !== adminName)
      .length
  }).pipe(Effect.orDie)

const command = (
  server: Server,
  port: number,
  args: ReadonlyArray<string>
): Effect.Effect<unknown, RedisTestServerError> => {
  const [name, ...rest] = args
  if (name === undefined) {
    return Effect.fail(new RedisTestServerError({ message: "command needs at least a command name" }))
  }
  return server.adminLock.withPermit(admin(server, port, (client) => client.call(name, ...rest)))
}

const parseClientLine = (line: string): Record<string, string | undefined> => {
  const fields: Record<string, string | undefined> = {}
  for (const pair of line.trim().split(" ")) {
    const index = pair.indexOf("=")
    if (index > 0) fields[pair.slice(0, index)] = pair.slice(index + 1)
  }
  return fields
}
