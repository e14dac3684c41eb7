/* SPDX-License-Identifier: MIT */
/* Fuzz target for RESP2 (net/resp.c).
 *
 * The first input byte seeds how the rest is split into reads; the rest is fed to:
 *   - the request parser, once as one buffer and once in pieces, each call getting a
 *     fresh copy of the unconsumed bytes at a new address: both runs must produce the
 *     same commands and end the same way (need more, or the same error and text), every
 *     argv view must lie inside its command, and every command re-encoded with the
 *     command writer must parse back to the same arguments;
 *   - the reply parser, which must frame replies consistently (a reply found in the whole
 *     buffer is found again when exactly its bytes are given, and not in a strict prefix).
 * Small limits make the limit paths reachable from small inputs. abort() on violation. */
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "net/resp.h"

#define LOG_BYTES_MAX 65536

/* A transcript of one run: commands as "argc len:bytes ..." then the final outcome. */
struct transcript {
    char *data;
    size_t len;
};

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void put(struct transcript *t, const void *data, size_t len)
{
    if (t->len + len > LOG_BYTES_MAX) {
        len = LOG_BYTES_MAX - t->len; /* Identical inputs truncate identically. */
    }
    memcpy(t->data + t->len, data, len);
    t->len += len;
}

static const struct aegis_resp_limits limits = {
    .args_max = 16, .bulk_bytes_max = 512, .inline_bytes_max = 128};

static void record_command(struct transcript *t, const struct aegis_resp_cmd *cmd,
                           const char *buf, size_t len)
{
    struct aegis_resp_wbuf w;
    struct aegis_resp_parser p;
    struct aegis_resp_cmd again;
    const char *argv[16];
    size_t lens[16];

    check(cmd->bytes > 0 && cmd->bytes <= len);
    check(cmd->argc <= limits.args_max);
    put(t, &cmd->argc, sizeof(cmd->argc));
    for (uint32_t i = 0; i < cmd->argc; i++) {
        check(cmd->argv[i].ptr >= buf && cmd->argv[i].ptr + cmd->argv[i].len <= buf + len);
        check(cmd->argv[i].ptr + cmd->argv[i].len <= buf + cmd->bytes);
        put(t, &cmd->argv[i].len, sizeof(size_t));
        put(t, cmd->argv[i].ptr, cmd->argv[i].len);
        argv[i] = cmd->argv[i].ptr;
        lens[i] = cmd->argv[i].len;
    }
    if (cmd->argc == 0) {
        return;
    }
    aegis__resp_wbuf_init(&w, NULL, 0);
    check(aegis__resp_add_command(&w, cmd->argc, argv, lens) == 0);
    aegis__resp_parser_init(&p, &limits, NULL);
    check(aegis__resp_parse(&p, w.data, w.len, &again) == 1);
    check(again.bytes == w.len && again.argc == cmd->argc);
    for (uint32_t i = 0; i < cmd->argc; i++) {
        check(again.argv[i].len == lens[i]);
        check(memcmp(again.argv[i].ptr, argv[i], lens[i]) == 0);
    }
    aegis__resp_parser_close(&p);
    aegis__resp_wbuf_close(&w);
}

static void record_end(struct transcript *t, int rv, const struct aegis_resp_parser *p)
{
    put(t, "END", 3);
    put(t, &rv, sizeof(rv));
    if (rv < 0 && rv != AEGIS_ENOMEM) {
        put(t, p->err, strlen(p->err));
    }
}

/* Feed @in; reads are @step(...) bytes long (0: everything at once). */
static void run_requests(const uint8_t *in, size_t size, uint64_t split_seed,
                         struct transcript *t)
{
    struct aegis_resp_parser p;
    struct aegis_resp_cmd cmd;
    size_t start = 0, avail = 0;
    uint64_t s = split_seed;
    int rv = 0;

    aegis__resp_parser_init(&p, &limits, NULL);
    while (start < size) {
        char *buf;

        if (split_seed == 0) {
            avail = size;
        } else {
            s = s * 6364136223846793005u + 1442695040888963407u;
            avail += 1 + (size_t)((s >> 33) % 24);
            avail = avail > size ? size : avail;
        }
        buf = malloc(avail - start + 1);
        memcpy(buf, in + start, avail - start);
        while (start < avail) {
            rv = aegis__resp_parse(&p, buf, avail - start, &cmd);
            if (rv != 1) {
                break;
            }
            record_command(t, &cmd, buf, avail - start);
            memmove(buf, buf + cmd.bytes, avail - start - cmd.bytes);
            start += cmd.bytes;
        }
        free(buf);
        if (rv < 0) {
            break;
        }
        if (rv == 0) {
            check(p.need > avail - start);
            if (avail == size) {
                break;
            }
        }
    }
    record_end(t, start < size ? rv : 1, &p);
    aegis__resp_parser_close(&p);
}

static void run_replies(const uint8_t *in, size_t size)
{
    const char *buf = (const char *)in;
    struct aegis_resp_value vals[8];
    size_t off = 0;

    while (off < size) {
        size_t n = 0, bytes = 0, n2 = 0, bytes2 = 0;
        int rv = aegis__resp_reply_parse(buf + off, size - off, vals, 8, &n, &bytes);

        check(rv == 0 || rv == 1 || rv == AEGIS_ECORRUPT);
        if (rv != 1) {
            break;
        }
        check(bytes > 0 && bytes <= size - off && n >= 1);
        check(aegis__resp_reply_parse(buf + off, bytes, NULL, 0, &n2, &bytes2) == 1);
        check(bytes2 == bytes && n2 == n);
        check(aegis__resp_reply_parse(buf + off, bytes - 1, NULL, 0, &n2, &bytes2) == 0);
        for (size_t i = 0; i < n && i < 8; i++) {
            if (vals[i].str != NULL) {
                check(vals[i].str >= buf + off &&
                      vals[i].str + vals[i].len <= buf + off + bytes);
            }
        }
        off += bytes;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct transcript whole = {malloc(LOG_BYTES_MAX), 0};
    struct transcript split = {malloc(LOG_BYTES_MAX), 0};

    if (size == 0) {
        free(whole.data);
        free(split.data);
        return 0;
    }
    run_requests(data + 1, size - 1, 0, &whole);
    run_requests(data + 1, size - 1, (uint64_t)data[0] + 1, &split);
    check(whole.len == split.len && memcmp(whole.data, split.data, whole.len) == 0);
    run_replies(data + 1, size - 1);
    free(whole.data);
    free(split.data);
    return 0;
}
