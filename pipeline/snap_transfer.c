/* SPDX-License-Identifier: MIT */
/* InstallSnapshot through files; see snap_transfer.h for the design. */
#include "pipeline/snap_transfer.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "pipeline/logging.h"
#include "pipeline/node_int.h"
#include "pipeline/snapshot_file.h"

#define PATH_BYTES 4608 /* A data directory (up to 4096) and a file name. */

static void final_path(const char *dir, aegis_index index, char *out, size_t len)
{
    aegis__snapshot_file_path(dir, index, out, len);
}

static void recv_path(const char *dir, const struct aegis_snapshot_meta *meta,
                      aegis_node_id leader, uint64_t total, char *out, size_t len)
{
    snprintf(out, len, "%s/snap-%llu-%llu-%llu-%llu.recv", dir,
             (unsigned long long)meta->index, (unsigned long long)meta->term,
             (unsigned long long)leader, (unsigned long long)total);
}

/* Parse a partial snapshot's file name. */
static bool parse_recv_name(const char *name, struct aegis_snapshot_meta *meta,
                            aegis_node_id *leader, uint64_t *total)
{
    unsigned long long index, term, id, size;
    int end = 0;

    if (sscanf(name, "snap-%llu-%llu-%llu-%llu.recv%n", &index, &term, &id, &size, &end) !=
            4 ||
        name[end] != '\0' || index == 0 || term == 0 || id == 0 ||
        size > AEGIS_SNAPSHOT_BYTES_MAX) {
        return false;
    }
    memset(meta, 0, sizeof(*meta));
    meta->index = index;
    meta->term = term;
    *leader = id;
    *total = size;
    return true;
}

/* Remove every partial snapshot of @dir. */
static void remove_partials(const char *dir, struct aegis_fileio *io)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        struct aegis_snapshot_meta meta;
        aegis_node_id leader;
        uint64_t total;
        char path[PATH_BYTES];

        if (parse_recv_name(de->d_name, &meta, &leader, &total)) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            aegis__fileio_unlink(io, path);
        }
    }
    closedir(d);
}

/* Remove the snapshot files of @dir older than @index. */
static void remove_older(const char *dir, struct aegis_fileio *io, aegis_index index)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool removed = false;

    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        unsigned long long v;
        int end = 0;
        char path[PATH_BYTES];

        if (strlen(de->d_name) == 25 && sscanf(de->d_name, "%20llu.snap%n", &v, &end) == 1 &&
            end == 25 && v < index) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            removed |= aegis__fileio_unlink(io, path) == 0;
        }
    }
    closedir(d);
    if (removed) {
        aegis__fileio_fsync_dir(io, dir);
    }
}

int aegis__snap_file_verify(const char *path, struct aegis_fileio *io,
                            const struct aegis_snapshot_meta *meta)
{
    struct aegis_snapshot_reader r;
    char msg[AEGIS_SNAPSHOT_PATH_MAX + 128];
    const uint8_t *p;
    size_t len;
    int rv;

    /* The check the load does (snapshot_file.h): the header, then every chunk's length,
     * CRC and sequence, the end chunk and the stream CRC, one chunk in memory at a time.
     * Budget: one pass over the file, bounded by its size. */
    rv = aegis__snapshot_reader_open(&r, path, io, NULL, meta->index);
    if (rv != 0) {
        if (rv == AEGIS_ECORRUPT && r.why != NULL) {
            aegis__snapshot_reader_error(&r, msg, sizeof(msg));
            AEGIS_LOG(AEGIS_LOG_WARN, "%s", msg);
        }
        return rv;
    }
    if (r.meta.term != meta->term) {
        aegis__snapshot_reader_close(&r);
        return AEGIS_ECORRUPT;
    }
    do {
        rv = aegis__snapshot_reader_next(&r, &p, &len);
    } while (rv == 0 && len > 0);
    if (rv == AEGIS_ECORRUPT && r.why != NULL) {
        aegis__snapshot_reader_error(&r, msg, sizeof(msg));
        AEGIS_LOG(AEGIS_LOG_WARN, "%s", msg);
    }
    aegis__snapshot_reader_close(&r);
    return rv;
}

