/**
 * Publishing (subscribing runs on `RedisSubscriber`). Never retried after a lost connection: a retry would deliver
 * the message twice. Channels are not keys (ioredis does not add `keyPrefix` to them).
 *
 * @internal
 */
import { type Command, integer } from "../command.ts"
import { type Value, write } from "./arguments.ts"

/** PUBLISH: how many subscribers received the message (on a Cluster, of the node it was sent to). Not idempotent. */
export const publish = (channel: string, message: Value): Command<number> =>
  write("PUBLISH", [channel, message], [], integer("PUBLISH"))

/** SPUBLISH: publishes to a shard channel (Redis 7); how many subscribers received it. Not idempotent. */
export const spublish = (shardChannel: string, message: Value): Command<number> =>
  write("SPUBLISH", [shardChannel, message], [], integer("SPUBLISH"))
