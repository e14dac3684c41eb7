/* Writes the seed corpora of the codec and RESP fuzz targets:
 *     gen_corpus tests/fuzz/corpus
 * creates corpus/codec/<type>.bin (one valid frame per message type, plus AppendEntries
 * with several entries and a full membership snapshot chunk) and corpus/resp/<name>.txt (a
 * split-seed byte, then requests and replies). The files are committed; rerun this after
 * a wire format change. corpus/resp/redis_benchmark.txt and redis_cli.txt are not made
 * here: they are the bytes redis-benchmark and redis-cli (7.0) sent to redis-server
 * through a recording proxy, behind the same split-seed byte. corpus/hello/<name>.bin:
 * the limit and chunk bytes of fuzz_hello, then a hello and frames. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/codec.h"
#include "net/peer_frame.h"

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
    gen_hello(argv[1]);
    return 0;
}
