/**
 * The command traits table (src/internal/commands/traits.ts): the public `isIdempotent` answers at least as the
 * hand-written list it replaces did, the special cases read their flags where the command takes them, and every
 * constructor of the `Command` catalog carries the flags the table gives for its name and arguments, pinned here
 * constructor by constructor so that flipping an entry of the table fails. Pure: no Redis.
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import * as Command from "../src/Command.ts"
import { commandNames, isIdempotent, isReadOnly } from "../src/internal/commands/traits.ts"
import * as RedisScript from "../src/RedisScript.ts"

// The list `RedisService.isIdempotent` answered from in 0.1.0 (before the table).
const previousList = [
  "GET", "MGET", "EXISTS", "TTL", "PTTL", "TYPE", "STRLEN", "GETRANGE", "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS",
  "HLEN", "HEXISTS", "LRANGE", "LLEN", "LINDEX", "SMEMBERS", "SISMEMBER", "SCARD", "ZRANGE", "ZSCORE", "ZCARD",
  "ZRANK", "SCAN", "HSCAN", "SSCAN", "ZSCAN", "KEYS", "DBSIZE", "PING", "ECHO", "INFO", "XRANGE", "XREVRANGE", "XLEN",
  "SET", "MSET", "DEL", "UNLINK", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "HSET", "HDEL", "SADD",
  "SREM", "ZADD", "ZREM"
]

// Names the table knows that no constructor of the catalog builds: the previous list's cursor commands and KEYS, and
// EVAL (the catalog's scripts run as EVALSHA).
const notBuilt = ["SCAN", "HSCAN", "SSCAN", "ZSCAN", "KEYS", "EVAL"]

/** r: a read (idempotent, read-only); i: an idempotent write; w: a write never resent. */
type Expected = "r" | "i" | "w"

