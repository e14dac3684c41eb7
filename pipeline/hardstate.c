/* SPDX-License-Identifier: MIT */
/* The hard state file; see hardstate.h for the design.
 *
 * File "hardstate", 1024 bytes: slot 0 at offset 0, slot 1 at offset 512, the rest
 * zero. A slot, 64 bytes, integers little-endian:
 *    0  4  magic "AGHS"
 *    4  4  version, 1
 *    8  8  sequence number (the newer slot has the higher one)
 *   16  8  term
 *   24  8  vote (node id, 0 = none)
 *   32  8  commit index
 *   40 20  reserved, zero
 *   60  4  CRC32C of bytes 0..59
 * A slot of zeros, or with a bad magic or CRC, is invalid. Write sequence of an update:
 * pwrite(other slot) then fdatasync. Creation: open "hardstate.tmp", pwrite the whole
 * file (slot 0 = the zero hard state, sequence 1), fdatasync, close, rename to
 * "hardstate", fsync the directory. */
#include "pipeline/hardstate.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/byteorder.h"
#include "engine/crc32c.h"
#include "pipeline/logging.h"

#define HS_NAME "hardstate"
#define HS_TMP_NAME "hardstate.tmp"

/* The slot layout of the file comment: magic, version, 4 integers, reserved, CRC. */
_Static_assert(AEGIS_HARDSTATE_SLOT_BYTES == 4 + 4 + 4 * 8 + 20 + 4, "hard state slot layout");
_Static_assert(AEGIS_HARDSTATE_SLOT_STRIDE >= AEGIS_HARDSTATE_SLOT_BYTES, "slots overlap");

static const uint8_t hs_magic[4] = {'A', 'G', 'H', 'S'};

static void encode_slot(uint64_t seq, const struct aegis_hard_state *hs, uint8_t *out)
{
    uint32_t crc;

    memset(out, 0, AEGIS_HARDSTATE_SLOT_BYTES);
    memcpy(out, hs_magic, 4);
    out[4] = 1;
    aegis__put_le64(out + 8, seq);
    aegis__put_le64(out + 16, hs->term);
    aegis__put_le64(out + 24, hs->vote);
    aegis__put_le64(out + 32, hs->commit);
    crc = aegis__crc32c(0, out, 60);
    for (int i = 0; i < 4; i++) {
        out[60 + i] = (uint8_t)(crc >> (8 * i));
    }
}

void aegis__hardstate_encode_slot(uint64_t seq, const struct aegis_hard_state *hs,
                                  uint8_t out[AEGIS_HARDSTATE_SLOT_BYTES])
{
    encode_slot(seq, hs, out);
}

int aegis__hardstate_decode(const uint8_t *buf, size_t len, uint64_t *seq_out,
                            struct aegis_hard_state *hs_out)
{
    uint32_t crc = 0;

    if (len < AEGIS_HARDSTATE_SLOT_BYTES || memcmp(buf, hs_magic, 4) != 0 || buf[4] != 1 ||
        buf[5] != 0 || buf[6] != 0 || buf[7] != 0) {
        return AEGIS_ECORRUPT;
    }
    for (int i = 3; i >= 0; i--) {
        crc = (crc << 8) | buf[60 + i];
    }
    if (crc != aegis__crc32c(0, buf, 60)) {
        return AEGIS_ECORRUPT;
    }
    for (int i = 40; i < 60; i++) {
        if (buf[i] != 0) {
            return AEGIS_ECORRUPT;
        }
    }
    if (aegis__get_le64(buf + 8) == 0) {
        return AEGIS_ECORRUPT; /* The writer's first sequence is 1. */
    }
    *seq_out = aegis__get_le64(buf + 8);
    hs_out->term = aegis__get_le64(buf + 16);
    hs_out->vote = aegis__get_le64(buf + 24);
    hs_out->commit = aegis__get_le64(buf + 32);
    return 0;
}

