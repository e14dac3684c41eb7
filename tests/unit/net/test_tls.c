/* SPDX-License-Identifier: MIT */
/* TLS on memory buffers (net/tls.c) and TLS peer links of the io_uring loop
 * (net/uring_tls.c). Certificates come from scripts/make-certs.sh, run by the test into a
 * temporary directory: a cluster CA with nodes 1-3, another CA with its own nodes 1-3,
 * and expired certificates for nodes 1-3 from the cluster CA. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls.h"
#include "test_uring_util.h"

static char certs[256]; /* The temporary directory; empty until made. */

static void cleanup_certs(void)
{
    char cmd[512];

    if (certs[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
        if (system(cmd) != 0) {
            fprintf(stderr, "cannot remove %s\n", certs);
        }
    }
}

static bool make_certs(void)
{
    char src[1024], cmd[4096];
    const char *slash;

    if (certs[0] != '\0') {
        return true;
    }
    /* __FILE__ is tests/unit/net/test_tls.c under the source root. */
    snprintf(src, sizeof(src), "%s", __FILE__);
    slash = strstr(src, "/tests/unit/net/");
    if (slash == NULL) {
        return false;
    }
    src[slash - src] = '\0';
    snprintf(certs, sizeof(certs), "/tmp/aegis-tls-test-XXXXXX");
    if (mkdtemp(certs) == NULL) {
        certs[0] = '\0';
        return false;
    }
    snprintf(cmd, sizeof(cmd),
             "set -e; s=%s/scripts/make-certs.sh; d=%s; $s $d 3 >/dev/null;"
             " $s $d/other 3 >/dev/null; mkdir -p $d/expired;"
             " cp $d/ca.crt $d/ca.key $d/expired/; CERT_DAYS=-1 $s $d/expired 3 >/dev/null",
             src, certs);
    atexit(cleanup_certs);
    return system(cmd) == 0;
}

/* Node @id's files from certs/@sub ("" for the cluster CA's). */
struct files {
    char cert[400], key[400], ca[400];
};

static void files_of(struct files *f, const char *sub, int id)
{
    snprintf(f->cert, sizeof(f->cert), "%s%s/node%d.crt", certs, sub, id);
    snprintf(f->key, sizeof(f->key), "%s%s/node%d.key", certs, sub, id);
    snprintf(f->ca, sizeof(f->ca), "%s/ca.crt", certs); /* Always the cluster CA. */
}

static struct aegis_tls_ctx *ctx_of(const char *sub, int id, bool require)
{
    struct files f;
    struct aegis_tls_ctx *c = NULL;
    char err[300];

    files_of(&f, sub, id);
    if (aegis__tls_ctx_create(&c, f.cert, f.key, f.ca, require, err, sizeof(err)) != 0) {
        fprintf(stderr, "  %s\n", err);
        return NULL;
    }
    return c;
}

/* Move every pending ciphertext byte from @a to @b. */
static bool shuttle(struct aegis_tls *a, struct aegis_tls *b)
{
    uint8_t buf[65536];
    size_t n;

    while ((n = aegis__tls_take(a, buf, sizeof(buf))) > 0) {
        if (aegis__tls_feed(b, buf, n) != 0) {
            return false;
        }
    }
    return true;
}

/* Run the handshake between client @c and server @s; the results in *@rc and *@rs, the
 * reasons of failures ("client: ...; server: ...") in @why. */
static void handshake(struct aegis_tls *c, struct aegis_tls *s, int *rc, int *rs, char *why,
                      size_t why_bytes)
{
    char wc[AEGIS_TLS_ERR_BYTES] = "", ws[AEGIS_TLS_ERR_BYTES] = "";

    *rc = *rs = 0;
    /* A TLS 1.3 handshake takes two round trips at most; a few more rounds for slack. */
    for (int round = 0; round < 8 && (*rc == 0 || *rs == 0); round++) {
        if (*rc == 0) {
            *rc = aegis__tls_handshake(c, wc, sizeof(wc));
        }
        shuttle(c, s);
        if (*rs == 0) {
            *rs = aegis__tls_handshake(s, ws, sizeof(ws));
        }
        shuttle(s, c);
        if (*rc < 0 || *rs < 0) {
            if (*rc == 0) { /* Let the client read the alert. */
                *rc = aegis__tls_handshake(c, wc, sizeof(wc));
            }
            break;
        }
    }
    snprintf(why, why_bytes, "client: %s; server: %s", wc, ws);
}

TEST(tls, node_uri_parsing)
{
    aegis_node_id id = 0;
    static const char *const bad[] = {
        "aegis://node/", "aegis://node/0", "aegis://node/01", "aegis://node/-1",
        "aegis://node/+1", "aegis://node/1 ", "aegis://node/1/x",
        "aegis://node/18446744073709551616", "aegis://node/99999999999999999999",
        "aegis://nodes/1", "AEGIS://node/1", "aegis:/node/1", "aegis://node/1x",
        "aegis://node/123456789012345678901",
    };

    ASSERT_OK(aegis__tls_parse_node_uri("aegis://node/1", 14, &id));
    ASSERT_EQ_U64(id, 1);
    ASSERT_OK(aegis__tls_parse_node_uri("aegis://node/18446744073709551615", 33, &id));
    ASSERT_EQ_U64(id, UINT64_MAX);
    /* Not NUL-terminated: only @len bytes count. */
    ASSERT_OK(aegis__tls_parse_node_uri("aegis://node/42junk", 15, &id));
    ASSERT_EQ_U64(id, 42);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        id = 7;
        ASSERT_ERR(aegis__tls_parse_node_uri(bad[i], strlen(bad[i]), &id), AEGIS_EINVAL);
        ASSERT_EQ_U64(id, 7);
    }
    return TEST_PASS;
}

