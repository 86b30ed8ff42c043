/**
 * The codes `classify` and `isTransient` recognize: ioredis' messages for a lost connection, Node's socket and TLS
 * codes, and the Redis replies that mean "the server cannot serve now" (with how long to wait).
 *
 * @internal
 */

/** What a TLS handshake failure was about (`TlsHandshakeFailed.reason`). */
export type TlsReason = "untrusted-certificate" | "hostname-mismatch" | "expired-certificate" | "protocol"

/** Reply codes that mean "not now", with the wait they suggest in milliseconds. */
export const unavailableCodes: ReadonlyMap<string, number> = new Map([
  ["LOADING", 1000],
  ["TRYAGAIN", 100],
  ["CLUSTERDOWN", 500],
  ["MASTERDOWN", 500]
])

/** Messages ioredis uses when a command fails because the connection is gone. */
export const CONNECTION_CLOSED = "Connection is closed."
export const NOT_WRITABLE = "Stream isn't writeable"
export const ABORTED = "Command aborted due to connection close"

export const resetCodes: ReadonlySet<string> = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED"])
export const unreachableCodes: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL"
])

// Node's (OpenSSL's) certificate verification codes, by what went wrong.
export const certificateCodes: ReadonlyMap<string, TlsReason> = new Map([
  ["DEPTH_ZERO_SELF_SIGNED_CERT", "untrusted-certificate"],
  ["SELF_SIGNED_CERT_IN_CHAIN", "untrusted-certificate"],
  ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "untrusted-certificate"],
  ["UNABLE_TO_GET_ISSUER_CERT", "untrusted-certificate"],
  ["UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "untrusted-certificate"],
  ["CERT_UNTRUSTED", "untrusted-certificate"],
  ["CERT_SIGNATURE_FAILURE", "untrusted-certificate"],
  ["CERT_REJECTED", "untrusted-certificate"],
  ["CERT_REVOKED", "untrusted-certificate"],
  ["INVALID_CA", "untrusted-certificate"],
  ["ERR_TLS_CERT_ALTNAME_INVALID", "hostname-mismatch"],
  ["HOSTNAME_MISMATCH", "hostname-mismatch"],
  ["CERT_HAS_EXPIRED", "expired-certificate"],
  ["CERT_NOT_YET_VALID", "expired-certificate"]
])

export const tlsReason = (code: string): TlsReason | undefined =>
  certificateCodes.get(code) ??
    (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || code === "EPROTO" ? "protocol" : undefined)

export const tlsAdvice: Record<TlsReason, string> = {
  "untrusted-certificate": "the server's TLS certificate was rejected: it is not signed by a CA this client trusts. " +
    "Pass the CA that signed it as the tls.ca option (PEM), and check that the server presents its full chain",
  "hostname-mismatch": "the server's TLS certificate was rejected: it is not valid for the host name connected to. " +
    "Connect with a host name the certificate lists (its subjectAltName), or set tls.servername to one of them",
  "expired-certificate": "the server's TLS certificate was rejected: it has expired or is not valid yet. " +
    "Renew it on the server, and check the clocks",
  "protocol": "the TLS handshake failed: check that the port serves TLS (redis-server --tls-port) and that client " +
    "and server share a TLS version and cipher"
}

