/* SPDX-License-Identifier: MIT */
/* Snapshot files: the state machine's bytes and their metadata, written crash-safely,
 * the newest valid one loaded at start.
 *
 * Write sequence: open "<index>.snap.tmp" (any leftover removed first), write header and
 * data, fdatasync, close, rename to "<index>.snap", fsync the directory; only then are
 * older snapshot files removed (and the directory synced again). A crash at any step
 * leaves the previous snapshot loadable; the new one exists under its final name only
 * once its bytes are durable. Load: the snapshot files of the directory, newest index
 * first; the first whose CRCs and header check is loaded; temporary files are removed.
 * Format in snapshot_file.c.
 *
 * Any one thread at a time per directory (the apply thread writes, the opener loads).
 * Segments below a snapshot may be removed only after aegis__snapshot_file_write() has
 * returned 0 (then send AEGIS_LOG_OP_COMPACT to the log thread). */
#ifndef AEGIS_PIPELINE_SNAPSHOT_FILE_H
#define AEGIS_PIPELINE_SNAPSHOT_FILE_H

#include "engine/entry.h"
#include "pipeline/fileio.h"

#define AEGIS_SNAPSHOT_HEADER_BYTES 320u

/* Write a snapshot of @len bytes at @data with metadata @meta into @dir, durably, then
 * remove older snapshots. Everything is borrowed for the call. Returns 0 or an I/O
 * error (AEGIS_ENOSPC, AEGIS_EIO, ...); on error the previous snapshot is intact. */
int aegis__snapshot_file_write(const char *dir, struct aegis_fileio *io,
                               const struct aegis_snapshot_meta *meta, const void *data,
                               size_t len);

/* Load the newest valid snapshot of @dir. Returns 0 with @meta_out filled and a new
 * buffer in @data_out (one reference, the caller's; NULL for empty data) and
 * *found_out = true; 0 with *found_out = false when there is none; or an error
 * (AEGIS_ENOMEM, I/O). Invalid snapshot files are skipped, temporary ones removed. */
int aegis__snapshot_file_load(const char *dir, struct aegis_fileio *io,
                              const struct aegis_allocator *a,
                              struct aegis_snapshot_meta *meta_out, struct aegis_buf **data_out,
                              bool *found_out);

/* Encode/decode the header (exposed for tests and fuzzing). encode writes zeros in every
 * reserved byte. decode returns 0 with the meta, the data length and CRC, or
 * AEGIS_ECORRUPT; it never asserts on the bytes. check says why decode refuses @buf (a
 * static string such as "reserved header bytes are not zero", for messages), or NULL
 * when it accepts it. */
void aegis__snapshot_header_encode(const struct aegis_snapshot_meta *meta, uint64_t data_len,
                                   uint32_t data_crc, uint8_t out[AEGIS_SNAPSHOT_HEADER_BYTES]);
int aegis__snapshot_header_decode(const uint8_t *buf, size_t len,
                                  struct aegis_snapshot_meta *meta_out, uint64_t *data_len_out,
                                  uint32_t *data_crc_out);
const char *aegis__snapshot_header_check(const uint8_t *buf, size_t len);

#endif /* AEGIS_PIPELINE_SNAPSHOT_FILE_H */
