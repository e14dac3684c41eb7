/* SPDX-License-Identifier: MIT */
/* The state machine the apply thread drives, behind one interface: the built-in KV
 * (engine/kv.h) and the embedder's struct aegis_sm are two implementations of it, so
 * pipeline/apply.c has a single path for applying, reading, snapshotting and restoring.
 *
 * Snapshots are streams both ways (see struct aegis_sm in include/aegis/aegis.h for the
 * contract): snap_open takes a point-in-time view between two applies, snap_read yields
 * its bytes in pieces while applies go on, snap_close releases it; restore_begin,
 * restore_feed (any split), restore_end(commit) replace the state only on commit, after
 * every byte was verified. An embedder's machine without the streaming callbacks is
 * adapted: its whole-buffer snapshot is read out in pieces, and the fed bytes are
 * gathered for its whole-buffer restore.
 *
 * Thread: the apply thread (and node creation, before it starts). */
#ifndef AEGIS_PIPELINE_MACHINE_H
#define AEGIS_PIPELINE_MACHINE_H

#include <aegis/aegis.h>

#include "engine/kv.h"

struct aegis_machine;

struct aegis_machine_ops {
    /* Apply entry @e, of @type (AEGIS_ENTRY_NOOP for entries that mean nothing to the
     * machine). For a command, @cmd and @len are its bytes past the envelope tag: fill
     * @res and return a value buffer (a reference for the caller) or NULL. Never fails:
     * a command's error is its result. */
    struct aegis_buf *(*apply)(struct aegis_machine *m, const struct aegis_entry *e,
                               uint8_t type, const uint8_t *cmd, size_t len,
                               struct aegis_result *res);
    /* Serve a read: fill @res; return a value buffer (the caller's reference) or NULL. */
    struct aegis_buf *(*read)(struct aegis_machine *m, const uint8_t *query, size_t len,
                              struct aegis_result *res);
    int (*snap_open)(struct aegis_machine *m, void **snap_out);
    int (*snap_read)(struct aegis_machine *m, void *snap, uint8_t *buf, size_t cap,
                     size_t *len_out);
    void (*snap_close)(struct aegis_machine *m, void *snap);
    /* The view's stream length when known, else 0 (a check of the length written). */
    uint64_t (*snap_size)(struct aegis_machine *m, void *snap);
    int (*restore_begin)(struct aegis_machine *m, void **rs_out);
    int (*restore_feed)(struct aegis_machine *m, void *rs, const uint8_t *data, size_t len);
    int (*restore_end)(struct aegis_machine *m, void *rs, bool commit);
    /* Bytes of state (keys and values for the KV); 0 when unknown. */
    uint64_t (*state_bytes)(const struct aegis_machine *m);
};

struct aegis_machine {
    const struct aegis_machine_ops *ops;
    struct aegis_kv *kv;            /* The built-in machine; NULL for an embedder's. */
    const struct aegis_sm *sm;      /* The embedder's; NULL for the built-in. */
    const struct aegis_allocator *alloc;
};

/* The built-in KV @kv (borrowed) as a machine. */
void aegis__machine_kv(struct aegis_machine *m, struct aegis_kv *kv,
                       const struct aegis_allocator *alloc);

/* The embedder's @sm (borrowed) as a machine, with the whole-buffer fallbacks. */
void aegis__machine_user(struct aegis_machine *m, const struct aegis_sm *sm,
                         const struct aegis_allocator *alloc);

#endif /* AEGIS_PIPELINE_MACHINE_H */