static char *join(const struct aegis_allocator *a, const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = aegis__malloc(a, n);

    if (p != NULL) {
        snprintf(p, n, "%s/%s", dir, name);
    }
    return p;
}

/* Create the file through a temporary name. */
static int create_file(struct aegis_hardstate_file *h)
{
    static const struct aegis_hard_state zero;
    uint8_t file[AEGIS_HARDSTATE_FILE_BYTES] = {0};
    struct iovec iov = {.iov_base = file, .iov_len = sizeof(file)};
    char *tmp = join(h->alloc, h->dir, HS_TMP_NAME);
    int fd, rv;

    if (tmp == NULL) {
        return AEGIS_ENOMEM;
    }
    encode_slot(1, &zero, file);
    aegis__fileio_unlink(h->io, tmp); /* A leftover from a crash; ENOENT is fine. */
    fd = aegis__fileio_open(h->io, tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        rv = fd;
        goto out;
    }
    rv = aegis__fileio_pwritev_all(h->io, fd, &iov, 1, 0, NULL);
    if (rv == 0) {
        rv = aegis__fileio_fdatasync(h->io, fd);
    }
    aegis__fileio_close(h->io, fd);
    if (rv == 0) {
        rv = aegis__fileio_rename(h->io, tmp, h->path);
    }
    if (rv == 0) {
        rv = aegis__fileio_fsync_dir(h->io, h->dir);
    }
out:
    aegis__free(h->alloc, tmp);
    return rv;
}

/* Why a slot does not decode, for the operator (the decoder only says that it does not). */
static const char *slot_why(const uint8_t *buf, size_t avail)
{
    static const uint8_t zero[AEGIS_HARDSTATE_SLOT_BYTES];
    uint32_t crc = 0;

    if (avail < AEGIS_HARDSTATE_SLOT_BYTES) {
        return "cut short by the end of the file";
    }
    if (memcmp(buf, zero, sizeof(zero)) == 0) {
        return "all zeros";
    }
    if (memcmp(buf, hs_magic, 4) != 0) {
        return "bad magic";
    }
    for (int i = 3; i >= 0; i--) {
        crc = (crc << 8) | buf[60 + i];
    }
    if (crc != aegis__crc32c(0, buf, 60)) {
        return "CRC mismatch";
    }
    return "bad version, reserved bytes or sequence";
}

/* Pick the valid slot with the higher sequence. A slot that does not decode although it
 * was written (anything but the untouched slot 1 of a new file) may have held a newer
 * value: that is a fall back, logged with the slot, the reason, the file and the offset. */
static int read_slots(struct aegis_hardstate_file *h)
{
    uint8_t file[AEGIS_HARDSTATE_FILE_BYTES];
    int64_t n = aegis__fileio_pread(h->io, h->fd, file, sizeof(file), 0);
    const char *why[2] = {NULL, NULL};
    bool found = false;

    if (n < 0) {
        return (int)n;
    }
    for (uint32_t s = 0; s < 2; s++) {
        uint64_t off = (uint64_t)s * AEGIS_HARDSTATE_SLOT_STRIDE, seq;
        struct aegis_hard_state hs;

        if ((uint64_t)n < off + AEGIS_HARDSTATE_SLOT_BYTES ||
            aegis__hardstate_decode(file + off, AEGIS_HARDSTATE_SLOT_BYTES, &seq, &hs) != 0) {
            why[s] = slot_why(file + off, (uint64_t)n > off ? (size_t)((uint64_t)n - off) : 0);
            continue;
        }
        if (!found || seq > h->seq) {
            h->seq = seq;
            h->slot = s;
            h->hs = hs;
            found = true;
        }
    }
    if (!found) {
        AEGIS_LOG(AEGIS_LOG_ERROR,
                  "hard state %s: no valid slot (slot 0 at byte offset 0: %s; slot 1 at byte "
                  "offset %u: %s): refusing to start",
                  h->path, why[0], AEGIS_HARDSTATE_SLOT_STRIDE, why[1]);
        return AEGIS_ECORRUPT;
    }
    {
        uint32_t bad = 1 - h->slot;
        bool untouched = bad == 1 && h->seq == 1 && strcmp(why[1] != NULL ? why[1] : "",
                                                           "all zeros") == 0;

        if (why[bad] != NULL && !untouched) {
            h->fell_back = true;
            AEGIS_LOG(AEGIS_LOG_WARN,
                      "hard state %s: slot %u at byte offset %u is unreadable (%s); falling "
                      "back to slot %u (sequence %llu: term %llu, vote %llu): a newer term or "
                      "vote may be lost",
                      h->path, bad, bad * AEGIS_HARDSTATE_SLOT_STRIDE, why[bad], h->slot,
                      (unsigned long long)h->seq, (unsigned long long)h->hs.term,
                      (unsigned long long)h->hs.vote);
        }
    }
    return 0;
}

