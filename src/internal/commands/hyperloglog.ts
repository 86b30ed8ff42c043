/**
 * HyperLogLog commands: approximate distinct counts in a few kilobytes.
 *
 * @internal
 */
import { boolean, type Command, integer } from "../command.ts"
import { Check, flatten, type Keys, positions, read, type Value, write } from "./arguments.ts"
import { ignore } from "./replies.ts"

/** PFADD: adds elements; true when the estimate changed. Idempotent (adding again changes nothing; answers false). */
export const pfadd = (key: string, ...elements: ReadonlyArray<Value>): Command<boolean> =>
  write("PFADD", [key, ...elements], [0], boolean("PFADD"))

/** PFCOUNT: the approximate number of distinct elements (of the union, for several keys). */
export const pfcount = (...keys: Keys): Command<number> => {
  const all = flatten(keys)
  const check = new Check("PFCOUNT")
  check.nonEmpty("keys", all.length)
  return read("PFCOUNT", all, positions(0, all.length), integer("PFCOUNT"), { invalid: check.invalid })
}

/** PFMERGE: merges the sources into `destination`. Idempotent. */
export const pfmerge = (destination: string, ...sources: Keys): Command<void> => {
  const all = flatten(sources)
  return write("PFMERGE", [destination, ...all], positions(0, all.length + 1), ignore)
}
