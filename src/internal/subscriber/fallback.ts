/**
 * Whether live messages can be trusted right now (`mode`), and the stream that falls back to polling while they cannot
 * (`subscribeWithFallback`): live messages merged with a poll that runs only while the subscriber is down or the
 * circuit breaker is not closed.
 *
 * @internal
 */
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { CircuitStatus, ConnectionState } from "../../Health.ts"
import type { DeliveryMode, FallbackOptions } from "../../RedisSubscriber.ts"

/** `live` while the subscriber is Ready and the circuit closed, else `polling`; then every change. */
export const deliveryMode = (
  states: Stream.Stream<ConnectionState>,
  circuit: Stream.Stream<CircuitStatus>
): Stream.Stream<DeliveryMode> =>
  Stream.zipLatest(states, circuit).pipe(
    Stream.map(([state, circuit]): DeliveryMode => state._tag === "Ready" && circuit === "closed" ? "live" : "polling"),
    Stream.changes
  )

/** `live` messages, merged with what `options.poll` returns every `options.interval` while `mode` is `polling`. */
export const withFallback = <A, E, R, E2>(
  live: Stream.Stream<A, E2>,
  mode: Stream.Stream<DeliveryMode>,
  options: FallbackOptions<A, E, R>
): Stream.Stream<A, E | E2, R> => {
  const polled = (stream: Stream.Stream<ReadonlyArray<A>, E, R>) =>
    Stream.flatMap(stream, (values) => Stream.fromIterable(values))
  // On the way back to live, poll once more: what was written after the last poll and before the subscription was
  // live again (a PUBLISH that failed while the circuit was open, one that reached Redis just before the SUBSCRIBE)
  // reaches neither the subscription nor the polling otherwise.
  const polling = Stream.suspend(() => {
    const seen = { polling: false }
    return mode.pipe(
      Stream.switchMap((current) => {
        if (current === "live") {
          const catchUp = seen.polling ? polled(Stream.fromEffect(options.poll)) : Stream.empty
          seen.polling = false
          return catchUp
        }
        seen.polling = true
        return polled(Stream.fromEffectSchedule(options.poll, Schedule.spaced(options.interval)))
      })
    )
  })
  return Stream.merge(live, polling)
}
