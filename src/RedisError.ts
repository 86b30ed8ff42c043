/**
 * The errors this library reports, one tagged class per thing a caller may want to `catchTag`, and the single
 * classification that turns what ioredis and Node produce (socket errors, "Connection is closed.", reply errors,
 * timeouts) into them.
 *
 * Errors raised while a command runs say whether the command reached the server (`sent`): a non-idempotent command
 * that failed with `sent: true` may have been applied and is never resent by this library.
 *
 * No error carries a password, a user name or a command argument: `classify` keeps a scrubbed summary of what ioredis
 * or Node failed with (`CauseSummary`: name, message, code), never the original, whose `command.args` would hold the
 * AUTH password of the handshake or the value of a failed SET, and Redis' own messages are scrubbed of the arguments
 * they echo (`scrubMessage`). See docs/security.md.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import {
  ABORTED,
  CONNECTION_CLOSED,
  NOT_WRITABLE,
  resetCodes,
  tlsAdvice,
  tlsReason,
  unavailableCodes,
  unreachableCodes
} from "./internal/errors/codes.ts"
import {
  decodeCause,
  errorCode,
  errorMessage,
  isReplyError,
  maybeApplied,
  replyCode,
  scrubMessage,
  where
} from "./internal/errors/scrub.ts"

/**
 * Removes what a Redis (or ioredis) error message echoes of a command's arguments, keeping the rest: the reply code,
 * Redis' explanation, the command name. A quoted argument becomes `'<redacted>'`; `... with args beginning with:`
 * loses everything after the colon.
 *
 * @since 0.2.0
 * @category redaction
 */
export { scrubMessage }

/**
 * The connection was reset by the peer (ECONNRESET) or the socket broke while writing (EPIPE).
 *
 * When `sent` is true the command was written before the reset and may have been applied.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionReset extends Data.TaggedError("ConnectionReset")<{
  readonly message: string
  readonly command?: string | undefined
  readonly sent: boolean
  readonly cause?: unknown
}> {}

/**
 * The server refused the connection (ECONNREFUSED) or could not be reached (EHOSTUNREACH, ENOTFOUND, ...).
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionRefused extends Data.TaggedError("ConnectionRefused")<{
  readonly message: string
  readonly command?: string | undefined
  readonly cause?: unknown
}> {}

/**
 * The TLS handshake with the server failed: its certificate was rejected (signed by a CA the client does not trust,
 * not valid for the host name connected to, expired) or the port does not speak TLS. `message` says which and what to
 * check. Transient (it counts towards the circuit breaker, and the connection is attempted again on the reconnect
 * schedule, so that a rotated certificate is picked up), but never a reason to resend a command: it only happens while
 * connecting.
 *
 * @since 0.2.0
 * @category errors
 */
export class TlsHandshakeFailed extends Data.TaggedError("TlsHandshakeFailed")<{
  readonly message: string
  /** What failed: the CA, the host name, the validity dates, or TLS itself. */
  readonly reason: "untrusted-certificate" | "hostname-mismatch" | "expired-certificate" | "protocol"
  /** Node's error code, e.g. `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `ERR_TLS_CERT_ALTNAME_INVALID`. */
  readonly code: string
  readonly command?: string | undefined
  readonly cause?: unknown
}> {}

/**
 * No usable connection in time: either connecting took longer than `connectTimeout` (`phase: "connect"`), or a
 * command waited `acquireTimeout` for a ready connection while Redis was unavailable (`phase: "acquire"`). A command
 * that fails this way was never sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionTimeout extends Data.TaggedError("ConnectionTimeout")<{
  readonly message: string
  readonly phase: "connect" | "acquire"
  readonly timeout: Duration.Duration
  readonly command?: string | undefined
  readonly cause?: unknown
}> {}

/**
 * The connection closed under the command (or the client was not connected). `sent` tells whether the command was
 * written before the close.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly message: string
  readonly command?: string | undefined
  readonly sent: boolean
  /**
   * True when ioredis failed in a way this library does not know: the connection is not assumed broken (it is not
   * replaced, and the command is not retried), but the failure is reported as this error with the original `cause`.
   */
  readonly unexpected?: boolean | undefined
  readonly cause?: unknown
}> {}

/**
 * The command was written but no reply came within `commandTimeout`. It may have been applied.
 *
 * @since 0.1.0
 * @category errors
 */
