/**
 * Single flight per key, within one process: while a caller's lookup of a key runs, the other callers of that key
 * wait for it and share its exit (its failure included) instead of starting their own; if the caller running it is
 * interrupted, the waiters start over. Background refreshes are claimed per key too, at most one at a time.
 * `forget` (an invalidation) detaches both from the key, so that what they produce is not stored anywhere.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/** A lookup in flight. */
export interface Flight<A> {
  /** Created by the first caller that waits. `undefined` as a result: the leader was interrupted, look up again. */
  waiters: Deferred.Deferred<Exit.Exit<A, unknown> | undefined> | undefined
  /** Set by `forget`: the result is still returned to those waiting, but not written anywhere. */
  invalidated: boolean
}

/** A background refresh in flight. */
export interface Refresh {
  /** Set by `forget`: the refreshed value is not written anywhere. */
  invalidated: boolean
}

/** The lookups and refreshes in flight of one cache, by key. */
export interface SingleFlight<A> {
  readonly lookups: Map<string, Flight<A>>
  readonly refreshes: Map<string, Refresh>
}

/** Nothing in flight. */
export const make = <A>(): SingleFlight<A> => ({ lookups: new Map(), refreshes: new Map() })

/** How a caller of `run` looks a key up, and what it does when it waits instead. */
export interface RunOptions<A, E, R> {
  /** The lookup, run by the first caller (the leader). It reads `flight.invalidated` before storing its result. */
  readonly lookup: (flight: Flight<A>) => Effect.Effect<A, E, R>
  /** What a waiter runs when the leader was interrupted: the caller's whole path again, as a new caller. */
  readonly retry: () => Effect.Effect<A, E, R>
  /** Called when the caller joins a lookup in flight instead of running one. */
  readonly onJoin: () => void
}

/**
 * Joins the lookup of `key` in flight, else runs `options.lookup` as the key's flight. Joining and leading are
 * decided in one synchronous step, so two callers can never both lead.
 */
export const run = <A, E, R>(
  self: SingleFlight<A>,
  key: string,
  options: RunOptions<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    const current = self.lookups.get(key)
    if (current !== undefined) {
      options.onJoin()
      if (current.waiters === undefined) current.waiters = Deferred.makeUnsafe()
      return Effect.flatMap(
        Deferred.await(current.waiters),
        (exit): Effect.Effect<A, E, R> => exit === undefined ? options.retry() : exit as Exit.Exit<A, E>
      )
    }
    const flight: Flight<A> = { waiters: undefined, invalidated: false }
    self.lookups.set(key, flight)
    return Effect.onExit(options.lookup(flight), (exit) => Effect.sync(() => land(self, key, flight, exit)))
  })

// The flight is over: later callers start their own, and the waiters get its exit, or `undefined` when the leader
// was interrupted (its interruption is its own, not theirs).
const land = <A>(self: SingleFlight<A>, key: string, flight: Flight<A>, exit: Exit.Exit<A, unknown>): void => {
  if (self.lookups.get(key) === flight) self.lookups.delete(key)
  if (flight.waiters === undefined) return
  const interrupted = Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
  Deferred.doneUnsafe(flight.waiters, Exit.succeed(interrupted ? undefined : exit))
}

/** Claims the background refresh of `key`; `undefined` when one is already running (its claim is kept). */
export const startRefresh = <A>(self: SingleFlight<A>, key: string): Refresh | undefined => {
  if (self.refreshes.has(key)) return undefined
  const refresh: Refresh = { invalidated: false }
  self.refreshes.set(key, refresh)
  return refresh
}

/** Releases the claim of a refresh that ended, whatever its outcome. */
export const endRefresh = <A>(self: SingleFlight<A>, key: string, refresh: Refresh): void => {
  if (self.refreshes.get(key) === refresh) self.refreshes.delete(key)
}

/**
 * Detaches what is in flight for `key`: the lookup still answers its waiters but stores nothing, and the next caller
 * starts a new one; a refresh stores nothing either, but keeps its claim until it ends.
 */
export const forget = <A>(self: SingleFlight<A>, key: string): void => {
  const flight = self.lookups.get(key)
  if (flight !== undefined) {
    flight.invalidated = true
    self.lookups.delete(key)
  }
  const refresh = self.refreshes.get(key)
  if (refresh !== undefined) refresh.invalidated = true
}
