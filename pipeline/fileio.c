/* SPDX-License-Identifier: MIT */
/* The real file layer and the fault-injecting one; see fileio.h for the design.
 *
 * Undo records of the fault layer, one per unsynced mutating operation, in order:
 *   DATA   path, off, old_size, pre-image of [off, off + len) clipped to old_size:
 *          undone by ftruncate(old_size) then writing the pre-image back. A write, an
 *          ftruncate (off = new length) and a fallocate (no bytes change) all fit it.
 *   CREATE path: undone by unlink.
 *   RENAME from -> to, trash (the replaced target, if any): undone by renaming back.
 *   UNLINK path, trash: undone by renaming the trash back.
 * fdatasync(fd) drops the DATA records of that file; fsync_dir(d) drops the name records
 * of entries in d (and really unlinks their trash). A rename or unlink rewrites the path
 * of pending DATA records so that they follow the file.
 *
 * io_uring: a DATA record of a write that runs in the kernel is taken at prepare time
 * (before the kernel writes) and tagged with its submission, chain and place in the chain;
 * a successful fdatasync completion drops only the records it covers (fileio.h). */
#include "pipeline/fileio.h"

#include <aegis/error.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/rng.h"

static int real_open(struct aegis_fileio *io, const char *path, int flags, mode_t mode)
{
    int fd;

    (void)io;
    AEGIS_ASSERT((flags & O_TRUNC) == 0);
    do {
        fd = open(path, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int real_close(struct aegis_fileio *io, int fd)
{
    (void)io;
    /* No retry on EINTR: on Linux the fd is released either way. */
    return close(fd) < 0 ? -errno : 0;
}

static int64_t real_pwritev(struct aegis_fileio *io, int fd, const struct iovec *iov,
                            int iovcnt, uint64_t off)
{
    ssize_t n;

    (void)io;
    do {
        n = pwritev(fd, iov, iovcnt, (off_t)off);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : (int64_t)n;
}

static int64_t real_pread(struct aegis_fileio *io, int fd, void *buf, size_t len, uint64_t off)
{
    ssize_t n;

    (void)io;
    do {
        n = pread(fd, buf, len, (off_t)off);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : (int64_t)n;
}

static int real_fdatasync(struct aegis_fileio *io, int fd)
{
    int rv;

    (void)io;
    do {
        rv = fdatasync(fd);
    } while (rv < 0 && errno == EINTR);
    return rv < 0 ? -errno : 0;
}

static int real_fallocate(struct aegis_fileio *io, int fd, uint64_t off, uint64_t len)
{
    int rv;

    (void)io;
    do {
        rv = fallocate(fd, 0, (off_t)off, (off_t)len);
    } while (rv < 0 && errno == EINTR);
    return rv < 0 ? -errno : 0;
}

static int real_ftruncate(struct aegis_fileio *io, int fd, uint64_t len)
{
    int rv;

    (void)io;
    do {
        rv = ftruncate(fd, (off_t)len);
    } while (rv < 0 && errno == EINTR);
    return rv < 0 ? -errno : 0;
}

static int real_rename(struct aegis_fileio *io, const char *from, const char *to)
{
    (void)io;
    return rename(from, to) < 0 ? -errno : 0;
}

static int real_unlink(struct aegis_fileio *io, const char *path)
{
    (void)io;
    return unlink(path) < 0 ? -errno : 0;
}

static int real_fsync_dir(struct aegis_fileio *io, const char *dir)
{
    int fd, rv;

    (void)io;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    do {
        rv = fsync(fd);
    } while (rv < 0 && errno == EINTR);
    rv = rv < 0 ? -errno : 0;
    close(fd);
    return rv;
}

static int real_size(struct aegis_fileio *io, int fd, uint64_t *size_out)
{
    struct stat st;

    (void)io;
    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    *size_out = (uint64_t)st.st_size;
    return 0;
}

static const struct aegis_fileio_ops real_ops = {
    .open = real_open,
    .close = real_close,
    .pwritev = real_pwritev,
    .pread = real_pread,
    .fdatasync = real_fdatasync,
    .fallocate = real_fallocate,
    .ftruncate = real_ftruncate,
    .rename = real_rename,
    .unlink = real_unlink,
    .fsync_dir = real_fsync_dir,
    .size = real_size,
};

static struct aegis_fileio real_io = {.ops = &real_ops};

struct aegis_fileio *aegis__fileio_real(void)
{
    return &real_io;
}

void aegis__fileio_uring_prepare(struct aegis_fileio *io, struct io_uring_sqe *const *sqes,
                                 int n)
{
    io = aegis__fileio_or_real(io);
    if (io->ops->uring_prepare != NULL) {
        io->ops->uring_prepare(io, sqes, n);
    }
}

int64_t aegis__fileio_uring_result(struct aegis_fileio *io, uint64_t id, int64_t res)
{
    io = aegis__fileio_or_real(io);
    return io->ops->uring_result != NULL ? io->ops->uring_result(io, id, res) : res;
}

int aegis__fileio_open(struct aegis_fileio *io, const char *path, int flags, mode_t mode)
{
    io = aegis__fileio_or_real(io);
    return io->ops->open(io, path, flags, mode);
}

int aegis__fileio_close(struct aegis_fileio *io, int fd)
{
    io = aegis__fileio_or_real(io);
    return io->ops->close(io, fd);
}

int64_t aegis__fileio_pwritev(struct aegis_fileio *io, int fd, const struct iovec *iov,
                              int iovcnt, uint64_t off)
{
    io = aegis__fileio_or_real(io);
    return io->ops->pwritev(io, fd, iov, iovcnt, off);
}

int64_t aegis__fileio_pread(struct aegis_fileio *io, int fd, void *buf, size_t len,
                            uint64_t off)
{
    io = aegis__fileio_or_real(io);
    return io->ops->pread(io, fd, buf, len, off);
}

int aegis__fileio_fdatasync(struct aegis_fileio *io, int fd)
{
    io = aegis__fileio_or_real(io);
    return io->ops->fdatasync(io, fd);
}

int aegis__fileio_fallocate(struct aegis_fileio *io, int fd, uint64_t off, uint64_t len)
{
    io = aegis__fileio_or_real(io);
    return io->ops->fallocate(io, fd, off, len);
}

int aegis__fileio_ftruncate(struct aegis_fileio *io, int fd, uint64_t len)
{
    io = aegis__fileio_or_real(io);
    return io->ops->ftruncate(io, fd, len);
}

int aegis__fileio_rename(struct aegis_fileio *io, const char *from, const char *to)
{
    io = aegis__fileio_or_real(io);
    return io->ops->rename(io, from, to);
}

int aegis__fileio_unlink(struct aegis_fileio *io, const char *path)
{
    io = aegis__fileio_or_real(io);
    return io->ops->unlink(io, path);
}

int aegis__fileio_fsync_dir(struct aegis_fileio *io, const char *dir)
{
    io = aegis__fileio_or_real(io);
    return io->ops->fsync_dir(io, dir);
}

int aegis__fileio_size(struct aegis_fileio *io, int fd, uint64_t *size_out)
{
    io = aegis__fileio_or_real(io);
    return io->ops->size(io, fd, size_out);
}

#define IOV_MAX_ 1024

int aegis__fileio_replace(struct aegis_fileio *io, const char *dir, const char *tmp,
                          const char *path, const struct iovec *iov, int iovcnt)
{
    int fd, rv;

    aegis__fileio_unlink(io, tmp); /* A leftover from a crash; ENOENT is fine. */
    fd = aegis__fileio_open(io, tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        return fd;
    }
    rv = aegis__fileio_pwritev_all(io, fd, iov, iovcnt, 0, NULL);
    if (rv == 0) {
        rv = aegis__fileio_fdatasync(io, fd);
    }
    aegis__fileio_close(io, fd);
    if (rv == 0) {
        rv = aegis__fileio_rename(io, tmp, path);
    }
    if (rv == 0) {
        rv = aegis__fileio_fsync_dir(io, dir);
    }
    return rv;
}

int aegis__fileio_pwritev_all(struct aegis_fileio *io, int fd, const struct iovec *iov,
                              int iovcnt, uint64_t off, uint64_t *written_out)
{
    struct iovec cur[IOV_MAX_];
    uint64_t done = 0;
    int first = 0;
    int rv = 0;

    AEGIS_ASSERT(iovcnt >= 0);
    while (first < iovcnt) {
        int count = iovcnt - first < IOV_MAX_ ? iovcnt - first : IOV_MAX_;
        int64_t n;

        memcpy(cur, iov + first, (size_t)count * sizeof(*cur));
        n = aegis__fileio_pwritev(io, fd, cur, count, off + done);
        if (n < 0) {
            rv = (int)n;
            break;
        }
        if (n == 0) {
            rv = AEGIS_EIO; /* No progress: never loop forever. */
            break;
        }
        done += (uint64_t)n;
        /* Skip the iovecs written in full; trim the one written in part by copying it
         * into a one-element tail (the caller's array stays untouched). */
        while (first < iovcnt && (uint64_t)n >= iov[first].iov_len) {
            n -= (int64_t)iov[first].iov_len;
            first++;
        }
        if (n > 0) {
            struct iovec part = {.iov_base = (char *)iov[first].iov_base + n,
                                 .iov_len = iov[first].iov_len - (size_t)n};
            int64_t m;

            AEGIS_ASSERT(first < iovcnt);
            m = aegis__fileio_pwritev(io, fd, &part, 1, off + done);
            if (m < 0) {
                rv = (int)m;
                break;
            }
            done += (uint64_t)m;
            if ((size_t)m < part.iov_len) {
                /* Still short: go round with a one-iovec array by adjusting in place. */
                struct iovec rest = {.iov_base = (char *)part.iov_base + m,
                                     .iov_len = part.iov_len - (size_t)m};
                uint64_t more = 0;

                if (m == 0) {
                    rv = AEGIS_EIO;
                    break;
                }
                rv = aegis__fileio_pwritev_all(io, fd, &rest, 1, off + done, &more);
                done += more;
                if (rv != 0) {
                    break;
                }
            }
            first++;
        }
    }
    if (written_out != NULL) {
        *written_out = done;
    }
    return rv;
}

int aegis__fileio_pread_all(struct aegis_fileio *io, int fd, void *buf, size_t len,
                            uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        int64_t n = aegis__fileio_pread(io, fd, (char *)buf + done, len - done, off + done);

        if (n < 0) {
            return (int)n;
        }
        if (n == 0) {
            return AEGIS_ECORRUPT;
        }
        done += (size_t)n;
    }
    return 0;
}

/* The fault layer. */

#define PATH_LEN_ 512

enum undo_kind { UNDO_DATA = 1, UNDO_CREATE, UNDO_RENAME, UNDO_UNLINK };

struct aegis_fault_undo {
    enum undo_kind kind;
    char path[PATH_LEN_];
    char path2[PATH_LEN_]; /* RENAME: the new name. */
    char trash[PATH_LEN_]; /* RENAME: replaced target; UNLINK: the file; "" if none. */
    uint64_t off;
    uint64_t old_size;
    uint64_t len; /* Bytes the operation covered (write length). */
    uint64_t pre_len;
    uint8_t *pre; /* Pre-image of [off, off + pre_len). */
    bool is_write;
    uint64_t round; /* DATA: io_uring submission it ran in (0: a synchronous call). */
    uint8_t chain;  /* ... its chain there and its place in the chain. */
    uint8_t pos;
};

struct aegis_fault_fd {
    int fd;
    char path[PATH_LEN_];
};

static struct aegis_fileio_fault *fault_of(struct aegis_fileio *io)
{
    return (struct aegis_fileio_fault *)(void *)io;
}

static const char *fd_path(struct aegis_fileio_fault *f, int fd)
{
    for (uint32_t i = 0; i < f->fds_count; i++) {
        if (f->fds[i].fd == fd) {
            return f->fds[i].path;
        }
    }
    return NULL;
}

/* Count one mutating operation of @kind and decide its fate: 0 to perform it, 1 to cut it
 * short (writes), or a negative errno to fail it without touching anything. */
static int fault_gate(struct aegis_fileio_fault *f, enum aegis_fault_op kind)
{
    f->ops++;
    if (f->dead || (f->crash_after != 0 && f->ops > f->crash_after)) {
        f->dead = true;
        return AEGIS_EIO;
    }
    if (f->fail_at == 0 || (f->fail_mask & (uint32_t)kind) == 0) {
        return 0;
    }
    f->matched++;
    if (f->matched == f->fail_at || (f->fail_sticky && f->matched > f->fail_at)) {
        f->injected++;
        if (f->fail_short && kind == AEGIS_FAULT_OP_WRITE) {
            return 1;
        }
        return f->fail_err != 0 ? f->fail_err : AEGIS_EIO;
    }
    return 0;
}

static struct aegis_fault_undo *undo_push(struct aegis_fileio_fault *f, enum undo_kind kind,
                                          const char *path)
{
    struct aegis_fault_undo *u;

    if (f->undo_count == f->undo_cap) {
        uint32_t cap = f->undo_cap == 0 ? 64 : f->undo_cap * 2;
        void *p = aegis__realloc(NULL, f->undo, cap * sizeof(*f->undo));

        AEGIS_ASSERT(p != NULL); /* Test support: out of memory is fatal here. */
        f->undo = p;
        f->undo_cap = cap;
    }
    u = &f->undo[f->undo_count++];
    memset(u, 0, sizeof(*u));
    u->kind = kind;
    AEGIS_ASSERT(strlen(path) < PATH_LEN_);
    strcpy(u->path, path);
    return u;
}

static void undo_free(struct aegis_fault_undo *u)
{
    aegis__free(NULL, u->pre);
    u->pre = NULL;
}

/* Record the pre-image of [off, off + len) of the file at @fd (clipped to its size). */
static struct aegis_fault_undo *undo_data(struct aegis_fileio_fault *f, int fd, uint64_t off,
                                          uint64_t len, bool is_write)
{
    const char *path = fd_path(f, fd);
    struct aegis_fault_undo *u;
    struct stat st;

    AEGIS_ASSERT(path != NULL);
    AEGIS_ASSERT(fstat(fd, &st) == 0);
    u = undo_push(f, UNDO_DATA, path);
    u->off = off;
    u->len = len;
    u->old_size = (uint64_t)st.st_size;
    u->is_write = is_write;
    if (off < u->old_size) {
        uint64_t end = off + len < u->old_size ? off + len : u->old_size;

        u->pre_len = end - off;
        u->pre = aegis__malloc(NULL, u->pre_len > 0 ? u->pre_len : 1);
        AEGIS_ASSERT(u->pre != NULL);
        AEGIS_ASSERT(pread(fd, u->pre, u->pre_len, (off_t)off) == (ssize_t)u->pre_len);
    }
    return u;
}

/* Write the first @want bytes of @iov at @off (plain pwrite). Returns 0 or -errno. */
static int pwrite_prefix(int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                         uint64_t want)
{
    uint64_t done = 0;

    for (int i = 0; i < iovcnt && done < want; i++) {
        size_t chunk = iov[i].iov_len < want - done ? iov[i].iov_len : (size_t)(want - done);
        uint64_t at = 0;

        while (at < chunk) {
            ssize_t n = pwrite(fd, (const char *)iov[i].iov_base + at, chunk - at,
                               (off_t)(off + done + at));

            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return n < 0 ? -errno : AEGIS_EIO;
            }
            at += (uint64_t)n;
        }
        done += chunk;
    }
    return 0;
}

static int fault_open(struct aegis_fileio *io, const char *path, int flags, mode_t mode)
{
    struct aegis_fileio_fault *f = fault_of(io);
    bool creating = (flags & O_CREAT) != 0 && access(path, F_OK) != 0;
    int fd, rv;

    AEGIS_ASSERT((flags & O_TRUNC) == 0);
    if (creating) {
        rv = fault_gate(f, AEGIS_FAULT_OP_CREATE);
        if (rv != 0) {
            return rv < 0 ? rv : AEGIS_EIO;
        }
    }
    fd = real_open(io, path, flags, mode);
    if (fd < 0) {
        return fd;
    }
    if (creating) {
        undo_push(f, UNDO_CREATE, path);
    }
    f->fds = aegis__realloc(NULL, f->fds, (f->fds_count + 1) * sizeof(*f->fds));
    AEGIS_ASSERT(f->fds != NULL);
    f->fds[f->fds_count].fd = fd;
    AEGIS_ASSERT(strlen(path) < PATH_LEN_);
    strcpy(f->fds[f->fds_count].path, path);
    f->fds_count++;
    return fd;
}

static int fault_close(struct aegis_fileio *io, int fd)
{
    struct aegis_fileio_fault *f = fault_of(io);

    for (uint32_t i = 0; i < f->fds_count; i++) {
        if (f->fds[i].fd == fd) {
            f->fds[i] = f->fds[--f->fds_count];
            break;
        }
    }
    return real_close(io, fd);
}

static int64_t fault_pwritev(struct aegis_fileio *io, int fd, const struct iovec *iov,
                             int iovcnt, uint64_t off)
{
    struct aegis_fileio_fault *f = fault_of(io);
    uint64_t len = 0;
    int gate;

    for (int i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    gate = fault_gate(f, AEGIS_FAULT_OP_WRITE);
    if (gate < 0) {
        return gate;
    }
    undo_data(f, fd, off, len, true);
    if (gate == 1 && len > 1) {
        /* Short write: the first half only, as a file system that ran out of space part
         * way through would do. */
        int rv = pwrite_prefix(fd, iov, iovcnt, off, len / 2);

        return rv != 0 ? rv : (int64_t)(len / 2);
    }
    return real_pwritev(io, fd, iov, iovcnt, off);
}

static int fault_fdatasync(struct aegis_fileio *io, int fd)
{
    struct aegis_fileio_fault *f = fault_of(io);
    const char *path = fd_path(f, fd);
    uint32_t keep = 0;
    int rv = fault_gate(f, AEGIS_FAULT_OP_SYNC);

    if (rv != 0) {
        return rv < 0 ? rv : AEGIS_EIO;
    }
    AEGIS_ASSERT(path != NULL);
    rv = real_fdatasync(io, fd);
    if (rv != 0) {
        return rv;
    }
    for (uint32_t i = 0; i < f->undo_count; i++) {
        struct aegis_fault_undo *u = &f->undo[i];

        if (u->kind == UNDO_DATA && strcmp(u->path, path) == 0) {
            undo_free(u);
            continue;
        }
        f->undo[keep++] = *u;
    }
    f->undo_count = keep;
    return 0;
}

static int fault_fallocate(struct aegis_fileio *io, int fd, uint64_t off, uint64_t len)
{
    struct aegis_fileio_fault *f = fault_of(io);
    int rv = fault_gate(f, AEGIS_FAULT_OP_FALLOCATE);

    if (rv != 0) {
        return rv < 0 ? rv : AEGIS_EIO;
    }
    undo_data(f, fd, off, 0, false);
    return real_fallocate(io, fd, off, len);
}

static int fault_ftruncate(struct aegis_fileio *io, int fd, uint64_t len)
{
    struct aegis_fileio_fault *f = fault_of(io);
    int rv = fault_gate(f, AEGIS_FAULT_OP_TRUNCATE);
    struct stat st;

    if (rv != 0) {
        return rv < 0 ? rv : AEGIS_EIO;
    }
    AEGIS_ASSERT(fstat(fd, &st) == 0);
    undo_data(f, fd, len, (uint64_t)st.st_size > len ? (uint64_t)st.st_size - len : 0, false);
    return real_ftruncate(io, fd, len);
}

/* Pending records and open fds that name @from now name @to. */
static void follow_rename(struct aegis_fileio_fault *f, const char *from, const char *to)
{
    for (uint32_t i = 0; i < f->undo_count; i++) {
        if (f->undo[i].kind == UNDO_DATA && strcmp(f->undo[i].path, from) == 0) {
            strcpy(f->undo[i].path, to);
        }
    }
    for (uint32_t i = 0; i < f->fds_count; i++) {
        if (strcmp(f->fds[i].path, from) == 0) {
            strcpy(f->fds[i].path, to);
        }
    }
}

static void trash_name(struct aegis_fileio_fault *f, const char *path, char *out)
{
    const char *slash = strrchr(path, '/');
    int dir_len = slash != NULL ? (int)(slash - path) : 1;
    const char *dir = slash != NULL ? path : ".";

    snprintf(out, PATH_LEN_, "%.*s/.fault-trash-%u", dir_len, dir, ++f->trash_seq);
}

static int fault_rename(struct aegis_fileio *io, const char *from, const char *to)
{
    struct aegis_fileio_fault *f = fault_of(io);
    struct aegis_fault_undo *u;
    char trash[PATH_LEN_] = "";
    int rv = fault_gate(f, AEGIS_FAULT_OP_RENAME);

    if (rv != 0) {
        return rv < 0 ? rv : AEGIS_EIO;
    }
    if (access(from, F_OK) != 0) {
        return -errno;
    }
    if (access(to, F_OK) == 0) {
        trash_name(f, to, trash);
        if (rename(to, trash) < 0) {
            return -errno;
        }
        follow_rename(f, to, trash);
    }
    if (rename(from, to) < 0) {
        return -errno;
    }
    follow_rename(f, from, to);
    u = undo_push(f, UNDO_RENAME, from);
    strcpy(u->path2, to);
    strcpy(u->trash, trash);
    return 0;
}

static int fault_unlink(struct aegis_fileio *io, const char *path)
{
    struct aegis_fileio_fault *f = fault_of(io);
    struct aegis_fault_undo *u;
    char trash[PATH_LEN_];
    int rv = fault_gate(f, AEGIS_FAULT_OP_UNLINK);

    if (rv != 0) {
        return rv < 0 ? rv : AEGIS_EIO;
    }
    trash_name(f, path, trash);
    if (rename(path, trash) < 0) {
        return -errno;
    }
    follow_rename(f, path, trash);
    u = undo_push(f, UNDO_UNLINK, path);
    strcpy(u->trash, trash);
    return 0;
}

static bool in_dir(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/') {
        n--;
    }
    return strncmp(path, dir, n) == 0 && path[n] == '/' && strchr(path + n + 1, '/') == NULL;
}

static int fault_fsync_dir(struct aegis_fileio *io, const char *dir)
{
    struct aegis_fileio_fault *f = fault_of(io);
    uint32_t keep = 0;
    int rv = fault_gate(f, AEGIS_FAULT_OP_SYNC_DIR);

    if (rv != 0) {
        return rv < 0 ? rv : AEGIS_EIO;
    }
    rv = real_fsync_dir(io, dir);
    if (rv != 0) {
        return rv;
    }
    for (uint32_t i = 0; i < f->undo_count; i++) {
        struct aegis_fault_undo *u = &f->undo[i];

        if (u->kind != UNDO_DATA && in_dir(u->path, dir)) {
            if (u->trash[0] != '\0') {
                /* The unlink (or the replacement) is durable now: really drop the file,
                 * and its pending data records with it. */
                unlink(u->trash);
                for (uint32_t j = 0; j < f->undo_count; j++) {
                    if (f->undo[j].kind == UNDO_DATA && strcmp(f->undo[j].path, u->trash) == 0) {
                        f->undo[j].path[0] = '\0';
                    }
                }
            }
            continue;
        }
        f->undo[keep++] = *u;
    }
    f->undo_count = keep;
    return 0;
}

/* io_uring: see fileio.h for the model. */

enum { RING_WRITE = 1, RING_SYNC = 2, RING_DSYNC_WRITE = 3 };

static uint64_t fault_rand(struct aegis_fileio_fault *f, uint64_t lo, uint64_t hi)
{
    if (!f->rng_seeded) {
        aegis__rng_seed(&f->rng, f->seed);
        f->rng_seeded = true;
    }
    return aegis__rng_range(&f->rng, lo, hi);
}

/* The bytes an SQE writes, as an iovec list (a plain write: one iovec in @one). */
static const struct iovec *sqe_iov(const struct io_uring_sqe *sqe, struct iovec *one,
                                   int *cnt_out, uint64_t *len_out)
{
    const struct iovec *iov = one;
    uint64_t len = 0;

    if (sqe->opcode == IORING_OP_WRITEV) {
        iov = (const struct iovec *)(uintptr_t)sqe->addr;
        *cnt_out = (int)sqe->len;
    } else {
        one->iov_base = (void *)(uintptr_t)sqe->addr;
        one->iov_len = sqe->len;
        *cnt_out = 1;
    }
    for (int i = 0; i < *cnt_out; i++) {
        len += iov[i].iov_len;
    }
    *len_out = len;
    return iov;
}

/* The SQE does not reach the kernel: a NOP with the same id and link flags, whose result
 * the layer gives instead. */
static void sqe_skip(struct aegis_fault_round *r, struct io_uring_sqe *sqe, int i, int64_t res)
{
    __u64 id = sqe->user_data;
    __u8 flags = sqe->flags;

    io_uring_prep_nop(sqe);
    sqe->user_data = id;
    sqe->flags = flags;
    r->have_res[i] = true;
    r->res[i] = res;
}

/* The DATA record of the first @len bytes SQE @i writes, tagged with its place. */
static void ring_record(struct aegis_fileio_fault *f, const struct io_uring_sqe *sqe, int i,
                        uint64_t len)
{
    struct aegis_fault_round *r = &f->round;
    struct aegis_fault_undo *u = undo_data(f, sqe->fd, sqe->off, len, true);

    u->round = r->seq;
    u->chain = r->chain[i];
    u->pos = r->pos[i];
}

/* The layer writes the first @len bytes of SQE @i itself (a short or torn write). */
static void sqe_write_prefix(struct aegis_fileio_fault *f, const struct io_uring_sqe *sqe,
                             int i, uint64_t len)
{
    struct iovec one;
    uint64_t total;
    int cnt, rv;
    const struct iovec *iov = sqe_iov(sqe, &one, &cnt, &total);

    AEGIS_ASSERT(len <= total);
    ring_record(f, sqe, i, len);
    rv = pwrite_prefix(sqe->fd, iov, cnt, sqe->off, len);
    AEGIS_ASSERT(rv == 0); /* Test support: the real file system must take it. */
}

/* Decide the fate of SQE @i, the next of its chain to run; *broken: an earlier SQE of the
 * chain did not complete in full (set here when this one does not either). */
static void ring_step(struct aegis_fileio_fault *f, struct io_uring_sqe *sqe, int i,
                      bool *broken)
{
    struct aegis_fault_round *r = &f->round;
    bool was_dead = f->dead, write = r->op[i] != RING_SYNC;
    struct iovec one;
    uint64_t len = 0;
    int cnt, gate;

    if (*broken) {
        sqe_skip(r, sqe, i, -ECANCELED);
        return;
    }
    if (write) {
        sqe_iov(sqe, &one, &cnt, &len);
        r->want[i] = len;
    }
    gate = fault_gate(f, write ? AEGIS_FAULT_OP_WRITE : AEGIS_FAULT_OP_SYNC);
    if (gate == 0) {
        if (write) {
            ring_record(f, sqe, i, len); /* Runs in the kernel: the pre-image is taken now. */
        }
        return;
    }
    *broken = true;
    if (gate == 1) { /* Cut short (writes only): the first half. */
        sqe_write_prefix(f, sqe, i, len / 2);
        sqe_skip(r, sqe, i, (int64_t)(len / 2));
        return;
    }
    if (!was_dead && f->dead && write && f->crash_tear && len > 0) {
        sqe_write_prefix(f, sqe, i, fault_rand(f, 0, len - 1)); /* Torn by the crash. */
    }
    sqe_skip(r, sqe, i, gate);
}

/* Split the submission into chains (runs joined by IOSQE_IO_LINK); returns their count and
 * each chain's first SQE in @start (start[count] = n). */
static int ring_chains(struct aegis_fileio_fault *f, struct io_uring_sqe *const *sqes, int n,
                       int *start)
{
    struct aegis_fault_round *r = &f->round;
    int chains = 0, pos = 0;

    for (int i = 0; i < n; i++) {
        const struct io_uring_sqe *sqe = sqes[i];

        AEGIS_ASSERT(sqe->user_data == (__u64)i);
        AEGIS_ASSERT(sqe->opcode == IORING_OP_WRITEV || sqe->opcode == IORING_OP_WRITE ||
                     sqe->opcode == IORING_OP_FSYNC);
        AEGIS_ASSERT(fd_path(f, sqe->fd) != NULL);
        r->fd[i] = sqe->fd;
        r->op[i] = sqe->opcode == IORING_OP_FSYNC ? RING_SYNC
                   : (sqe->rw_flags & RWF_DSYNC) != 0 ? RING_DSYNC_WRITE
                                                      : RING_WRITE;
        if (pos == 0) {
            start[chains++] = i;
        }
        r->chain[i] = (uint8_t)(chains - 1);
        r->pos[i] = (uint8_t)pos++;
        if ((sqe->flags & IOSQE_IO_LINK) == 0) {
            pos = 0;
        }
    }
    start[chains] = n;
    return chains;
}

static void fault_uring_prepare(struct aegis_fileio *io, struct io_uring_sqe *const *sqes,
                                int n)
{
    struct aegis_fileio_fault *f = fault_of(io);
    struct aegis_fault_round *r = &f->round;
    int start[AEGIS_FAULT_SQES_MAX + 1], next[AEGIS_FAULT_SQES_MAX];
    bool broken[AEGIS_FAULT_SQES_MAX];
    int chains, live;

    AEGIS_ASSERT(n > 0 && n <= AEGIS_FAULT_SQES_MAX);
    r->seq++;
    r->n = n;
    memset(r->have_res, 0, sizeof(r->have_res));
    memset(r->want, 0, sizeof(r->want));
    chains = ring_chains(f, sqes, n, start);
    live = chains;
    for (int c = 0; c < chains; c++) {
        next[c] = start[c];
        broken[c] = false;
    }
    /* Bounded: every step runs one SQE of a live chain. */
    while (live > 0) {
        uint64_t pick = fault_rand(f, 0, (uint64_t)live - 1);
        int c = 0;

        for (;; c++) {
            if (next[c] < start[c + 1] && pick-- == 0) {
                break;
            }
        }
        ring_step(f, sqes[next[c]], next[c], &broken[c]);
        if (++next[c] == start[c + 1]) {
            live--;
        }
    }
}

/* A successful sync (or RWF_DSYNC write) @i: drop the DATA records of its file it covers:
 * those of earlier submissions and synchronous calls, and those before it in its chain
 * (a DSYNC write: itself too). */
static void ring_cover(struct aegis_fileio_fault *f, int i)
{
    struct aegis_fault_round *r = &f->round;
    const char *path = fd_path(f, r->fd[i]);
    uint8_t upto = (uint8_t)(r->pos[i] + (r->op[i] == RING_DSYNC_WRITE));
    uint32_t keep = 0;

    AEGIS_ASSERT(path != NULL);
    for (uint32_t k = 0; k < f->undo_count; k++) {
        struct aegis_fault_undo *u = &f->undo[k];

        if (u->kind == UNDO_DATA && strcmp(u->path, path) == 0 &&
            (u->round != r->seq || (u->chain == r->chain[i] && u->pos < upto))) {
            undo_free(u);
            continue;
        }
        f->undo[keep++] = *u;
    }
    f->undo_count = keep;
}

static int64_t fault_uring_result(struct aegis_fileio *io, uint64_t id, int64_t res)
{
    struct aegis_fileio_fault *f = fault_of(io);
    struct aegis_fault_round *r = &f->round;
    int i = (int)id;

    AEGIS_ASSERT(id < (uint64_t)r->n);
    if (r->have_res[i]) {
        return r->res[i];
    }
    if ((r->op[i] == RING_SYNC && res == 0) ||
        (r->op[i] == RING_DSYNC_WRITE && res >= 0 && (uint64_t)res == r->want[i])) {
        ring_cover(f, i);
    }
    return res;
}

static const struct aegis_fileio_ops fault_ops = {
    .open = fault_open,
    .close = fault_close,
    .pwritev = fault_pwritev,
    .pread = real_pread,
    .fdatasync = fault_fdatasync,
    .fallocate = fault_fallocate,
    .ftruncate = fault_ftruncate,
    .rename = fault_rename,
    .unlink = fault_unlink,
    .fsync_dir = fault_fsync_dir,
    .size = real_size,
    .uring_prepare = fault_uring_prepare,
    .uring_result = fault_uring_result,
};

void aegis__fileio_fault_init(struct aegis_fileio_fault *f)
{
    memset(f, 0, sizeof(*f));
    f->base.ops = &fault_ops;
}

static void forget_undo(struct aegis_fileio_fault *f)
{
    for (uint32_t i = 0; i < f->undo_count; i++) {
        undo_free(&f->undo[i]);
    }
    f->undo_count = 0;
}

void aegis__fileio_fault_close(struct aegis_fileio_fault *f)
{
    forget_undo(f);
    aegis__free(NULL, f->undo);
    aegis__free(NULL, f->fds);
    f->undo = NULL;
    f->fds = NULL;
    f->undo_cap = 0;
    f->fds_count = 0;
}

/* Undo one DATA record; with @keep_sectors, only the 512-byte sectors for which the rng
 * says "lost" are undone (a torn write). Returns 0 or a negative errno. */
static int undo_data_apply(struct aegis_fault_undo *u, struct aegis_rng *keep_sectors,
                           uint64_t sector)
{
    int fd, rv = 0;

    AEGIS_ASSERT(sector > 0 && sector <= 4096);
    if (u->path[0] == '\0') {
        return 0; /* The file was unlinked for good. */
    }
    fd = open(u->path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if (keep_sectors == NULL || !u->is_write) {
        if (ftruncate(fd, (off_t)u->old_size) < 0 ||
            (u->pre_len > 0 && pwrite(fd, u->pre, u->pre_len, (off_t)u->off) < 0)) {
            rv = -errno;
        }
    } else {
        uint64_t pos = u->off, end = u->off + u->len;

        while (pos < end && rv == 0) {
            uint64_t next = (pos / sector + 1) * sector;
            uint64_t stop = next < end ? next : end;

            if (aegis__rng_next(keep_sectors) & 1) {
                static const uint8_t zeros[4096];
                const uint8_t *src = zeros;

                if (pos < u->off + u->pre_len) {
                    src = u->pre + (pos - u->off);
                    stop = stop < u->off + u->pre_len ? stop : u->off + u->pre_len;
                }
                if (pwrite(fd, src, stop - pos, (off_t)pos) < 0) {
                    rv = -errno;
                }
            }
            pos = stop;
        }
    }
    close(fd);
    return rv;
}

static int undo_name_apply(const struct aegis_fault_undo *u)
{
    switch (u->kind) {
    case UNDO_CREATE:
        if (unlink(u->path) < 0 && errno != ENOENT) {
            return -errno;
        }
        return 0;
    case UNDO_RENAME:
        if (rename(u->path2, u->path) < 0) {
            return -errno;
        }
        if (u->trash[0] != '\0' && rename(u->trash, u->path2) < 0) {
            return -errno;
        }
        return 0;
    case UNDO_UNLINK:
        return rename(u->trash, u->path) < 0 ? -errno : 0;
    case UNDO_DATA:
        break;
    }
    AEGIS_UNREACHABLE();
}

int aegis__fileio_fault_powerloss(struct aegis_fileio_fault *f, enum aegis_fault_powerloss mode,
                                  uint64_t seed)
{
    struct aegis_rng rng;
    uint32_t names = 0, names_kept = 0;
    int rv = 0;

    aegis__rng_seed(&rng, seed);
    /* Data first, newest first per file. In TEAR mode each file keeps a random prefix of
     * its records (chosen from the oldest end), the first lost write torn by sectors. */
    for (uint32_t i = 0; i < f->undo_count; i++) {
        struct aegis_fault_undo *u = &f->undo[i];

        if (u->kind != UNDO_DATA || u->len == UINT64_MAX) {
            continue;
        }
        /* Mark every record of this file: len == UINT64_MAX flags "visited" below. */
        uint32_t idx[4096];
        uint32_t n = 0, kept;

        for (uint32_t j = i; j < f->undo_count && n < 4096; j++) {
            if (f->undo[j].kind == UNDO_DATA && strcmp(f->undo[j].path, u->path) == 0) {
                idx[n++] = j;
            }
        }
        kept = mode == AEGIS_FAULT_TEAR ? (uint32_t)aegis__rng_range(&rng, 0, n) : 0;
        for (uint32_t k = n; k-- > kept;) {
            struct aegis_fault_undo *v = &f->undo[idx[k]];
            int r = undo_data_apply(v, k == kept && mode == AEGIS_FAULT_TEAR ? &rng : NULL,
                                    f->tear_bytes != 0 ? f->tear_bytes : 512);

            rv = rv != 0 ? rv : r;
        }
        for (uint32_t k = 0; k < n; k++) {
            f->undo[idx[k]].len = UINT64_MAX;
        }
    }
    for (uint32_t i = 0; i < f->undo_count; i++) {
        names += f->undo[i].kind != UNDO_DATA;
    }
    names_kept = mode == AEGIS_FAULT_TEAR ? (uint32_t)aegis__rng_range(&rng, 0, names) : 0;
    for (uint32_t i = f->undo_count, seen = names; i-- > 0;) {
        const struct aegis_fault_undo *u = &f->undo[i];

        if (u->kind == UNDO_DATA) {
            continue;
        }
        seen--;
        if (seen >= names_kept) {
            int r = undo_name_apply(u);

            rv = rv != 0 ? rv : r;
        }
    }
    forget_undo(f);
    f->round.n = 0;
    f->dead = false;
    f->crash_after = 0;
    f->fail_at = 0;
    return rv;
}
