/* SPDX-License-Identifier: MIT */
/* TLS on memory buffers: the OpenSSL 3 glue of the io_uring loop. Nothing here touches a
 * socket. The loop receives ciphertext with io_uring and hands it to aegis__tls_feed();
 * aegis__tls_read() decrypts into the connection's plaintext buffer; aegis__tls_write()
 * encrypts plaintext; aegis__tls_take() gives the ciphertext to send with io_uring. Every
 * call returns at once (memory BIOs never block), so one thread drives any number of
 * connections. The rest of net/ sees only plaintext.
 *
 * Contexts. A context holds the node's certificate chain and key and the cluster CA:
 *   - peer context (require_cert): both sides present a certificate that must chain to
 *     the CA and be valid now (OpenSSL's chain verification: signature, notBefore,
 *     notAfter, the extendedKeyUsage purpose of each role); TLS 1.3 only;
 *   - client-port context: the server presents its certificate; a client certificate is
 *     optional, and verified against the CA when one is presented; TLS 1.2 or 1.3.
 * No session tickets, no session cache, no renegotiation.
 *
 * Node identity. A peer certificate names its node id in a subjectAltName URI of the
 * exact form "aegis://node/<id>", <id> in decimal (1..2^64-1, no sign, no leading zero).
 * The certificate must carry exactly one such URI (other SAN entries, such as
 * DNS:localhost, are allowed and ignored). The subject CN ("aegis-node-<id>" from
 * scripts/make-certs.sh) is for people and is not read.
 *
 * Threads. A context is shared read-only once built; a connection belongs to the thread
 * that drives it. OpenSSL's error queue is per thread and is cleared before each call. */
#ifndef AEGIS_NET_TLS_H
#define AEGIS_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <aegis/types.h>

struct aegis_tls_ctx;
struct aegis_tls;

#define AEGIS_TLS_URI_PREFIX "aegis://node/"
/* Room for an error line from this module. */
#define AEGIS_TLS_ERR_BYTES 200u

/* Build a context from PEM files: @cert (the node's certificate, optionally followed by
 * intermediates), @key (its private key), @ca (the cluster CA certificates). With
 * @require_cert every connection must present a certificate (peers); without, client
 * certificates are optional (the client port). Returns 0, or AEGIS_EINVAL with a line for
 * the operator in @errmsg ("tls: cannot read certificate x.crt: ...", "tls: key does not
 * match certificate"), or AEGIS_ENOMEM. */
int aegis__tls_ctx_create(struct aegis_tls_ctx **out, const char *cert, const char *key,
                          const char *ca, bool require_cert, char *errmsg, size_t errmsg_bytes);
void aegis__tls_ctx_destroy(struct aegis_tls_ctx *ctx);

/* A connection's TLS state, as the server (@server, the accepting side) or the client.
 * Returns 0, or AEGIS_ENOMEM. */
int aegis__tls_new(struct aegis_tls **out, struct aegis_tls_ctx *ctx, bool server);
void aegis__tls_free(struct aegis_tls *t);

/* Hand @len bytes received from the socket to TLS (copied). Returns 0 or AEGIS_ENOMEM. */
int aegis__tls_feed(struct aegis_tls *t, const uint8_t *in, size_t len);

/* Ciphertext fed and not yet decrypted, plus plaintext decrypted and not yet read. */
size_t aegis__tls_in_pending(struct aegis_tls *t);

/* Advance the handshake with what was fed. Returns 1 when it is complete (the peer's
 * certificate, if any, verified), 0 while it needs more input (send what
 * aegis__tls_out_pending reports first), or AEGIS_ETLS with the reason in @why. */
int aegis__tls_handshake(struct aegis_tls *t, char *why, size_t why_bytes);

/* Decrypt into @out (@cap > 0 bytes) after the handshake. Returns 0 with *@n bytes (0:
 * nothing complete yet, feed more), 1 when the other side closed the TLS session
 * (close_notify), or AEGIS_ETLS with the reason in @why. */
int aegis__tls_read(struct aegis_tls *t, uint8_t *out, size_t cap, size_t *n, char *why,
                    size_t why_bytes);

/* Encrypt @len bytes of plaintext (copied into 16 KiB records; call aegis__tls_push to
 * close the last, partial record). Returns 0, or AEGIS_ETLS / AEGIS_ENOMEM. */
int aegis__tls_write(struct aegis_tls *t, const void *buf, size_t len);
int aegis__tls_push(struct aegis_tls *t);

/* Ciphertext waiting to be sent, and taking up to @cap bytes of it into @out (returns
 * how many). */
size_t aegis__tls_out_pending(struct aegis_tls *t);
size_t aegis__tls_take(struct aegis_tls *t, uint8_t *out, size_t cap);

/* The node id that the verified peer certificate names (see the top of this file).
 * Returns 0, or AEGIS_EACCES with the reason in @why (no certificate; no aegis URI;
 * several; malformed). Call after the handshake. */
int aegis__tls_peer_node_id(struct aegis_tls *t, aegis_node_id *id, char *why,
                            size_t why_bytes);

/* Parse "aegis://node/<id>" (@len bytes, not NUL-terminated). Returns 0 and the id, or
 * AEGIS_EINVAL when @s is not exactly that form with an id in 1..2^64-1. Pure. */
int aegis__tls_parse_node_uri(const char *s, size_t len, aegis_node_id *id);

#endif /* AEGIS_NET_TLS_H */