static int step_open(const char *dir, struct aegis_fileio *io, const struct aegis_snap_step *s)
{
    char path[PATH_BYTES];
    int fd;

    remove_partials(dir, io);
    recv_path(dir, &s->meta, s->leader, s->total, path, sizeof(path));
    fd = aegis__fileio_open(io, path, O_CREAT | O_WRONLY, 0600);
    if (fd < 0) {
        return fd;
    }
    aegis__fileio_close(io, fd);
    return aegis__fileio_fsync_dir(io, dir);
}

static int step_chunk(const char *dir, struct aegis_fileio *io, const struct aegis_snap_step *s)
{
    char path[PATH_BYTES];
    struct iovec iov;
    int fd, rv;

    AEGIS_ASSERT(s->chunk != NULL);
    AEGIS_ASSERT(s->offset + s->chunk->len <= s->total);
    recv_path(dir, &s->meta, s->leader, s->total, path, sizeof(path));
    fd = aegis__fileio_open(io, path, O_WRONLY, 0);
    if (fd < 0) {
        return fd;
    }
    iov = (struct iovec){.iov_base = s->chunk->data, .iov_len = s->chunk->len};
    rv = aegis__fileio_pwritev_all(io, fd, &iov, 1, s->offset, NULL);
    aegis__fileio_close(io, fd);
    return rv;
}

/* fdatasync, then the whole-file check; a refused file is removed. */
static int step_verify(const char *dir, struct aegis_fileio *io, const struct aegis_snap_step *s)
{
    char path[PATH_BYTES];
    int fd, rv;

    recv_path(dir, &s->meta, s->leader, s->total, path, sizeof(path));
    fd = aegis__fileio_open(io, path, O_WRONLY, 0);
    if (fd < 0) {
        return fd;
    }
    rv = aegis__fileio_fdatasync(io, fd);
    aegis__fileio_close(io, fd);
    if (rv == 0) {
        rv = aegis__snap_file_verify(path, io, &s->meta);
    }
    if (rv != 0) {
        AEGIS_LOG(AEGIS_LOG_WARN, "snapshot %llu received from node %llu refused: %s; "
                  "the transfer starts again", (unsigned long long)s->meta.index,
                  (unsigned long long)s->leader, aegis_strerror(rv));
        aegis__fileio_unlink(io, path);
    }
    return rv;
}

static int step_commit(const char *dir, struct aegis_fileio *io, const struct aegis_snap_step *s)
{
    char from[PATH_BYTES], to[PATH_BYTES];
    int rv;

    recv_path(dir, &s->meta, s->leader, s->total, from, sizeof(from));
    final_path(dir, s->meta.index, to, sizeof(to));
    rv = aegis__fileio_rename(io, from, to);
    if (rv == 0) {
        rv = aegis__fileio_fsync_dir(io, dir);
    }
    if (rv == 0) {
        remove_older(dir, io, s->meta.index); /* Garbage at worst if it fails. */
    }
    return rv;
}

int aegis__snap_step_run(const char *dir, struct aegis_fileio *io, const struct aegis_snap_step *s,
                         int *verdict_out)
{
    io = aegis__fileio_or_real(io);
    switch (s->kind) {
    case AEGIS_SNAP_STEP_OPEN:
        return step_open(dir, io, s);
    case AEGIS_SNAP_STEP_CHUNK:
        return step_chunk(dir, io, s);
    case AEGIS_SNAP_STEP_VERIFY:
        *verdict_out = step_verify(dir, io, s);
        return 0;
    case AEGIS_SNAP_STEP_COMMIT:
        return step_commit(dir, io, s);
    default:
        AEGIS_UNREACHABLE();
    }
}

void aegis__snap_step_free(struct aegis_snap_step *s, const struct aegis_allocator *a)
{
    if (s != NULL) {
        aegis__buf_unref(s->chunk);
        aegis__free(a, s);
    }
}

/* ---- Raft thread ---- */

static void push_step(struct aegis_snap_transfer *t, uint8_t kind, uint64_t offset,
                      struct aegis_buf *chunk)
{
    struct aegis_node *n = t->n;
    struct aegis_snap_step *s = aegis__calloc(n->alloc, 1, sizeof(*s));
    struct aegis_log_req req;

