/**
 * Redis Cluster hash slots: which of the 16384 slots a key (or a sharded pub/sub channel) belongs to.
 *
 * The sharded subscriber routes `SSUBSCRIBE` to the master that owns a channel's slot itself, so it needs the same
 * function the server uses: CRC16 (XMODEM) of the key, or of its hash tag (the part between the first `{` and the
 * next `}`, when that part is not empty), modulo 16384.
 *
 * @since 0.1.0
 */

/**
 * The number of hash slots of a Redis Cluster.
 *
 * @since 0.1.0
 * @category constants
 */
export const slotCount = 16_384

const table: ReadonlyArray<number> = Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 8
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  return crc
})

const crc16 = (bytes: Uint8Array, start: number, end: number): number => {
  let crc = 0
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ bytes[i]!) & 0xff]!
  return crc
}

const encoder = new TextEncoder()

/**
 * The hash slot of a key or channel name, as `CLUSTER KEYSLOT` computes it (UTF-8 bytes, hash tags honoured).
 *
 * @since 0.1.0
 * @category slots
 */
export const slotOf = (key: string): number => asciiSlot(key) ?? utf8Slot(key)

// An ASCII key (the common case) is its own UTF-8: hashed from its char codes, with no buffer made per call. The tag
// is the part between the first `{` and the next `}`; `undefined` for a key with any other character.
const asciiSlot = (key: string): number | undefined => {
  let open = -1
  let close = -1
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    if (c > 0x7f) return undefined
    if (open === -1) {
      if (c === 0x7b) open = i
    } else if (close === -1 && c === 0x7d) close = i
  }
  const tagged = open !== -1 && close > open + 1
  const end = tagged ? close : key.length
  let crc = 0
  for (let i = tagged ? open + 1 : 0; i < end; i++) {
    crc = ((crc << 8) & 0xffff) ^ table[((crc >> 8) ^ key.charCodeAt(i)) & 0xff]!
  }
  return crc % slotCount
}

const utf8Slot = (key: string): number => {
  const bytes = encoder.encode(key)
  const open = bytes.indexOf(0x7b) // {
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1) // }
    if (close > open + 1) return crc16(bytes, open + 1, close) % slotCount
  }
  return crc16(bytes, 0, bytes.length) % slotCount
}
