/**
 * No password, user name or command argument in anything the library hands out (errors, connection states, health,
 * config, metrics, spans, log lines), in any rendering: `String`, `JSON.stringify`, `util.inspect`, `Cause.pretty` and
 * every stock logger of effect. Each case is provoked against a real redis-server. Also TLS: a certificate the client
 * trusts works; an untrusted CA, a host name mismatch and a port without TLS fail typed, with a message that says
 * what to check, and serialize.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Cause, Console, Effect, Exit, Logger, Metric, Option, Schema, Stream } from "effect"
import * as RedisCache from "../src/RedisCache.ts"
import * as RedisChannel from "../src/RedisChannel.ts"
import * as RedisStream from "../src/RedisStream.ts"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as util from "node:util"
import type { ConnectionState } from "../src/Health.ts"
import type { RedisOptions } from "../src/RedisConfig.ts"
import { type RedisError, scrubMessage } from "../src/RedisError.ts"
import * as RedisService from "../src/RedisService.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"
import { fastOptions, recorder } from "./helpers.ts"

const PASSWORD = "pw-Secret-91f3c"
const USERNAME = "acl-user-5d7e"
const TOKEN = "tok-Secret-2a6b8"
const KEY = "session:key-Secret-77c1"

// -----------------------------------------------------------------------------
// renderings
// -----------------------------------------------------------------------------

/** A Console that keeps what the real one would print, and a deep inspection of every object it is given. */
const captureConsole = (lines: Array<string>): Console.Console => {
  const write = (...args: ReadonlyArray<unknown>) => {
    lines.push(util.format(...args))
    for (const arg of args) if (typeof arg === "object" && arg !== null) lines.push(util.inspect(arg, { depth: null }))
  }
  const ignore = () => {}
  return {
    assert: (_condition, ...args) => write(...args),
    clear: ignore,
    count: ignore,
    countReset: ignore,
    debug: write,
    dir: write,
    dirxml: write,
    error: write,
    group: write,
    groupCollapsed: write,
    groupEnd: ignore,
    info: write,
    log: write,
    table: write,
    time: ignore,
    timeEnd: ignore,
    timeLog: (_label, ...args) => write(...args),
    trace: write,
    warn: write
  }
}

const stockLoggers = {
  defaultLogger: Logger.defaultLogger,
  consolePretty: Logger.consolePretty({ colors: false }),
  consolePrettyBrowser: Logger.consolePretty({ mode: "browser" }),
  consoleJson: Logger.consoleJson,
  consoleStructured: Logger.consoleStructured,
  consoleLogFmt: Logger.consoleLogFmt,
  formatSimple: Logger.withConsoleLog(Logger.formatSimple),
  formatLogFmt: Logger.withConsoleLog(Logger.formatLogFmt),
  formatJson: Logger.withConsoleLog(Logger.formatJson),
  formatStructured: Logger.withConsoleLog(Logger.formatStructured)
}

/** Every line each stock logger writes for `value`, logged as a message and, for errors, as a failure's cause. */
const logLines = (value: unknown): Effect.Effect<Array<string>> =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    for (const [name, logger] of Object.entries(stockLoggers)) {
      const before = lines.length
      yield* Effect.gen(function*() {
        yield* Effect.logError("redis", value)
        if (value instanceof Error) yield* Effect.logError(Cause.fail(value))
      }).pipe(
        Effect.provide(Logger.layer([logger])),
        Effect.provideService(Console.Console, captureConsole(lines))
      )
      assert.isAbove(lines.length, before, `${name} wrote nothing`)
    }
    return lines
  })

/** `String`, `JSON.stringify` (which must not throw), `util.inspect` at any depth, and `Cause.pretty` for errors. */
const renderings = (value: unknown): Array<string> => [
  String(value),
  JSON.stringify(value) ?? "undefined",
  util.inspect(value, { depth: null }),
  util.inspect(value, { depth: null, showHidden: true }),
  ...(value instanceof Error ? [Cause.pretty(Cause.fail(value))] : [])
]

