/**
 * The package as a user gets it: `npm pack` (its `prepack` builds dist/), installed into a fresh project outside the
 * repo next to `effect`, TypeScript 5 and `@types/node`; a consumer type-checked with TypeScript 5 and with this repo's
 * TypeScript 7 (node16 and bundler resolution), then run by the system's Node 20 against a real redis-server. Also
 * the post-build rewrite of `.ts` import paths in the emitted declarations (scripts/rewrite-dts-imports.ts).
 *
 * The install uses the registry (`--prefer-offline`: npm's cache when it has the versions). About 30 s.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile, execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { leftovers, rewrite, rewriteDir } from "../scripts/rewrite-dts-imports.ts"
import * as RedisTestServer from "../src/testing/RedisTestServer.ts"

const root = Path.resolve(import.meta.dirname, "..")
const versionOf = (name: string): string =>
  JSON.parse(Fs.readFileSync(Path.join(root, "node_modules", name, "package.json"), "utf8")).version

describe("scripts/rewrite-dts-imports.ts", () => {
  it("rewrites relative .ts import paths to .js, and nothing else", () => {
    const before = [
      `import { CircuitOpen } from "./RedisError.ts";`,
      `export * as Metrics from "./Metrics.ts";`,
      `export { type A } from '../internal/command.ts';`,
      `readonly health: Effect.Effect<import("./Metrics.ts").RedisHealth>;`,
      `import "./side-effect.ts";`,
      `import { m } from "./module.mts";`,
      `import type { Redis } from "ioredis";`,
      `import * as Effect from "effect/Effect";`,
      `import type { X } from "./types.d.ts";`,
      `import { y } from "./already.js";`,
      `import { z } from "some-package/file.ts";`,
      `const text = "./not-an-import.ts";`
    ].join("\n")
    assert.strictEqual(
      rewrite(before),
      [
        `import { CircuitOpen } from "./RedisError.js";`,
        `export * as Metrics from "./Metrics.js";`,
        `export { type A } from '../internal/command.js';`,
        `readonly health: Effect.Effect<import("./Metrics.js").RedisHealth>;`,
        `import "./side-effect.js";`,
        `import { m } from "./module.mjs";`,
        `import type { Redis } from "ioredis";`,
        `import * as Effect from "effect/Effect";`,
        `import type { X } from "./types.d.ts";`,
        `import { y } from "./already.js";`,
        `import { z } from "some-package/file.ts";`,
        `const text = "./not-an-import.ts";`
      ].join("\n")
    )
    assert.deepStrictEqual(leftovers(before), [
      "./RedisError.ts",
      "./Metrics.ts",
      "../internal/command.ts",
      "./Metrics.ts",
      "./side-effect.ts",
      "./module.mts"
    ])
    assert.deepStrictEqual(leftovers(rewrite(before)), [])
  })

  it("rewrites the declaration files of a directory, not its JavaScript or maps", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "rewrite-dts-"))
    try {
      Fs.mkdirSync(Path.join(dir, "testing"))
      const dts = `import { B } from "./B.ts";\n`
      Fs.writeFileSync(Path.join(dir, "A.d.ts"), dts)
      Fs.writeFileSync(Path.join(dir, "testing", "C.d.ts"), `export * from "../A.ts";\n`)
      Fs.writeFileSync(Path.join(dir, "D.d.ts"), `export {};\n`)
      Fs.writeFileSync(Path.join(dir, "A.js"), dts)
      Fs.writeFileSync(Path.join(dir, "A.d.ts.map"), dts)
      assert.deepStrictEqual(rewriteDir(dir), { files: 3, changed: 2 })
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "A.d.ts"), "utf8"), `import { B } from "./B.js";\n`)
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "testing", "C.d.ts"), "utf8"), `export * from "../A.js";\n`)
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "A.js"), "utf8"), dts)
      assert.strictEqual(Fs.readFileSync(Path.join(dir, "A.d.ts.map"), "utf8"), dts)
      assert.deepStrictEqual(rewriteDir(dir), { files: 3, changed: 0 }, "a second run changes nothing")
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

interface Run {
  readonly code: number
  readonly output: string
  readonly stdout: string
}

/** Runs a command; never rejects (the caller asserts on the code with the output in the message). */
const run = (file: string, args: ReadonlyArray<string>, options: { cwd: string; env?: NodeJS.ProcessEnv }) =>
  Effect.promise(() =>
    new Promise<Run>((resolve) =>
      execFile(file, args, { ...options, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : typeof error.code === "number" ? error.code : 1,
          output: `$ ${file} ${args.join(" ")}\n${stdout}${stderr}`,
          stdout
        }))
    )
  )

