/**
 * After `tsc -p tsconfig.build.json`: rewrites the relative `.ts` import paths that tsc leaves in the emitted `.d.ts`
 * files (`from "./RedisError.ts"`, `import("./Metrics.ts")`) to the `.js` files they describe. The sources import with
 * `.ts` extensions; `rewriteRelativeImportExtensions` fixes the emitted JavaScript, but no compiler option fixes the
 * declarations (TypeScript 7.0 keeps the paths). TypeScript 5.9 and 7 happen to resolve `./X.ts` to `./X.d.ts`;
 * TypeScript 4.9 rejects it (TS2691), and so may other tools that read declarations.
 *
 * Usage: `node --experimental-strip-types scripts/rewrite-dts-imports.ts [dir]` (default `dist`). Exits 1 if a
 * relative `.ts` path is still there afterwards.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

// `from "./x.ts"`, `import("./x.ts")`, `import "./x.ts"`; relative paths only, never `.d.ts` (a declaration is
// imported by its own name).
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.{1,2}\/[^"'\n]*?)(?<!\.d)\.([cm]?)ts\2/g

/** The declaration text with every relative `.ts` / `.mts` / `.cts` import path turned into `.js` / `.mjs` / `.cjs`. */
export const rewrite = (text: string): string =>
  text.replace(SPECIFIER, (_, head: string, quote: string, path: string, kind: string) =>
    `${head}${quote}${path}.${kind}js${quote}`)

/** The relative `.ts` import paths left in a declaration text. */
export const leftovers = (text: string): ReadonlyArray<string> =>
  [...text.matchAll(SPECIFIER)].map((match) => `${match[3]}.${match[4]}ts`)

/** Rewrites every `.d.ts` (and `.d.mts` / `.d.cts`) file under `dir`; returns how many files changed. */
export const rewriteDir = (dir: string): { readonly files: number; readonly changed: number } => {
  let files = 0
  let changed = 0
  for (const name of Fs.readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    if (!/\.d\.[cm]?ts$/.test(name)) continue
    const file = Path.join(dir, name)
    const text = Fs.readFileSync(file, "utf8")
    const next = rewrite(text)
    files++
    if (next !== text) {
      Fs.writeFileSync(file, next)
      changed++
    }
  }
  return { files, changed }
}

if (import.meta.main) {
  const dir = process.argv[2] ?? "dist"
  const { changed, files } = rewriteDir(dir)
  const left = Fs.readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => /\.d\.[cm]?ts$/.test(name))
    .flatMap((name) => leftovers(Fs.readFileSync(Path.join(dir, name), "utf8")).map((path) => `${name}: ${path}`))
  if (left.length > 0) {
    console.error(`rewrite-dts-imports: relative .ts imports left in ${dir}:\n${left.join("\n")}`)
    process.exit(1)
  }
  console.log(`rewrite-dts-imports: ${changed} of ${files} declaration files in ${dir} now import .js`)
}
