/**
 * The `RedisHealth` snapshot of a layer, read from its command path: connection and circuit state, counters, the
 * heartbeat's RTT and misses, the last error, and the nodes with their own circuits on a Cluster.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Health from "../Health.ts"
import * as CircuitBreaker from "./breaker.ts"
import type { CommandPath } from "./core.ts"

/** The snapshot, read anew each time it runs. */
export const snapshot = ({ breaker, connection, heartbeat, nodes }: CommandPath): Effect.Effect<Health.RedisHealth> =>
  Effect.gen(function*() {
    const live = connection.current()
    const state = yield* connection.state
    const breakerState = yield* breaker.state
    return {
      connection: Health.connectionStatus(state),
      circuit: CircuitBreaker.status(breakerState),
      reconnects: yield* connection.reconnects,
      connectionsOpened: yield* connection.connectionsOpened,
      heartbeatRtt: heartbeat === undefined ? Option.none() : yield* heartbeat.rtt,
      consecutiveHeartbeatFailures: heartbeat === undefined ? 0 : yield* heartbeat.consecutiveFailures,
      nodeRecoveries: yield* connection.nodeRecoveries,
      lastError: yield* connection.lastError,
      topology: connection.connector.name,
      nodes: live === undefined ? [] : withCircuits(connection.connector.nodes(live.client), nodes?.statuses())
    } satisfies Health.RedisHealth
  })

// Cluster: each master's own circuit, where it has one.
const withCircuits = (
  all: ReadonlyArray<Health.NodeHealth>,
  circuits: ReadonlyMap<string, Health.CircuitStatus> | undefined
): ReadonlyArray<Health.NodeHealth> =>
  circuits === undefined || circuits.size === 0 ? all : [
    ...all.map((node) => {
      const circuit = circuits.get(node.address)
      return circuit === undefined ? node : { ...node, circuit }
    }),
    // A master whose connection was dropped (a frozen one the heartbeat recovers) is still reported with its circuit.
    ...[...circuits].filter(([address]) => !all.some((node) => node.address === address)).map(([address, circuit]) => ({
      address,
      role: "master" as const,
      status: "disconnected",
      circuit
    }))
  ]