// The outer `npm test` sets npm_* variables (lifecycle, config); the inner npm commands run as if typed in a shell.
const cleanEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_")))

/** The system's node (not the Node 24 of node_modules/.bin that npm scripts put first on the PATH). */
const systemNode = (): { readonly path: string; readonly version: string } => {
  for (const dir of (process.env.PATH ?? "").split(Path.delimiter)) {
    if (dir === "" || dir.includes("node_modules")) continue
    const path = Path.join(dir, "node")
    if (!Fs.existsSync(path)) continue
    return { path, version: execFileSync(path, ["--version"], { encoding: "utf8" }).trim() }
  }
  return { path: process.execPath, version: process.version }
}

/** tsc's diagnostics, less those inside ioredis' own declarations (they import the untyped `redis-errors`). */
const diagnostics = (result: Run): ReadonlyArray<string> =>
  result.output.split("\n").filter((line) => /error TS\d+/.test(line) && !line.startsWith("node_modules/ioredis/"))

const consumer = `import { Effect, Option } from "effect"
import { getKey, type RedisError, RedisHealthCheck, RedisService, setKey } from "effect-redis-resilience"
import type { RedisTestServer } from "effect-redis-resilience/testing"

const program: Effect.Effect<Option.Option<string>, RedisError, RedisService> = Effect.gen(function*() {
  yield* setKey("consumer:greeting", "hello", { ttl: "1 minute" })
  return yield* getKey("consumer:greeting")
})

// @ts-expect-error a key is a string (were the package's types degraded to any, this would be no error)
export const wrong = getKey(42)

export type Server = RedisTestServer.RedisTestServer

const main = Effect.gen(function*() {
  const value = yield* program
  const readiness = yield* RedisHealthCheck.ready
  const testing = yield* Effect.promise(() => import("effect-redis-resilience/testing"))
  return {
    value: Option.getOrNull(value),
    ready: readiness.ok,
    connection: readiness.health?.connection ?? null,
    testKit: typeof testing.RedisTestServer.make
  }
}).pipe(Effect.provide(RedisService.layer({ url: process.env.REDIS_URL ?? "", awaitReady: true })))

Effect.runPromise(main).then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
`

const tsconfig = (resolution: "node16" | "bundler", emit: boolean) =>
  JSON.stringify({
    compilerOptions: {
      target: "ES2022",
      module: resolution === "node16" ? "node16" : "esnext",
      moduleResolution: resolution,
      strict: true,
      // Our declarations (and effect's) are checked too, as a consumer without skipLibCheck would.
      skipLibCheck: false,
      types: ["node"],
      ...(emit ? { outDir: "out" } : { noEmit: true })
    },
    files: ["consumer.ts"]
  })

