/**
 * The cost of each ioredis-based client's own code, with the network taken out: while this runs, ioredis'
 * `sendCommand` answers GET and SET in-process (the `Command` is still built and its reply still decoded, as on a real
 * connection), so what is left is ioredis' command path plus the wrapper. The figures are nanoseconds per operation on
 * one core, far less noisy than round trips to a server; they explain the throughput ratios.
 *
 * NodeRedis and the auto-pipelining clients are not measured here (not this code path).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import type { Client } from "./clients.ts"
import * as Throughput from "./throughput.ts"

/**
 * The clients measured here.
 *
 * @since 0.1.0
 * @category constants
 */
export const clientIds: ReadonlyArray<string> = ["raw", "bare", "layer", "layer-typed", "cockatiel", "opossum"]

interface Answerable {
  readonly name: string
  readonly promise: Promise<unknown>
  resolve(reply: unknown): void
}

type SendCommand = (this: Redis, command: Answerable, stream?: unknown) => unknown

const reply = Buffer.from("v".repeat(64))
const ok = Buffer.from("OK")

/** Answers GET and SET in-process on every ioredis client until the scope closes; other commands go to Redis. */
const answerInProcess = Effect.acquireRelease(
  Effect.sync(() => {
    const prototype = Redis.prototype as unknown as { sendCommand: SendCommand }
    const original = prototype.sendCommand
    prototype.sendCommand = function(command, stream) {
      const name = command.name.toLowerCase()
      if (name === "get" || name === "set") {
        command.resolve(name === "get" ? reply : ok)
        return command.promise
      }
      return original.call(this, command, stream)
    }
    return { prototype, original }
  }),
  ({ original, prototype }) =>
    Effect.sync(() => {
      prototype.sendCommand = original
    })
)

/**
 * Runs GET and SET at concurrency 64 with in-process replies, in alternating rounds. Runs should be long (hundreds of
 * milliseconds): a wrapper that promotes garbage to the old generation pays for it in old-generation collections, which
 * come every few hundred milliseconds at these rates and would mostly fall outside short runs.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (
  clients: ReadonlyArray<Client>,
  options: Omit<Throughput.ThroughputOptions, "concurrencies">
) =>
  Effect.scoped(Effect.gen(function*() {
    yield* answerInProcess
    return yield* Throughput.run(clients.filter((client) => clientIds.includes(client.id)), {
      ...options,
      concurrencies: [64]
    })
  }))