/** Fails the test when any text holds any secret. */
const assertClean = (texts: ReadonlyArray<string>, secrets: ReadonlyArray<string>) => {
  for (const text of texts) {
    for (const secret of secrets) {
      if (text.includes(secret)) assert.fail(`"${secret}" leaked in:\n${text.slice(0, 2000)}`)
    }
  }
}

/** Everything the service hands out about a failure, rendered in every way, logs included. */
const exposed = (redis: RedisService.RedisServiceShape, values: ReadonlyArray<unknown>) =>
  Effect.gen(function*() {
    const health = yield* redis.health
    const metrics = yield* Metric.snapshot
    const all = [...values, health, redis.config, metrics]
    const texts = all.flatMap(renderings)
    for (const value of [...values, health, redis.config]) texts.push(...(yield* logLines(value)))
    return texts
  })

// -----------------------------------------------------------------------------
// connection attempts that fail: wrong credentials
// -----------------------------------------------------------------------------

/** A service whose connection attempts fail; the breaker stays closed so that commands wait (and report why). */
const failingService = (options: RedisOptions) =>
  RedisService.make({
    ...fastOptions,
    ...options,
    heartbeat: false,
    acquireTimeout: "200 millis",
    breaker: { failureThreshold: 1_000 }
  })

/** The states up to the first failed attempt, and the error a command then fails with. */
const firstFailure = (redis: RedisService.RedisServiceShape) =>
  Effect.gen(function*() {
    const states = yield* redis.states.pipe(
      Stream.takeUntil((state) => state._tag === "Reconnecting" && state.lastError !== undefined),
      Stream.runCollect
    )
    const failed = states[states.length - 1] as Extract<ConnectionState, { _tag: "Reconnecting" }>
    const error = yield* Effect.flip(redis.get("k"))
    return { states: Array.from(states), lastError: failed.lastError!, error }
  })

describe("no secret in what a failed connection attempt leaves behind", () => {
  const wrongPassword = (
    name: string,
    server: (s: RedisTestServer.RedisTestServer) => RedisOptions,
    secrets: ReadonlyArray<string>,
    setup?: (s: RedisTestServer.RedisTestServer) => Effect.Effect<unknown, unknown>
  ) =>
    it.live(name, () =>
      Effect.scoped(Effect.gen(function*() {
        const s = yield* RedisTestServer.make(setup === undefined ? { password: "the-right-one" } : {})
        if (setup !== undefined) yield* Effect.orDie(setup(s))
        const redis = yield* failingService(server(s))
        const { error, lastError, states } = yield* firstFailure(redis)
        assert.strictEqual(lastError._tag, "ReplyError")
        if (lastError._tag === "ReplyError") assert.strictEqual(lastError.code, "WRONGPASS")
        assert.strictEqual(error._tag, "ConnectionTimeout")
        assert.strictEqual((error as { cause?: RedisError }).cause?._tag, "ReplyError")
        const texts = yield* exposed(redis, [error, lastError, ...states])
        assertClean(texts, secrets)
        // What helps debugging is still there.
        assert.isTrue(texts.some((text) => text.includes("WRONGPASS")))
      })))

  wrongPassword(
    "a wrong password in the URL",
    (s) => ({ url: `redis://:${PASSWORD}@${s.host}:${s.port}` }),
    [PASSWORD]
  )
  wrongPassword("a wrong password option", (s) => ({ host: s.host, port: s.port, password: PASSWORD }), [PASSWORD])
  wrongPassword(
    "an ACL user name with a wrong password (URL and options)",
    (s) => ({ url: `redis://${USERNAME}:${PASSWORD}@${s.host}:${s.port}` }),
    [PASSWORD, USERNAME],
    (s) => s.command("ACL", "SETUSER", USERNAME, "on", ">the-right-one", "~*", "+@all")
  )
  wrongPassword(
    "an ACL user name option with a wrong password",
    (s) => ({ host: s.host, port: s.port, username: USERNAME, password: PASSWORD }),
    [PASSWORD, USERNAME],
    (s) => s.command("ACL", "SETUSER", USERNAME, "on", ">the-right-one", "~*", "+@all")
  )
})