export class CommandTimeout extends Data.TaggedError("CommandTimeout")<{
  readonly message: string
  readonly command: string
  readonly timeout: Duration.Duration
  readonly sent: true
}> {}

/**
 * The circuit breaker is open (or half-open and probing): the call was rejected at once, without touching Redis.
 * Try again after `retryAfter`.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitOpen extends Data.TaggedError("CircuitOpen")<{
  readonly message: string
  readonly retryAfter: Duration.Duration
  readonly command?: string | undefined
}> {}

/**
 * Redis answered with an error reply. `code` is its first word (`WRONGTYPE`, `ERR`, `NOSCRIPT`, `READONLY`, ...).
 *
 * Most reply errors say nothing about the connection's health and never open the circuit breaker. The exceptions
 * say the server cannot serve right now (`LOADING`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`: transient, with a
 * `retryAfter` hint) or that the connection points at the wrong node (`READONLY`: a write reached a replica, e.g. a
 * master demoted by a failover; the connection is replaced and the command, which was not applied, runs once more).
 *
 * @since 0.1.0
 * @category errors
 */
export class ReplyError extends Data.TaggedError("ReplyError")<{
  readonly message: string
  readonly code: string
  readonly command?: string | undefined
  /** Set when Redis means "try again soon" (LOADING, TRYAGAIN, CLUSTERDOWN, MASTERDOWN): a hint, not a promise. */
  readonly retryAfter?: Duration.Duration | undefined
  readonly cause?: unknown
}> {}

/**
 * A value read from Redis (or about to be written) does not match its Schema.
 *
 * @since 0.1.0
 * @category errors
 */
export class DecodeError extends Data.TaggedError("DecodeError")<{
  readonly message: string
  /** The key read, when there is one: for code (`error.key`), never rendered (keys may hold ids or tokens). */
  readonly key?: string | undefined
  readonly cause?: unknown
}> {
  constructor(props: { readonly message: string; readonly key?: string | undefined; readonly cause?: unknown }) {
    super(redactedCause(props))
    if (props.key !== undefined) hide(this, "key", props.key)
  }
}

// A Schema failure quotes the value it rejected: the cause keeps its shape with the values redacted (and the key, set
// apart by the constructor, is kept out of every rendering).
const redactedCause = <P extends { readonly message: string; readonly cause?: unknown }>(props: P): P =>
  (props.cause === undefined
    ? { message: props.message }
    : { message: props.message, cause: decodeCause(props.cause) }) as P

/**
 * A value about to be written does not encode with its Schema (a typed channel's payload, a cache value, a stream
 * entry). Nothing was sent. Like `DecodeError`, the cause keeps its shape with the values redacted.
 *
 * @since 0.2.0
 * @category errors
 */
export class EncodeError extends Data.TaggedError("EncodeError")<{
  readonly message: string
  /** The key to be written, when there is one: for code (`error.key`), never rendered (keys may hold ids or tokens). */
  readonly key?: string | undefined
  readonly cause?: unknown
}> {
  constructor(props: { readonly message: string; readonly key?: string | undefined; readonly cause?: unknown }) {
    super(redactedCause(props))
    if (props.key !== undefined) hide(this, "key", props.key)
  }
}

/**
 * The one way a command that got no reply in time is reported (every path: the command connection, the heartbeat,
 * the subscriber, pinned and probe connections).
 *
 * @since 0.2.0
 * @category constructors
 */
export const commandTimedOut = (command: string, timeout: Duration.Duration): CommandTimeout =>
  new CommandTimeout({
    message: `${command} got no reply within ${Duration.format(timeout)}; it was sent and may have been applied`,
    command,
    timeout,
    sent: true
  })

/**
 * A WATCH transaction was not applied: a watched key changed between WATCH and EXEC (EXEC answered nil). Nothing of
 * the transaction ran; retry the whole `watch` (e.g. with `Effect.retry` and a `Schedule`).
 *
 * @since 0.2.0
 * @category errors
 */
export class TransactionAborted extends Data.TaggedError("TransactionAborted")<{
  readonly message: string
  /** The watched keys: for code (`error.keys`), never rendered (keys may hold ids or tokens). */
  readonly keys: ReadonlyArray<string>
}> {
  constructor(props: { readonly message: string; readonly keys: ReadonlyArray<string> }) {
    // The keys stay out of the arguments effect renders (`toJSON` spreads them).
    super({ message: props.message } as typeof props)
    hide(this, "keys", props.keys)
  }
}

