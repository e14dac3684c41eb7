/* SPDX-License-Identifier: MIT */
/* Writes the seed corpora of the fuzz targets:
 *     gen_corpus tests/fuzz/corpus
 * creates corpus/codec/<type>.bin (one valid frame per message type, plus AppendEntries
 * with several entries and a full membership snapshot chunk), corpus/resp/<name>.txt (a
 * split-seed byte, then requests and replies), corpus/peer/<name>.bin (programs for
 * fuzz_peer.c: one per forged-message attack of issue 12, and plain runs),
 * corpus/hello/<name>.bin (the limit and chunk bytes of fuzz_hello, then a hello and
 * frames), and the corpora of the file header, membership, envelope and argument targets
 * (corpus/hardstate, snapshot_header, conf, envelope, args; each file's first byte is the
 * target's mode byte where it has one; corpus/envelope's admin_*, addr and snapshot files
 * are not made here). The files are committed; rerun this after a format change.
 * corpus/resp/redis_benchmark.txt and redis_cli.txt are not made here: they are the bytes
 * redis-benchmark and redis-cli (7.0) sent to redis-server through a recording proxy,
 * behind the same split-seed byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/conf.h"
#include "net/codec.h"
#include "net/peer_frame.h"
#include "pipeline/envelope.h"
#include "pipeline/hardstate.h"
#include "pipeline/snapshot_file.h"

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[1100]; /* dir (< 1024) + "/" + name (< 64). */
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void write_msg(const char *dir, const char *name, const struct aegis_msg *m)
{
    uint8_t frame[4096];
    size_t len;

    if (aegis__codec_encode(m, frame, sizeof(frame), &len) != 0) {
        fprintf(stderr, "cannot encode %s\n", name);
        exit(1);
    }
    write_file(dir, name, frame, len);
}

static void gen_codec(const char *root)
{
    char dir[1024], name[64];
    struct aegis_entry entries[4];
    struct aegis_buf *a = aegis__buf_from(NULL, "set k v", 7);
    struct aegis_buf *b = aegis__buf_from(NULL, "chunk-bytes", 11);

    snprintf(dir, sizeof(dir), "%s/codec", root);
    for (unsigned t = AEGIS_MSG_TYPE_MIN; t <= AEGIS_MSG_TYPE_MAX; t++) {
        struct aegis_msg m = {.type = (uint8_t)t, .from = 1, .to = 2, .term = 5};

        switch (t) {
        case AEGIS_MSG_VOTE_REQ:
            m.vote_req = (struct aegis_vote_req){10, 4, true, false};
            break;
        case AEGIS_MSG_VOTE_RESP:
            m.vote_resp.granted = true;
            break;
        case AEGIS_MSG_APPEND_REQ:
            m.append_req.prev_index = 9;
            m.append_req.prev_term = 4;
            m.append_req.commit = 8;
            m.append_req.entries_count = 4;
            m.append_req.entries = entries;
            for (uint32_t i = 0; i < 4; i++) {
                entries[i] = (struct aegis_entry){10 + i, 5, (uint8_t)(1 + i % 3), i,
                                                  i == 2 ? NULL : a};
            }
            break;
        case AEGIS_MSG_APPEND_RESP:
            m.append_resp = (struct aegis_append_resp){false, 0, 7, 3, 12};
            break;
        case AEGIS_MSG_SNAPSHOT_REQ:
            m.snapshot_req.meta.index = 9;
            m.snapshot_req.meta.term = 4;
            m.snapshot_req.meta.conf.count = AEGIS_MEMBERS_MAX;
            for (uint32_t i = 0; i < AEGIS_MEMBERS_MAX; i++) {
                m.snapshot_req.meta.conf.members[i].id = i + 1;
                m.snapshot_req.meta.conf.members[i].role = (uint8_t)(1 + i % 2);
            }
            m.snapshot_req.offset = 5;
            m.snapshot_req.total_bytes = 16;
            m.snapshot_req.done = true;
            m.snapshot_req.chunk = b;
            break;
        case AEGIS_MSG_SNAPSHOT_RESP:
            m.snapshot_resp = (struct aegis_snapshot_resp){9, 16, true};
            break;
        case AEGIS_MSG_HEARTBEAT:
            m.heartbeat = (struct aegis_heartbeat){8, 3};
            break;
        case AEGIS_MSG_HEARTBEAT_RESP:
            m.heartbeat_resp.read_ctx = 3;
            break;
        case AEGIS_MSG_TIMEOUT_NOW:
            m.timeout_now.target = 2;
            break;
        case AEGIS_MSG_READ_INDEX_REQ:
            m.read_index_req.ctx = 3;
            break;
        case AEGIS_MSG_READ_INDEX_RESP:
            m.read_index_resp = (struct aegis_read_index_resp){3, 8, true};
            break;
        case AEGIS_MSG_CLIENT_REQ:
            m.client_req.request_id = 42;
            m.client_req.command = a;
            break;
        case AEGIS_MSG_CLIENT_RESP:
            m.client_resp = (struct aegis_client_resp){42, -4001, 1, 12, 12, 3, b};
            break;
        default:
            break;
        }
        snprintf(name, sizeof(name), "%02u_%s.bin", t, aegis__codec_type_name(t));
        write_msg(dir, name, &m);
    }
    aegis__buf_unref(a);
    aegis__buf_unref(b);
}