// A broad sample of every constructor of the catalog (each group file), with the flags it must carry.
const samples: Record<string, ReadonlyArray<readonly [Expected, Command.Command<unknown>]>> = {
  // strings
  get: [["r", Command.get("k")], ["r", Command.get("NX")]],
  getBuffer: [["r", Command.getBuffer("k")]],
  set: [
    ["i", Command.set("k", "v")],
    ["i", Command.set("k", "v", { ttl: "1 second" })],
    ["i", Command.set("k", "v", { keepTtl: true })],
    ["i", Command.set("k", "v", { mode: "XX" })],
    ["w", Command.set("k", "v", { mode: "NX" })],
    ["w", Command.set("k", "v", { mode: "NX", ttl: 100 })],
    ["i", Command.set("NX", "GET")],
    ["i", Command.set("k", Buffer.from("NX"))]
  ],
  setGet: [["w", Command.setGet("k", "v")], ["w", Command.setGet("k", "v", { mode: "XX", ttl: 5 })]],
  setnx: [["w", Command.setnx("k", "v")]],
  getdel: [["w", Command.getdel("k")]],
  getdelBuffer: [["w", Command.getdelBuffer("k")]],
  getex: [
    ["i", Command.getex("k")],
    ["i", Command.getex("k", { ttl: "1 minute" })],
    ["i", Command.getex("k", { persist: true })]
  ],
  getexBuffer: [["i", Command.getexBuffer("k", { ttl: 10 })]],
  mset: [["i", Command.mset({ a: "1", b: "NX" })]],
  msetnx: [["w", Command.msetnx({ a: "1" })]],
  mget: [["r", Command.mget("a", "b")], ["r", Command.mget(["a"])]],
  mgetBuffer: [["r", Command.mgetBuffer("a")]],
  incr: [["w", Command.incr("n")]],
  incrby: [["w", Command.incrby("n", 2)]],
  incrbyfloat: [["w", Command.incrbyfloat("n", 0.5)]],
  decr: [["w", Command.decr("n")]],
  decrby: [["w", Command.decrby("n", 2)]],
  incrbyBigint: [["w", Command.incrbyBigint("n", 2n)]],
  incrBigint: [["w", Command.incrBigint("n")]],
  decrbyBigint: [["w", Command.decrbyBigint("n", 2)]],
  decrBigint: [["w", Command.decrBigint("n")]],
  append: [["w", Command.append("k", "v")]],
  strlen: [["r", Command.strlen("k")]],
  getrange: [["r", Command.getrange("k", 0, -1)]],
  getrangeBuffer: [["r", Command.getrangeBuffer("k", 0, -1)]],
  setrange: [["i", Command.setrange("k", 2, "v")]],
  // keys
  del: [["i", Command.del("a")], ["i", Command.del("a", "b")], ["i", Command.del(["a", "b"])]],
  unlink: [["i", Command.unlink("a")]],
  exists: [["r", Command.exists("a", "b")]],
  touch: [["r", Command.touch("a")]],
  expire: [
    ["i", Command.expire("a", "1 second")],
    ["w", Command.expire("a", "1 second", "NX")],
    ["i", Command.expire("a", "1 second", "XX")],
    ["i", Command.expire("a", "1 second", "GT")],
    ["w", Command.expire("a", "1 second", "LT")]
  ],
  pexpire: [
    ["i", Command.pexpire("a", 100)],
    ["w", Command.pexpire("a", 100, "NX")],
    ["i", Command.pexpire("a", 100, "XX")],
    ["i", Command.pexpire("a", 100, "GT")],
    ["w", Command.pexpire("a", 100, "LT")]
  ],
  expireat: [
    ["i", Command.expireat("a", 1_700_000_000_000)],
    ["w", Command.expireat("a", new Date(1_700_000_000_000), "NX")],
    ["i", Command.expireat("a", 1_700_000_000_000, "XX")],
    ["w", Command.expireat("a", 1_700_000_000_000, "GT")],
    ["w", Command.expireat("a", 1_700_000_000_000, "LT")]
  ],
  pexpireat: [
    ["i", Command.pexpireat("a", 1_700_000_000_000)],
    ["w", Command.pexpireat("a", 1_700_000_000_000, "NX")],
    ["i", Command.pexpireat("a", 1_700_000_000_000, "XX")],
    ["w", Command.pexpireat("a", 1_700_000_000_000, "GT")],
    ["w", Command.pexpireat("a", 1_700_000_000_000, "LT")]
  ],
  ttl: [["r", Command.ttl("a")]],
  pttl: [["r", Command.pttl("a")]],
  persist: [["i", Command.persist("a")]],
  type: [["r", Command.type("a")]],
  rename: [["w", Command.rename("a", "b")]],
  renamenx: [["w", Command.renamenx("a", "b")]],
  copy: [
    ["w", Command.copy("a", "b")],
    ["i", Command.copy("a", "b", { replace: true })],
    ["w", Command.copy("a", "b", { db: 2 })],
    ["i", Command.copy("a", "b", { db: 2, replace: true })],
    ["w", Command.copy("REPLACE", "REPLACE")]
  ],
  // hashes
  hset: [["i", Command.hset("h", { f: "v" })]],
  hsetnx: [["w", Command.hsetnx("h", "f", "v")]],
  hget: [["r", Command.hget("h", "f")]],
  hgetBuffer: [["r", Command.hgetBuffer("h", "f")]],
  hmget: [["r", Command.hmget("h", "f", "g")]],
  hmgetBuffer: [["r", Command.hmgetBuffer("h", "f")]],
  hgetall: [["r", Command.hgetall("h")]],
  hgetallBuffer: [["r", Command.hgetallBuffer("h")]],
  hdel: [["i", Command.hdel("h", "f")]],
  hexists: [["r", Command.hexists("h", "f")]],
  hincrby: [["w", Command.hincrby("h", "f", 1)]],
  hincrbyfloat: [["w", Command.hincrbyfloat("h", "f", 1.5)]],
  hkeys: [["r", Command.hkeys("h")]],
  hvals: [["r", Command.hvals("h")]],
  hlen: [["r", Command.hlen("h")]],
  hstrlen: [["r", Command.hstrlen("h", "f")]],
  hrandfield: [
    ["r", Command.hrandfield("h")],
    ["r", Command.hrandfield("h", 2)],
    ["r", Command.hrandfield("h", -2, { withValues: true })]
  ],
  // lists
  lpush: [["w", Command.lpush("l", "x")]],
  rpush: [["w", Command.rpush("l", "x", "y")]],
  lpushx: [["w", Command.lpushx("l", "x")]],
  rpushx: [["w", Command.rpushx("l", "x")]],
  lpop: [["w", Command.lpop("l")], ["w", Command.lpop("l", 2)]],
  lpopBuffer: [["w", Command.lpopBuffer("l")], ["w", Command.lpopBuffer("l", 2)]],
  rpop: [["w", Command.rpop("l")], ["w", Command.rpop("l", 2)]],
  rpopBuffer: [["w", Command.rpopBuffer("l")]],
  lrange: [["r", Command.lrange("l", 0, -1)]],
  lrangeBuffer: [["r", Command.lrangeBuffer("l", 0, -1)]],
  llen: [["r", Command.llen("l")]],
  lindex: [["r", Command.lindex("l", 0)]],
  lindexBuffer: [["r", Command.lindexBuffer("l", -1)]],
  lset: [["i", Command.lset("l", 0, "x")]],
  lrem: [["i", Command.lrem("l", 0, "x")], ["w", Command.lrem("l", 1, "x")], ["w", Command.lrem("l", -2, "0")]],
  ltrim: [
    ["i", Command.ltrim("l", 0, 99)],
    ["w", Command.ltrim("l", 0, -1)],
    ["i", Command.ltrim("l", 0, 0)],
    ["i", Command.ltrim("l", -100, -1)],
    ["w", Command.ltrim("l", 1, -1)],
    ["w", Command.ltrim("l", -5, -2)],
    ["w", Command.ltrim("l", 2, 5)]
  ],
  linsert: [["w", Command.linsert("l", "BEFORE", "p", "x")]],
  lpos: [["r", Command.lpos("l", "x")], ["r", Command.lpos("l", "x", { count: 0, rank: -1 })]],
  lmove: [["w", Command.lmove("a", "b", "LEFT", "RIGHT")]],
  lmoveBuffer: [["w", Command.lmoveBuffer("a", "b", "RIGHT", "LEFT")]],
  lmpop: [["w", Command.lmpop(["a", "b"], "LEFT")], ["w", Command.lmpop(["a"], "RIGHT", 3)]],
  lmpopBuffer: [["w", Command.lmpopBuffer(["a"], "LEFT")]],
  // sets
  sadd: [["i", Command.sadd("s", "m")]],
  srem: [["i", Command.srem("s", "m", "n")]],
  smembers: [["r", Command.smembers("s")]],
  smembersBuffer: [["r", Command.smembersBuffer("s")]],
  sismember: [["r", Command.sismember("s", "m")]],
  smismember: [["r", Command.smismember("s", "m", "n")]],
  scard: [["r", Command.scard("s")]],
  spop: [["w", Command.spop("s")], ["w", Command.spop("s", 2)]],
  srandmember: [["r", Command.srandmember("s")], ["r", Command.srandmember("s", -3)]],
  sinter: [["r", Command.sinter("a", "b")]],
  sunion: [["r", Command.sunion(["a", "b"])]],
  sdiff: [["r", Command.sdiff("a", "b")]],
  sinterstore: [["i", Command.sinterstore("d", "a", "b")]],
  sunionstore: [["i", Command.sunionstore("d", "a")]],
  sdiffstore: [["i", Command.sdiffstore("d", ["a", "b"])]],
  smove: [["w", Command.smove("a", "b", "m")]],
  // sorted sets
  zadd: [
    ["i", Command.zadd("z", [{ score: 1, member: "a" }])],
    ["i", Command.zadd("z", [{ score: 1, member: "a" }], { mode: "NX" })],
    ["i", Command.zadd("z", [{ score: 1, member: "a" }], { mode: "XX", compare: "GT", ch: true })],
    ["i", Command.zadd("z", [{ score: Infinity, member: "INCR" }])],
    ["i", Command.zadd("INCR", [{ score: 2, member: "b" }])]
  ],
  zaddIncr: [["w", Command.zaddIncr("z", 1, "a")], ["w", Command.zaddIncr("z", 1, "a", { mode: "XX", compare: "LT" })]],
  zrange: [
    ["r", Command.zrange("z", 0, -1)],
    ["r", Command.zrange("z", 0, -1, { withScores: true })],
    ["r", Command.zrange("z", "-inf", "+inf", { by: "SCORE", rev: true, limit: { offset: 0, count: 10 } })]
  ],
  zrangeBuffer: [["r", Command.zrangeBuffer("z", 0, -1)]],
  zrangebyscore: [
    ["r", Command.zrangebyscore("z", 0, 10)],
    ["r", Command.zrangebyscore("z", 0, 10, { withScores: true })]
  ],
  zincrby: [["w", Command.zincrby("z", 1, "a")]],
  zrank: [["r", Command.zrank("z", "a")]],
  zrevrank: [["r", Command.zrevrank("z", "a")]],
  zscore: [["r", Command.zscore("z", "a")]],
  zmscore: [["r", Command.zmscore("z", "a", "b")]],
  zcard: [["r", Command.zcard("z")]],
  zcount: [["r", Command.zcount("z", 0, Infinity)]],
  zrem: [["i", Command.zrem("z", "a")]],
  zremrangebyrank: [["w", Command.zremrangebyrank("z", 0, 0)]],
  zremrangebyscore: [["i", Command.zremrangebyscore("z", 0, 1)]],
  zremrangebylex: [["i", Command.zremrangebylex("z", "[a", "[b")]],
  zpopmin: [["w", Command.zpopmin("z")], ["w", Command.zpopmin("z", 2)]],
  zpopmax: [["w", Command.zpopmax("z")], ["w", Command.zpopmax("z", 2)]],
  // streams
  xadd: [
    ["w", Command.xadd("s", "*", { f: "v" })],
    ["w", Command.xadd("s", "1-1", { f: "v" }, { nomkstream: true })],
    ["w", Command.xadd("s", "*", { f: "v" }, { trim: { maxlen: 10, approximate: true } })]
  ],
  xrange: [["r", Command.xrange("s")], ["r", Command.xrange("s", "-", "+", 10)]],
  xrevrange: [["r", Command.xrevrange("s")]],
  xlen: [["r", Command.xlen("s")]],
  xdel: [["i", Command.xdel("s", "1-1")]],
  xtrim: [["i", Command.xtrim("s", { maxlen: 10 })]],
  xack: [["i", Command.xack("s", "g", "1-1")]],
  xgroupCreate: [["w", Command.xgroupCreate("s", "g")], ["w", Command.xgroupCreate("s", "g", "0", { mkstream: true })]],
  xgroupDestroy: [["i", Command.xgroupDestroy("s", "g")]],
  xgroupCreateConsumer: [["i", Command.xgroupCreateConsumer("s", "g", "c")]],
  xgroupDelConsumer: [["i", Command.xgroupDelConsumer("s", "g", "c")]],
  xgroupSetId: [["i", Command.xgroupSetId("s", "g", "$")]],
  xpending: [["r", Command.xpending("s", "g")], ["r", Command.xpending("s", "g", { count: 10, idle: "1 second" })]],
  xclaim: [["w", Command.xclaim("s", "g", "c", 0, ["1-1"])]],
  xclaimJustId: [["w", Command.xclaimJustId("s", "g", "c", 0, ["1-1"])]],
  xautoclaim: [["w", Command.xautoclaim("s", "g", "c", "1 second")]],
  xinfoStream: [["r", Command.xinfoStream("s")]],
  xinfoGroups: [["r", Command.xinfoGroups("s")]],
  xinfoConsumers: [["r", Command.xinfoConsumers("s", "g")]],
  // geo
  geoadd: [
    ["i", Command.geoadd("g", [{ longitude: 2.35, latitude: 48.85, member: "paris" }])],
    ["i", Command.geoadd("g", [{ longitude: 2.35, latitude: 48.85, member: "paris" }], { mode: "NX", ch: true })]
  ],
  geopos: [["r", Command.geopos("g", "paris")]],
  geodist: [["r", Command.geodist("g", "a", "b", "km")]],
  geosearch: [["r", Command.geosearch("g", { from: { member: "paris" }, by: { radius: 10, unit: "km" } })]],
  geosearchWith: [
    ["r", Command.geosearchWith("g", { from: { longitude: 2, latitude: 48 }, by: { width: 1, height: 1, unit: "m" } })]
  ],
  // bitmaps
  setbit: [["w", Command.setbit("b", 1, 1)]],
  getbit: [["r", Command.getbit("b", 1)]],
  bitcount: [["r", Command.bitcount("b")], ["r", Command.bitcount("b", { start: 0, end: 7, unit: "BIT" })]],
  bitpos: [["r", Command.bitpos("b", 1)]],
  // hyperloglog
  pfadd: [["i", Command.pfadd("h", "a")]],
  pfcount: [["r", Command.pfcount("h", "i")]],
  pfmerge: [["i", Command.pfmerge("d", "h", "i")]],
  // pub/sub
  publish: [["w", Command.publish("c", "m")]],
  spublish: [["w", Command.spublish("c", "m")]],
  // server
  ping: [["r", Command.ping()], ["r", Command.ping("hello")]],
  echo: [["r", Command.echo("hello")]],
  time: [["r", Command.time()]],
  dbsize: [["r", Command.dbsize()]],
  info: [["r", Command.info()], ["r", Command.info("memory")]]
}

