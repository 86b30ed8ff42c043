/**
 * A real Sentinel-managed Redis for tests: a master, a replica (`replicaof` the master) and N
 * sentinels (`redis-server <conf> --sentinel`) on free loopback ports, ready only once the replica is
 * in sync and every sentinel knows the master, the replica and every other sentinel. The master and
 * the replica are `RedisTestServer`s (pause, resume, stop, start, command), so a test can freeze the
 * master and watch the sentinels promote the replica. Everything is killed and every temporary
 * directory removed when the scope closes.
 *
 * Every wait in this module uses real timers, never Effect's `Clock`, so the kit works unchanged
 * inside `it.effect` tests that run under `TestClock`.
 *
 * @since 0.1.0
 */
import * as Crypto from "node:crypto"
import * as Path from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Process from "./internal/process.ts"
import * as SentinelInternal from "./internal/sentinel.ts"
import * as RedisTestServer from "./RedisTestServer.ts"

/**
 * Options of {@link make}. All are optional.
 *
 * - `sentinels`: number of sentinels; default 3.
 * - `quorum`: sentinels that must agree the master is down; default 2 (at most `sentinels`). A
 *   failover also needs a majority of all sentinels to elect a leader.
 * - `downAfter`: `sentinel down-after-milliseconds`; default 1000.
 * - `failoverTimeout`: `sentinel failover-timeout` in milliseconds; default 3000.
 * - `name`: the monitored master's name; default `"mymaster"`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisTestSentinelOptions {
  readonly sentinels?: number | undefined
  readonly downAfter?: number | undefined
  readonly failoverTimeout?: number | undefined
  readonly quorum?: number | undefined
  readonly name?: string | undefined
}

/**
 * One sentinel process. Admin calls open a short-lived connection each (at most 5 s).
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisTestSentinelNode {
  /** Always `"127.0.0.1"`. */
  readonly host: string
  readonly port: number
  /** SIGTERM (SIGKILL after 2 s) and wait until the process exited. No-op when already stopped. */
  readonly stop: Effect.Effect<void>
  /** Start again on the same port with its (rewritten) config file; waits until it answers PING. */
  readonly start: Effect.Effect<void, RedisTestSentinelError>
  /** Run one command on the sentinel, e.g. `command("SENTINEL", "MASTER", "mymaster")` (RESP2 shapes). */
  readonly command: (...args: ReadonlyArray<string>) => Effect.Effect<unknown, RedisTestSentinelError>
  /** Process id, `undefined` while stopped. */
  readonly pid: Effect.Effect<number | undefined>
}

/**
 * A running Sentinel setup owned by a scope. `master` and `replica` are the roles as started; after
 * a failover `currentMaster` tells which one is the master.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisTestSentinel {
  /** The monitored master's name, as given to `sentinel monitor`. */
  readonly name: string
  /** The server started as the master. */
  readonly master: RedisTestServer.RedisTestServer
  /** The server started as its replica. */
  readonly replica: RedisTestServer.RedisTestServer
  /** Every sentinel; `{ host, port }` is what a sentinel client (e.g. ioredis' `sentinels`) needs. */
  readonly sentinels: ReadonlyArray<RedisTestSentinelNode>
  /** `SENTINEL GET-MASTER-ADDR-BY-NAME name`, asked of the first running sentinel. */
  readonly currentMaster: Effect.Effect<{ readonly host: string; readonly port: number }, RedisTestSentinelError>
  /**
   * Waits (default at most 20 s) until every running sentinel names a master other than
   * `oldMasterPort`, all name the same one, and that server reports `role:master`. Returns it
   * (`master` or `replica`). Fails at once for a port that is neither.
   */
  readonly waitForFailover: (
    oldMasterPort: number,
    options?: { readonly timeout?: number | undefined }
  ) => Effect.Effect<RedisTestServer.RedisTestServer, RedisTestSentinelError>
}