static void gen_resp(const char *root)
{
    static const char *const files[][2] = {
        {"set_get.txt", "\x03*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
                        "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"},
        {"inline.txt", "\x07PING\r\nECHO \"a\\x41\\n b\" 'c\\'d'\n\r\n*0\r\n"},
        {"pipeline.txt", "\x01*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"
                         "*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$0\r\n\r\n$1\r\nb\r\n"},
        {"replies.txt", "\x09+OK\r\n-ERR no\r\n:-7\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n"
                        "*3\r\n:1\r\n*2\r\n$1\r\na\r\n*0\r\n+x\r\n"},
        {"errors.txt", "\x02*1\r\n$-3\r\n"},
    };
    char dir[1024];

    snprintf(dir, sizeof(dir), "%s/resp", root);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        write_file(dir, files[i][0], files[i][1], strlen(files[i][1]));
    }
}

static void make_dir(char *dir, size_t cap, const char *root, const char *name)
{
    snprintf(dir, cap, "%s/%s", root, name);
    mkdir(dir, 0755); /* EEXIST is fine; a real failure shows at the first write. */
}

/* The mode byte 0x01 asks the header targets to recompute the CRC (they are valid here
 * anyway); 0x00 files feed the bytes as they are. */
static void write_moded(const char *dir, const char *name, uint8_t mode, const uint8_t *data,
                        size_t len)
{
    uint8_t *buf = malloc(len + 1);

    buf[0] = mode;
    memcpy(buf + 1, data, len);
    write_file(dir, name, buf, len + 1);
    free(buf);
}

static void gen_hardstate(const char *root)
{
    uint8_t file[AEGIS_HARDSTATE_FILE_BYTES] = {0};
    struct aegis_hard_state a = {.term = 3, .vote = 2, .commit = 41};
    struct aegis_hard_state b = {.term = UINT64_MAX - 1, .vote = 0, .commit = 1u << 20};
    char dir[1024];

    make_dir(dir, sizeof(dir), root, "hardstate");
    aegis__hardstate_encode_slot(1, &(struct aegis_hard_state){0}, file);
    write_moded(dir, "created", 0, file, sizeof(file));
    aegis__hardstate_encode_slot(2, &a, file + AEGIS_HARDSTATE_SLOT_STRIDE);
    write_moded(dir, "two_slots", 0, file, sizeof(file));
    aegis__hardstate_encode_slot(3, &b, file);
    write_moded(dir, "slot0_newer", 1, file, sizeof(file));
    file[40] = 1; /* A reserved byte, CRC recomputed by mode 1: must be refused. */
    write_moded(dir, "reserved_set", 1, file, sizeof(file));
    write_moded(dir, "torn_second", 0, file, AEGIS_HARDSTATE_SLOT_STRIDE + 30);
}

