/* SPDX-License-Identifier: MIT */
/* The thin file layer under the storage code, and a fault-injecting twin for tests.
 *
 * Every mutating file operation of the segment log, the hard state and the snapshot
 * files goes through a struct aegis_fileio: open, pwritev, pread, fdatasync, fallocate,
 * ftruncate, rename, unlink, fsync of a directory. A NULL struct aegis_fileio pointer
 * means the real one (plain syscalls, EINTR retried, -errno returned). The log writer's
 * hot path runs through io_uring, with either layer: before each submission it shows the
 * layer the round's SQEs (aegis__fileio_uring_prepare) and takes every completion's result
 * through it (aegis__fileio_uring_result). The real layer leaves both alone; the fault
 * layer decides each SQE's fate there, so the tests run the shipped path.
 *
 * The fault layer (SQLite's crash and ioerr tests, in small) passes operations through to
 * real files in a real directory and remembers what a power cut could still undo:
 *   - data: for each write, fallocate and ftruncate not yet covered by an fdatasync or
 *     fsync of that file, the bytes it replaced and the file's size before it;
 *   - names: each create, rename and unlink not yet followed by an fsync of the
 *     directory (an unlinked or replaced file is kept under a hidden ".fault-trash-N"
 *     name until then, so that the unlink can be undone).
 * aegis__fileio_fault_powerloss() then applies a power cut to the files on disk: in DROP
 * mode everything undoable is undone; in TEAR mode, per file, a random prefix of the
 * unsynced operations survives, the next write survives only in a random subset of its
 * 512-byte sectors (disks write sectors atomically, in any order), and the rest is
 * undone; a random prefix of the unsynced name operations survives likewise.
 *
 * io_uring (one submission at a time, every completion reaped before the next): SQEs
 * joined by IOSQE_IO_LINK form a chain; the layer runs the chains of a submission in a
 * random interleaving (seeded by @seed), each in order, and counts each SQE it reaches as
 * one operation (write or fdatasync), so injection and crash_after hit the shipped SQEs.
 * An fdatasync (or an RWF_DSYNC write) covers the writes of its file from earlier
 * submissions and those before it in its own chain, never an unlinked write of its own
 * submission: the kernel may run that one after the sync. Per SQE the layer may
 *   - fail it with fail_err (EIO, ENOSPC, ...): it does not run, the rest of its chain is
 *     cancelled (-ECANCELED), as io_uring does after a failed link;
 *   - cut a write short (fail_short): the first half is written, the rest of the chain is
 *     cancelled;
 *   - crash on it (crash_after reached): a write is dropped (nothing written) or, with
 *     crash_tear, torn (a random prefix written); it and every later SQE fail with EIO.
 * Injection: the Nth counted operation (of the kinds in a mask) fails with a chosen
 * error, or (writes) is cut short; after `crash_after` operations the machine is dead:
 * every later mutating operation fails with EIO and changes nothing.
 * Thread use: one thread at a time (tests hand it over with a join, or read the counters
 * only after a report the writer pushed once it was done with the layer). */
#ifndef AEGIS_PIPELINE_FILEIO_H
#define AEGIS_PIPELINE_FILEIO_H

#include <sys/types.h>
#include <sys/uio.h>

#include <aegis/types.h>

#include "engine/rng.h"

struct aegis_fileio;
struct io_uring_sqe;

struct aegis_fileio_ops {
    int (*open)(struct aegis_fileio *io, const char *path, int flags, mode_t mode);
    int (*close)(struct aegis_fileio *io, int fd);
    int64_t (*pwritev)(struct aegis_fileio *io, int fd, const struct iovec *iov, int iovcnt,
                       uint64_t off);
    int64_t (*pread)(struct aegis_fileio *io, int fd, void *buf, size_t len, uint64_t off);
    int (*fdatasync)(struct aegis_fileio *io, int fd);
    int (*fallocate)(struct aegis_fileio *io, int fd, uint64_t off, uint64_t len);
    int (*ftruncate)(struct aegis_fileio *io, int fd, uint64_t len);
    int (*rename)(struct aegis_fileio *io, const char *from, const char *to);
    int (*unlink)(struct aegis_fileio *io, const char *path);
    int (*fsync_dir)(struct aegis_fileio *io, const char *dir);
    int (*size)(struct aegis_fileio *io, int fd, uint64_t *size_out);
    /* io_uring hooks (see aegis__fileio_uring_prepare); NULL: SQEs and results kept. */
    void (*uring_prepare)(struct aegis_fileio *io, struct io_uring_sqe *const *sqes, int n);
    int64_t (*uring_result)(struct aegis_fileio *io, uint64_t id, int64_t res);
};

