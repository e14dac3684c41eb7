/* SPDX-License-Identifier: MIT */
/* Helpers shared by the pipeline tests (included, not compiled on its own):
 * temporary directories under /tmp and deterministic entries. */
#ifndef AEGIS_TEST_PIPELINE_UTIL_H
#define AEGIS_TEST_PIPELINE_UTIL_H

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/entry.h"

static inline int util_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path);
}

/* A loopback TCP port that was free a moment ago (0 if none could be had), for the node
 * tests that start real nodes. */
static inline uint16_t util_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sa_len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sa_len) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

/* Create a fresh temporary directory; @buf must hold 64 bytes. */
static inline char *util_tmpdir(char *buf)
{
    strcpy(buf, "/tmp/aegis-test-XXXXXX");
    return mkdtemp(buf);
}

static inline void util_rmrf(const char *dir)
{
    nftw(dir, util_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Payload byte @i of entry (@index, @term): at least two bits set, so that one flipped
 * bit can never turn it into zero. */
static inline uint8_t util_byte(aegis_index index, aegis_term term, uint32_t i)
{
    return (uint8_t)(0x81u | ((index * 31u + term * 17u + i * 7u) & 0x7eu));
}

static inline struct aegis_entry util_entry(aegis_index index, aegis_term term, uint32_t len)
{
    struct aegis_entry e = {.index = index, .term = term, .type = AEGIS_ENTRY_COMMAND,
                            .timestamp = 0x0102030405060708ull + index};

    if (len > 0) {
        e.buf = aegis__buf_create(NULL, len);
        for (uint32_t i = 0; i < len; i++) {
            e.buf->data[i] = util_byte(index, term, i);
        }
    }
    return e;
}

/* True when @e has the contents util_entry(@index, @term, @len) would give. */
static inline bool util_entry_ok(const struct aegis_entry *e, aegis_index index,
                                 aegis_term term, uint32_t len)
{
    if (e->index != index || e->term != term || aegis__entry_len(e) != len ||
        e->type != AEGIS_ENTRY_COMMAND || e->timestamp != 0x0102030405060708ull + index) {
        return false;
    }
    for (uint32_t i = 0; i < len; i++) {
        if (e->buf->data[i] != util_byte(index, term, i)) {
            return false;
        }
    }
    return true;
}

static inline void util_unref_all(struct aegis_entry *e, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        aegis__entry_unref(&e[i]);
    }
}

static inline int util_read(const char *path, uint8_t **buf_out, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    long n;

    if (f == NULL) {
        return -1;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf_out = malloc((size_t)n + 1);
    *len_out = fread(*buf_out, 1, (size_t)n, f);
    fclose(f);
    return 0;
}

static inline int util_write(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL) {
        return -1;
    }
    fwrite(buf, 1, len, f);
    fclose(f);
    return 0;
}

#endif /* AEGIS_TEST_PIPELINE_UTIL_H */
