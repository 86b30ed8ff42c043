/**
 * Geo commands: positions stored in a sorted set, distances and radius/box searches (GEOSEARCH's basic forms).
 * Coordinates are checked at construction (finite; longitude within ±180, latitude within ±85.05112878).
 *
 * @internal
 */
import type * as Option from "effect/Option"
import * as O from "effect/Option"
import { type Argument, type Command, decodeFailure, float, integer, string } from "../command.ts"
import { Check, read, type Value, write } from "./arguments.ts"
import { optionalFloat, strings } from "./replies.ts"

/**
 * A unit of distance.
 *
 * @since 0.2.0
 * @category models
 */
export type GeoUnit = "m" | "km" | "mi" | "ft"

/**
 * A position.
 *
 * @since 0.2.0
 * @category models
 */
export interface GeoPosition {
  readonly longitude: number
  readonly latitude: number
}

const coordinates = (check: Check, longitude: number, latitude: number): [number, number] => {
  if (!(Math.abs(longitude) <= 180)) check.refuse("longitude", "must be a number within -180..180")
  if (!(Math.abs(latitude) <= 85.05112878)) {
    check.refuse("latitude", "must be a number within -85.05112878..85.05112878")
  }
  return [longitude, latitude]
}

/**
 * GEOADD: adds or moves members; how many were added (with `ch`, changed). Idempotent (after a retry the count may
 * be lower).
 */
export const geoadd = (
  key: string,
  members: ReadonlyArray<GeoPosition & { readonly member: Value }>,
  options?: { readonly mode?: "NX" | "XX" | undefined; readonly ch?: boolean | undefined }
): Command<number> => {
  const check = new Check("GEOADD")
  const args: Array<Argument> = [key]
  if (options?.mode !== undefined) args.push(options.mode)
  if (options?.ch === true) args.push("CH")
  for (const { latitude, longitude, member } of members) args.push(...coordinates(check, longitude, latitude), member)
  check.nonEmpty("members", members.length)
  return write("GEOADD", args, [0], integer("GEOADD"), { invalid: check.invalid })
}

const position = (reply: unknown): Option.Option<GeoPosition> => {
  if (reply === null || reply === undefined) return O.none()
  if (!Array.isArray(reply) || reply.length < 2) throw decodeFailure("GEOPOS", "[longitude, latitude]", reply)
  return O.some({ longitude: float("GEOPOS")(reply[0]), latitude: float("GEOPOS")(reply[1]) })
}

/** GEOPOS: per member, its position (`None` when absent). */
export const geopos = (
  key: string,
  ...members: ReadonlyArray<Value>
): Command<ReadonlyArray<Option.Option<GeoPosition>>> =>
  read("GEOPOS", [key, ...members], [0], (reply) => {
    if (!Array.isArray(reply)) throw decodeFailure("GEOPOS", "an array", reply)
    return reply.map(position)
  })

/** GEODIST: the distance between two members in `unit` (default metres); `None` when either is absent. */
export const geodist = (
  key: string,
  member1: Value,
  member2: Value,
  unit: GeoUnit = "m"
): Command<Option.Option<number>> =>
  read("GEODIST", [key, member1, member2, unit], [0], optionalFloat("GEODIST"))

/**
 * What GEOSEARCH searches: around a member or a position, within a radius or a box.
 *
 * @since 0.2.0
 * @category models
 */
export interface GeoSearchOptions {
  readonly from: { readonly member: Value } | GeoPosition
  readonly by:
    | { readonly radius: number; readonly unit: GeoUnit }
    | { readonly width: number; readonly height: number; readonly unit: GeoUnit }
  /** Nearest first (ASC) or farthest first (DESC); default unsorted. */
  readonly order?: "ASC" | "DESC" | undefined
  /** At most this many results (COUNT); with `any`, the first found rather than the nearest. */
  readonly count?: number | undefined
  readonly any?: boolean | undefined
}

const searchArgs = (check: Check, key: string, options: GeoSearchOptions): Array<Argument> => {
  const args: Array<Argument> = [key]
  if ("member" in options.from) args.push("FROMMEMBER", options.from.member)
  else args.push("FROMLONLAT", ...coordinates(check, options.from.longitude, options.from.latitude))
  const size = (argument: string, n: number) => {
    if (!(n > 0 && Number.isFinite(n))) check.refuse(argument, "must be a positive, finite number")
    return n
  }
  if ("radius" in options.by) args.push("BYRADIUS", size("radius", options.by.radius), options.by.unit)
  else args.push("BYBOX", size("width", options.by.width), size("height", options.by.height), options.by.unit)
  if (options.order !== undefined) args.push(options.order)
  if (options.count !== undefined) args.push("COUNT", check.positive("count", options.count))
  if (options.any === true) {
    if (options.count === undefined) check.refuse("any", "needs count")
    args.push("ANY")
  }
  return args
}

/** GEOSEARCH: the members within the area. */
export const geosearch = (key: string, options: GeoSearchOptions): Command<ReadonlyArray<string>> => {
  const check = new Check("GEOSEARCH")
  const args = searchArgs(check, key, options)
  return read("GEOSEARCH", args, [0], strings("GEOSEARCH"), { invalid: check.invalid })
}

/**
 * A GEOSEARCH result with its distance (in the search's unit) and position.
 *
 * @since 0.2.0
 * @category models
 */
export interface GeoSearchResult extends GeoPosition {
  readonly member: string
  readonly distance: number
}

const searchResult = (reply: unknown): GeoSearchResult => {
  if (!Array.isArray(reply) || reply.length < 3 || !Array.isArray(reply[2])) {
    throw decodeFailure("GEOSEARCH", "[member, distance, [longitude, latitude]]", reply)
  }
  return {
    member: string("GEOSEARCH")(reply[0]),
    distance: float("GEOSEARCH")(reply[1]),
    longitude: float("GEOSEARCH")(reply[2][0]),
    latitude: float("GEOSEARCH")(reply[2][1])
  }
}

/** GEOSEARCH ... WITHDIST WITHCOORD: the members within the area, with distances and positions. */
export const geosearchWith = (key: string, options: GeoSearchOptions): Command<ReadonlyArray<GeoSearchResult>> => {
  const check = new Check("GEOSEARCH")
  const args = [...searchArgs(check, key, options), "WITHDIST", "WITHCOORD"]
  return read("GEOSEARCH", args, [0], (reply) => {
    if (!Array.isArray(reply)) throw decodeFailure("GEOSEARCH", "an array", reply)
    return reply.map(searchResult)
  }, { invalid: check.invalid })
}