// -----------------------------------------------------------------------------
// commands that fail: their arguments
// -----------------------------------------------------------------------------

describe("no command argument in what a failed command leaves behind", () => {
  const failedCommand = (
    name: string,
    run: (
      redis: RedisService.RedisServiceShape,
      server: RedisTestServer.RedisTestServer
    ) => Effect.Effect<unknown, RedisError>,
    expected: { readonly code: string; readonly text: string }
  ) =>
    it.live(name, () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* RedisTestServer.make()
        const redis = yield* RedisService.make({ ...fastOptions, url: server.url, awaitReady: true })
        const { spans, tracer } = recorder()
        const exit = yield* Effect.exit(Effect.withTracer(run(redis, server), tracer))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isSuccess(exit)) return
        const error = Cause.squash(exit.cause) as RedisError
        assert.strictEqual(error._tag, "ReplyError")
        if (error._tag === "ReplyError") assert.strictEqual(error.code, expected.code)
        const texts = yield* exposed(redis, [error])
        texts.push(Cause.pretty(exit.cause), util.inspect(spans, { depth: null }))
        assertClean(texts, [TOKEN, KEY])
        assert.include(String(error), expected.text)
        assert.isAbove(spans.length, 0)
      })))

  it.live("schema-typed paths: EncodeError, DecodeError, ValueTooLarge and the cache's logs carry no key or value", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisTestServer.make()
      const redis = yield* RedisService.make({ ...fastOptions, url: server.url })
      const provide = Effect.provideService(RedisService.RedisService, redis)
      // A Schema whose own failure message would quote the value it refuses.
      const Token = Schema.String.check(Schema.makeFilter((s: string) => s.length < 5 || `value "${s}" got refused`))
      const channel = RedisChannel.make({ name: KEY, schema: Token })
      const errors: Array<unknown> = []
      errors.push(yield* Effect.flip(provide(RedisChannel.publish(channel, TOKEN))))
      errors.push(yield* Effect.flip(provide(RedisCache.setAs(KEY, Token, TOKEN))))
      errors.push(yield* Effect.flip(provide(RedisCache.setAs(KEY, Schema.String, TOKEN, { maxValueBytes: 4 }))))
      errors.push(yield* Effect.flip(provide(RedisStream.add(KEY, Token, TOKEN))))
      yield* server.command("SET", KEY, JSON.stringify(TOKEN))
      errors.push(yield* Effect.flip(provide(RedisCache.getAs(KEY, Token))))
      assert.deepStrictEqual(errors.map((e) => (e as { _tag: string })._tag), [
        "EncodeError",
        "EncodeError",
        "ValueTooLarge",
        "EncodeError",
        "DecodeError"
      ])
      // Keys stay readable by code.
      assert.strictEqual((errors[1] as { key?: string }).key, KEY)
      assert.strictEqual((errors[2] as { key?: string }).key, KEY)
      // The cache logs an invalid stored value and a computed value that does not encode.
      const cache = yield* provide(RedisCache.make({ prefix: "c", schema: Token, ttl: "1 minute" }))
      yield* server.command("SET", `c:${KEY}`, JSON.stringify(TOKEN))
      const lines: Array<string> = []
      yield* cache.get(KEY, Effect.succeed(TOKEN)).pipe(
        Effect.provide(Logger.layer([stockLoggers.consoleLogFmt, stockLoggers.consoleJson])),
        Effect.provideService(Console.Console, captureConsole(lines))
      )
      assert.isAbove(lines.length, 0)
      const texts = [...(yield* exposed(redis, errors)), ...lines]
      assertClean(texts, [TOKEN, KEY])
    })))

  failedCommand(
    "OOM on SET key <token>",
    (redis, server) =>
      Effect.andThen(
        Effect.orDie(server.command("CONFIG", "SET", "maxmemory", "1")),
        redis.set(KEY, TOKEN)
      ),
    { code: "OOM", text: "command not allowed when used memory" }
  )
  failedCommand(
    "WRONGTYPE on LPUSH key <token>",
    (redis) => Effect.andThen(redis.set(KEY, "a string"), redis.command("LPUSH", [KEY, TOKEN])),
    { code: "WRONGTYPE", text: "WRONGTYPE" }
  )
  failedCommand(
    "an unknown command echoes its arguments: scrubbed",
    (redis) => redis.command("NOSUCHCOMMAND", [KEY, TOKEN]),
    { code: "ERR", text: "unknown command 'NOSUCHCOMMAND', with args beginning with: <redacted>" }
  )
  failedCommand(
    "CONFIG SET echoes the value it refuses: scrubbed",
    (redis) => redis.command("CONFIG", ["SET", "maxmemory", TOKEN]),
    { code: "ERR", text: "<redacted>" }
  )
  failedCommand(
    "ACL SETUSER echoes a bad modifier (a password-like value): scrubbed",
    (redis) => redis.command("ACL", ["SETUSER", "someone", TOKEN]),
    { code: "ERR", text: "ACL SETUSER" }
  )
  failedCommand(
    "NOGROUP echoes the stream key and the group: scrubbed",
    (redis) => redis.command("XREADGROUP", ["GROUP", TOKEN, "consumer", "STREAMS", KEY, ">"]),
    { code: "NOGROUP", text: "NOGROUP" }
  )
})

