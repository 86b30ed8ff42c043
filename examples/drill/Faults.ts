/**
 * The faults the drill injects: what each one does to the proxy or the server, and how it is injected and lifted.
 * When they happen is the plan's business (`Plan.ts`); measuring what the layer made of them is the runner's
 * (`Runner.ts`).
 *
 * Every network fault is injected at the `ChaosProxy`; a frozen server (SIGSTOP) and a restart need the embedded
 * `redis-server`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { DrillError, type Target } from "./Target.ts"

/**
 * The kinds of fault.
 *
 * @since 0.1.0
 * @category models
 */
export type FaultKind = "reset" | "latency" | "blackhole" | "outage" | "freeze" | "restart"

/**
 * Latency added in each direction by the latency fault: well under the heartbeat and command timeouts.
 *
 * @since 0.1.0
 * @category models
 */
export const LATENCY_MILLIS = 50

/**
 * A kind of fault.
 *
 * @since 0.1.0
 * @category models
 */
export interface FaultSpec {
  readonly kind: FaultKind
  readonly title: string
  /** How it is injected. */
  readonly how: string
  /** Needs the embedded server (it acts on the process). */
  readonly embeddedOnly: boolean
  /** Breaks connections: the layer must detect it and recover. (Latency only slows commands down.) */
  readonly disruptive: boolean
  /** Injected once, with nothing to lift. */
  readonly instant: boolean
}

/**
 * Every fault.
 *
 * @since 0.1.0
 * @category models
 */
export const catalog: Readonly<Record<FaultKind, FaultSpec>> = {
  reset: {
    kind: "reset",
    title: "connection reset",
    how: "the proxy resets every open connection with a TCP RST (clients read ECONNRESET)",
    embeddedOnly: false,
    disruptive: true,
    instant: true
  },
  latency: {
    kind: "latency",
    title: `latency +${LATENCY_MILLIS} ms`,
    how: `the proxy delays every chunk by ${LATENCY_MILLIS} ms in each direction`,
    embeddedOnly: false,
    disruptive: false,
    instant: false
  },
  blackhole: {
    kind: "blackhole",
    title: "blackhole",
    how: "the proxy holds every byte in both directions; sockets stay open, nothing answers",
    embeddedOnly: false,
    disruptive: true,
    instant: false
  },
  outage: {
    kind: "outage",
    title: "refused connections",
    how: "the proxy stops listening (ECONNREFUSED) and resets the open connections",
    embeddedOnly: false,
    disruptive: true,
    instant: false
  },
  freeze: {
    kind: "freeze",
    title: "frozen server",
    how: "redis-server gets SIGSTOP, then SIGCONT: connections stay open, nothing answers",
    embeddedOnly: true,
    disruptive: true,
    instant: false
  },
  restart: {
    kind: "restart",
    title: "server restart",
    how: "redis-server is stopped (SIGTERM), stays down, then starts again on the same port",
    embeddedOnly: true,
    disruptive: true,
    instant: false
  }
}

/**
 * Every kind, in the order `--scenario all` runs them.
 *
 * @since 0.1.0
 * @category models
 */
export const kinds: ReadonlyArray<FaultKind> = ["reset", "latency", "blackhole", "outage", "freeze", "restart"]

/**
 * The kinds a target allows: without the embedded server, none that acts on the process.
 *
 * @since 0.1.0
 * @category models
 */
export const available = (embedded: boolean): ReadonlyArray<FaultKind> =>
  kinds.filter((kind) => embedded || !catalog[kind].embeddedOnly)

const server = (target: Target) =>
  target.server === undefined
    ? Effect.fail(new DrillError({ message: "this fault needs the embedded redis-server" }))
    : Effect.succeed(target.server)

/**
 * Injects a fault.
 *
 * @since 0.1.0
 * @category injection
 */
export const inject = (target: Target, kind: FaultKind): Effect.Effect<void, DrillError> => {
  const { proxy } = target
  switch (kind) {
    case "reset":
      return proxy.resetAll
    case "latency":
      return proxy.latency(LATENCY_MILLIS)
    case "blackhole":
      return proxy.blackhole
    case "outage":
      return Effect.andThen(proxy.refuse, proxy.resetAll)
    case "freeze":
      return Effect.flatMap(server(target), (s) => s.pause)
    case "restart":
      return Effect.flatMap(server(target), (s) => s.stop)
  }
}

/**
 * Lifts a fault (nothing to do for an instant one). A restart's lift returns once the server answers PING again.
 *
 * @since 0.1.0
 * @category injection
 */
export const lift = (target: Target, kind: FaultKind): Effect.Effect<void, DrillError> => {
  switch (kind) {
    case "reset":
      return Effect.void
    case "latency":
    case "blackhole":
    case "outage":
      return target.proxy.restore
    case "freeze":
      return Effect.flatMap(server(target), (s) => s.resume)
    case "restart":
      return Effect.flatMap(server(target), (s) =>
        s.start.pipe(
          Effect.mapError((error) => new DrillError({ message: `The restart fault failed: ${error.message}` }))
        ))
  }
}
