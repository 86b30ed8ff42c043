/**
 * Every example in the docs type-checks: fenced ```ts blocks in README.md and docs/*.md, and in the JSDoc of
 * src/**\/*.ts. Each block becomes its own module under node_modules/.cache/doc-examples/, where one `tsc` run checks
 * them all against the repo's compiler settings, with `effect-redis-resilience` (and `/testing`) mapped to src/ the
 * way the package.json "exports" publish them. A broken import or a renamed API fails here, named by file and line.
 *
 * A block that is deliberately not a whole program is skipped when marked: `<!-- fragment -->` on the line before the
 * fence in markdown, `// fragment` as the first line inside a JSDoc block.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("..", import.meta.url))

/** The module specifiers an example may import: what a user of the package has, nothing from this repo. */
const ALLOWED_SPECIFIER = /^(?:effect(?:\/.+)?|@effect\/.+|effect-redis-resilience(?:\/testing)?|node:.+|ioredis)$/

interface Block {
  /** Repo-relative path of the file the block is in. */
  readonly file: string
  /** Line of the opening fence. */
  readonly fence: number
  /** The code, one entry per line; `lines[i]` is source line `sourceLine[i]`, shifted right by `indent[i]` columns. */
  readonly lines: ReadonlyArray<string>
  readonly sourceLine: ReadonlyArray<number>
  readonly indent: ReadonlyArray<number>
  readonly fragment: boolean
}

const FENCE = /^(\s*)(`{3,})\s*(\S*)/
const TS_FENCE = /^\s*```(?:ts|typescript)(?:\s.*)?$/
const CLOSING_FENCE = /^\s*```\s*$/
const isTypeScript = (info: string) => info === "ts" || info === "typescript"

const markdownBlocks = (file: string, text: string): Array<Block> => {
  const source = text.split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < source.length; i++) {
    const open = FENCE.exec(source[i]!)
    if (open === null) continue
    const fence = i + 1
    const [, fenceIndent, ticks, info] = open
    // Other fences are skipped whole, so a ```ts inside a ````md block is not taken for code.
    const closing = new RegExp(`^\\s*${ticks}\`*\\s*$`)
    const lines: Array<string> = []
    const sourceLine: Array<number> = []
    const indent: Array<number> = []
    while (++i < source.length && !closing.test(source[i]!)) {
      const line = source[i]!
      const strip = Math.min(fenceIndent!.length, line.length - line.trimStart().length)
      lines.push(line.slice(strip))
      sourceLine.push(i + 1)
      indent.push(strip)
    }
    if (!isTypeScript(info!)) continue
    const fragment = fence > 1 && source[fence - 2]!.trim() === "<!-- fragment -->"
    blocks.push({ file, fence, lines, sourceLine, indent, fragment })
  }
  return blocks
}

const JSDOC_LINE = /^\s*\* ?/

const jsdocBlocks = (file: string, text: string): Array<Block> => {
  const source = text.split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < source.length; i++) {
    const line = source[i]!
    if (!JSDOC_LINE.test(line) || !TS_FENCE.test(line.replace(JSDOC_LINE, ""))) continue
    const fence = i + 1
    const lines: Array<string> = []
    const sourceLine: Array<number> = []
    const indent: Array<number> = []
    while (++i < source.length) {
      const prefix = JSDOC_LINE.exec(source[i]!)
      if (prefix === null) break // the comment ended without a closing fence
      const code = source[i]!.slice(prefix[0].length)
      if (CLOSING_FENCE.test(code)) break
      lines.push(code)
      sourceLine.push(i + 1)
      indent.push(prefix[0].length)
    }
    blocks.push({ file, fence, lines, sourceLine, indent, fragment: lines[0]?.trim() === "// fragment" })
  }
  return blocks
}

const collect = (): Array<Block> => {
  const read = (file: string) => Fs.readFileSync(Path.join(ROOT, file), "utf8")
  const markdown = [
    "README.md",
    ...Fs.readdirSync(Path.join(ROOT, "docs")).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)
  ]
  const sources = Fs.readdirSync(Path.join(ROOT, "src"), { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".ts"))
    .map((name) => `src/${name.split(Path.sep).join("/")}`)
  return [
    ...markdown.sort().flatMap((file) => markdownBlocks(file, read(file))),
    ...sources.sort().flatMap((file) => jsdocBlocks(file, read(file)))
  ]
}

