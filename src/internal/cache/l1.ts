/**
 * The cache's L1: a bounded in-process copy of recent values in front of Redis. A `Map` kept in least-recently-used
 * order (a fresh hit moves its entry to the end, the first entry goes beyond `capacity`). An entry is fresh for the
 * L1 `ttl`, then may still be served while Redis is down for `staleMillis` more. Synchronous: the time is read from
 * the clock it is given, so that TestClock drives it.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import type { L1Options } from "./options.ts"

/** The L1 of one cache. */
export interface L1<A> {
  readonly entries: Map<string, Entry<A>>
  readonly options: L1Options
  readonly clock: Clock.Clock
}

/** One cached value, with the times (epoch millis) it stops being fresh and stops being servable at all. */
export interface Entry<A> {
  readonly value: A
  readonly freshUntil: number
  readonly staleUntil: number
}

/** An empty L1. */
export const make = <A>(options: L1Options, clock: Clock.Clock): L1<A> => ({ entries: new Map(), options, clock })

/** Stores `value` as the most recently used entry, dropping the least recently used one beyond capacity. */
export const set = <A>(l1: L1<A>, key: string, value: A): void => {
  const at = l1.clock.currentTimeMillisUnsafe()
  const freshUntil = at + l1.options.ttlMillis
  l1.entries.delete(key) // re-inserted at the end: most recently used
  l1.entries.set(key, { value, freshUntil, staleUntil: freshUntil + l1.options.staleMillis })
  if (l1.entries.size > l1.options.capacity) l1.entries.delete(l1.entries.keys().next().value!)
}

/** The entry of `key` if it is fresh, which makes it the most recently used. An expired entry is kept for `stale`. */
export const fresh = <A>(l1: L1<A>, key: string): Entry<A> | undefined => {
  const entry = l1.entries.get(key)
  if (entry === undefined || entry.freshUntil <= l1.clock.currentTimeMillisUnsafe()) return undefined
  l1.entries.delete(key)
  l1.entries.set(key, entry)
  return entry
}

/**
 * The entry of `key` if it may still be served while Redis is down (fresh or within `staleMillis` past its expiry);
 * one past that is dropped. Unlike `fresh`, it leaves the entry where it is in the least-recently-used order.
 */
export const stale = <A>(l1: L1<A>, key: string): Entry<A> | undefined => {
  const entry = l1.entries.get(key)
  if (entry === undefined) return undefined
  if (entry.staleUntil <= l1.clock.currentTimeMillisUnsafe()) {
    l1.entries.delete(key)
    return undefined
  }
  return entry
}

/** Drops the entry of `key`. */
export const remove = <A>(l1: L1<A>, key: string): void => {
  l1.entries.delete(key)
}

/** Drops every entry (after a gap in the invalidations, any of them may be out of date). */
export const clear = <A>(l1: L1<A>): void => {
  l1.entries.clear()
}
