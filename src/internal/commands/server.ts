/**
 * Server reads: PING, ECHO, TIME, DBSIZE, INFO (parsed into a record). All idempotent and read-only.
 *
 * @internal
 */
import { type Command, decodeFailure, integer, string } from "../command.ts"
import { read, type Value } from "./arguments.ts"
import { info as parseInfo } from "./replies.ts"

/** PING: "PONG", or `message` echoed. */
export const ping = (message?: Value): Command<string> =>
  read("PING", message === undefined ? [] : [message], [], string("PING"))

/** ECHO: `message`. */
export const echo = (message: Value): Command<string> => read("ECHO", [message], [], string("ECHO"))

/**
 * The server's clock, as TIME reports it.
 *
 * @since 0.2.0
 * @category models
 */
export interface ServerTime {
  /** Unix time in seconds. */
  readonly seconds: number
  /** Microseconds within the second. */
  readonly microseconds: number
}

/** TIME: the server's clock (seconds and microseconds). */
export const time = (): Command<ServerTime> =>
  read("TIME", [], [], (reply) => {
    if (!Array.isArray(reply) || reply.length !== 2) throw decodeFailure("TIME", "[seconds, microseconds]", reply)
    return { seconds: integer("TIME")(reply[0]), microseconds: integer("TIME")(reply[1]) }
  })

/** DBSIZE: how many keys the database holds. */
export const dbsize = (): Command<number> => read("DBSIZE", [], [], integer("DBSIZE"))

/**
 * INFO: the server's report as a record (`{ redis_version: "7.2.4", connected_clients: "3", ... }`), section headers
 * dropped; `section` as Redis takes it ("server", "memory", "all", ...).
 */
export const info = (section?: string): Command<Record<string, string>> =>
  read("INFO", section === undefined ? [] : [section], [], parseInfo)
