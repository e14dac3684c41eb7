/* SPDX-License-Identifier: MIT */
/* InstallSnapshot through files: the pipeline's snapshot_io for the core (engine/raft.h).
 *
 * The unit of transfer is the snapshot file's bytes exactly as on disk ("<index>.snap",
 * snapshot_file.h); the core moves them in chunks and never holds them whole.
 *
 * Leader (source, raft thread): a chunk is pread from the snapshot file into a buffer of
 * the chunk's size (snapshot_chunk_bytes, 1 MiB by default), with at most
 * snapshot_chunks_inflight_max chunks per follower in flight, so a transfer costs the
 * sender chunk x window bytes, not the snapshot. The file descriptor of the current
 * snapshot stays open while transfers run (an older snapshot removed meanwhile is read
 * through it until the core moves to the newer one). A read is one pread of at most one
 * chunk, normally from the page cache; the core's interface lets a reader answer
 * AEGIS_EAGAIN and come back (aegis__raft_snapshot_readable), which this runtime does not
 * need yet.
 *
 * Follower (sink): every file operation runs on the log thread, in order with the log's
 * own writes, as steps of the INSTALL log request (struct aegis_snap_step):
 *   OPEN    remove any partial snapshot, create "snap-<index>-<term>-<leader>-<size>.recv";
 *   CHUNK   pwrite one chunk at its offset (the core's acknowledgement of it goes in
 *           msgs_after_persist: it leaves once the log thread has passed this step);
 *   VERIFY  fdatasync the file and check it whole with the snapshot file reader, as the
 *           load does (snapshot_file.h: header, every chunk's length, CRC and sequence,
 *           the end chunk, the stream CRC; one chunk in memory); the verdict comes back as
 *           a log report (SNAPSHOT) and goes to aegis__raft_snapshot_verified(); a refused
 *           file is removed;
 *   COMMIT  (from the ready that names the snapshot) rename it to "<index>.snap", fsync the
 *           directory, remove older snapshots; then the log writer drops the whole log.
 * The apply thread's INSTALL (which loads the file) is held on the raft thread until the
 * log thread reports the COMMIT durable, so it always finds the file under its name.
 *
 * A cut transfer resumes. The raft thread tracks the partial offer (identity from the
 * file name, bytes held = what it queued); after a restart it finds the ".recv" file and
 * takes its size as the bytes held. recv_open of the same offer (same leader, index, term
 * and size) answers that count and the core resumes there (the leader jumps ahead). The
 * bytes past the last fdatasync may be torn by a power cut; the whole-file check at the
 * end catches that, the file is removed and the transfer starts again from 0.
 *
 * Memory: sender chunk x window per follower; receiver the chunks queued to the log
 * thread (at most the leader's window, since each is acknowledged only once written)
 * plus the reader's one chunk (at most 4 MiB) while verifying. */
#ifndef AEGIS_PIPELINE_SNAP_TRANSFER_H
#define AEGIS_PIPELINE_SNAP_TRANSFER_H

#include "engine/raft.h"
#include "pipeline/fileio.h"

struct aegis_node;

enum aegis_snap_step_kind {
    AEGIS_SNAP_STEP_OPEN = 1,
    AEGIS_SNAP_STEP_CHUNK = 2,
    AEGIS_SNAP_STEP_VERIFY = 3,
    AEGIS_SNAP_STEP_COMMIT = 4,
};

/* One step of receiving a snapshot, run by the log thread (heap; owns chunk's ref). */
struct aegis_snap_step {
    uint8_t kind;                    /* enum aegis_snap_step_kind. */
    struct aegis_snapshot_meta meta;
    aegis_node_id leader;
    uint64_t total;
    uint64_t offset;                 /* CHUNK. */
    struct aegis_buf *chunk;         /* CHUNK: one reference. */
};

/* Log thread: run @s in @dir. Returns 0 or an I/O error (fail-stop for OPEN, CHUNK and
 * COMMIT). VERIFY returns 0 and puts the verdict (0 or AEGIS_ECORRUPT/I/O error) in
 * *verdict_out. */
int aegis__snap_step_run(const char *dir, struct aegis_fileio *io, const struct aegis_snap_step *s,
                         int *verdict_out);
void aegis__snap_step_free(struct aegis_snap_step *s, const struct aegis_allocator *a);

/* The whole-file check of a received snapshot at @path for @meta: the snapshot file
 * reader's (snapshot_file.h), every chunk read and checked. Returns 0, AEGIS_ECORRUPT
 * (logged with the file and offset) or an I/O error. */
int aegis__snap_file_verify(const char *path, struct aegis_fileio *io,
                            const struct aegis_snapshot_meta *meta);

/* Raft-thread state, in struct aegis_node. */
struct aegis_snap_transfer {
    struct aegis_node *n;
    int src_fd;                      /* Source: the open snapshot file, or -1. */
    aegis_index src_index;
    bool recv_active;                /* Sink: the partial offer on disk. */
    struct aegis_snapshot_meta recv_meta;
    aegis_node_id recv_leader;
    uint64_t recv_total;
    uint64_t recv_have;              /* Bytes written or queued to the log thread. */
    bool install_held;               /* Apply INSTALL waits for the COMMIT to be durable. */
    uint64_t install_seq;
    struct aegis_snapshot_meta install_meta;
};

/* Before the core starts: find a partial snapshot left in the data directory. */
void aegis__snap_transfer_init(struct aegis_snap_transfer *t, struct aegis_node *n);
void aegis__snap_transfer_close(struct aegis_snap_transfer *t);
void aegis__snap_transfer_io(struct aegis_snap_transfer *t, struct aegis_snapshot_io *io);

/* The size of the snapshot file of @index (0 when absent), for the core. */
uint64_t aegis__snap_transfer_file_bytes(const struct aegis_node *n, aegis_index index);

/* Raft thread hooks (raft_thread.c, marked "snap-install"). */
/* The snapshot writer made the file for @meta durable, @file_bytes long (the report):
 * tell the core, with that size. AEGIS_ENOENT when the file is already gone (a newer
 * snapshot replaced it), else what aegis__raft_snapshot_taken() answers. */
int aegis__snap_transfer_taken(struct aegis_snap_transfer *t,
                               const struct aegis_snapshot_meta *meta, uint64_t file_bytes);
void aegis__snap_transfer_commit(struct aegis_snap_transfer *t,
                                 const struct aegis_snapshot_meta *meta);
void aegis__snap_transfer_installed(struct aegis_snap_transfer *t,
                                    const struct aegis_snapshot_meta *meta, uint64_t seq);
void aegis__snap_transfer_on_durable(struct aegis_snap_transfer *t, uint64_t durable_seq);
void aegis__snap_transfer_on_verdict(struct aegis_snap_transfer *t, aegis_index index,
                                     aegis_term term, int verdict);

#endif /* AEGIS_PIPELINE_SNAP_TRANSFER_H */