static void gen_snapshot_header(const char *root)
{
    static const uint32_t counts[] = {0, 1, 3, AEGIS_MEMBERS_MAX};
    uint8_t file[AEGIS_SNAPSHOT_HEADER_BYTES + 5];
    char dir[1024], name[64];

    make_dir(dir, sizeof(dir), root, "snapshot_header");
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        struct aegis_snapshot_meta m;

        memset(&m, 0, sizeof(m));
        m.index = 1000 + c;
        m.term = 7;
        m.conf.count = counts[c];
        for (uint32_t i = 0; i < counts[c] && i < AEGIS_MEMBERS_MAX; i++) {
            m.conf.members[i].id = i + 1;
            m.conf.members[i].role = i < 3 ? AEGIS_MEMBER_VOTER : AEGIS_MEMBER_LEARNER;
        }
        aegis__snapshot_header_encode(&m, 5, 0x12345678, file);
        memcpy(file + AEGIS_SNAPSHOT_HEADER_BYTES, "hello", 5);
        snprintf(name, sizeof(name), "members_%u", counts[c]);
        write_moded(dir, name, (uint8_t)(c % 2), file, sizeof(file));
    }
    file[36] = 1; /* Reserved: refused once the CRC is recomputed. */
    write_moded(dir, "reserved_set", 1, file, AEGIS_SNAPSHOT_HEADER_BYTES);
}

static void gen_conf(const char *root)
{
    uint8_t buf[AEGIS_CONF_ENCODED_MAX];
    char dir[1024], name[64];

    make_dir(dir, sizeof(dir), root, "conf");
    for (uint8_t op = AEGIS_CONF_ADD_LEARNER; op <= AEGIS_CONF_REMOVE; op++) {
        struct aegis_conf_change cc;
        uint32_t n = op == AEGIS_CONF_REMOVE ? 2 : op == AEGIS_CONF_PROMOTE ? 4 : 16;

        memset(&cc, 0, sizeof(cc));
        cc.op = op;
        cc.id = op == AEGIS_CONF_REMOVE ? 3 : 4;
        cc.conf.count = n;
        for (uint32_t i = 0; i < n; i++) {
            cc.conf.members[i].id = i + 1;
            cc.conf.members[i].role = i < 3 || (op == AEGIS_CONF_PROMOTE && i == 3)
                                          ? AEGIS_MEMBER_VOTER
                                          : AEGIS_MEMBER_LEARNER;
        }
        snprintf(name, sizeof(name), "op%u_%u_members", op, n);
        write_file(dir, name, buf, aegis__conf_encode(&cc, buf));
    }
}

static void gen_envelope(const char *root)
{
    struct aegis_peer_addr addrs[3] = {
        {.id = 1, .host = "127.0.0.1", .port = 7001},
        {.id = 2, .host = "::1", .port = 7002},
        {.id = 18446744073709551615u, .host = "node-c.example", .port = 65535},
    };
    struct aegis_buf *b;
    char dir[1024];

    make_dir(dir, sizeof(dir), root, "envelope");
    b = aegis__env_snapshot(NULL, addrs, 3, "kv-bytes", 8);
    write_file(dir, "snapshot_3_addrs", b->data, b->len);
    aegis__buf_unref(b);
    b = aegis__env_snapshot(NULL, NULL, 0, NULL, 0);
    write_file(dir, "snapshot_empty", b->data, b->len);
    aegis__buf_unref(b);
    b = aegis__env_meta_addr(NULL, &addrs[1]);
    write_file(dir, "meta_ipv6", b->data, b->len);
    aegis__buf_unref(b);
    b = aegis__env_meta_addr(NULL, &addrs[2]);
    write_file(dir, "meta_name", b->data, b->len);
    aegis__buf_unref(b);
}

