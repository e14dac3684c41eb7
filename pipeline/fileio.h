/* SPDX-License-Identifier: MIT */
/* The thin file layer under the storage code, and a fault-injecting twin for tests.
 *
 * Every mutating file operation of the segment log, the hard state and the snapshot
 * files goes through a struct aegis_fileio: open, pwritev, pread, fdatasync, fallocate,
 * ftruncate, rename, unlink, fsync of a directory. A NULL struct aegis_fileio pointer
 * means the real one (plain syscalls, EINTR retried, -errno returned). The log writer's
 * hot path goes around this layer through io_uring when the layer is the real one
 * (aegis__fileio_is_real); with the fault layer it calls these functions instead, so
 * every fault reaches it.
 *
 * The fault layer (SQLite's crash and ioerr tests, in small) passes operations through to
 * real files in a real directory and remembers what a power cut could still undo:
 *   - data: for each write, fallocate and ftruncate not yet followed by an fdatasync or
 *     fsync of that file, the bytes it replaced and the file's size before it;
 *   - names: each create, rename and unlink not yet followed by an fsync of the
 *     directory (an unlinked or replaced file is kept under a hidden ".fault-trash-N"
 *     name until then, so that the unlink can be undone).
 * aegis__fileio_fault_powerloss() then applies a power cut to the files on disk: in DROP
 * mode everything undoable is undone; in TEAR mode, per file, a random prefix of the
 * unsynced operations survives, the next write survives only in a random subset of its
 * 512-byte sectors (disks write sectors atomically, in any order), and the rest is
 * undone; a random prefix of the unsynced name operations survives likewise.
 * Injection: the Nth counted operation (of the kinds in a mask) fails with a chosen
 * error, or (writes) is cut short; after `crash_after` operations the machine is dead:
 * every later mutating operation fails with EIO and changes nothing.
 * Thread use: one thread at a time (tests hand it over with a join). */
#ifndef AEGIS_PIPELINE_FILEIO_H
#define AEGIS_PIPELINE_FILEIO_H

#include <sys/types.h>
#include <sys/uio.h>

#include <aegis/types.h>

struct aegis_fileio;

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
    /* The result of a write or fdatasync the log writer ran through io_uring (@kind: an
     * enum aegis_fault_op bit), which the layer may replace; NULL: kept as is. */
    int64_t (*uring_result)(struct aegis_fileio *io, uint32_t kind, int64_t res);
};

struct aegis_fileio {
    const struct aegis_fileio_ops *ops;
    bool real; /* The ops are the plain syscalls: io_uring may be used instead. */
};

/* The real layer (static, shared; stateless, any thread). */
struct aegis_fileio *aegis__fileio_real(void);

static inline struct aegis_fileio *aegis__fileio_or_real(struct aegis_fileio *io)
{
    return io != NULL ? io : aegis__fileio_real();
}

static inline bool aegis__fileio_is_real(struct aegis_fileio *io)
{
    return aegis__fileio_or_real(io)->real;
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

/* What the log writer takes as the result of one io_uring write or fdatasync (@kind:
 * AEGIS_FAULT_OP_WRITE or AEGIS_FAULT_OP_SYNC) that returned @res: @res itself, unless the
 * layer injects a fault there. */
int64_t aegis__fileio_uring_result(struct aegis_fileio *io, uint32_t kind, int64_t res);

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
};

void aegis__fileio_fault_init(struct aegis_fileio_fault *f);

/* The same layer, but marked real, so that the log writer keeps its io_uring hot path:
 * its writes and fdatasyncs go to the kernel and their completions pass through the
 * injection above (fail_err, fail_short); they are not recorded for power loss. Every
 * other operation goes through the layer as with aegis__fileio_fault_init. */
void aegis__fileio_fault_init_uring(struct aegis_fileio_fault *f);
void aegis__fileio_fault_close(struct aegis_fileio_fault *f);

/* Apply a power cut to the files on disk (see the file comment) and forget the undo
 * state; the layer is alive again afterwards (dead = false, injection off). Open fds
 * should be closed first. Returns 0 or a negative errno from the real file system. */
int aegis__fileio_fault_powerloss(struct aegis_fileio_fault *f, enum aegis_fault_powerloss mode,
                                  uint64_t seed);

#endif /* AEGIS_PIPELINE_FILEIO_H */