/**
 * On Redis Cluster, a batch, transaction or script names keys in different hash slots. Nothing was sent. Put the keys
 * in one slot with a hash tag (`{user:42}:name`, `{user:42}:email`).
 *
 * @since 0.2.0
 * @category errors
 */
export class CrossSlot extends Data.TaggedError("CrossSlot")<{
  readonly message: string
  /** The keys that span more than one slot: for code (`error.keys`), never rendered (keys may hold ids or tokens). */
  readonly keys: ReadonlyArray<string>
}> {
  constructor(props: { readonly message: string; readonly keys: ReadonlyArray<string> }) {
    // The keys stay out of the arguments effect renders (`toJSON` spreads them).
    super({ message: props.message } as typeof props)
    hide(this, "keys", props.keys)
  }
}

// Keeps a field readable by code but out of every rendering (JSON.stringify, util.inspect, effect's loggers): they
// show enumerable own properties only.
function hide(error: object, field: string, value: unknown): void {
  Object.defineProperty(error, field, { enumerable: false, value })
}

/**
 * The command cannot run on the shared connection: it would change the connection's state for every other caller
 * (MULTI, SELECT, CLIENT REPLY, ...) or block it (BLPOP, ...). Nothing was sent; `message` names the API to use
 * instead.
 *
 * @since 0.2.0
 * @category errors
 */
export class CommandRefused extends Data.TaggedError("CommandRefused")<{
  readonly message: string
  readonly command: string
  /** The API to use instead, e.g. "RedisService.multi". */
  readonly useInstead: string
}> {}

/**
 * An argument was refused before anything was sent (a TTL of zero, a negative count, a non-finite number, ...).
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidArgument extends Data.TaggedError("InvalidArgument")<{
  readonly message: string
  readonly command?: string | undefined
  /** The name of the argument, e.g. "ttl". */
  readonly argument: string
}> {}

/**
 * Every error a Redis operation of this library can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type RedisError =
  | ConnectionReset
  | ConnectionRefused
  | TlsHandshakeFailed
  | ConnectionTimeout
  | ConnectionClosed
  | CommandTimeout
  | CircuitOpen
  | ReplyError
  | DecodeError
  | EncodeError
  | TransactionAborted
  | CrossSlot
  | CommandRefused
  | InvalidArgument

const tags: ReadonlySet<string> = new Set([
  "ConnectionReset",
  "ConnectionRefused",
  "TlsHandshakeFailed",
  "ConnectionTimeout",
  "ConnectionClosed",
  "CommandTimeout",
  "CircuitOpen",
  "ReplyError",
  "DecodeError",
  "EncodeError",
  "TransactionAborted",
  "CrossSlot",
  "CommandRefused",
  "InvalidArgument"
])

/**
 * Whether a value is one of this library's errors.
 *
 * @since 0.1.0
 * @category guards
 */
export const isRedisError = (u: unknown): u is RedisError =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && tags.has(u._tag)

/**
 * Whether a reply error means the command reached the wrong node: a write on a replica (`READONLY`). Such a command
 * was not applied, and the connection should be replaced.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isWrongRole = (error: RedisError): boolean => error._tag === "ReplyError" && error.code === "READONLY"

/**
 * Transient failures say the connection or the server is unhealthy: they count towards opening the circuit breaker.
 * Decode errors, `CircuitOpen` itself and reply errors never do, except those that say the server cannot serve now
 * (LOADING, TRYAGAIN, CLUSTERDOWN, MASTERDOWN). A failed TLS handshake is transient (the server is unusable as it
 * stands) but, like `ConnectionRefused`, not a lost connection: no command is resent because of it.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isTransient = (error: RedisError): boolean => {
  switch (error._tag) {
    case "ConnectionReset":
    case "ConnectionRefused":
    case "TlsHandshakeFailed":
    case "ConnectionTimeout":
    case "CommandTimeout":
      return true
    case "ConnectionClosed":
      return error.unexpected !== true
    case "ReplyError":
      return unavailableCodes.has(error.code)
    default:
      return false
  }
}

/**
 * Whether the failure means the connection the command ran on is broken (so that an idempotent command may be
 * retried once on the next connection).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isConnectionLost = (error: RedisError): boolean =>
  error._tag === "ConnectionReset" || (error._tag === "ConnectionClosed" && error.unexpected !== true)

/**
 * What this library keeps of a failure it did not produce (an ioredis or Node error), in place of the original: the
 * fields that help debugging, none that can hold a secret. ioredis' errors carry the failed command with its
 * arguments (`command.args` is `["3", "AUTH", "default", "<password>"]` for the handshake, `[key, value]` for a SET),
 * Node's carry sockets; neither is kept. `message` is scrubbed of echoed arguments (`scrubMessage`).
 *
 * @since 0.2.0
 * @category models
 */
