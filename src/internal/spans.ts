/**
 * Spans of Redis commands, by OpenTelemetry's database conventions: `redis.<COMMAND>` of kind `client` with
 * `db.system.name`, `db.operation.name` and the server's attributes, `error.type` on failure. Never a key or a value:
 * `db.query.text` only with `tracing.queryText`, sanitized (`queryText`). Spans are made only when the program
 * installed a tracer of its own: with Effect's default one nobody reads them, and a span costs more than the rest of
 * the command path together.
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Tracer from "effect/Tracer"
import type { RedisError } from "../RedisError.ts"

/**
 * The sanitized `db.query.text` of a call, made only when a span is (and `tracing.queryText` is on): the command name,
 * then `key` for each key position and `?` for every other argument. Never a key or a value.
 */
export type QueryText =
  | (() => string)
  | { readonly name: string; readonly args: ReadonlyArray<unknown>; readonly keys: ReadonlyArray<number> }

type SpanFor = { readonly name: string; readonly options: Tracer.SpanOptions }

export interface Spans {
  /**
   * The name and options of a command's span: made once per command name, or per call when it has a query text to
   * show.
   */
  readonly spanFor: (
    name: string,
    query?: QueryText | undefined
  ) => SpanFor
  /** Whether the fiber's context has a tracer of its own. */
  readonly traced: (fiber: Fiber.Fiber<unknown, unknown>) => boolean
}

export const make = (serverAttributes: Readonly<Record<string, string | number>>, withQueryText = false): Spans => {
  const spanOptions = new Map<string, SpanFor>()
  const spanFor = (name: string, query?: QueryText): SpanFor => {
    if (withQueryText && query !== undefined) {
      const span = spanFor(name)
      const text = typeof query === "function" ? query() : queryText(query.name, query.args.length, query.keys)
      const attributes = { ...span.options.attributes, "db.query.text": text }
      return { name: span.name, options: { ...span.options, attributes } }
    }
    let span = spanOptions.get(name)
    if (span === undefined) {
      span = {
        name: `redis.${name}`,
        options: {
          kind: "client",
          attributes: { "db.system.name": "redis", "db.operation.name": name, ...serverAttributes },
          captureStackTrace: false
        }
      }
      spanOptions.set(name, span)
    }
    return span
  }
  // Remembered for the last context seen (callers of one program share it), so that most commands skip the lookup.
  let lastContext: Context.Context<never> | undefined
  let lastTraced = false
  const traced = (fiber: Fiber.Fiber<unknown, unknown>): boolean => {
    if (fiber.context !== lastContext) {
      lastContext = fiber.context
      lastTraced = fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer
    }
    return lastTraced
  }
  return { spanFor, traced }
}

/** Marks the current span with the error's tag. */
export const errorType = (error: RedisError): Effect.Effect<void> =>
  Effect.annotateCurrentSpan("error.type", error._tag)

/** The longest list of arguments a query text spells out; the rest is summed up as `... (n more)`. */
const shownArguments = 32

/**
 * A sanitized query text: `name`, then for each of `count` arguments `key` (at a key position) or `?`.
 */
export const queryText = (name: string, count: number, keys: ReadonlyArray<number> = []): string => {
  const shown = Math.min(count, shownArguments)
  const parts: Array<string> = [name]
  for (let i = 0; i < shown; i++) parts.push(keys.includes(i) ? "key" : "?")
  if (count > shown) parts.push(`... (${count - shown} more)`)
  return parts.join(" ")
}
