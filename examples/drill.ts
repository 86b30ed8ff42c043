/**
 * `npm start`: a chaos drill that shows, in under a minute, what the layer does when Redis misbehaves.
 *
 * It starts an embedded redis-server (or uses `REDIS_URL`) behind a chaos proxy, runs a workload of concurrent fibers
 * through `RedisService` and `RedisSubscriber`, injects faults one after the other (connection resets, added latency,
 * a blackhole, refused connections, a frozen server, a restart), shows a live dashboard, and ends with a report whose
 * checks set the exit code: 0 when every check holds, 1 otherwise (or when the drill cannot run), 130 on Ctrl-C.
 *
 * ```sh
 * npm start                                  # 45 s, every fault
 * npm start -- --scenario outage --duration 20
 * npm run soak -- --duration 600             # random faults every 1-2 s for 10 minutes
 * npm start -- --json > report.json          # the report as JSON, no dashboard
 * ```
 *
 * See docs/drill.md for each phase and each check.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { CliConfig, CliError, Command, Flag, GlobalFlag } from "effect/cli"
import * as Drill from "./drill/Drill.ts"
import * as Plan from "./drill/Plan.ts"
import * as Report from "./drill/Report.ts"

const duration = Flag.Int("duration").pipe(
  Flag.withDescription(
    "Total length of the drill in seconds (at least 14 for --scenario all, 10 for soak, 4 for one fault)"
  ),
  Flag.withDefault(45)
)

const scenario = Flag.Literals("scenario", Plan.scenarios).pipe(
  Flag.withDescription(
    "Which faults: all of them in turn, soak (random faults every 1-2 s for the whole duration), or one repeated " +
      "(freeze and restart need the embedded redis-server)"
  ),
  Flag.withDefault("all" as const)
)

const json = Flag.Boolean("json").pipe(
  Flag.withDescription("Print the report as JSON on stdout, without the dashboard"),
  Flag.withDefault(false)
)

const redisUrl = Config.String("REDIS_URL").pipe(
  Config.option,
  Config.map(Option.filter((url) => url.trim() !== "")),
  Config.map(Option.getOrUndefined)
)

const drill = Command.make("drill", { duration, scenario, json }, (flags) =>
  Effect.gen(function*() {
    const url = yield* redisUrl.pipe(
      Effect.mapError((error) => new Drill.DrillError({ message: `Cannot read REDIS_URL: ${error.message}` }))
    )
    const report = yield* Effect.scoped(Drill.run({
      durationSeconds: flags.duration,
      scenario: flags.scenario,
      display: flags.json ? "none" : process.stdout.isTTY ? "tty" : "plain",
      redisUrl: url
    }))
    yield* Console.log(flags.json ? JSON.stringify(report, null, 2) : `\n${Report.renderText(report)}`)
    if (!report.passed) {
      const failed = report.checks.filter((check) => !check.passed).map((check) => check.name)
      return yield* new CliError.UserError({ userMessage: `The drill failed: ${failed.join(", ")}`, cause: failed })
    }
  }).pipe(
    Effect.catchTag(
      "DrillError",
      (error) => Effect.fail(new CliError.UserError({ userMessage: error.message, cause: error }))
    ),
    Effect.onInterrupt(() => Console.error("\nInterrupted: the drill stopped, its connections and servers are closed."))
  )).pipe(
    Command.withDescription(
      "Chaos drill for effect-redis-resilience: a workload through RedisService and RedisSubscriber while a proxy " +
        "injects faults; a live dashboard, then a report with checks (exit code 1 if one fails). Uses REDIS_URL " +
        "when set, else an embedded redis-server."
    )
  )

Command.run(drill, { version: "0.1.0" }).pipe(
  Effect.provide(Layer.mergeAll(
    NodeServices.layer,
    CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Version] })
  )),
  NodeRuntime.runMain
)