TEST(tls, bad_files_are_reported)
{
    struct aegis_tls_ctx *c = NULL;
    struct files f1, f2;
    char err[300] = "";

    ASSERT_TRUE(make_certs());
    files_of(&f1, "", 1);
    files_of(&f2, "", 2);
    ASSERT_ERR(aegis__tls_ctx_create(&c, "/nonexistent.crt", f1.key, f1.ca, true, err,
                                     sizeof(err)),
               AEGIS_EINVAL);
    ASSERT_TRUE(strstr(err, "/nonexistent.crt") != NULL);
    ASSERT_ERR(aegis__tls_ctx_create(&c, f1.cert, f2.key, f1.ca, true, err, sizeof(err)),
               AEGIS_EINVAL);
    ASSERT_TRUE(strstr(err, f2.key) != NULL);
    ASSERT_TRUE(c == NULL);
    return TEST_PASS;
}

TEST(tls, mutual_handshake_names_nodes_and_carries_data)
{
    struct aegis_tls_ctx *c1, *c2;
    struct aegis_tls *cl = NULL, *sv = NULL;
    static uint8_t out[100000], in[100000];
    uint8_t buf[65536];
    aegis_node_id id = 0;
    char why[2 * AEGIS_TLS_ERR_BYTES + 32];
    size_t got = 0, n;
    int rc, rs;

    ASSERT_TRUE(make_certs());
    c1 = ctx_of("", 1, true);
    c2 = ctx_of("", 2, true);
    ASSERT_TRUE(c1 != NULL && c2 != NULL);
    ASSERT_OK(aegis__tls_new(&cl, c1, false));
    ASSERT_OK(aegis__tls_new(&sv, c2, true));
    handshake(cl, sv, &rc, &rs, why, sizeof(why));
    ASSERT_EQ_I64(rc, 1);
    ASSERT_EQ_I64(rs, 1);
    ASSERT_OK(aegis__tls_peer_node_id(cl, &id, why, sizeof(why)));
    ASSERT_EQ_U64(id, 2);
    ASSERT_OK(aegis__tls_peer_node_id(sv, &id, why, sizeof(why)));
    ASSERT_EQ_U64(id, 1);
    /* 100 kB in pieces of 1..97 bytes: staged into full records, delivered intact. */
    for (size_t i = 0; i < sizeof(out); i++) {
        out[i] = (uint8_t)(i * 13 + 7);
    }
    for (size_t off = 0, k = 1; off < sizeof(out); off += n, k = k % 97 + 1) {
        n = sizeof(out) - off < k ? sizeof(out) - off : k;
        ASSERT_OK(aegis__tls_write(cl, out + off, n));
    }
    ASSERT_OK(aegis__tls_push(cl));
    /* Seven records of at most 16 KiB, not one per piece: overhead well under 1%. */
    ASSERT_TRUE(aegis__tls_out_pending(cl) < sizeof(out) + sizeof(out) / 100);
    while ((n = aegis__tls_take(cl, buf, sizeof(buf))) > 0) {
        ASSERT_OK(aegis__tls_feed(sv, buf, n));
    }
    for (int round = 0; round < 100 && got < sizeof(in); round++) {
        ASSERT_OK(aegis__tls_read(sv, in + got, sizeof(in) - got, &n, why, sizeof(why)));
        got += n;
    }
    ASSERT_EQ_U64(got, sizeof(in));
    ASSERT_MEM_EQ(in, out, sizeof(in));
    ASSERT_EQ_U64(aegis__tls_in_pending(sv), 0);
    aegis__tls_free(cl);
    aegis__tls_free(sv);
    aegis__tls_ctx_destroy(c1);
    aegis__tls_ctx_destroy(c2);
    return TEST_PASS;
}

