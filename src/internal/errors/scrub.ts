/**
 * The string side of redaction: what Redis' and ioredis' messages echo of a command's arguments is removed, and the
 * small readers `classify` uses on foreign errors (their code, their message scrubbed, their reply code).
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Predicate from "effect/Predicate"

export const REDACTED = "<redacted>"

// Quoted names Redis' messages may keep: a command name ("unknown command 'foo'", "wrong number of arguments for
// 'set' command", "no permissions to run the 'select' command") and the maxmemory setting of an OOM.
const keptQuotes = /(unknown command |arguments for |to run the |> )'([A-Za-z0-9_|.:-]{1,64})'/g
// Everything after these is an echo of the command's arguments or of a reply (ioredis' queue state error).
const echoTails = /(with args beginning with:|Last reply:)[\s\S]*$/

/**
 * Removes what a Redis (or ioredis) error message echoes of a command's arguments, keeping the rest: the reply code,
 * Redis' explanation, the command name.
 *
 * **Details**
 *
 * - `... with args beginning with: 'a' 'b'` loses everything after the colon.
 * - Any other quoted text (`Invalid argument 'x' for CONFIG SET`, `No such key 'k' or consumer group 'g'`, Lua's
 *   `near 'x'`) becomes `'<redacted>'`, from the first quote to the last, so that an argument holding a quote cannot
 *   split the redaction. Apostrophes inside words (`couldn't`) are not quotes. Command names in the known phrases
 *   above, and `'maxmemory'`, stay.
 *
 * @internal
 */
export const scrubMessage = (message: string): string => {
  const kept: Array<string> = []
  // Known-safe quoted names are set aside (as \u0000n\u0000) while every other quoted span is redacted.
  let text = message.replace(echoTails, (_, phrase: string) => `${phrase} ${REDACTED}`).replace(
    keptQuotes,
    (_, before: string, name: string) => `${before}\u0000${kept.push(name) - 1}\u0000`
  )
  const quotes: Array<number> = []
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== "'") continue
    // An apostrophe between two letters is part of a word, not a quote.
    if (/\p{L}/u.test(text[i - 1] ?? "") && /\p{L}/u.test(text[i + 1] ?? "")) continue
    quotes.push(i)
  }
  if (quotes.length === 1) text = `${text.slice(0, quotes[0]!)}'${REDACTED}`
  else if (quotes.length > 1) {
    text = `${text.slice(0, quotes[0]!)}'${REDACTED}'${text.slice(quotes[quotes.length - 1]! + 1)}`
  }
  return kept.length === 0 ? text : text.replace(/\u0000(\d+)\u0000/g, (_, n: string) => `'${kept[Number(n)]}'`)
}


// The message of a decoding failure (a Schema issue, a thrown Error), its quoted and reported values redacted.
export function decodeCause(cause: unknown): { readonly name: string; readonly message: string } {
  const squashed = Cause.isCause(cause) ? Cause.squash(cause) : cause
  const name = squashed instanceof Error ? squashed.name : "DecodeFailure"
  const text = squashed instanceof Error ? squashed.message : String(squashed)
  return { name, message: redactValues(text) }
}

/**
 * A Schema failure's text with the values it may quote redacted: quoted strings, and what follows "got", "actual" or
 * "value". What the Schema expected stays.
 */
export const redactValues = (text: string): string =>
  scrubMessage(text)
    .replace(/"(?:[^"\\]|\\.)*"/g, `"${REDACTED}"`)
    .replace(/\b(got|actual|value) (?!<redacted>)[^\n,)]*/gi, (_, word: string) => `${word} ${REDACTED}`)


export const errorCode = (u: unknown): string | undefined =>
  Predicate.hasProperty(u, "code") && typeof u.code === "string" ? u.code : undefined

export const errorMessage = (u: unknown): string =>
  scrubMessage(Predicate.hasProperty(u, "message") && typeof u.message === "string" ? u.message : String(u))

export const isReplyError = (u: unknown): boolean =>
  Predicate.hasProperty(u, "name") && (u.name === "ReplyError" || u.name === "ParserError")

export const replyCode = (message: string): string => {
  const match = /^([A-Z][A-Z_-]*)\b/.exec(message)
  return match?.[1] ?? "ERR"
}

export const where = (command: string | undefined): string => command === undefined ? "" : ` while running ${command}`

export const maybeApplied = (sent: boolean): string =>
  sent ? "; the command was sent and may have been applied" : "; the command was not sent"

