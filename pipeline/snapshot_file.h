/* SPDX-License-Identifier: MIT */
/* Snapshot files: the snapshot stream (member addresses, then the state machine's bytes)
 * and its metadata, written crash-safely in checksummed chunks, read back as a stream.
 *
 * Write sequence (struct aegis_snapshot_out): open "<index>.snap.tmp" (any leftover
 * removed first), write a placeholder header, append the stream in chunks (each with its
 * own CRC32C), an end chunk, the final header (stream length and CRC), fdatasync, close,
 * rename to "<index>.snap", fsync the directory; only then are older snapshot files
 * removed (and the directory synced again). A crash at any step leaves the previous
 * snapshot loadable; the new one exists under its final name only once its bytes are
 * durable. Nothing bounds the stream but the disk; memory is one chunk.
 *
 * Read (struct aegis_snapshot_reader): the header, then one chunk at a time, each checked
 * (length, CRC, sequence) before its bytes are handed out; the end chunk and the header's
 * stream CRC are checked before the reader says "end". A consumer must not make what it
 * read its state before that end (kv load_finish, restore_end): a truncated or
 * bit-flipped file is refused with a message naming the file and the byte offset.
 * Files of format version 1 (one unchunked data block, written before 0.3) are still
 * read, as a stream of 1 MiB slices whose CRC is checked at the end.
 * Format in snapshot_file.c and docs/storage.md.
 *
 * Any one thread at a time per directory (the snapshot writer thread or the log thread
 * writes; the opener loads). Segments below a snapshot may be removed only after its
 * write has returned 0 (then send AEGIS_LOG_OP_COMPACT to the log thread). */
#ifndef AEGIS_PIPELINE_SNAPSHOT_FILE_H
#define AEGIS_PIPELINE_SNAPSHOT_FILE_H

#include "engine/entry.h"
#include "pipeline/fileio.h"

#define AEGIS_SNAPSHOT_HEADER_BYTES 320u
#define AEGIS_SNAPSHOT_VERSION 2u
/* A chunk's payload is at most this (a reader holds one chunk). */
#define AEGIS_SNAPSHOT_CHUNK_BYTES_MAX ((uint32_t)(4u << 20))
#define AEGIS_SNAPSHOT_CHUNK_HEADER_BYTES 8u
#define AEGIS_SNAPSHOT_END_BYTES 16u /* The end chunk's body. */
#define AEGIS_SNAPSHOT_PATH_MAX 4096u

struct io_uring;

/* A snapshot file being written. Fields are private, but for ring. */
struct aegis_snapshot_out {
    struct aegis_fileio *io;
    struct io_uring *ring; /* Set after open (optional): chunks and the fdatasync then go
                            * through this io_uring of the writing thread, one submission
                            * at a time, the file layer shown every SQE (fileio.h). */
    int fd;
    aegis_index index;
    struct aegis_snapshot_meta meta;
    uint64_t off;     /* File bytes written so far. */
    uint64_t seq;     /* Chunks written so far. */
    uint64_t total;   /* Stream bytes written so far. */
    uint32_t crc;     /* CRC32C of the stream so far. */
    char dir[AEGIS_SNAPSHOT_PATH_MAX];
    char tmp[AEGIS_SNAPSHOT_PATH_MAX];
    char path[AEGIS_SNAPSHOT_PATH_MAX];
};

/* Create the temporary file of the snapshot @meta in @dir and write its placeholder
 * header. 0 or a negative errno (nothing left behind). */
int aegis__snapshot_out_open(struct aegis_snapshot_out *o, const char *dir,
                             struct aegis_fileio *io, const struct aegis_snapshot_meta *meta);

/* Append @len bytes (1..AEGIS_SNAPSHOT_CHUNK_BYTES_MAX) of the stream as one chunk.
 * 0 or a negative errno (then only abort). */
int aegis__snapshot_out_append(struct aegis_snapshot_out *o, const void *data, size_t len);

/* Write the end chunk and the final header, make the file durable under its name and
 * remove older snapshots. 0 (*file_bytes_out: the file's size) or a negative errno, after
 * which the temporary file is gone and the previous snapshot intact. */
int aegis__snapshot_out_finish(struct aegis_snapshot_out *o, uint64_t *file_bytes_out);

/* Drop a snapshot being written (closes and removes the temporary file). */
void aegis__snapshot_out_abort(struct aegis_snapshot_out *o);

