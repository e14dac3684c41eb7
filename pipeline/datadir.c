/* SPDX-License-Identifier: MIT */
/* The data directory's lock and identity; see datadir.h for the design.
 *
 * File "identity", 64 bytes, integers little-endian:
 *    0  4  magic "AGID"
 *    4  4  version, 1
 *    8  8  cluster id (--cluster-id)
 *   16  8  node id (--id)
 *   24 16  cluster UUID, 128 random bits (getrandom) made at initialisation
 *   40 20  reserved, zero
 *   60  4  CRC32C of bytes 0..59
 * File "lock": the holder's pid in decimal and a newline; its content is informative, the
 * flock is what excludes. */
#include "pipeline/datadir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <aegis/error.h>

#include "engine/byteorder.h"
#include "engine/crc32c.h"
#include "pipeline/logging.h"

#define ID_NAME "identity"
#define ID_TMP_NAME "identity.tmp"
#define LOCK_NAME "lock"

/* The identity layout of the file comment: magic, version, 2 ids, UUID, reserved, CRC. */
_Static_assert(AEGIS_IDENTITY_BYTES == 4 + 4 + 2 * 8 + 16 + 20 + 4, "identity layout");

static const uint8_t id_magic[4] = {'A', 'G', 'I', 'D'};

void aegis__identity_encode(const struct aegis_identity *id, uint8_t out[AEGIS_IDENTITY_BYTES])
{
    uint32_t crc;

    memset(out, 0, AEGIS_IDENTITY_BYTES);
    memcpy(out, id_magic, 4);
    out[4] = 1;
    aegis__put_le64(out + 8, id->cluster_id);
    aegis__put_le64(out + 16, id->node_id);
    memcpy(out + 24, id->uuid, 16);
    crc = aegis__crc32c(0, out, 60);
    for (int i = 0; i < 4; i++) {
        out[60 + i] = (uint8_t)(crc >> (8 * i));
    }
}

int aegis__identity_decode(const uint8_t *buf, size_t len, struct aegis_identity *out)
{
    uint32_t crc = 0;

    if (len != AEGIS_IDENTITY_BYTES || memcmp(buf, id_magic, 4) != 0 || buf[4] != 1 ||
        buf[5] != 0 || buf[6] != 0 || buf[7] != 0) {
        return AEGIS_ECORRUPT;
    }
    for (int i = 40; i < 60; i++) {
        if (buf[i] != 0) {
            return AEGIS_ECORRUPT;
        }
    }
    for (int i = 3; i >= 0; i--) {
        crc = (crc << 8) | buf[60 + i];
    }
    if (crc != aegis__crc32c(0, buf, 60)) {
        return AEGIS_ECORRUPT;
    }
    out->cluster_id = aegis__get_le64(buf + 8);
    out->node_id = aegis__get_le64(buf + 16);
    memcpy(out->uuid, buf + 24, 16);
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Whether @dir holds anything a node wrote: identity, hard state, a segment, a snapshot.
 * Temporaries and the lock do not count. */
static int has_state(const char *dir, bool *out)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL) {
        return -errno;
    }
    *out = false;
    while ((de = readdir(d)) != NULL && !*out) {
        *out = strcmp(de->d_name, ID_NAME) == 0 || strcmp(de->d_name, "hardstate") == 0 ||
               ends_with(de->d_name, ".seg") || ends_with(de->d_name, ".snap");
    }
    closedir(d);
    return 0;
}

/* Take the lock; on contention say who holds it. */
static int take_lock(struct aegis_datadir *d, const char *dir)
{
    char path[4096], pid[32] = "";
    int fd, len;

    snprintf(path, sizeof(path), "%s/%s", dir, LOCK_NAME);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rv = -errno;

        snprintf(d->msg, sizeof(d->msg), "cannot open the lock file %s: %s", path,
                 strerror(errno));
        return rv;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);

        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\r\n")] = '\0';
        close(fd);
        if (err == EWOULDBLOCK) {
            snprintf(d->msg, sizeof(d->msg),
                     "data directory %s is in use by another process (pid %s, lock file %s)",
                     dir, pid[0] != '\0' ? pid : "unknown", path);
            return AEGIS_EBUSY;
        }
        snprintf(d->msg, sizeof(d->msg), "cannot lock %s: %s", path, strerror(err));
        return -err;
    }
    len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* The lock is held: the pid is only a courtesy for the next operator. */
        AEGIS_LOG(AEGIS_LOG_WARN, "cannot write the pid into %s: %s", path, strerror(errno));
    }
    d->lock_fd = fd;
    return 0;
}