const flagsOf = (expected: Expected) => ({ idempotent: expected !== "w", readOnly: expected === "r" })

describe("isIdempotent", () => {
  it("answers as the previous list for every name on it, whatever the case", () => {
    for (const name of previousList) {
      assert.isTrue(isIdempotent(name), name)
      assert.isTrue(isIdempotent(name.toLowerCase()), name)
    }
  })

  it("SET is not idempotent with GET or NX, ZADD not with INCR; flags in any case, as strings or bytes", () => {
    assert.isTrue(isIdempotent("SET", ["k", "v"]))
    assert.isTrue(isIdempotent("SET", ["k", "v", "PX", 100, "XX"]))
    assert.isTrue(isIdempotent("SET", ["k", "v", "KEEPTTL"]))
    assert.isFalse(isIdempotent("SET", ["k", "v", "NX"]))
    assert.isFalse(isIdempotent("set", ["k", "v", "get"]))
    assert.isFalse(isIdempotent("SET", ["k", "v", "EX", 10, "nx"]))
    assert.isFalse(isIdempotent("SET", ["k", "v", Buffer.from("GET")]))
    assert.isTrue(isIdempotent("ZADD", ["z", 1, "a"]))
    assert.isTrue(isIdempotent("ZADD", ["z", "NX", "CH", 1, "a"]))
    assert.isFalse(isIdempotent("ZADD", ["z", "INCR", 1, "a"]))
    assert.isFalse(isIdempotent("zadd", ["z", "xx", "incr", 1, "a"]))
  })

  it("reads a flag only where the command takes it: a key, a value or a member may be named like one", () => {
    assert.isTrue(isIdempotent("SET", ["NX", "GET"]))
    assert.isTrue(isIdempotent("SET", ["k", "NX", "PX", 5]))
    assert.isTrue(isIdempotent("ZADD", ["INCR", 1, "a"]))
    assert.isTrue(isIdempotent("ZADD", ["z", 1, "INCR", 2, "b"]))
    assert.isFalse(isIdempotent("COPY", ["a", "b"]))
    assert.isFalse(isIdempotent("COPY", ["REPLACE", "b"]))
    assert.isTrue(isIdempotent("COPY", ["a", "b", "DB", 1, "REPLACE"]))
  })

  it("the catalog's argument-dependent writes: expiry conditions, LREM, LTRIM, XGROUP subcommands", () => {
    assert.isTrue(isIdempotent("EXPIRE", ["k", 10]))
    assert.isTrue(isIdempotent("EXPIRE", ["k", 10, "XX"]))
    assert.isTrue(isIdempotent("PEXPIRE", ["k", 10, "gt"]))
    assert.isFalse(isIdempotent("EXPIRE", ["k", 10, "NX"]))
    assert.isFalse(isIdempotent("PEXPIRE", ["k", 10, "LT"]))
    assert.isTrue(isIdempotent("EXPIREAT", ["k", 1_700_000_000, "XX"]))
    assert.isFalse(isIdempotent("PEXPIREAT", ["k", 1_700_000_000_000, "GT"]))
    assert.isTrue(isIdempotent("LREM", ["l", 0, "x"]))
    assert.isTrue(isIdempotent("LREM", ["l", "0", "x"]))
    assert.isFalse(isIdempotent("LREM", ["l", 2, "x"]))
    assert.isFalse(isIdempotent("LREM", ["l", "", "x"]))
    assert.isTrue(isIdempotent("LTRIM", ["l", 0, 99]))
    assert.isTrue(isIdempotent("LTRIM", ["l", "-100", "-1"]))
    assert.isFalse(isIdempotent("LTRIM", ["l", 1, -1]))
    assert.isFalse(isIdempotent("LTRIM", ["l"]))
    assert.isTrue(isIdempotent("XGROUP", ["destroy", "s", "g"]))
    assert.isFalse(isIdempotent("XGROUP", ["CREATE", "s", "g", "$"]))
    assert.isFalse(isIdempotent("XGROUP", []))
  })

  it("counters, pushes, pops, publishing, scripts and unknown commands are not idempotent", () => {
    for (const name of ["INCR", "LPUSH", "RPOP", "SPOP", "XADD", "PUBLISH", "EVAL", "EVALSHA", "SETNX", "GETDEL"]) {
      assert.isFalse(isIdempotent(name), name)
    }
    for (const name of ["FOO", "", "constructor", "__proto__", "toString", "FLUSHALL", "MULTI"]) {
      assert.isFalse(isIdempotent(name), name)
      assert.isFalse(isReadOnly(name), name)
    }
  })
})