/* A handshake between client node @cid of @csub and server node @sid of @ssub must fail;
 * the failing side's reason must contain @reason. */
static bool refused(const char *csub, int cid, const char *ssub, int sid, const char *reason)
{
    struct aegis_tls_ctx *cc = ctx_of(csub, cid, true), *sc = ctx_of(ssub, sid, true);
    struct aegis_tls *cl = NULL, *sv = NULL;
    char why[2 * AEGIS_TLS_ERR_BYTES + 32];
    int rc = 0, rs = 0;
    bool ok;

    if (cc == NULL || sc == NULL || aegis__tls_new(&cl, cc, false) != 0 ||
        aegis__tls_new(&sv, sc, true) != 0) {
        return false;
    }
    handshake(cl, sv, &rc, &rs, why, sizeof(why));
    ok = (rc == AEGIS_ETLS || rs == AEGIS_ETLS) && strstr(why, reason) != NULL;
    if (!ok) {
        fprintf(stderr, "  client %d server %d: rc %d rs %d why '%s'\n", cid, sid, rc, rs, why);
    }
    aegis__tls_free(cl);
    aegis__tls_free(sv);
    aegis__tls_ctx_destroy(cc);
    aegis__tls_ctx_destroy(sc);
    return ok;
}

TEST(tls, foreign_and_expired_certificates_are_refused)
{
    ASSERT_TRUE(make_certs());
    /* A client from another CA: the server refuses it. */
    ASSERT_TRUE(refused("/other", 1, "", 2, "server: tls handshake: certificate rejected"));
    /* A server from another CA: the client refuses it. */
    ASSERT_TRUE(refused("", 1, "/other", 2, "client: tls handshake: certificate rejected"));
    /* Expired, signed by the right CA, either side. */
    ASSERT_TRUE(refused("/expired", 1, "", 2, "server: tls handshake: certificate rejected: "
                                              "certificate has expired"));
    ASSERT_TRUE(refused("", 1, "/expired", 2, "client: tls handshake: certificate rejected: "
                                              "certificate has expired"));
    return TEST_PASS;
}

TEST(tls, client_port_certificate_optional_plaintext_refused)
{
    struct aegis_tls_ctx *sc;
    struct aegis_tls *sv = NULL;
    char why[AEGIS_TLS_ERR_BYTES];
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";

    ASSERT_TRUE(make_certs());
    sc = ctx_of("", 1, false);
    ASSERT_TRUE(sc != NULL);
    /* Plaintext RESP on a TLS port: the handshake fails at once. */
    ASSERT_OK(aegis__tls_new(&sv, sc, true));
    ASSERT_OK(aegis__tls_feed(sv, (const uint8_t *)ping, sizeof(ping) - 1));
    ASSERT_ERR(aegis__tls_handshake(sv, why, sizeof(why)), AEGIS_ETLS);
    aegis__tls_free(sv);
    aegis__tls_ctx_destroy(sc);
    return TEST_PASS;
}

/* Loop-level: configure @n with node @id's files from @sub. */
static void tn_tls(struct tnode *n, struct files *f, const char *sub, int id)
{
    files_of(f, sub, id);
    n->cfg.tls_cert = f->cert;
    n->cfg.tls_key = f->key;
    n->cfg.tls_ca = f->ca;
}

static void sent_cb(struct aegis_uring_loop *loop, int status, void *data)
{
    (void)loop;
    (void)status;
    (*(int *)data)++;
}

