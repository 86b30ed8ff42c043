/**
 * One Redis server at `host:port`: one connection, which is the master; a lost connection is the connection.
 *
 * @internal
 */
import { Redis as IORedis } from "ioredis"
import type { ResolvedRedisConfig } from "../../RedisConfig.ts"
import type { Client, Connector } from "./connector.ts"
import { connectionOptions, describeNode, select } from "./options.ts"

export const make = (config: ResolvedRedisConfig): Connector => single(config, "standalone", {
  makeClient: (overrides) => new IORedis<"legacy">(connectionOptions(config, overrides)),
  // READONLY from the one server is a plain reply (a replica was configured as the target): nothing moved.
  mastersMove: false,
  serverAttributes: { "db.namespace": String(config.db), "server.address": config.host, "server.port": config.port },
  watchCycle: undefined
})

/** What one server and Sentinel share: one `Redis` client, which is the master. */
export const single = (
  config: ResolvedRedisConfig,
  name: "standalone" | "sentinel",
  own: Pick<Connector, "makeClient" | "mastersMove" | "serverAttributes" | "watchCycle">
): Connector => {
  const only = (client: Client) => client as IORedis
  return {
    name,
    ...own,
    prepare: () => {},
    select: (client, socketError) => select(only(client), config.db, socketError),
    masters: (client) => [only(client)],
    nodes: (client) => [describeNode(only(client), "master")],
    cluster: () => undefined,
    slotted: false,
    corks: true,
    shardRoutes: (client, channels) => [{ target: client, keys: channels }],
    shardsOnClient: true
  }
}