static void gen_args(const char *root)
{
    /* Mode byte (see fuzz_args.c): % 5 picks the parser, / 5 its bounds. */
    static const struct {
        const char *name;
        uint8_t mode;
        const char *arg;
    } files[] = {
        {"u64_id", 0, "1"},
        {"u64_max", 0, "18446744073709551615"},
        {"u64_overflow", 0, "18446744073709551616"},
        {"u64_negative", 0, " -1"},
        {"u64_tick", 10, "1000"},
        {"hostport_v4", 1, "127.0.0.1:6379"},
        {"hostport_v6", 1, "[::1]:7001"},
        {"hostport_zone", 1, "[fe80::1%eth0]:65535"},
        {"hostport_name", 21, "node-a.example_1:1"},
        {"peers_three", 77, "1=127.0.0.1:7001,2=[::1]:7002,3=node-c:7003"},
        {"peers_negative", 2, "-1=host:7001"},
        {"peers_duplicate", 77, "1=h:1,2=h:1"},
        {"bench_target", 3, "[::1]:6379"},
        {"bench_seconds", 3, "0.5"},
        {"ratio_named", 4, "set=70,get=20,incr=10,cas=0"},
        {"ratio_plain", 4, "1:2:3:4"},
    };
    char dir[1024];

    make_dir(dir, sizeof(dir), root, "args");
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        write_moded(dir, files[i].name, files[i].mode, (const uint8_t *)files[i].arg,
                    strlen(files[i].arg));
    }
}

/* Programs for fuzz_peer.c (its header comment has the encoding). Shorthands: an op
 * byte (T tick, P propose, S settle, I inject), then for an injection: victim (1 = node
 * 2), type - 1, sender (0..2 = node 1..3, 3 = the victim's leader, 4 = none, 5 = an
 * outsider), receiver (1 = the victim), and values by pick() selector: V_* below. */
enum { T = 0, P = 1, S = 2, I = 4 };
enum {
    V_0 = 0, V_1 = 1, V_TERM = 4, V_TERM_UP = 5, V_LAST = 7, V_LAST_UP = 8, V_COMMIT = 9,
    V_2_62_DOWN = 10, V_2_62 = 11, V_2_63 = 12, V_TOP_DOWN = 13, V_TOP = 14
};

struct program {
    const char *name;
    uint8_t bytes[64];
    size_t len;
};

#define PROGRAM(name, ...)                                                                 \
    {name, {__VA_ARGS__}, sizeof((uint8_t[]){__VA_ARGS__})}

static const struct program peer_programs[] = {
    /* Votes: transfer flag and terms 2^64-1, 2^62, 2^63, term + 1; then the cluster
     * must still elect and commit. */
    PROGRAM("vote_top_transfer", I, 1, 0, 2, 1, V_TOP, V_LAST, V_TOP, 0, 1, T, 7, P, S, T, 7, P, S),
    PROGRAM("vote_2_62_transfer", I, 1, 0, 2, 1, V_2_62, V_LAST, V_2_62, 0, 1, T, 7, P, S),
    PROGRAM("vote_2_63_plain", I, 0, 0, 2, 1, V_2_63, V_LAST, V_TERM, 0, 0, T, 7, P, S),
    PROGRAM("vote_next_transfer", I, 1, 0, 2, 1, V_TERM_UP, V_LAST_UP, V_TERM_UP, 0, 1, P, S),
    PROGRAM("prevote_top", I, 2, 0, 1, 1, V_TOP, V_LAST, V_TOP, 1, 0, T, 7, P, S),
    /* Appends: prev 2^64-2 at term 0 with one entry; prev = last at term + 1. */
    PROGRAM("append_top_term0", I, 1, 2, 0, 1, V_0, V_TOP_DOWN, V_0, V_TOP_DOWN, 1, 1, 0, 1,
            P, S, T, 3),
    PROGRAM("append_next_term", I, 1, 2, 0, 1, V_TERM_UP, V_LAST, V_TERM, V_LAST_UP, 1, 1, 0,
            1, P, S, T, 3),
    PROGRAM("append_resp_top", I, 0, 3, 1, 1, V_TERM, 1, V_TOP, V_TOP, V_TOP, V_TOP, P, S),
    /* Snapshot chunks: whole, from the leader, junk or starting with 'S'; from another
     * node; then more traffic. */
    PROGRAM("snapshot_junk", I, 1, 4, 3, 1, V_TERM, 2, 8, V_LAST_UP, 0, 0, 0, 1, 'j', 'u', 'w',
            'n', 'k', 'x', 'y', 'z', P, S, T, 5),
    PROGRAM("snapshot_other_node", I, 1, 4, 2, 1, V_TERM, 2, 4, V_LAST_UP, 0, 0, 0, 0, 'n',
            'a', 'p', P, S),
    PROGRAM("snapshot_half_offer", I, 1, 4, 3, 1, V_TERM, 2, 4, V_LAST_UP, 0, 0, 3, 0, 'A',
            'B', 'C', I, 1, 4, 3, 1, V_TERM, 2, 4, V_LAST_UP, 0, 4, 0, 1, 'Q', 'R', 'S', P, S),
    PROGRAM("timeout_now_forged", I, 1, 8, 2, 1, V_TERM, 2, T, 5, P, S),
    PROGRAM("heartbeat_top_commit", I, 1, 6, 3, 1, V_TERM, V_TOP, 0, P, S),
    /* Plain runs: proposals, ticks, losses; enough to take snapshots (threshold 16). */
    PROGRAM("plain_writes", P, S, P, P, S, T, 3, P, 3, P, S, T, 8, P, S),
    PROGRAM("plain_snapshots", P, P, P, P, P, P, P, P, S, P, P, P, P, P, P, P, P, S, P, P, P,
            P, S, T, 4, P, S),
    PROGRAM("plain_elections", T, 7, T, 7, T, 7, 3, 3, 3, T, 7, P, S, T, 7),
};

