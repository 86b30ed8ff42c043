/**
 * The most used typed commands as methods of the service (`redis.hgetall(key)` is `redis.run(Command.hgetall(key))`).
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as C from "../Command.ts"
import type { RedisError } from "../RedisError.ts"
import type { Command } from "./command.ts"

type Run = <A>(command: Command<A>) => Effect.Effect<A, RedisError>

// A command constructor as a method: same parameters, the command's reply as the Effect's value.
type Via<F> = F extends (...args: infer P) => Command<infer A> ? (...args: P) => Effect.Effect<A, RedisError> : never

/**
 * The shortcuts of `RedisServiceShape`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Shortcuts {
  readonly hget: Via<typeof C.hget>
  readonly hset: Via<typeof C.hset>
  readonly hgetall: Via<typeof C.hgetall>
  readonly hdel: Via<typeof C.hdel>
  readonly lpush: Via<typeof C.lpush>
  readonly rpush: Via<typeof C.rpush>
  readonly lrange: Via<typeof C.lrange>
  readonly sadd: Via<typeof C.sadd>
  readonly srem: Via<typeof C.srem>
  readonly smembers: Via<typeof C.smembers>
  readonly zadd: Via<typeof C.zadd>
  readonly zscore: Via<typeof C.zscore>
  readonly zrem: Via<typeof C.zrem>
  readonly zrange: {
    (
      key: string,
      start: C.Bound,
      stop: C.Bound,
      options?: C.ZRangeOptions & { readonly withScores?: false | undefined }
    ): Effect.Effect<ReadonlyArray<string>, RedisError>
    (
      key: string,
      start: C.Bound,
      stop: C.Bound,
      options: C.ZRangeOptions & { readonly withScores: true }
    ): Effect.Effect<ReadonlyArray<{ readonly member: string; readonly score: number }>, RedisError>
  }
  readonly xadd: (
    key: string,
    id: string,
    fields: Readonly<Record<string, C.Value>>,
    options?: C.XAddOptions & { readonly nomkstream?: false | undefined }
  ) => Effect.Effect<string, RedisError>
  /** How many of the keys exist (a key given twice counts twice). */
  readonly exists: (...keys: C.Keys) => Effect.Effect<number, RedisError>
  readonly ttl: Via<typeof C.ttl>
  readonly pttl: Via<typeof C.pttl>
  readonly getdel: (key: string) => Effect.Effect<Option.Option<string>, RedisError>
}

/**
 * Builds the shortcuts on a service's `run`.
 *
 * @internal
 */
export const make = (run: Run): Shortcuts => {
  const via = <P extends ReadonlyArray<any>, A>(f: (...args: P) => Command<A>) => (...args: P) => run(f(...args))
  return {
    hget: via(C.hget),
    hset: via(C.hset),
    hgetall: via(C.hgetall),
    hdel: via(C.hdel),
    lpush: via(C.lpush),
    rpush: via(C.rpush),
    lrange: via(C.lrange),
    sadd: via(C.sadd),
    srem: via(C.srem),
    smembers: via(C.smembers),
    zadd: via(C.zadd),
    zscore: via(C.zscore),
    zrem: via(C.zrem),
    zrange: ((key: string, start: C.Bound, stop: C.Bound, options?: C.ZRangeOptions & { withScores?: boolean }) =>
      run(C.zrange(key, start, stop, options as C.ZRangeOptions))) as Shortcuts["zrange"],
    xadd: (key, id, fields, options) => run(C.xadd(key, id, fields, options)),
    exists: (...keys) => run(C.exists(...keys)),
    ttl: via(C.ttl),
    pttl: via(C.pttl),
    getdel: via(C.getdel)
  }
}