/**
 * A server or sentinel could not start, the setup did not form in time, a sentinel command failed,
 * or `waitForFailover` timed out. The message says which process and which condition, with the
 * process' output where there is one.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisTestSentinelError extends Data.TaggedError("RedisTestSentinelError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

const host = Process.host
const formTimeoutMillis = 30_000
const failoverTimeoutMillis = 20_000
const portAttempts = 5

/** The options of {@link make}, checked and with their defaults. */
interface Settings {
  readonly count: number
  readonly quorum: number
  readonly downAfter: number
  readonly failoverTimeout: number
  readonly name: string
}

/** A formed setup: what `currentMaster` and `waitForFailover` share. */
interface Setup {
  readonly name: string
  readonly master: RedisTestServer.RedisTestServer
  readonly replica: RedisTestServer.RedisTestServer
  readonly sentinels: ReadonlyArray<RedisTestSentinelNode>
}

/**
 * Starts a master and a replica (`redis-server`, persistence off, `repl-diskless-sync-delay 0` so the
 * replica syncs at once), waits until the replica is in sync, then starts `sentinels` sentinels
 * monitoring the master (`down-after-milliseconds` = `downAfter`, `failover-timeout` =
 * `failoverTimeout`, `parallel-syncs 1`, `resolve-hostnames no`), and waits (at most 30 s) until each
 * sentinel sees the master up, at least one replica and the other `sentinels - 1` sentinels. Closing
 * the scope kills the sentinels first (so they reconfigure nothing), then the servers, and removes the
 * temporary directories.
 *
 * **Example**
 *
 * ```ts
 * import { Effect } from "effect"
 * import { RedisTestSentinel } from "effect-redis-resilience/testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const setup = yield* RedisTestSentinel.make()
 *   yield* setup.master.pause
 *   const promoted = yield* setup.waitForFailover(setup.master.port) // setup.replica
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: RedisTestSentinelOptions
) => Effect.Effect<RedisTestSentinel, RedisTestSentinelError, Scope.Scope> = Effect.fnUntraced(function*(
  options?: RedisTestSentinelOptions
) {
  const settings = yield* validate(options)
  const { name } = settings

  const scope = yield* Scope.Scope
  const dir = yield* Process.tempDir("redis-test-sentinel-", RedisTestSentinelError)
  // Child scopes close in parallel within, and in reverse order between: sentinels first, then servers.
  const serversScope = yield* Scope.fork(scope, "parallel")

  const master = yield* startServer(serversScope, "master", [])
  const replica = yield* startServer(serversScope, "replica", ["--replicaof", host, String(master.port)])

  // Sentinels read the master's INFO once on connect (then every 10 s): the replica must be listed by then.
  yield* Process.poll(
    notSynced(master, replica),
    formTimeoutMillis,
    (reason) => `the replica did not sync within ${formTimeoutMillis} ms: ${reason}`,
    RedisTestSentinelError
  )

  const sentinelsScope = yield* Scope.fork(scope, "parallel")
  const { quorum, downAfter, failoverTimeout } = settings
  const monitor: SentinelInternal.Monitor = {
    dir,
    name,
    masterPort: master.port,
    replicaPort: replica.port,
    quorum,
    downAfter,
    failoverTimeout
  }
  const sentinels = yield* startSentinels(sentinelsScope, monitor, settings.count)
  const setup: Setup = { name, master, replica, sentinels }

  yield* Process.poll(
    notAgreed(setup),
    formTimeoutMillis,
    (reason) => `the sentinels did not agree within ${formTimeoutMillis} ms: ${reason}`,
    RedisTestSentinelError
  )

  return {
    name,
    master,
    replica,
    sentinels,
    currentMaster: currentMaster(setup),
    waitForFailover: (oldMasterPort: number, options?: { readonly timeout?: number | undefined }) =>
      waitForFailover(setup, oldMasterPort, options)
  } satisfies RedisTestSentinel
})

// ---------------------------------------------------------------------------------------------------------------------
// forming the setup (real timers only)
// ---------------------------------------------------------------------------------------------------------------------

const validate = (options: RedisTestSentinelOptions | undefined): Effect.Effect<Settings, RedisTestSentinelError> => {
  const count = options?.sentinels ?? 3
  const quorum = options?.quorum ?? Math.min(2, count)
  const downAfter = options?.downAfter ?? 1_000
  const failoverTimeout = options?.failoverTimeout ?? 3_000
  const name = options?.name ?? "mymaster"
  if (!Number.isInteger(count) || count < 1) {
    return invalid(`sentinels must be a positive integer, got ${count}`)
  }
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > count) {
    return invalid(`quorum must be an integer from 1 to sentinels (${count}), got ${quorum}`)
  }
  if (!Number.isInteger(downAfter) || downAfter < 1) {
    return invalid(`downAfter must be a positive integer number of milliseconds, got ${downAfter}`)
  }
  if (!Number.isInteger(failoverTimeout) || failoverTimeout < 1) {
    return invalid(`failoverTimeout must be a positive integer number of milliseconds, got ${failoverTimeout}`)
  }
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    return invalid(`name must be non-empty and use only letters, digits, ".", "_" and "-", got ${JSON.stringify(name)}`)
  }
  return Effect.succeed({ count, quorum, downAfter, failoverTimeout, name })
}

const invalid = (message: string) => Effect.fail(new RedisTestSentinelError({ message }))

const replicationArgs = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", "--shutdown-timeout", "0"]

const startServer = (serversScope: Scope.Scope, role: string, args: ReadonlyArray<string>) =>
  Scope.provide(RedisTestServer.make({ args: [...replicationArgs, ...args] }), serversScope).pipe(
    Effect.mapError((cause) =>
      new RedisTestSentinelError({ message: `could not start the ${role}: ${cause.message}`, cause })
    )
  )

const ask = (server: RedisTestServer.RedisTestServer, ...args: ReadonlyArray<string>) =>
  Process.ask(server, args, RedisTestSentinelError)

/** Why the replica is not in sync with the master yet, or `undefined` when it is. */
const notSynced = (master: RedisTestServer.RedisTestServer, replica: RedisTestServer.RedisTestServer) =>
  Effect.gen(function*() {
    const replication = Process.parseInfo(String(yield* ask(replica, "INFO", "replication")))
    if (replication.master_link_status !== "up") {
      return `replica: master_link_status:${replication.master_link_status}`
    }
    if (replication.master_sync_in_progress !== "0") return "replica: initial sync in progress"
    const onMaster = Process.parseInfo(String(yield* ask(master, "INFO", "replication")))
    if (!(onMaster.slave0 ?? "").includes("state=online")) return "master: replica not online"
    return undefined
  })

