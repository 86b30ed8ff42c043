/**
 * Exactly-once writes: a non-idempotent command run with an idempotency key runs inside a Lua wrapper that records
 * its reply under a marker key (same hash slot as the command's first key, with a TTL) atomically with the command.
 * A retry after a lost connection finds the marker and returns the recorded reply instead of applying it again, so
 * the wrapped command is idempotent and the layer retries it once on the next connection.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import { slotOf } from "./topology/slot.ts"
import { InvalidArgument } from "../RedisError.ts"
import * as RedisScript from "../RedisScript.ts"
import { type Command, keysOf, map } from "./command.ts"

// KEYS[1] is the marker, KEYS[2..] the command's keys; ARGV: ttl (ms), name, how many key positions, the positions
// (1-based, in the command's arguments), then the arguments, whose key positions are filled from KEYS so that
// keyPrefix applies to them. A command that fails records nothing (it can be tried again). An integer reply is
// recorded as its decimal text: cjson keeps 14 significant digits, which would replay a large counter rounded.
const lua = `
local done = redis.call('GET', KEYS[1])
if done then
  local recorded = cjson.decode(done)
  if recorded.i then return tonumber(recorded.i) end
  return recorded.v
end
local npos = tonumber(ARGV[3])
local at = {}
for i = 1, npos do at[tonumber(ARGV[3 + i])] = i + 1 end
local call = { ARGV[2] }
local first = 4 + npos
for i = first, #ARGV do
  local k = at[i - first + 1]
  if k then call[#call + 1] = KEYS[k] else call[#call + 1] = ARGV[i] end
end
local reply = redis.pcall(unpack(call))
if type(reply) == 'table' and reply.err then return reply end
local record
if type(reply) == 'number' then record = { i = string.format('%d', reply) } else record = { v = reply } end
redis.call('SET', KEYS[1], cjson.encode(record), 'PX', ARGV[1])
return reply
`

const sha = RedisScript.shaOf(lua)

/**
 * How long a recorded reply is kept by default: a retry later than this may apply the command again.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultIdempotencyTtl: Duration.Duration = Duration.hours(24)

const maxArguments = 7_000

const hashTag = (key: string): string | undefined => {
  const open = key.indexOf("{")
  if (open === -1) return undefined
  const close = key.indexOf("}", open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : undefined
}

const invalid = (message: string): InvalidArgument =>
  new InvalidArgument({ message, argument: "idempotencyKey" })

/**
 * The command wrapped so that it applies at most once per idempotency key (within `ttl`).
 *
 * @internal
 */
export const withIdempotencyKey = <A>(
  command: Command<A>,
  idempotencyKey: string,
  keyPrefix: string,
  ttl: Duration.Duration = defaultIdempotencyTtl
): Command<A> => {
  const fail = (error: InvalidArgument): Command<A> => ({ ...command, invalid: error })
  if (command.invalid !== undefined) return command
  if (idempotencyKey === "") return fail(invalid("The idempotency key is empty"))
  if (command.send !== undefined) return fail(invalid("Scripts take no idempotency key: make the script idempotent"))
  // Lua's unpack() takes at most ~8000 values: a larger command could not be run by the wrapper.
  if (command.args.length > maxArguments) {
    return fail(invalid(
      `${command.name} has ${command.args.length} arguments; with an idempotency key at most ${maxArguments}`
    ))
  }
  const keys = keysOf(command)
  const first = keys[0]
  if (first === undefined) return fail(invalid(`${command.name} has no key: an idempotency key needs one`))
  const full = keyPrefix + first
  // The marker shares the command key's slot (a Cluster runs the script on one node): its hash tag, or the whole key.
  const marker = `idempotency:{${hashTag(full) ?? full}}:${idempotencyKey}`
  if (slotOf(keyPrefix + marker) !== slotOf(full)) {
    return fail(invalid(`${command.name}: no marker key shares the slot of its key (a key with an unpaired brace)`))
  }
  const millis = Math.max(1, Math.ceil(Duration.toMillis(ttl)))
  const positions = command.keys.map((i) => i + 1)
  const args = command.args.map((arg, i) => (command.keys.includes(i) ? "" : arg))
  const tail = [millis, command.name, positions.length, ...positions, ...args]
  const script = RedisScript.toCommand<unknown>(
    { lua, idempotent: true, binary: command.binary },
    sha,
    [marker, ...keys],
    tail
  )
  return map(script, (reply) => command.decode(reply))
}
