/**
 * Whether Redis is worth asking right now, read synchronously on every `get`: not while the connection is being
 * re-established, nor while the circuit is not closed (the call would fail or wait for nothing). Two fibers in the
 * cache's scope keep it up to date from the layer's connection states and circuit status.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ConnectionState } from "../../Health.ts"
import type { RedisServiceShape } from "../../RedisService.ts"

/** The last connection state and circuit status seen. */
export interface Availability {
  connectionUsable: boolean
  circuitClosed: boolean
}

/** Whether Redis is worth asking. */
export const isAvailable = (self: Availability): boolean => self.connectionUsable && self.circuitClosed

// The first connection ("Connecting") is worth waiting for, as commands wait `acquireTimeout` for it.
const usable = (state: ConnectionState["_tag"]): boolean => state === "Ready" || state === "Connecting"

/** Starts from the layer's current health and follows its changes until the scope closes. */
export const track = Effect.fnUntraced(function*(
  redis: RedisServiceShape
): Effect.fn.Return<Availability, never, Scope.Scope> {
  const health = yield* redis.health
  const self: Availability = {
    connectionUsable: health.connection === "ready" || health.connection === "connecting",
    circuitClosed: health.circuit === "closed"
  }
  yield* redis.states.pipe(
    Stream.runForEach((state) =>
      Effect.sync(() => {
        self.connectionUsable = usable(state._tag)
      })
    ),
    Effect.forkScoped
  )
  yield* redis.circuit.pipe(
    Stream.runForEach((status) =>
      Effect.sync(() => {
        self.circuitClosed = status === "closed"
      })
    ),
    Effect.forkScoped
  )
  return self
})