/** `count` sentinels on free ports, each with its config file, in one child scope of `sentinelsScope`. */
const startSentinels = Effect.fnUntraced(function*(
  sentinelsScope: Scope.Scope,
  monitor: SentinelInternal.Monitor,
  count: number
) {
  const start = Effect.fnUntraced(function*(group: Scope.Scope) {
    const ports: Array<number> = []
    while (ports.length < count) {
      const port = yield* Process.freePort(RedisTestSentinelError)
      if (!ports.includes(port)) ports.push(port)
    }
    const ids = ports.map(() => Crypto.randomBytes(20).toString("hex"))
    return yield* Effect.forEach(
      ports,
      (port, index) => {
        const file = Path.join(monitor.dir, `sentinel-${index}.conf`)
        const text = SentinelInternal.sentinelConf(monitor, ports, ids, index)
        return Scope.provide(SentinelInternal.makeSentinel(file, port, text, RedisTestSentinelError), group)
      },
      { concurrency: "unbounded" }
    )
  })
  // All or none: a sentinel whose port was taken in the meantime means new ports, hence new configs, for all.
  for (let attempt = 1;; attempt++) {
    const group = yield* Scope.fork(sentinelsScope, "parallel")
    const result = yield* Effect.result(start(group))
    if (result._tag === "Success") return result.success
    yield* Scope.close(group, Exit.void)
    if (attempt >= portAttempts || !result.failure.message.includes("Address already in use")) {
      return yield* result.failure
    }
  }
})