static void gen_peer(const char *root)
{
    char dir[1024], name[64];

    snprintf(dir, sizeof(dir), "%s/peer", root);
    for (size_t i = 0; i < sizeof(peer_programs) / sizeof(peer_programs[0]); i++) {
        snprintf(name, sizeof(name), "%s.bin", peer_programs[i].name);
        write_file(dir, name, peer_programs[i].bytes, peer_programs[i].len);
    }
}

static void gen_hello(const char *root)
{
    static const struct {
        const char *name;
        uint8_t max, chunk, flags_lo;
        uint64_t cluster, sender, receiver;
        uint32_t frames[3];
    } seeds[] = {
        {"ok_frames.bin", 40, 7, 0, 1, 1, 2, {0, 5, 200}},
        {"other_cluster.bin", 40, 1, 0, 9, 1, 2, {3, 0, 0}},
        {"reserved_flag.bin", 40, 32, 1, 1, 3, 2, {1, 1, 1}},
        {"oversize.bin", 2, 3, 0, 1, 3, 2, {10, 20, 0}},
        {"max_ids.bin", 0xff, 64, 0, UINT64_MAX, UINT64_MAX, UINT64_MAX, {280, 0, 0}},
    };
    char dir[1024];

    snprintf(dir, sizeof(dir), "%s/hello", root);
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        uint8_t b[2 + AEGIS_HELLO_BYTES + 3 * (4 + 280)];
        size_t n = 0;

        b[n++] = seeds[i].max;
        b[n++] = seeds[i].chunk;
        aegis__hello_encode(b + n, seeds[i].cluster, seeds[i].sender, seeds[i].receiver);
        b[n + 6] = seeds[i].flags_lo;
        n += AEGIS_HELLO_BYTES;
        for (int f = 0; f < 3; f++) {
            uint32_t len = seeds[i].frames[f];

            b[n++] = (uint8_t)len;
            b[n++] = (uint8_t)(len >> 8);
            b[n++] = 0;
            b[n++] = 0;
            memset(b + n, 'a' + f, len);
            n += len;
        }
        write_file(dir, seeds[i].name, b, n);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_ROOT\n", argv[0]);
        return 2;
    }
    gen_codec(argv[1]);
    gen_resp(argv[1]);
    gen_peer(argv[1]);
    gen_hello(argv[1]);
    gen_hardstate(argv[1]);
    gen_snapshot_header(argv[1]);
    gen_conf(argv[1]);
    gen_envelope(argv[1]);
    gen_args(argv[1]);
    return 0;
}