describe("scrubMessage", () => {
  it("keeps the code, the explanation and command names; drops echoed arguments", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      [
        "ERR unknown command 'foo', with args beginning with: 'secret' 'x' ",
        "ERR unknown command 'foo', with args beginning with: <redacted>"
      ],
      ["ERR wrong number of arguments for 'set' command", "ERR wrong number of arguments for 'set' command"],
      [
        "NOPERM this user has no permissions to run the 'select' command",
        "NOPERM this user has no permissions to run the 'select' command"
      ],
      [
        "OOM command not allowed when used memory > 'maxmemory'.",
        "OOM command not allowed when used memory > 'maxmemory'."
      ],
      [
        "ERR Invalid argument 'sec'ret' for CONFIG SET 'maxmemory' - argument couldn't be parsed into an integer",
        "ERR Invalid argument '<redacted>' - argument couldn't be parsed into an integer"
      ],
      [
        "ERR Error in ACL SETUSER modifier '>pw': Syntax error",
        "ERR Error in ACL SETUSER modifier '<redacted>': Syntax error"
      ],
      ["ERR a dangling 'quote and secret", "ERR a dangling '<redacted>"],
      [
        "WRONGPASS invalid username-password pair or user is disabled.",
        "WRONGPASS invalid username-password pair or user is disabled."
      ],
      ["Command queue state error. Last reply: secret-value", "Command queue state error. Last reply: <redacted>"],
      [
        "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: ",
        "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: "
      ]
    ]
    for (const [message, scrubbed] of cases) assert.strictEqual(scrubMessage(message), scrubbed)
  })
})

// -----------------------------------------------------------------------------
// TLS
// -----------------------------------------------------------------------------

interface Certificates {
  readonly dir: string
  readonly ca: string
  readonly otherCa: string
}

const openssl = (dir: string, ...args: ReadonlyArray<string>) =>
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] })

// A CA, a server certificate it signed for DNS:localhost only, and a second CA that signed nothing the server has.
const makeCertificates = Effect.acquireRelease(
  Effect.sync((): Certificates => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "redis-tls-"))
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(dir, "req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=Test CA")
    openssl(dir, "req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    Fs.writeFileSync(Path.join(dir, "server.ext"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
    openssl(
      dir,
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.crt",
      "-days",
      "2",
      "-extfile",
      "server.ext"
    )
    openssl(dir, "req", "-x509", ...ec, "-keyout", "other.key", "-out", "other.crt", "-days", "2", "-subj", "/CN=Other")
    const read = (file: string) => Fs.readFileSync(Path.join(dir, file), "utf8")
    return { dir, ca: read("ca.crt"), otherCa: read("other.crt") }
  }),
  ({ dir }) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const tlsServer = Effect.gen(function*() {
  const certificates = yield* makeCertificates
  const server = yield* RedisTestServer.make({
    tls: {
      certFile: Path.join(certificates.dir, "server.crt"),
      keyFile: Path.join(certificates.dir, "server.key"),
      caFile: Path.join(certificates.dir, "ca.crt")
    }
  })
  return { server, certificates, tlsPort: server.tlsPort! }
})