TEST(tls, loop_links_up_and_carries_frames)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct files fa, fb;
    struct iovec iov[3];
    uint8_t *big = frame_make(0, 300000), *small = frame_make(1, 10);
    int done = 0;

    SKIP_WITHOUT_URING();
    ASSERT_TRUE(make_certs());
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 9);
    tn_config(&b, 2, 9);
    tn_tls(&a, &fa, "", 1);
    tn_tls(&b, &fb, "", 2);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    PUMP_UNTIL(nodes, 2, tn_connected(&a, 2) && tn_connected(&b, 1), 3000);
    ASSERT_TRUE(tn_connected(&a, 2) && tn_connected(&b, 1));
    /* A frame larger than the budget of one encryption pass, in three iovecs, then a
     * small one; both ways. */
    iov[0] = (struct iovec){big, 1000};
    iov[1] = (struct iovec){big + 1000, 200000};
    iov[2] = (struct iovec){big + 201000, 99000};
    ASSERT_OK(aegis__uring_loop_send(a.loop, 2, iov, 3, sent_cb, &done));
    iov[0] = (struct iovec){small, 10};
    ASSERT_OK(aegis__uring_loop_send(a.loop, 2, iov, 1, sent_cb, &done));
    iov[0] = (struct iovec){big, 300000};
    ASSERT_OK(aegis__uring_loop_send(b.loop, 1, iov, 1, sent_cb, &done));
    PUMP_UNTIL(nodes, 2, b.frames[1] == 2 && a.frames[2] == 1 && done == 3, 3000);
    ASSERT_EQ_U64(b.frames[1], 2);
    ASSERT_EQ_U64(a.frames[2], 1);
    ASSERT_EQ_U64(b.bad_frames + a.bad_frames, 0);
    ASSERT_EQ_I64(done, 3);
    tn_stop(&a);
    tn_stop(&b);
    free(big);
    free(small);
    return TEST_PASS;
}

/* Node 1 and node 2 where one of them presents the certificate of node 3 (right CA,
 * wrong id): no link comes up, and the side that checks counts the refusal. */
TEST(tls, loop_refuses_certificate_naming_another_node)
{
    struct tnode a, b;
    struct tnode *nodes[] = {&a, &b};
    struct files fa, fb;
    struct aegis_peer_stats st;
    struct aegis_uring_stats ls;

    SKIP_WITHOUT_URING();
    ASSERT_TRUE(make_certs());
    /* 1. The acceptor (node 2) shows node 3's certificate: the dialer refuses it. */
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 9);
    tn_config(&b, 2, 9);
    tn_tls(&a, &fa, "", 1);
    tn_tls(&b, &fb, "", 3);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    PUMP_UNTIL(nodes, 2,
               (aegis__uring_loop_peer_stats(a.loop, 2, &st), st.handshake_rejects >= 2), 3000);
    ASSERT_TRUE(st.handshake_rejects >= 2);
    ASSERT_EQ_U64(st.connects, 0);
    ASSERT_EQ_I64(a.ups[2] + b.ups[1], 0);
    tn_stop(&a);
    tn_stop(&b);
    /* 2. The dialer (node 1) shows node 3's certificate and says node 1 in its hello:
     * the acceptor refuses it before reading any frame. */
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    tn_config(&a, 1, 9);
    tn_config(&b, 2, 9);
    tn_tls(&a, &fa, "", 3);
    tn_tls(&b, &fb, "", 2);
    ASSERT_OK(tn_start(&a));
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(tn_mesh(nodes, 2));
    PUMP_UNTIL(nodes, 2, (aegis__uring_loop_stats(b.loop, &ls), ls.peer_hello_rejects >= 2),
               3000);
    ASSERT_TRUE(ls.peer_hello_rejects >= 2);
    ASSERT_EQ_I64(a.ups[2] + b.ups[1], 0);
    ASSERT_FALSE(tn_connected(&a, 2));
    tn_stop(&a);
    tn_stop(&b);
    return TEST_PASS;
}

/* A plaintext peer (a raw hello) on a TLS peer port gets nothing back and is closed. */
TEST(tls, loop_refuses_plaintext_peer)
{
    struct tnode b;
    struct tnode *nodes[] = {&b};
    struct files fb;
    struct aegis_uring_stats ls;
    uint8_t hello[32] = "AEGN", reply[64];
    int fd;

    SKIP_WITHOUT_URING();
    ASSERT_TRUE(make_certs());
    memset(&b, 0, sizeof(b));
    tn_config(&b, 2, 9);
    tn_tls(&b, &fb, "", 2);
    ASSERT_OK(tn_start(&b));
    ASSERT_OK(aegis__uring_loop_peer_add(b.loop, 1, "127.0.0.1", 9));
    fd = raw_connect(aegis__uring_loop_peer_port(b.loop));
    ASSERT_TRUE(fd >= 0);
    hello[4] = 1;
    hello[8] = 9;
    hello[16] = 1;
    hello[24] = 2;
    ASSERT_TRUE(raw_write(fd, hello, sizeof(hello), nodes, 1));
    ASSERT_EQ_U64(raw_read(fd, reply, sizeof(reply), nodes, 1, 2000), 0);
    ASSERT_TRUE(raw_eof(fd, nodes, 1, 2000));
    close(fd);
    aegis__uring_loop_stats(b.loop, &ls);
    ASSERT_EQ_U64(ls.peer_hello_rejects, 1);
    tn_stop(&b);
    return TEST_PASS;
}
