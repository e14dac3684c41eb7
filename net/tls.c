/* SPDX-License-Identifier: MIT */
/* OpenSSL 3 on memory BIOs; the contract and the node-id rule are in tls.h.
 *
 * Each connection has an SSL with two memory BIOs: rbio holds ciphertext received and not
 * yet consumed by OpenSSL, wbio holds ciphertext produced and not yet taken for sending.
 * An empty rbio reports "retry", so SSL calls return WANT_READ instead of blocking.
 * Plaintext written is gathered into a 16 KiB staging buffer and encrypted a full record
 * at a time, so a frame made of many small iovecs costs one record, not one per iovec. */
#include "net/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <aegis/error.h>

#include "engine/assert.h"

#define STAGE_BYTES 16384u /* One TLS record's plaintext. */

struct aegis_tls_ctx {
    SSL_CTX *ssl;
};

struct aegis_tls {
    SSL *ssl;
    BIO *rbio;
    BIO *wbio;
    size_t stage_len;
    uint8_t stage[STAGE_BYTES];
};

/* The newest OpenSSL error of this thread as text, then clear the queue. */
static void err_text(char *buf, size_t bytes, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char detail[160];

    if (buf == NULL || bytes == 0) {
        ERR_clear_error();
        return;
    }
    if (e != 0) {
        ERR_error_string_n(e, detail, sizeof(detail));
    } else {
        snprintf(detail, sizeof(detail), "no detail");
    }
    snprintf(buf, bytes, "%s: %s", what, detail);
    ERR_clear_error();
}

int aegis__tls_ctx_create(struct aegis_tls_ctx **out, const char *cert, const char *key,
                          const char *ca, bool require_cert, char *errmsg, size_t errmsg_bytes)
{
    struct aegis_tls_ctx *c;
    char what[300];
    int mode = SSL_VERIFY_PEER;

    *out = NULL;
    ERR_clear_error();
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return AEGIS_ENOMEM;
    }
    c->ssl = SSL_CTX_new(TLS_method());
    if (c->ssl == NULL) {
        err_text(errmsg, errmsg_bytes, "tls: SSL_CTX_new");
        free(c);
        return AEGIS_ENOMEM;
    }
    /* Peers are all Aegis: TLS 1.3 only. Clients (redis-cli and friends): 1.2 or 1.3. */
    SSL_CTX_set_min_proto_version(c->ssl, require_cert ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(c->ssl, 0);
    SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1) {
        snprintf(what, sizeof(what), "tls: cannot use certificate %s", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "tls: cannot use private key %s", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
        snprintf(what, sizeof(what), "tls: key %s does not match certificate %s", key, cert);
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(c->ssl, ca, NULL) != 1) {
        snprintf(what, sizeof(what), "tls: cannot load CA %s", ca);
        goto fail;
    }
    if (require_cert) {
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(c->ssl, mode, NULL);
    *out = c;
    return 0;

fail:
    err_text(errmsg, errmsg_bytes, what);
    SSL_CTX_free(c->ssl);
    free(c);
    return AEGIS_EINVAL;
}

void aegis__tls_ctx_destroy(struct aegis_tls_ctx *ctx)
{
    if (ctx != NULL) {
        SSL_CTX_free(ctx->ssl);
        free(ctx);
    }
}

int aegis__tls_new(struct aegis_tls **out, struct aegis_tls_ctx *ctx, bool server)
{
    struct aegis_tls *t;

    *out = NULL;
    ERR_clear_error();
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return AEGIS_ENOMEM;
    }
    t->ssl = SSL_new(ctx->ssl);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        ERR_clear_error();
        return AEGIS_ENOMEM;
    }
    /* Empty: "try again", never end of file (the socket's end is the loop's business). */
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* The SSL owns both BIOs now. */
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
    }
    *out = t;
    return 0;
}

void aegis__tls_free(struct aegis_tls *t)
{
    if (t != NULL) {
        SSL_free(t->ssl);
        free(t);
    }
}

int aegis__tls_feed(struct aegis_tls *t, const uint8_t *in, size_t len)
{
    size_t done = 0;

    AEGIS_ASSERT(len <= INT32_MAX);
    ERR_clear_error();
    if (len > 0 && (BIO_write_ex(t->rbio, in, len, &done) != 1 || done != len)) {
        ERR_clear_error();
        return AEGIS_ENOMEM;
    }
    return 0;
}

size_t aegis__tls_in_pending(struct aegis_tls *t)
{
    return BIO_ctrl_pending(t->rbio) + (size_t)SSL_pending(t->ssl);
}