/** A loopback port that answers every connection with a line of plain text, owned by the scope. */
const plainTextPort = Effect.acquireRelease(
  Effect.callback<Net.Server>((resume) => {
    const server = Net.createServer((socket) => socket.end("-ERR this port does not speak TLS\r\n"))
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.sync(() => void server.close())
).pipe(Effect.map((server) => (server.address() as Net.AddressInfo).port))

describe("TLS", () => {
  it.live("the CA that signed the server's certificate, and its host name: a SET/GET round trip", () =>
    Effect.scoped(Effect.gen(function*() {
      const { certificates, tlsPort } = yield* tlsServer
      const redis = yield* RedisService.make({
        ...fastOptions,
        host: "127.0.0.1",
        port: tlsPort,
        tls: { ca: certificates.ca, servername: "localhost" },
        awaitReady: true
      })
      assert.isTrue(yield* redis.set("k", "over TLS"))
      assert.strictEqual(Option.getOrUndefined(yield* redis.get("k")), "over TLS")
    })))

  const rejected = (
    name: string,
    tls: (certificates: Certificates) => RedisOptions["tls"],
    expected: { readonly reason: string; readonly text: string },
    port: (tlsPort: number) => Effect.Effect<number, never, Scope.Scope> = Effect.succeed
  ) =>
    it.live(name, () =>
      Effect.scoped(Effect.gen(function*() {
        const { certificates, tlsPort } = yield* tlsServer
        const redis = yield* failingService({
          host: "127.0.0.1",
          port: yield* port(tlsPort),
          tls: tls(certificates)
        })
        const { error, lastError } = yield* firstFailure(redis)
        assert.strictEqual(lastError._tag, "TlsHandshakeFailed")
        if (lastError._tag === "TlsHandshakeFailed") {
          assert.strictEqual(lastError.reason, expected.reason)
          assert.include(lastError.message, expected.text)
        }
        // A command waiting for the connection says why there is none.
        assert.strictEqual(error._tag, "ConnectionTimeout")
        assert.include(error.message, expected.text)
        for (const value of [lastError, error]) {
          const json = JSON.parse(JSON.stringify(value))
          assert.strictEqual(json._tag, value._tag)
        }
        // Every rendering and stock logger copes with it (JSON.stringify threw on the circular cause of a TLS error).
        const texts = yield* exposed(redis, [error, lastError])
        assert.isTrue(texts.some((text) => text.includes(`TlsHandshakeFailed`) && text.includes(expected.text)))
      })))

  rejected(
    "a CA the client does not trust: TlsHandshakeFailed (untrusted-certificate)",
    (certificates) => ({ ca: certificates.otherCa, servername: "localhost" }),
    { reason: "untrusted-certificate", text: "not signed by a CA this client trusts" }
  )
  rejected(
    "a host name the certificate does not list: TlsHandshakeFailed (hostname-mismatch)",
    (certificates) => ({ ca: certificates.ca }),
    { reason: "hostname-mismatch", text: "not valid for the host name connected to" }
  )
  // (A plain redis-server port never answers a ClientHello, which has no newline: that attempt times out. A server that
  // answers in plain text is what a TLS client sees as "wrong version number".)
  rejected(
    "TLS to a port that answers in plain text: TlsHandshakeFailed (protocol)",
    (certificates) => ({ ca: certificates.ca, servername: "localhost" }),
    { reason: "protocol", text: "check that the port serves TLS" },
    () => plainTextPort
  )
})