export interface CauseSummary {
  /** The original's `name`: `ReplyError`, `Error`, ... */
  readonly name: string
  readonly message: string
  /** Node's error code (`ECONNRESET`, `ERR_TLS_CERT_ALTNAME_INVALID`, ...) or Redis' (`WRONGTYPE`, ...). */
  readonly code?: string | undefined
  readonly errno?: number | undefined
  readonly syscall?: string | undefined
}

/**
 * The one place a foreign failure is turned into what this library's errors keep as `cause` (see `CauseSummary`).
 * This library's own errors are kept as they are (they are built scrubbed); anything else that is not an object is
 * described by its type only.
 *
 * @since 0.2.0
 * @category redaction
 */
export const scrubCause = (cause: unknown): CauseSummary | RedisError => {
  if (isRedisError(cause)) return cause
  if (typeof cause !== "object" || cause === null) {
    return { name: typeof cause, message: typeof cause === "string" ? scrubMessage(cause) : `a ${typeof cause}` }
  }
  const u = cause as Record<string, unknown>
  return {
    name: typeof u.name === "string" ? u.name : "Error",
    message: scrubMessage(typeof u.message === "string" ? u.message : "(no message)"),
    ...(typeof u.code === "string" ? { code: u.code } : {}),
    ...(typeof u.errno === "number" ? { errno: u.errno } : {}),
    ...(typeof u.syscall === "string" ? { syscall: u.syscall } : {})
  }
}

/**
 * What `classify` needs to know besides the raw failure.
 *
 * @since 0.1.0
 * @category classification
 */
export interface ClassifyContext {
  /** The command name, upper case, when the failure belongs to a command. */
  readonly command?: string | undefined
  /** Whether the command had been written to the socket. */
  readonly sent: boolean
  /**
   * The last error the connection's socket reported. ioredis emits ECONNRESET as an `error` event and then rejects
   * in-flight commands with a bare "Connection is closed.": this is what lets such a command be a `ConnectionReset`.
   */
  readonly socketError?: unknown
  /** The configured command timeout, reported in `CommandTimeout`. */
  readonly commandTimeout?: Duration.Duration | undefined
  /** Whether the socket had connected: an ETIMEDOUT then means a dead socket, not a connect timeout. */
  readonly established?: boolean | undefined
  /** The configured connect timeout, reported in `ConnectionTimeout`. */
  readonly connectTimeout?: Duration.Duration | undefined
}

/**
 * Classifies a socket-level error (the `error` event of a connection, or a failed connect) on its own.
 * Returns `undefined` when the value is not a known socket failure.
 *
 * @since 0.1.0
 * @category classification
 */
export const classifySocketError = (
  cause: unknown,
  context: ClassifyContext
): ConnectionReset | ConnectionRefused | TlsHandshakeFailed | ConnectionTimeout | undefined => {
  const code = errorCode(cause)
  if (code === undefined) return undefined
  if (resetCodes.has(code)) {
    return new ConnectionReset({
      message: `Connection reset by the server (${code})${where(context.command)}${
        context.command === undefined ? "" : maybeApplied(context.sent)
      }`,
      command: context.command,
      sent: context.sent,
      cause: scrubCause(cause)
    })
  }
  if (unreachableCodes.has(code)) {
    return new ConnectionRefused({
      message: `Redis refused the connection or could not be reached (${code}): ${errorMessage(cause)}`,
      command: context.command,
      cause: scrubCause(cause)
    })
  }
  const tls = tlsReason(code)
  if (tls !== undefined) {
    return new TlsHandshakeFailed({
      message: `Connecting to Redis over TLS failed (${code}): ${tlsAdvice[tls]}. (${errorMessage(cause)})`,
      reason: tls,
      code,
      command: context.command,
      cause: scrubCause(cause)
    })
  }
  if (code === "ETIMEDOUT" && (context.command !== undefined || context.established === true)) {
    // An established socket timed out (TCP keep-alive or retransmission): the connection is gone.
    return undefined
  }
  if (code === "ETIMEDOUT") {
    const timeout = context.connectTimeout ?? Duration.zero
    return new ConnectionTimeout({
      message: `Connecting to Redis timed out after ${Duration.format(timeout)}`,
      phase: "connect",
      timeout,
      command: context.command,
      cause: scrubCause(cause)
    })
  }
  return undefined
}