    AEGIS_ASSERT(s != NULL);
    s->kind = kind;
    s->meta = t->recv_meta;
    s->leader = t->recv_leader;
    s->total = t->recv_total;
    s->offset = offset;
    s->chunk = chunk != NULL ? aegis__buf_ref(chunk) : NULL;
    memset(&req, 0, sizeof(req));
    req.op = AEGIS_LOG_OP_INSTALL;
    req.install.step = s; /* Moves with the request. */
    aegis__raft_thread_log_push(n, &req);
}

void aegis__snap_transfer_init(struct aegis_snap_transfer *t, struct aegis_node *n)
{
    DIR *d;
    struct dirent *de;

    memset(t, 0, sizeof(*t));
    t->n = n;
    t->src_fd = -1;
    d = opendir(n->data_dir);
    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        struct aegis_snapshot_meta meta;
        aegis_node_id leader;
        uint64_t total, size = 0;
        char path[PATH_BYTES];
        int fd;

        if (t->recv_active || !parse_recv_name(de->d_name, &meta, &leader, &total)) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", n->data_dir, de->d_name);
        fd = aegis__fileio_open(NULL, path, O_RDONLY, 0);
        if (fd < 0 || aegis__fileio_size(NULL, fd, &size) != 0 || size > total) {
            size = 0; /* The OPEN of the next offer removes it. */
        }
        if (fd >= 0) {
            aegis__fileio_close(NULL, fd);
        }
        t->recv_active = size > 0;
        t->recv_meta = meta;
        t->recv_leader = leader;
        t->recv_total = total;
        t->recv_have = size;
        if (t->recv_active) {
            AEGIS_LOG(AEGIS_LOG_INFO, "partial snapshot %llu from node %llu: %llu of %llu "
                      "bytes kept; the transfer resumes there", (unsigned long long)meta.index,
                      (unsigned long long)leader, (unsigned long long)size,
                      (unsigned long long)total);
        }
    }
    closedir(d);
}

void aegis__snap_transfer_close(struct aegis_snap_transfer *t)
{
    if (t->src_fd >= 0) {
        close(t->src_fd);
        t->src_fd = -1;
    }
}

uint64_t aegis__snap_transfer_file_bytes(const struct aegis_node *n, aegis_index index)
{
    char path[PATH_BYTES];
    uint64_t size = 0;
    int fd;

    final_path(n->data_dir, index, path, sizeof(path));
    fd = aegis__fileio_open(NULL, path, O_RDONLY, 0);
    if (fd < 0) {
        return 0;
    }
    if (aegis__fileio_size(NULL, fd, &size) != 0) {
        size = 0;
    }
    aegis__fileio_close(NULL, fd);
    return size;
}

int aegis__snap_transfer_taken(struct aegis_snap_transfer *t,
                               const struct aegis_snapshot_meta *meta, uint64_t file_bytes)
{
    if (file_bytes == 0 || aegis__snap_transfer_file_bytes(t->n, meta->index) != file_bytes) {
        return AEGIS_ENOENT; /* Every snapshot file has a header: it is gone (replaced). */
    }
    return aegis__raft_snapshot_taken(t->n->raft, meta, file_bytes);
}