/** `import ... from "x"`, `export ... from "x"`, `import "x"`, `import("x")`, with the line (0-based) they end on. */
const specifiers = (code: string): Array<{ readonly specifier: string; readonly line: number }> =>
  [
    ...code.matchAll(/^\s*(?:import|export)\s[\w\s{},*$]*?\bfrom\s*["']([^"']+)["']/gm),
    ...code.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
    ...code.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g)
  ].map((match) => ({
    specifier: match[1]!,
    line: code.slice(0, match.index + match[0].length).split("\n").length - 1
  }))

const blocks = collect()
const checked = blocks.filter((block) => !block.fragment)
const files = [...new Set(blocks.map((block) => block.file))]

/** The generated module of each checked block, by file name in the work directory. */
const moduleName = (block: Block) => `${block.file.replace(/[/.]/g, "_")}_L${block.fence}.ts`

interface Diagnostic {
  readonly file: string
  readonly line: number
  readonly column: number
  readonly message: string
}

const workDir = Path.join(ROOT, "node_modules", ".cache", "doc-examples", `run-${process.pid}`)
let inBlocks = new Map<string, Array<Diagnostic>>()
let elsewhere: Array<string> = []

/** Writes one module per checked block, and a package.json that makes them ESM outside this package's scope. */
const writeModules = () => {
  Fs.rmSync(workDir, { recursive: true, force: true })
  Fs.mkdirSync(workDir, { recursive: true })
  // Outside the package's scope, `effect-redis-resilience/...` cannot resolve to ./dist by self-reference.
  Fs.writeFileSync(Path.join(workDir, "package.json"), JSON.stringify({ type: "module", private: true }))
  for (const block of checked) {
    // `export {}` keeps a block without imports a module, so its top-level names do not collide with another's.
    Fs.writeFileSync(Path.join(workDir, moduleName(block)), `${block.lines.join("\n")}\nexport {}\n`)
  }
}

interface TscDiagnostic {
  /** The generated module, or undefined for a diagnostic elsewhere (src/, the tsconfig). */
  readonly module: string | undefined
  readonly line: number
  readonly column: number
  readonly code: number
  readonly text: string
}