describe("the package", () => {
  it.live("npm pack, installed in a fresh project: TypeScript 5 and 7 check a consumer, Node 20 runs it", () =>
    Effect.gen(function*() {
      const timings: Array<string> = []
      let last = Date.now()
      const mark = (step: string) => {
        timings.push(`${step} ${((Date.now() - last) / 1000).toFixed(1)} s`)
        last = Date.now()
      }
      const tmp = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-redis-resilience-pack-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      const env = cleanEnv()

      // A copy of the checkout (others may be building in this one), with its node_modules for the build.
      const checkout = Path.join(tmp, "checkout")
      Fs.mkdirSync(checkout)
      for (const entry of Fs.readdirSync(root)) {
        if (entry.startsWith(".") || entry === "node_modules" || entry === "dist") continue
        Fs.cpSync(Path.join(root, entry), Path.join(checkout, entry), { recursive: true })
      }
      Fs.symlinkSync(Path.join(root, "node_modules"), Path.join(checkout, "node_modules"), "dir")
      const packed = yield* run("npm", ["pack", "--pack-destination", tmp], { cwd: checkout, env })
      assert.strictEqual(packed.code, 0, packed.output)
      const tarball = Fs.readdirSync(tmp).find((name) => name.endsWith(".tgz"))
      assert.isDefined(tarball, packed.output)
      mark("pack (prepack build)")

      // A fresh project outside the repo.
      const project = Path.join(tmp, "consumer")
      Fs.mkdirSync(project)
      const manifest = { name: "consumer", private: true, type: "module" }
      Fs.writeFileSync(Path.join(project, "package.json"), JSON.stringify(manifest))
      const installed = yield* run("npm", [
        "install",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        Path.join(tmp, tarball!),
        `effect@${versionOf("effect")}`,
        `@types/node@${versionOf("@types/node")}`,
        "typescript@5"
      ], { cwd: project, env })
      assert.strictEqual(installed.code, 0, installed.output)
      mark("npm install")

      const pkg = Path.join(project, "node_modules", "effect-redis-resilience")
      for (const file of ["dist/index.js", "dist/index.d.ts", "dist/testing/index.js", "dist/testing/index.d.ts"]) {
        assert.isTrue(Fs.existsSync(Path.join(pkg, file)), `${file} is in the package`)
      }
      const declarations = Fs.readdirSync(Path.join(pkg, "dist"), { recursive: true, encoding: "utf8" })
        .filter((name) => name.endsWith(".d.ts"))
      const left = declarations.flatMap((name) =>
        leftovers(Fs.readFileSync(Path.join(pkg, "dist", name), "utf8")).map((path) => `${name}: ${path}`)
      )
      assert.deepStrictEqual(left, [], "no declaration imports a .ts path")
      assert.include(Fs.readFileSync(Path.join(pkg, "dist", "index.d.ts"), "utf8"), `from "./RedisService.js"`)

      Fs.writeFileSync(Path.join(project, "consumer.ts"), consumer)
      Fs.writeFileSync(Path.join(project, "tsconfig.json"), tsconfig("node16", true))
      Fs.writeFileSync(Path.join(project, "tsconfig.bundler.json"), tsconfig("bundler", false))
      const compilers = [
        ["5", Path.join(project, "node_modules", "typescript", "bin", "tsc")],
        ["7", Path.join(root, "node_modules", "typescript", "bin", "tsc")]
      ] as const
      for (const [major, tsc] of compilers) {
        const version = yield* run(process.execPath, [tsc, "--version"], { cwd: project, env })
        assert.match(version.stdout, new RegExp(`Version ${major}\\.`), version.output)
        for (const config of ["tsconfig.json", "tsconfig.bundler.json"]) {
          // TypeScript 7 only checks; TypeScript 5 emits out/consumer.js, which Node 20 runs below.
          const args = major === "5" ? ["-p", config] : ["-p", config, "--noEmit"]
          const checked = yield* run(process.execPath, [tsc, ...args], { cwd: project, env })
          assert.deepStrictEqual(diagnostics(checked), [], `TypeScript ${major}, ${config}:\n${checked.output}`)
        }
        mark(`TypeScript ${major}`)
      }

      const node = systemNode()
      assert.isAtLeast(Number(/^v(\d+)/.exec(node.version)?.[1]), 20, `${node.path} ${node.version}`)
      const server = yield* RedisTestServer.make({ password: "consumer-pw" })
      const ran = yield* run(node.path, ["out/consumer.js"], { cwd: project, env: { ...env, REDIS_URL: server.url } })
      assert.strictEqual(ran.code, 0, ran.output)
      assert.deepStrictEqual(JSON.parse(ran.stdout.trim()), {
        value: "hello",
        ready: true,
        connection: "ready",
        testKit: "function"
      })
      assert.strictEqual(yield* server.command("GET", "consumer:greeting"), "hello")
      mark(`run on ${node.version}`)
      console.log(`package test: ${timings.join(", ")}`)
    }).pipe(Effect.scoped), 180_000)
})