static int src_read(void *data, const struct aegis_snapshot_meta *meta, uint64_t offset,
                    uint32_t len, struct aegis_buf **chunk_out)
{
    struct aegis_snap_transfer *t = data;
    struct aegis_buf *chunk;
    char path[PATH_BYTES];
    int rv;

    if (t->src_fd < 0 || t->src_index != meta->index) {
        if (t->src_fd >= 0) {
            close(t->src_fd);
        }
        final_path(t->n->data_dir, meta->index, path, sizeof(path));
        t->src_fd = aegis__fileio_open(NULL, path, O_RDONLY, 0);
        t->src_index = meta->index;
        if (t->src_fd < 0) {
            return t->src_fd; /* Replaced by a newer one: the core moves on. */
        }
    }
    chunk = aegis__buf_create(t->n->alloc, len);
    if (chunk == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = aegis__fileio_pread_all(NULL, t->src_fd, chunk->data, len, offset);
    if (rv != 0) {
        aegis__buf_unref(chunk);
        return rv;
    }
    *chunk_out = chunk;
    return 0;
}

static bool same_offer(const struct aegis_snap_transfer *t, const struct aegis_snapshot_meta *meta,
                       aegis_node_id leader, uint64_t total)
{
    return t->recv_active && t->recv_meta.index == meta->index &&
           t->recv_meta.term == meta->term && t->recv_leader == leader && t->recv_total == total;
}

static int sink_open(void *data, const struct aegis_snapshot_meta *meta, aegis_node_id leader,
                     uint64_t total_bytes, uint64_t *have_out)
{
    struct aegis_snap_transfer *t = data;

    if (same_offer(t, meta, leader, total_bytes)) {
        *have_out = t->recv_have;
        return 0;
    }
    t->recv_active = true;
    t->recv_meta = *meta;
    t->recv_leader = leader;
    t->recv_total = total_bytes;
    t->recv_have = 0;
    push_step(t, AEGIS_SNAP_STEP_OPEN, 0, NULL);
    *have_out = 0;
    return 0;
}

static int sink_write(void *data, const struct aegis_snapshot_meta *meta, uint64_t offset,
                      struct aegis_buf *chunk)
{
    struct aegis_snap_transfer *t = data;

    AEGIS_ASSERT(t->recv_active && t->recv_meta.index == meta->index);
    AEGIS_ASSERT(offset == t->recv_have);
    push_step(t, AEGIS_SNAP_STEP_CHUNK, offset, chunk);
    t->recv_have += chunk->len;
    return 0;
}

static int sink_finish(void *data, const struct aegis_snapshot_meta *meta, uint64_t total_bytes)
{
    struct aegis_snap_transfer *t = data;

    AEGIS_ASSERT(t->recv_active && t->recv_meta.index == meta->index);
    AEGIS_ASSERT(t->recv_have == total_bytes);
    t->recv_meta = *meta; /* The leader's membership at that index, for the steps. */
    push_step(t, AEGIS_SNAP_STEP_VERIFY, 0, NULL);
    return AEGIS_EAGAIN; /* The verdict comes back as a log report. */
}

void aegis__snap_transfer_io(struct aegis_snap_transfer *t, struct aegis_snapshot_io *io)
{
    io->read = src_read;
    io->recv_open = sink_open;
    io->recv_write = sink_write;
    io->recv_finish = sink_finish;
    io->data = t;
}

void aegis__snap_transfer_on_verdict(struct aegis_snap_transfer *t, aegis_index index,
                                     aegis_term term, int verdict)
{
    if (verdict != 0) {
        /* A snapshot the leader sent that does not verify is a refused peer message,
         * counted with the others (on the raft thread, which calls this). */
        aegis__metrics_add(&t->n->metrics, AEGIS_MT_RAFT, AEGIS_MC_PEER_REJECTED, 1);
    }
    if (verdict != 0 && t->recv_active && t->recv_meta.index == index &&
        t->recv_meta.term == term) {
        t->recv_active = false; /* The log thread removed the file. */
        t->recv_have = 0;
    }
    (void)aegis__raft_snapshot_verified(t->n->raft, index, term, verdict);
}

void aegis__snap_transfer_commit(struct aegis_snap_transfer *t,
                                 const struct aegis_snapshot_meta *meta)
{
    AEGIS_ASSERT(t->recv_active);
    AEGIS_ASSERT(t->recv_meta.index == meta->index && t->recv_meta.term == meta->term);
    push_step(t, AEGIS_SNAP_STEP_COMMIT, 0, NULL);
    t->recv_active = false;
    t->recv_have = 0;
}

void aegis__snap_transfer_installed(struct aegis_snap_transfer *t,
                                    const struct aegis_snapshot_meta *meta, uint64_t seq)
{
    /* A second install before the first is durable supersedes it: the apply thread loads
     * the newest snapshot file, and the later COMMIT is durable only after the earlier. */
    t->install_held = true;
    t->install_meta = *meta;
    t->install_seq = seq;
    aegis__snap_transfer_on_durable(t, t->n->durable_seq);
}

void aegis__snap_transfer_on_durable(struct aegis_snap_transfer *t, uint64_t durable_seq)
{
    struct aegis_apply_item it = {.kind = AEGIS_APPLY_INSTALL};

    if (!t->install_held || durable_seq < t->install_seq) {
        return;
    }
    t->install_held = false;
    it.meta = aegis__malloc(t->n->alloc, sizeof(*it.meta));
    AEGIS_ASSERT(it.meta != NULL);
    *it.meta = t->install_meta;
    it.buf = NULL; /* apply.c loads the snapshot file. */
    aegis__raft_thread_apply_push(t->n, &it);
}