/** Why some sentinel does not know the master, the replica and every other sentinel yet, or `undefined`. */
const notAgreed = (setup: Setup) =>
  Effect.gen(function*() {
    const { fieldsOf } = SentinelInternal
    const { name, replica, sentinels } = setup
    for (const sentinel of sentinels) {
      const fields = fieldsOf(yield* sentinel.command("SENTINEL", "MASTER", name))
      const who = `sentinel ${host}:${sentinel.port}`
      if (fields.flags !== "master") return `${who} flags the master ${fields.flags}`
      if (Number(fields["num-slaves"]) < 1) return `${who} knows no replica yet`
      const others = Number(fields["num-other-sentinels"])
      if (others !== sentinels.length - 1) return `${who} knows ${others} of ${sentinels.length - 1} other sentinels`
      // "ok" only once the sentinel has read the replica's INFO itself.
      const replicas = yield* sentinel.command("SENTINEL", "REPLICAS", name)
      const seen = (Array.isArray(replicas) ? replicas : []).map(fieldsOf)
        .find((fields) => Number(fields.port) === replica.port)
      if (seen === undefined) return `${who} does not list the replica`
      if (seen["master-link-status"] !== "ok") return `${who} has not seen the replica's link up yet`
    }
    return undefined
  })

// ---------------------------------------------------------------------------------------------------------------------
// topology queries (real timers only)
// ---------------------------------------------------------------------------------------------------------------------

const running = (setup: Setup) =>
  Effect.filter(setup.sentinels, (sentinel) => Effect.map(sentinel.pid, (pid) => pid !== undefined))

const addressFrom = (setup: Setup, sentinel: RedisTestSentinelNode) =>
  Effect.flatMap(sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", setup.name), (reply) => {
    const [address, port] = Array.isArray(reply) ? reply : []
    return typeof address === "string" && port !== undefined
      ? Effect.succeed({ host: address, port: Number(port) })
      : Effect.fail(
        new RedisTestSentinelError({
          message: `sentinel ${host}:${sentinel.port} knows no master named ${setup.name}: ${JSON.stringify(reply)}`
        })
      )
  })

const currentMaster = (setup: Setup) =>
  Effect.gen(function*() {
    const [first] = yield* running(setup)
    if (first === undefined) return yield* new RedisTestSentinelError({ message: "every sentinel is stopped" })
    return yield* addressFrom(setup, first)
  })

const waitForFailover = Effect.fnUntraced(function*(
  setup: Setup,
  oldMasterPort: number,
  options?: { readonly timeout?: number | undefined }
) {
  const { master, replica } = setup
  const timeout = options?.timeout ?? failoverTimeoutMillis
  const servers = [master, replica]
  if (!servers.some((server) => server.port === oldMasterPort)) {
    return yield* new RedisTestSentinelError({
      message: `${oldMasterPort} is neither the master's (${master.port}) nor the replica's (${replica.port}) port`
    })
  }
  const promoted = servers.find((server) => server.port !== oldMasterPort)!
  yield* Process.poll(
    notPromoted(setup, promoted),
    timeout,
    (reason) => `no failover from the master on port ${oldMasterPort} within ${timeout} ms: ${reason}`,
    RedisTestSentinelError
  )
  return promoted
})

/** Why not every running sentinel names `promoted` as the master, or it does not say it is, or `undefined`. */
const notPromoted = (setup: Setup, promoted: RedisTestServer.RedisTestServer) =>
  Effect.gen(function*() {
    const live = yield* running(setup)
    if (live.length === 0) return "every sentinel is stopped"
    for (const sentinel of live) {
      const address = yield* addressFrom(setup, sentinel)
      if (address.port !== promoted.port) {
        return `sentinel ${host}:${sentinel.port} names ${address.host}:${address.port} as the master`
      }
    }
    const role = yield* ask(promoted, "ROLE")
    const current = Array.isArray(role) ? role[0] : role
    if (current !== "master") return `${host}:${promoted.port} reports role ${String(current)}`
    return undefined
  })
