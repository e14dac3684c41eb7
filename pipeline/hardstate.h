/* SPDX-License-Identifier: MIT */
/* The hard state file: term, vote and commit index, written so that a crash at any
 * moment leaves the old value or the new one, never a mix.
 *
 * Design: one file, "hardstate", with two slots in separate 512-byte sectors. Each write
 * goes to the slot that does not hold the current value, with a sequence number one
 * higher, and is made durable with fdatasync; the reader takes the valid slot (CRC and
 * magic) with the higher sequence. A torn write can only damage the slot being written,
 * and the other still holds the previous value. The file is created once, at open,
 * under a temporary name (write, fdatasync, rename, fsync of the directory), so that it
 * either does not exist (hard state zero) or holds a valid slot. Format in hardstate.c.
 *
 * Owned by one thread at a time (the log thread once it runs). */
#ifndef AEGIS_PIPELINE_HARDSTATE_H
#define AEGIS_PIPELINE_HARDSTATE_H

#include "engine/raft.h"
#include "pipeline/fileio.h"

#define AEGIS_HARDSTATE_SLOT_BYTES 64u
#define AEGIS_HARDSTATE_SLOT_STRIDE 512u
#define AEGIS_HARDSTATE_FILE_BYTES 1024u

struct aegis_hardstate_file {
    char *dir;
    char *path;
    int fd;
    uint64_t seq;  /* Sequence of the current (newest valid) slot. */
    uint32_t slot; /* Which slot holds it: 0 or 1. */
    struct aegis_hard_state hs;
    bool fell_back; /* Open: the other slot was unreadable yet had been written (torn or
                       damaged): it may have held a newer value (logged as a warning). */
    struct aegis_fileio *io;
    const struct aegis_allocator *alloc;
};

/* Open (creating if absent) the hard state file in @dir and read it into @hs_out (zero
 * when the file did not exist). @io is borrowed (NULL: real). Returns 0, AEGIS_ECORRUPT
 * (no valid slot), AEGIS_ENOMEM or an I/O error. */
int aegis__hardstate_open(struct aegis_hardstate_file *h, const char *dir,
                          struct aegis_fileio *io, const struct aegis_allocator *a,
                          struct aegis_hard_state *hs_out);
void aegis__hardstate_close(struct aegis_hardstate_file *h);

/* Write @hs durably (slot write + fdatasync). On error the previous value stays the
 * current one on disk and in @h. Returns 0 or an I/O error. */
int aegis__hardstate_write(struct aegis_hardstate_file *h, const struct aegis_hard_state *hs);

/* The asynchronous form for io_uring: encode the next slot for @hs into @buf and give its
 * file offset; once the write and an fdatasync of h->fd have succeeded, call
 * aegis__hardstate_written(h, hs). */
void aegis__hardstate_encode_next(const struct aegis_hardstate_file *h,
                                  const struct aegis_hard_state *hs,
                                  uint8_t buf[AEGIS_HARDSTATE_SLOT_BYTES], uint64_t *off_out);
void aegis__hardstate_written(struct aegis_hardstate_file *h, const struct aegis_hard_state *hs);

/* Encode one slot for sequence @seq and @hs (reserved bytes zero; exposed for tests and
 * fuzzing: aegis__hardstate_decode of it gives back @seq and @hs when @seq > 0). */
void aegis__hardstate_encode_slot(uint64_t seq, const struct aegis_hard_state *hs,
                                  uint8_t out[AEGIS_HARDSTATE_SLOT_BYTES]);

/* Decode one slot: 0 and the value, or AEGIS_ECORRUPT with the outputs untouched. Never
 * asserts on the bytes. */
int aegis__hardstate_decode(const uint8_t *buf, size_t len, uint64_t *seq_out,
                            struct aegis_hard_state *hs_out);

#endif /* AEGIS_PIPELINE_HARDSTATE_H */
