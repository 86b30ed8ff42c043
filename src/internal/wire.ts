/**
 * Sends one command on a given connection (or node) with a deadline, outside the shared connection's executor (which
 * keeps its own hand-tuned path): the failure classified against that connection, no reply in time a
 * `CommandTimeout`. Used by the heartbeat, the subscriber, `watch`'s pinned connection and the Cluster master probes.
 *
 * @internal
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Live } from "./connection.ts"
import { classify, commandTimedOut, type RedisError } from "../RedisError.ts"

/**
 * `send()` under `timeout`; never retried.
 *
 * @internal
 */
export const sendBounded = (
  live: Live,
  command: string,
  send: () => Promise<unknown>,
  timeout: Duration.Duration
): Effect.Effect<unknown, RedisError> =>
  Effect.tryPromise({
    try: send,
    catch: (cause) => classify(cause, { command, sent: true, socketError: live.socketError })
  }).pipe(Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.fail(commandTimedOut(command, timeout)) }))