struct aegis_fileio {
    const struct aegis_fileio_ops *ops;
};

/* The real layer (static, shared; stateless, any thread). */
struct aegis_fileio *aegis__fileio_real(void);

static inline struct aegis_fileio *aegis__fileio_or_real(struct aegis_fileio *io)
{
    return io != NULL ? io : aegis__fileio_real();
}

/* Each returns 0 (open: the fd; pwritev/pread: bytes moved) or a negative errno.
 * open never takes O_TRUNC (the fault layer could not undo it). */
int aegis__fileio_open(struct aegis_fileio *io, const char *path, int flags, mode_t mode);
int aegis__fileio_close(struct aegis_fileio *io, int fd);
int64_t aegis__fileio_pwritev(struct aegis_fileio *io, int fd, const struct iovec *iov,
                              int iovcnt, uint64_t off);
int64_t aegis__fileio_pread(struct aegis_fileio *io, int fd, void *buf, size_t len,
                            uint64_t off);
int aegis__fileio_fdatasync(struct aegis_fileio *io, int fd);
int aegis__fileio_fallocate(struct aegis_fileio *io, int fd, uint64_t off, uint64_t len);
int aegis__fileio_ftruncate(struct aegis_fileio *io, int fd, uint64_t len);
int aegis__fileio_rename(struct aegis_fileio *io, const char *from, const char *to);
int aegis__fileio_unlink(struct aegis_fileio *io, const char *path);
int aegis__fileio_fsync_dir(struct aegis_fileio *io, const char *dir);
int aegis__fileio_size(struct aegis_fileio *io, int fd, uint64_t *size_out);

/* io_uring under the layer. The caller prepares one submission's @n SQEs, sqes[i] with
 * user_data i, of the kinds writev, write and fsync(DATASYNC) on fds opened through this
 * layer, then calls prepare before io_uring_submit: the layer may rewrite SQEs (into NOPs
 * with the same user_data and link flags). After each completion, result(io, user_data,
 * res) is the result to act on: @res itself unless the layer decided otherwise. */
void aegis__fileio_uring_prepare(struct aegis_fileio *io, struct io_uring_sqe *const *sqes,
                                 int n);
int64_t aegis__fileio_uring_result(struct aegis_fileio *io, uint64_t id, int64_t res);

/* Write all of @iov at @off, continuing after short writes. Returns 0 or a negative errno
 * (AEGIS_EIO when the layer makes no progress); *written_out (may be NULL) gets the bytes
 * written before the error. @iov is not modified. */
int aegis__fileio_pwritev_all(struct aegis_fileio *io, int fd, const struct iovec *iov,
                              int iovcnt, uint64_t off, uint64_t *written_out);

/* Replace the file @path in directory @dir with the bytes of @iov, atomically and
 * durably: a leftover @tmp is removed, @tmp is created (0600), written, fdatasynced and
 * renamed over @path, then @dir is fsynced. A crash at any point leaves the old file or
 * the new one, never a torn one. Returns 0 or a negative errno; on failure @tmp may
 * remain (the caller removes it or the next call does). */
int aegis__fileio_replace(struct aegis_fileio *io, const char *dir, const char *tmp,
                          const char *path, const struct iovec *iov, int iovcnt);

/* Read exactly @len bytes at @off. Returns 0, AEGIS_ECORRUPT if the file ends first, or a
 * negative errno. */
int aegis__fileio_pread_all(struct aegis_fileio *io, int fd, void *buf, size_t len,
                            uint64_t off);