describe("the Command catalog takes its flags from the table", () => {
  it("every constructor the Command module exports is sampled", () => {
    const helpers = ["make", "map", "isCommand", "keysOf", "withSchema"]
    const constructors = Object.entries(Command)
      .filter(([name, value]) => typeof value === "function" && !helpers.includes(name))
      .map(([name]) => name)
    assert.deepStrictEqual(constructors.filter((name) => !(name in samples)), [])
    assert.isAbove(constructors.length, 150)
  })

  it("each sampled command carries the flags pinned for it", () => {
    const wrong: Array<string> = []
    for (const [constructor, commands] of Object.entries(samples)) {
      commands.forEach(([expected, command], i) => {
        const actual = { idempotent: command.idempotent, readOnly: command.readOnly }
        if (JSON.stringify(actual) !== JSON.stringify(flagsOf(expected))) wrong.push(`${constructor}[${i}]`)
      })
    }
    assert.deepStrictEqual(wrong, [])
  })

  it("each sampled command's flags are what isIdempotent and isReadOnly answer for its name and arguments", () => {
    const wrong: Array<string> = []
    for (const [constructor, commands] of Object.entries(samples)) {
      commands.forEach(([, command], i) => {
        const at = `${constructor}[${i}]`
        if (command.idempotent !== isIdempotent(command.name, command.args)) wrong.push(`${at} idempotent`)
        if (command.readOnly !== isReadOnly(command.name)) wrong.push(`${at} readOnly`)
      })
    }
    assert.deepStrictEqual(wrong, [])
  })

  it("the table lists every name the catalog builds, and builds every name it lists but a few", () => {
    const built = new Set(Object.values(samples).flatMap((commands) => commands.map(([, command]) => command.name)))
    assert.deepStrictEqual([...built].filter((name) => !commandNames.includes(name)), [])
    assert.deepStrictEqual(commandNames.filter((name) => !built.has(name)).sort(), [...notBuilt].sort())
  })

  it("combinators keep the flags; a script keeps the one its author declares", () => {
    assert.isTrue(Command.withSchema(Command.get("n"), Schema.FiniteFromString).idempotent)
    assert.isFalse(Command.map(Command.incr("n"), String).idempotent)
    const script = RedisScript.make({ lua: "return redis.call('GET', KEYS[1])", keys: 1, idempotent: true })
    const command = script(["k"])
    assert.strictEqual(command.name, "EVALSHA")
    assert.isTrue(command.idempotent)
    assert.isFalse(isIdempotent("EVALSHA", command.args))
    assert.isFalse(RedisScript.make({ lua: "return 1", keys: 0 })([]).idempotent)
  })
})
