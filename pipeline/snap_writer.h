/* SPDX-License-Identifier: MIT */
/* The snapshot writer: a thread of its own (aegis-snap) that writes the snapshot stream the
 * apply thread produces into a snapshot file, so that the apply thread never waits on the
 * disk and never holds the whole snapshot.
 *
 * The apply thread (the producer) begins a job with the snapshot's metadata, then, between
 * two batches of applies, takes a free chunk buffer, fills it from the state machine's
 * view and pushes it; the writer appends each buffer as one checksummed chunk
 * (aegis__snapshot_out_append), and on end writes the end chunk and header, fdatasyncs,
 * renames and fsyncs the directory (snapshot_file.h). Buffers come from a fixed pool of
 * chunks_in_flight buffers of chunk_bytes: when all of them are queued the producer simply
 * reads nothing more until one comes back, so memory is bounded by the pool whatever the
 * size of the state. No copy of the stream is kept: the file is the snapshot, and
 * InstallSnapshot streams it from disk (snap_transfer.h).
 *
 * Why a thread with its own io_uring and not the log thread's: the log thread's ring
 * carries the group commit, whose latency every write waits for; a snapshot's megabytes
 * and its fdatasync queued there would delay it. The writer thread submits one SQE per
 * chunk (a writev of the chunk header and payload) and the final fdatasync on its own
 * small ring, shown to the file layer (aegis__fileio_uring_prepare/_result), so the fault
 * layer's crash tests reach every step; meanwhile the producer fills the next buffers.
 * Without io_uring it falls back to pwritev through the file layer.
 *
 * Threads: one producer thread calls begin/buf/push/end/poll; stats are relaxed atomics
 * anyone may read. */
#ifndef AEGIS_PIPELINE_SNAP_WRITER_H
#define AEGIS_PIPELINE_SNAP_WRITER_H

#include "engine/buf.h"
#include "engine/entry.h"
#include "pipeline/fileio.h"

/* Written by the writer and the producer (relaxed atomics), read by INFO. */
struct aegis_snap_stats {
    uint64_t in_progress;     /* 1 while a job runs. */
    uint64_t written_bytes;   /* Stream bytes written by the job in progress. */
    uint64_t last_index;      /* The last durable snapshot: index, */
    uint64_t last_bytes;      /* file size, */
    uint64_t last_ns;         /* and time from begin to durable. */
    uint64_t failed;          /* Jobs that ended in an error. */
    uint64_t state_bytes;     /* The state machine's size (the producer writes it). */
};

struct aegis_snap_writer_config {
    const char *dir;                      /* Copied. */
    struct aegis_fileio *io;              /* NULL: the real one. */
    const struct aegis_allocator *alloc;
    size_t chunk_bytes;                   /* 1..AEGIS_SNAPSHOT_CHUNK_BYTES_MAX. */
    uint32_t chunks_in_flight;            /* Pool size, >= 1. */
    struct aegis_snap_stats *stats;       /* May be NULL. */
    void (*wake)(void *data);             /* A buffer came back or a job ended. */
    void *wake_data;
};

/* The outcome of a job. */
struct aegis_snap_result {
    int status;                      /* 0: durable; or the error that stopped it. */
    struct aegis_snapshot_meta meta;
    uint64_t stream_bytes;
    uint64_t file_bytes;
    uint64_t duration_ns;
};

struct aegis_snap_writer;

/* Start the writer thread. 0, AEGIS_ENOMEM or a pthread error. */
int aegis__snap_writer_create(struct aegis_snap_writer **out,
                              const struct aegis_snap_writer_config *c);

/* Abort a job in progress (its temporary file is removed), stop and join the thread, free
 * everything. NULL is a no-op. */
void aegis__snap_writer_destroy(struct aegis_snap_writer *w);

/* Begin a job for the snapshot @meta, @size_hint bytes of stream if known (0: unknown;
 * a job that writes another length logs a warning). AEGIS_EBUSY while the previous job's
 * result has not been polled. */
int aegis__snap_writer_begin(struct aegis_snap_writer *w, const struct aegis_snapshot_meta *meta,
                             uint64_t size_hint);

/* A free buffer of chunk_bytes to fill, or NULL when all are in flight. */
uint8_t *aegis__snap_writer_buf(struct aegis_snap_writer *w);
size_t aegis__snap_writer_chunk_bytes(const struct aegis_snap_writer *w);

/* Hand over @buf (from aegis__snap_writer_buf) holding @len bytes (1..chunk_bytes), or
 * give it back unused with @len 0. */
void aegis__snap_writer_push(struct aegis_snap_writer *w, uint8_t *buf, size_t len);

/* No more data: @status 0 makes the file durable; an error abandons it (and becomes the
 * job's result). */
void aegis__snap_writer_end(struct aegis_snap_writer *w, int status);

/* The first write error of the job in progress, or 0: the producer stops early. */
int aegis__snap_writer_error(struct aegis_snap_writer *w);

/* Whether the job has something for the producer: its result, or (@want_buf) a free
 * buffer. */
bool aegis__snap_writer_ready(struct aegis_snap_writer *w, bool want_buf);

/* True once the job ended, with its result in @out (the job is then over: begin may be
 * called again). */
bool aegis__snap_writer_poll(struct aegis_snap_writer *w, struct aegis_snap_result *out);

#endif /* AEGIS_PIPELINE_SNAP_WRITER_H */
