/**
 * The commands the shared connection refuses: those that would change its state for every other caller (a MULTI left
 * open, another db, RESP3, no replies) or hold it (a blocking read). Each names the API to use instead.
 *
 * @internal
 */
import { CommandRefused } from "../RedisError.ts"
import type { Argument } from "./command.ts"

const transaction = "RedisService.multi (atomic batch) or RedisService.watch (optimistic transaction)"
const subscriber = "RedisSubscriber (one shared subscriber connection)"
const blocking = "RedisBlocking (dedicated connections for blocking commands)"
const options = "the layer's options (RedisOptions)"

const refused: ReadonlyMap<string, string> = new Map([
  ["MULTI", transaction],
  ["EXEC", transaction],
  ["DISCARD", transaction],
  ["WATCH", transaction],
  ["UNWATCH", transaction],
  ["SELECT", "the `db` option (one layer per database)"],
  ["SWAPDB", "the `db` option; SWAPDB is an administrative command (redis-cli)"],
  ["SUBSCRIBE", subscriber],
  ["PSUBSCRIBE", subscriber],
  ["SSUBSCRIBE", subscriber],
  ["UNSUBSCRIBE", subscriber],
  ["PUNSUBSCRIBE", subscriber],
  ["SUNSUBSCRIBE", subscriber],
  ["MONITOR", "redis-cli MONITOR (a connection of its own)"],
  ["SYNC", "a replica of its own (SYNC turns the connection into a replication stream)"],
  ["PSYNC", "a replica of its own (PSYNC turns the connection into a replication stream)"],
  ["REPLCONF", "a replica of its own"],
  ["RESET", "closing the layer's scope (a new layer starts clean)"],
  ["QUIT", "closing the layer's scope"],
  ["AUTH", `${options}: username and password`],
  ["HELLO", options],
  ["BLPOP", blocking],
  ["BRPOP", blocking],
  ["BLMOVE", blocking],
  ["BRPOPLPUSH", blocking],
  ["BLMPOP", blocking],
  ["BZPOPMIN", blocking],
  ["BZPOPMAX", blocking],
  ["BZMPOP", blocking]
])

// WAIT and WAITAOF count the writes of the connection they run on, so the shared connection is the only place where
// they mean anything for this layer's writes. A bounded one holds the connection at most its timeout (keep it short);
// a timeout of 0 (forever) is refused.
const waitTimeoutAt: ReadonlyMap<string, number> = new Map([["WAIT", 1], ["WAITAOF", 2]])

const refusedClient: ReadonlyMap<string, string> = new Map([
  ["REPLY", "nothing: the shared connection needs every reply"],
  ["TRACKING", "a connection of its own (client-side caching needs RESP3 or a redirect connection)"],
  ["SETNAME", `${options}: connectionName`],
  ["SETINFO", options],
  ["PAUSE", "redis-cli (CLIENT PAUSE stops every client, this layer included)"],
  ["NO-EVICT", "a connection of its own"],
  ["NO-TOUCH", "a connection of its own"]
])

const word = (arg: Argument | undefined): string =>
  arg === undefined
    ? ""
    : typeof arg === "string"
    ? arg.toUpperCase()
    : Buffer.isBuffer(arg)
    ? arg.toString().toUpperCase()
    : ""

const refusal = (command: string, useInstead: string): CommandRefused =>
  new CommandRefused({
    message: `${command} is refused on the shared connection (it would affect every other caller); use ${useInstead}`,
    command,
    useInstead
  })

/**
 * The refusal for a command on the shared connection, or `undefined` when it may run there.
 *
 * @internal
 */
export const refuse = (name: string, args: ReadonlyArray<Argument>): CommandRefused | undefined => {
  const upper = name.toUpperCase()
  const instead = refused.get(upper)
  if (instead !== undefined) return refusal(upper, instead)
  const timeoutAt = waitTimeoutAt.get(upper)
  if (timeoutAt !== undefined) {
    const timeout = Number(word(args[timeoutAt]))
    return Number.isFinite(timeout) && timeout > 0
      ? undefined
      : refusal(`${upper} with no timeout`, `a timeout of a few milliseconds (${upper} holds the shared connection)`)
  }
  if (upper === "CLIENT") {
    const sub = word(args[0])
    const clientInstead = refusedClient.get(sub)
    return clientInstead === undefined ? undefined : refusal(`CLIENT ${sub}`, clientInstead)
  }
  // XREAD / XREADGROUP block only with BLOCK; without it they are plain reads.
  if ((upper === "XREAD" || upper === "XREADGROUP") && hasBlock(args)) {
    return refusal(`${upper} BLOCK`, `${blocking}, or RedisStream.consume for consumer groups`)
  }
  return undefined
}

// Options come before STREAMS; after it, a stream may well be called "block", and so may XREADGROUP's group and
// consumer (the two arguments after GROUP).
const hasBlock = (args: ReadonlyArray<Argument>): boolean => {
  for (let i = 0; i < args.length; i++) {
    const w = word(args[i])
    if (w === "STREAMS") return false
    if (w === "GROUP") i += 2
    else if (w === "BLOCK") return true
  }
  return false
}
