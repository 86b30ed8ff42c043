/**
 * Parsing `RedisOptions.url` (`redis://` / `rediss://`) into its parts. The input and the parser's exception are never
 * quoted or kept: both may contain the password.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { type Check, invalid, isPort } from "./checks.ts"

export interface UrlParts {
  readonly tls: boolean
  readonly host: string | undefined
  readonly port: number | undefined
  readonly db: number | undefined
  readonly username: string | undefined
  readonly password: string | undefined
}

const nonEmpty = (s: string): string | undefined => s.length > 0 ? s : undefined

// Never quote the input or keep the parser's exception: both may contain the password.
export const parseUrl = (url: string): Check<UrlParts> => {
  const scheme = /^(rediss?):\/\//i.exec(url)?.[1]?.toLowerCase()
  if (scheme === undefined) return invalid("url", "must start with redis:// or rediss://")
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return invalid("url", "is not a valid URL (a password with reserved characters must be percent-encoded)")
  }
  if (parsed.search !== "" || parsed.hash !== "") {
    return invalid("url", "must not have a query string or fragment; use the options instead")
  }
  const dbMatch = /^\/(\d+)?$/.exec(parsed.pathname)
  if (parsed.pathname !== "" && dbMatch === null) {
    return invalid("url", "path must be empty or /<db>, with db a non-negative integer")
  }
  const port = parsed.port === "" ? undefined : Number(parsed.port)
  if (port !== undefined && !isPort(port)) return invalid("url", "port must be an integer in 1..65535")
  let username: string
  let password: string
  try {
    username = decodeURIComponent(parsed.username)
    password = decodeURIComponent(parsed.password)
  } catch {
    return invalid("url", "username or password has a malformed percent-encoding")
  }
  const host = parsed.hostname.startsWith("[") && parsed.hostname.endsWith("]")
    ? parsed.hostname.slice(1, -1)
    : parsed.hostname
  return Effect.succeed({
    tls: scheme === "rediss",
    host: nonEmpty(host),
    port,
    db: dbMatch?.[1] === undefined ? undefined : Number(dbMatch[1]),
    username: nonEmpty(username),
    password: nonEmpty(password)
  })
}