/* The reason of a failed handshake or record: certificate verification first. */
static void fail_text(struct aegis_tls *t, char *why, size_t bytes, const char *what)
{
    long v = SSL_get_verify_result(t->ssl);

    if (v != X509_V_OK && why != NULL && bytes > 0) {
        snprintf(why, bytes, "%s: certificate rejected: %s", what,
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
        return;
    }
    err_text(why, bytes, what);
}

int aegis__tls_handshake(struct aegis_tls *t, char *why, size_t why_bytes)
{
    int rv, err;

    if (SSL_is_init_finished(t->ssl)) {
        return 1;
    }
    ERR_clear_error();
    rv = SSL_do_handshake(t->ssl);
    if (rv == 1) {
        return 1;
    }
    err = SSL_get_error(t->ssl, rv);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    fail_text(t, why, why_bytes, "tls handshake");
    return AEGIS_ETLS;
}

int aegis__tls_read(struct aegis_tls *t, uint8_t *out, size_t cap, size_t *n, char *why,
                    size_t why_bytes)
{
    int err;

    AEGIS_ASSERT(cap > 0);
    *n = 0;
    ERR_clear_error();
    if (SSL_read_ex(t->ssl, out, cap, n) == 1) {
        return 0;
    }
    *n = 0;
    err = SSL_get_error(t->ssl, 0);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
        return 1;
    }
    fail_text(t, why, why_bytes, "tls read");
    return AEGIS_ETLS;
}

static int stage_flush(struct aegis_tls *t)
{
    size_t done = 0;

    if (t->stage_len == 0) {
        return 0;
    }
    ERR_clear_error();
    /* A memory wbio grows: a write after the handshake completes whole or fails. */
    if (SSL_write_ex(t->ssl, t->stage, t->stage_len, &done) != 1 || done != t->stage_len) {
        ERR_clear_error();
        return AEGIS_ETLS;
    }
    t->stage_len = 0;
    return 0;
}

int aegis__tls_write(struct aegis_tls *t, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    /* Bounded by @len: each pass moves at least one byte or fails. */
    while (len > 0) {
        size_t room = STAGE_BYTES - t->stage_len;
        size_t take = len < room ? len : room;
        int rv;

        memcpy(t->stage + t->stage_len, p, take);
        t->stage_len += take;
        p += take;
        len -= take;
        if (t->stage_len == STAGE_BYTES && (rv = stage_flush(t)) != 0) {
            return rv;
        }
    }
    return 0;
}

int aegis__tls_push(struct aegis_tls *t)
{
    return stage_flush(t);
}

size_t aegis__tls_out_pending(struct aegis_tls *t)
{
    return BIO_ctrl_pending(t->wbio);
}

size_t aegis__tls_take(struct aegis_tls *t, uint8_t *out, size_t cap)
{
    size_t n = 0;

    if (cap == 0 || BIO_ctrl_pending(t->wbio) == 0) {
        return 0;
    }
    if (BIO_read_ex(t->wbio, out, cap, &n) != 1) {
        ERR_clear_error();
        return 0;
    }
    return n;
}

int aegis__tls_parse_node_uri(const char *s, size_t len, aegis_node_id *id)
{
    size_t pre = sizeof(AEGIS_TLS_URI_PREFIX) - 1;
    uint64_t v = 0;

    if (len <= pre || memcmp(s, AEGIS_TLS_URI_PREFIX, pre) != 0) {
        return AEGIS_EINVAL;
    }
    s += pre;
    len -= pre;
    if (len > 20 || s[0] == '0') {
        return AEGIS_EINVAL; /* 2^64-1 has 20 digits; no leading zero (nor id 0). */
    }
    for (size_t i = 0; i < len; i++) {
        uint64_t d;

        if (s[i] < '0' || s[i] > '9') {
            return AEGIS_EINVAL;
        }
        d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return AEGIS_EINVAL;
        }
        v = v * 10 + d;
    }
    *id = v;
    return 0;
}

int aegis__tls_peer_node_id(struct aegis_tls *t, aegis_node_id *id, char *why,
                            size_t why_bytes)
{
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    GENERAL_NAMES *names;
    int found = 0, count;
    aegis_node_id got = 0;

    if (cert == NULL) {
        snprintf(why, why_bytes, "no peer certificate");
        return AEGIS_EACCES;
    }
    names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL) {
        ERR_clear_error();
        snprintf(why, why_bytes, "certificate has no subjectAltName");
        return AEGIS_EACCES;
    }
    count = sk_GENERAL_NAME_num(names);
    /* Bounded by the certificate, which the CA signed and OpenSSL parsed. */
    for (int i = 0; i < count; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        const char *s;
        int n;
        aegis_node_id v;

        if (g->type != GEN_URI) {
            continue;
        }
        s = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        n = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (n < (int)sizeof(AEGIS_TLS_URI_PREFIX) - 1 ||
            memcmp(s, AEGIS_TLS_URI_PREFIX, sizeof(AEGIS_TLS_URI_PREFIX) - 1) != 0) {
            continue;
        }
        found++;
        if (aegis__tls_parse_node_uri(s, (size_t)n, &v) != 0) {
            found = -1;
            break;
        }
        got = v;
    }
    GENERAL_NAMES_free(names);
    if (found != 1) {
        snprintf(why, why_bytes, "certificate must name exactly one valid %s<id> URI",
                 AEGIS_TLS_URI_PREFIX);
        return AEGIS_EACCES;
    }
    *id = got;
    return 0;
}