/* Write a snapshot whose whole stream is the @len bytes at @data (chunked as above). Everything is
 * borrowed for the call. Returns 0 or an I/O error (AEGIS_ENOSPC, AEGIS_EIO, ...); on
 * error the previous snapshot is intact. */
int aegis__snapshot_file_write(const char *dir, struct aegis_fileio *io,
                               const struct aegis_snapshot_meta *meta, const void *data,
                               size_t len);

/* A snapshot file being read. Fields are private. */
struct aegis_snapshot_reader {
    struct aegis_fileio *io;
    const struct aegis_allocator *alloc;
    int fd;
    uint32_t version;
    struct aegis_snapshot_meta meta;
    uint64_t size;       /* The file's size. */
    uint64_t off;        /* Next file byte to read. */
    uint64_t seq;        /* Chunks handed out. */
    uint64_t total;      /* Stream bytes handed out. */
    uint64_t data_len;   /* The header's stream length. */
    uint32_t data_crc;   /* The header's stream CRC. */
    uint32_t crc;        /* CRC32C of the stream handed out. */
    bool done;
    uint8_t *buf;        /* One chunk. */
    const char *why;     /* Why it was refused (static), or NULL. */
    uint64_t where;      /* The file offset it refers to. */
    char path[AEGIS_SNAPSHOT_PATH_MAX];
};

/* Open the snapshot file @path and check its header (and, when @want is not 0, that it
 * is the snapshot at index @want). Returns 0 with r->meta filled, AEGIS_ECORRUPT (see
 * aegis__snapshot_reader_error; r is closed), or a negative errno. */
int aegis__snapshot_reader_open(struct aegis_snapshot_reader *r, const char *path,
                                struct aegis_fileio *io, const struct aegis_allocator *a,
                                aegis_index want);

/* The next bytes of the stream, checked: *@data_out (valid until the next call) and
 * *@len_out, 0 only at the end, once the whole file has been verified. Returns 0,
 * AEGIS_ECORRUPT or a negative errno. */
int aegis__snapshot_reader_next(struct aegis_snapshot_reader *r, const uint8_t **data_out,
                                size_t *len_out);

/* "snapshot <path>: <why> at byte offset <n>", for the log, after AEGIS_ECORRUPT. */
void aegis__snapshot_reader_error(const struct aegis_snapshot_reader *r, char *out,
                                  size_t cap);

void aegis__snapshot_reader_close(struct aegis_snapshot_reader *r);

/* The path of the snapshot file at @index in @dir. */
void aegis__snapshot_file_path(const char *dir, aegis_index index, char *out, size_t cap);

/* Find and verify the newest valid snapshot of @dir (every chunk is read and checked).
 * Returns 0 with @meta_out filled, *found_out = true and, when the stream fits in one
 * buffer (AEGIS_BUF_LEN_MAX), a new buffer holding it in @data_out (one reference, the
 * caller's; NULL for an empty or larger stream: read the file with a reader); 0 with
 * *found_out = false when there is none; or an error (AEGIS_ENOMEM, I/O). Invalid
 * snapshot files are skipped (logged with file and offset), temporary ones removed. */
int aegis__snapshot_file_load(const char *dir, struct aegis_fileio *io,
                              const struct aegis_allocator *a,
                              struct aegis_snapshot_meta *meta_out, struct aegis_buf **data_out,
                              bool *found_out);

/* Encode/decode the header (exposed for tests and fuzzing). encode writes a version 2
 * header with zeros in every reserved byte. decode accepts versions 1 and 2 and returns
 * 0 with the meta, the stream length and CRC, or AEGIS_ECORRUPT; it never asserts on the
 * bytes. check says why decode refuses @buf (a static string such as "reserved header
 * bytes are not zero", for messages), or NULL when it accepts it. version gives the
 * version field of a header decode accepted. */
void aegis__snapshot_header_encode(const struct aegis_snapshot_meta *meta, uint64_t data_len,
                                   uint32_t data_crc, uint8_t out[AEGIS_SNAPSHOT_HEADER_BYTES]);
int aegis__snapshot_header_decode(const uint8_t *buf, size_t len,
                                  struct aegis_snapshot_meta *meta_out, uint64_t *data_len_out,
                                  uint32_t *data_crc_out);
const char *aegis__snapshot_header_check(const uint8_t *buf, size_t len);
uint32_t aegis__snapshot_header_version(const uint8_t *buf);

#endif /* AEGIS_PIPELINE_SNAPSHOT_FILE_H */