/* Kinds of counted (mutating) operations, for the fault layer's masks. */
enum aegis_fault_op {
    AEGIS_FAULT_OP_CREATE = 1u << 0, /* open with O_CREAT of a file that did not exist. */
    AEGIS_FAULT_OP_WRITE = 1u << 1,
    AEGIS_FAULT_OP_SYNC = 1u << 2,   /* fdatasync. */
    AEGIS_FAULT_OP_FALLOCATE = 1u << 3,
    AEGIS_FAULT_OP_TRUNCATE = 1u << 4,
    AEGIS_FAULT_OP_RENAME = 1u << 5,
    AEGIS_FAULT_OP_UNLINK = 1u << 6,
    AEGIS_FAULT_OP_SYNC_DIR = 1u << 7,
    AEGIS_FAULT_OP_ALL = 0xffu,
};

enum aegis_fault_powerloss {
    AEGIS_FAULT_DROP = 1, /* Every unsynced operation is lost. */
    AEGIS_FAULT_TEAR = 2, /* A random part of them survives (see above). */
};

struct aegis_fault_undo; /* Private to fileio.c. */

#define AEGIS_FAULT_SQES_MAX 64 /* SQEs per io_uring submission the layer can follow. */

/* The layer's view of the current io_uring submission (private to fileio.c). */
struct aegis_fault_round {
    uint64_t seq;                         /* Submissions so far; 0 before the first. */
    int n;
    bool have_res[AEGIS_FAULT_SQES_MAX];  /* res[i] replaces the kernel's result. */
    int64_t res[AEGIS_FAULT_SQES_MAX];
    uint8_t chain[AEGIS_FAULT_SQES_MAX];  /* Chain number of SQE i, and its place in it. */
    uint8_t pos[AEGIS_FAULT_SQES_MAX];
    uint8_t op[AEGIS_FAULT_SQES_MAX];     /* 1 write, 2 fdatasync, 3 RWF_DSYNC write. */
    int fd[AEGIS_FAULT_SQES_MAX];
    uint64_t want[AEGIS_FAULT_SQES_MAX];  /* Bytes of a write. */
};

struct aegis_fileio_fault {
    struct aegis_fileio base; /* Pass &f->base wherever a struct aegis_fileio * goes. */
    /* Injection, set by the test between operations. */
    uint64_t fail_at;     /* 1-based count of matching ops; 0 = off. */
    uint32_t fail_mask;   /* enum aegis_fault_op bits the count applies to. */
    int fail_err;         /* Negative errno to return, e.g. AEGIS_ENOSPC. */
    bool fail_short;      /* For a write: write half (at least 1 byte) and return that. */
    bool fail_sticky;     /* Every matching op from fail_at on fails, not only that one. */
    uint64_t crash_after; /* After this many counted ops everything fails; 0 = off. */
    uint32_t tear_bytes;  /* TEAR granularity: 0 = 512 (atomic sectors); smaller values
                           * model disks that can tear inside a sector. */
    bool crash_tear;      /* io_uring: a write the machine dies on keeps a random prefix
                           * (else nothing of it is written). */
    uint64_t seed;        /* io_uring: chain interleaving and torn prefixes. Set before
                           * the first submission. */
    /* Observed. */
    uint64_t ops;         /* Counted operations so far (all kinds). */
    uint64_t matched;     /* Operations that matched fail_mask so far. */
    uint64_t injected;    /* Faults injected so far. */
    bool dead;            /* crash_after was reached. */
    /* Undo state. */
    struct aegis_fault_undo *undo;
    uint32_t undo_count;
    uint32_t undo_cap;
    uint32_t trash_seq;
    struct aegis_fault_fd *fds; /* Path of each open fd. */
    uint32_t fds_count;
    struct aegis_rng rng;
    bool rng_seeded;
    struct aegis_fault_round round;
};

void aegis__fileio_fault_init(struct aegis_fileio_fault *f);
void aegis__fileio_fault_close(struct aegis_fileio_fault *f);

/* Apply a power cut to the files on disk (see the file comment) and forget the undo
 * state; the layer is alive again afterwards (dead = false, injection off). Open fds
 * should be closed first. Returns 0 or a negative errno from the real file system. */
int aegis__fileio_fault_powerloss(struct aegis_fileio_fault *f, enum aegis_fault_powerloss mode,
                                  uint64_t seed);

#endif /* AEGIS_PIPELINE_FILEIO_H */