/** Runs tsc over `modules`, with the repo's settings and the package's public entry points mapped to src/. */
const tsc = async (modules: ReadonlyArray<string>): Promise<Array<TscDiagnostic>> => {
  const toRoot = (path: string) => Path.relative(workDir, Path.join(ROOT, path)).split(Path.sep).join("/")
  const tsconfig = {
    extends: toRoot("tsconfig.json"),
    compilerOptions: {
      noEmit: true,
      // An example may declare a value only to show it.
      noUnusedLocals: false,
      noUnusedParameters: false,
      // What package.json "exports" publishes; any other subpath does not resolve.
      paths: {
        "effect-redis-resilience": [toRoot("src/index.ts")],
        "effect-redis-resilience/testing": [toRoot("src/testing/index.ts")]
      }
    },
    include: [],
    files: modules
  }
  Fs.writeFileSync(Path.join(workDir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
  const bin = Path.join(Path.dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc")
  const output = await new Promise<string>((resolve) =>
    execFile(
      process.execPath,
      [bin, "-p", Path.join(workDir, "tsconfig.json"), "--pretty", "false"],
      { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => resolve(error === null ? "" : `${stdout}${stderr}` || String(error))
    )
  )
  const diagnostics: Array<TscDiagnostic> = []
  for (const line of output.split("\n")) {
    if (line.trim() === "") continue
    const last = diagnostics[diagnostics.length - 1]
    if (/^\s/.test(line) && last !== undefined) {
      diagnostics[diagnostics.length - 1] = { ...last, text: `${last.text}\n${line}` }
      continue
    }
    const match = /^(.*?)\((\d+),(\d+)\): (error TS(\d+): .*)$/.exec(line)
    const path = match === null ? undefined : Path.resolve(ROOT, match[1]!)
    diagnostics.push({
      module: path !== undefined && Path.dirname(path) === workDir ? Path.basename(path) : undefined,
      line: match === null ? 0 : Number(match[2]),
      column: match === null ? 0 : Number(match[3]),
      code: match === null ? 0 : Number(match[5]),
      text: match === null ? line : path === undefined || Path.dirname(path) === workDir ? match[4]! : line
    })
  }
  return diagnostics
}

/**
 * Type-checks every block in one tsc run, and keeps the diagnostics mapped back to the doc lines they come from.
 * tsc stops at syntax errors, so when some block does not parse, a second run checks the blocks that do.
 */
const typeCheck = async () => {
  writeModules()
  const modules = checked.map(moduleName)
  let diagnostics = await tsc(modules)
  const syntaxOnly = diagnostics.length > 0 && diagnostics.every((d) => d.module !== undefined && d.code < 2000)
  if (syntaxOnly) {
    const unparsed = new Set(diagnostics.map((d) => d.module))
    diagnostics = [...diagnostics, ...await tsc(modules.filter((module) => !unparsed.has(module)))]
  }
  const byModule = new Map(checked.map((block) => [moduleName(block), block]))
  inBlocks = new Map()
  elsewhere = []
  for (const diagnostic of diagnostics) {
    const block = diagnostic.module === undefined ? undefined : byModule.get(diagnostic.module)
    const index = diagnostic.line - 1
    if (block === undefined || index >= block.lines.length) {
      elsewhere.push(block === undefined ? diagnostic.text : `${block.file}: ${diagnostic.text}`)
      continue
    }
    const list = inBlocks.get(block.file) ?? []
    list.push({
      file: block.file,
      line: block.sourceLine[index]!,
      column: diagnostic.column + block.indent[index]!,
      message: diagnostic.text
    })
    inBlocks.set(block.file, list)
  }
}

const format = (diagnostic: Diagnostic) => {
  const code = Fs.readFileSync(Path.join(ROOT, diagnostic.file), "utf8").split("\n")[diagnostic.line - 1]?.trim()
  return `${diagnostic.file}:${diagnostic.line}:${diagnostic.column}: ${diagnostic.message}\n    > ${code}`
}

describe("doc examples", () => {
  beforeAll(typeCheck, 120_000)
  afterAll(() => Fs.rmSync(workDir, { recursive: true, force: true }))

  it("finds the examples", () => {
    assert.isAbove(checked.length, 0)
    assert.include(files, "README.md")
  })

  describe("type-check", () => {
    for (const file of files) {
      const count = checked.filter((block) => block.file === file).length
      const skipped = blocks.filter((block) => block.file === file).length - count
      it(`${file} (${count} blocks${skipped > 0 ? `, ${skipped} fragments skipped` : ""})`, () => {
        const errors = (inBlocks.get(file) ?? []).sort((a, b) => a.line - b.line || a.column - b.column)
        if (errors.length > 0) {
          const report = errors.map(format).join("\n\n")
          assert.fail(`${errors.length} type error(s) in the examples of ${file}:\n\n${report}`)
        }
      })
    }
  })

  it("tsc reports nothing outside the examples", () => {
    if (elsewhere.length > 0) assert.fail(`tsc, outside the example blocks:\n${elsewhere.join("\n")}`)
  })

  it("examples import only the package's entry points, effect, node: and ioredis", () => {
    const offending = blocks.flatMap((block) =>
      specifiers(block.lines.join("\n"))
        .filter(({ specifier }) => !ALLOWED_SPECIFIER.test(specifier))
        .map(({ line, specifier }) => `${block.file}:${block.sourceLine[line]}: "${specifier}"`)
    )
    if (offending.length > 0) {
      assert.fail(
        `examples import modules a user of the package does not have (allowed: effect, effect/*, @effect/*, ` +
          `effect-redis-resilience, effect-redis-resilience/testing, node:*, ioredis):\n${offending.join("\n")}`
      )
    }
  })
})