int aegis__hardstate_open(struct aegis_hardstate_file *h, const char *dir,
                          struct aegis_fileio *io, const struct aegis_allocator *a,
                          struct aegis_hard_state *hs_out)
{
    int rv;

    memset(h, 0, sizeof(*h));
    h->fd = -1;
    h->io = io;
    h->alloc = a;
    h->dir = join(a, dir, "");
    h->path = join(a, dir, HS_NAME);
    if (h->dir == NULL || h->path == NULL) {
        rv = AEGIS_ENOMEM;
        goto err;
    }
    h->dir[strlen(h->dir) - 1] = '\0'; /* join() added a trailing slash. */
    h->fd = aegis__fileio_open(io, h->path, O_RDWR, 0);
    if (h->fd == AEGIS_ENOENT) {
        rv = create_file(h);
        if (rv != 0) {
            goto err;
        }
        h->fd = aegis__fileio_open(io, h->path, O_RDWR, 0);
    }
    if (h->fd < 0) {
        rv = h->fd;
        goto err;
    }
    rv = read_slots(h);
    if (rv != 0) {
        goto err;
    }
    *hs_out = h->hs;
    return 0;

err:
    aegis__hardstate_close(h);
    AEGIS_ASSERT(rv != 0);
    return rv;
}

void aegis__hardstate_close(struct aegis_hardstate_file *h)
{
    if (h->fd >= 0) {
        aegis__fileio_close(h->io, h->fd);
    }
    h->fd = -1;
    aegis__free(h->alloc, h->dir);
    aegis__free(h->alloc, h->path);
    h->dir = NULL;
    h->path = NULL;
}

void aegis__hardstate_encode_next(const struct aegis_hardstate_file *h,
                                  const struct aegis_hard_state *hs,
                                  uint8_t buf[AEGIS_HARDSTATE_SLOT_BYTES], uint64_t *off_out)
{
    AEGIS_ASSERT(h->fd >= 0);
    AEGIS_ASSERT(h->slot <= 1);
    encode_slot(h->seq + 1, hs, buf);
    *off_out = (uint64_t)(1 - h->slot) * AEGIS_HARDSTATE_SLOT_STRIDE;
}

void aegis__hardstate_written(struct aegis_hardstate_file *h, const struct aegis_hard_state *hs)
{
    h->seq++;
    h->slot = 1 - h->slot;
    h->hs = *hs;
}

int aegis__hardstate_write(struct aegis_hardstate_file *h, const struct aegis_hard_state *hs)
{
    uint8_t buf[AEGIS_HARDSTATE_SLOT_BYTES];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    uint64_t off;
    int rv;

    aegis__hardstate_encode_next(h, hs, buf, &off);
    rv = aegis__fileio_pwritev_all(h->io, h->fd, &iov, 1, off, NULL);
    if (rv == 0) {
        rv = aegis__fileio_fdatasync(h->io, h->fd);
    }
    if (rv != 0) {
        return rv;
    }
    aegis__hardstate_written(h, hs);
    return 0;
}