/* Write the identity once: temporary, fdatasync, rename, fsync of the directory. */
static int write_identity(const char *dir, struct aegis_fileio *io, const struct aegis_identity *id)
{
    uint8_t buf[AEGIS_IDENTITY_BYTES];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    char tmp[4096], path[4096];

    snprintf(tmp, sizeof(tmp), "%s/%s", dir, ID_TMP_NAME);
    snprintf(path, sizeof(path), "%s/%s", dir, ID_NAME);
    aegis__identity_encode(id, buf);
    return aegis__fileio_replace(io, dir, tmp, path, &iov, 1);
}

/* Read the identity: 0, AEGIS_ENOENT (none), AEGIS_ECORRUPT, or an I/O error. */
static int read_identity(const char *dir, struct aegis_fileio *io, struct aegis_identity *out)
{
    uint8_t buf[AEGIS_IDENTITY_BYTES + 1];
    char path[4096];
    int64_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, ID_NAME);
    fd = aegis__fileio_open(io, path, O_RDONLY, 0);
    if (fd < 0) {
        return fd;
    }
    n = aegis__fileio_pread(io, fd, buf, sizeof(buf), 0);
    aegis__fileio_close(io, fd);
    if (n < 0) {
        return (int)n;
    }
    return aegis__identity_decode(buf, (size_t)n, out);
}

static int new_identity(struct aegis_identity *id, uint64_t cluster_id, aegis_node_id node_id)
{
    id->cluster_id = cluster_id;
    id->node_id = node_id;
    if (getrandom(id->uuid, sizeof(id->uuid), 0) != (ssize_t)sizeof(id->uuid)) {
        return errno != 0 ? -errno : AEGIS_EIO;
    }
    return 0;
}

static int check_identity(struct aegis_datadir *d, const char *dir, uint64_t cluster_id,
                          aegis_node_id node_id, struct aegis_fileio *io)
{
    int rv = read_identity(dir, io, &d->id);

    if (rv == AEGIS_ENOENT) {
        rv = new_identity(&d->id, cluster_id, node_id);
        if (rv == 0) {
            rv = write_identity(dir, io, &d->id);
        }
        if (rv != 0) {
            snprintf(d->msg, sizeof(d->msg), "cannot write %s/%s: %s", dir, ID_NAME,
                     aegis_strerror(rv));
        } else if (!d->fresh) {
            AEGIS_LOG(AEGIS_LOG_WARN,
                      "%s had no identity file (made before identities existed): it now "
                      "records cluster %llu, node %llu",
                      dir, (unsigned long long)cluster_id, (unsigned long long)node_id);
        }
        return rv;
    }
    if (rv == AEGIS_ECORRUPT) {
        snprintf(d->msg, sizeof(d->msg),
                 "%s/%s is damaged (bad magic, version or CRC at byte offset 0..63): refusing "
                 "to guess whose data this is",
                 dir, ID_NAME);
        return rv;
    }
    if (rv != 0) {
        snprintf(d->msg, sizeof(d->msg), "cannot read %s/%s: %s", dir, ID_NAME,
                 aegis_strerror(rv));
        return rv;
    }
    if (d->id.cluster_id != cluster_id || d->id.node_id != node_id) {
        snprintf(d->msg, sizeof(d->msg),
                 "data directory %s belongs to node %llu of cluster %llu, but this start has "
                 "--id %llu --cluster-id %llu: refusing to start (use that node's flags, or "
                 "another --data-dir)",
                 dir, (unsigned long long)d->id.node_id, (unsigned long long)d->id.cluster_id,
                 (unsigned long long)node_id, (unsigned long long)cluster_id);
        return AEGIS_EIDENTITY;
    }
    return 0;
}

int aegis__datadir_open(struct aegis_datadir *d, const char *dir, uint64_t cluster_id,
                        aegis_node_id node_id, struct aegis_fileio *io)
{
    bool state = false;
    int rv;

    memset(d, 0, sizeof(*d));
    d->lock_fd = -1;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rv = -errno;
        snprintf(d->msg, sizeof(d->msg), "cannot create %s: %s", dir, strerror(errno));
        return rv;
    }
    rv = take_lock(d, dir);
    if (rv != 0) {
        return rv;
    }
    rv = has_state(dir, &state);
    if (rv != 0) {
        snprintf(d->msg, sizeof(d->msg), "cannot list %s: %s", dir, aegis_strerror(rv));
        aegis__datadir_close(d);
        return rv;
    }
    d->fresh = !state;
    rv = check_identity(d, dir, cluster_id, node_id, io);
    if (rv != 0) {
        aegis__datadir_close(d);
    }
    return rv;
}

void aegis__datadir_close(struct aegis_datadir *d)
{
    if (d->lock_fd >= 0) {
        close(d->lock_fd); /* Releases the flock. */
    }
    d->lock_fd = -1;
}