/**
 * Turns anything ioredis or Node rejected a command (or a connection attempt) with into a `RedisError`.
 *
 * **Gotchas**
 *
 * - A bare "Connection is closed." is reported from the connection's last socket error when there is one, so that
 *   commands in flight during an ECONNRESET fail with `ConnectionReset`, not a vague `ConnectionClosed`.
 * - Values that are already a `RedisError` are returned as they are.
 * - Anything unknown becomes `ConnectionClosed { unexpected: true }` with a summary of the original as `cause`, so
 *   that no failure escapes as an untyped defect; it is neither transient nor a lost connection.
 * - The result never holds the original: its `cause` is a `CauseSummary` and its message is scrubbed (see
 *   `scrubCause`), so that it can be logged and serialized as it is.
 *
 * @since 0.1.0
 * @category classification
 */
export const classify = (cause: unknown, context: ClassifyContext): RedisError => {
  if (isRedisError(cause)) return cause
  const message = errorMessage(cause)
  if (isReplyError(cause)) {
    const code = replyCode(message)
    const retryAfter = unavailableCodes.get(code)
    return new ReplyError({
      message: code === "CROSSSLOT"
        ? `${message} (${context.command ?? "the command"} names keys in different hash slots: on Redis Cluster, ` +
          "put the keys in one slot with a hash tag, e.g. {user:42}:name and {user:42}:email)"
        : message,
      code,
      command: context.command,
      retryAfter: retryAfter === undefined ? undefined : Duration.millis(retryAfter),
      cause: scrubCause(cause)
    })
  }
  if (message === "Command timed out") {
    return commandTimedOut(context.command ?? "UNKNOWN", context.commandTimeout ?? Duration.zero)
  }
  const socket = classifySocketError(cause, context)
  if (socket !== undefined) return socket
  if (message.startsWith(NOT_WRITABLE) || message.startsWith("Cluster isn't ready")) {
    return new ConnectionClosed({
      message: `The connection is not open${where(context.command)}; the command was not sent`,
      command: context.command,
      sent: false,
      cause: scrubCause(cause)
    })
  }
  if (message === CONNECTION_CLOSED || message.startsWith(ABORTED) || message.startsWith("Reached the max retries")) {
    if (context.socketError !== undefined) {
      const fromSocket = classifySocketError(context.socketError, context)
      if (fromSocket !== undefined) return fromSocket
    }
    return new ConnectionClosed({
      message: `The connection closed${where(context.command)}${maybeApplied(context.sent)}`,
      command: context.command,
      sent: context.sent,
      cause: scrubCause(cause)
    })
  }
  return new ConnectionClosed({
    message: `Unexpected client failure${where(context.command)}: ${message}${maybeApplied(context.sent)}`,
    command: context.command,
    sent: context.sent,
    unexpected: true,
    cause: scrubCause(cause)
  })
}

/**
 * The server refused the `db` option's `SELECT` while a connection was opened: the index is beyond its `databases`
 * setting, or the ACL user may not run SELECT. The attempt fails with this error (and the connection is closed
 * unused), so that no command ever runs in another database than the one configured.
 *
 * @since 0.2.0
 * @category constructors
 */
export const databaseRefused = (db: number, cause: unknown): ReplyError => {
  const message = errorMessage(cause)
  return new ReplyError({
    message: `Redis refused SELECT ${db} (${message}): the db option asks for a database the server does not have ` +
      `(see its "databases" setting), or the ACL user may not run SELECT. The connection was closed unused`,
    code: replyCode(message),
    command: "SELECT",
    cause: scrubCause(cause)
  })
}
