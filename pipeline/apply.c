/* SPDX-License-Identifier: MIT */
/* The apply thread (aegis-apply): owns the state machine.
 *
 * It takes items from the raft thread's apply ring in order: committed entries, the
 * registrations of proposals waiting for them, reads waiting for an index, snapshots to
 * install or take. It applies entries one by one, completes the callbacks of proposals
 * whose entries it applied (or that were overwritten), serves reads once the applied
 * index reaches their read index, and reports the applied index back to the raft thread
 * once per drained batch.
 *
 * Proposal outcomes. A proposal registered at (index, term) is decided when the entry at
 * that index is applied: the same term means it is ours (complete with its result); a
 * different term means it was overwritten (definite failure: AEGIS_ENOTLEADER). A
 * registration at an index at or below an older pending one proves the older ones were
 * truncated from this leader's log, so they can never commit (Leader Completeness): they
 * fail definitely too. Registrations still pending after AEGIS_APPLY_PENDING_MS fail with
 * AEGIS_ELEADERLOST: the outcome is unknown.
 *
 * The state machine is a struct aegis_machine (pipeline/machine.h): the built-in KV or the
 * embedder's, one path for both.
 *
 * Snapshots never stop applying. A snapshot opens a point-in-time view of the state
 * machine between two entries (its index is the applied index then); after that, each
 * pass of the loop reads one chunk of the view (the member address section first, then
 * the machine's bytes) into a buffer of the snapshot writer's pool and hands it to the
 * writer thread (pipeline/snap_writer.h), which appends it to the file. Applies go on
 * between chunks; when the writer's few buffers are all in flight this thread just
 * applies. Once the writer reports the file durable, the waiting AEGIS.SNAPSHOT callers
 * are answered and the raft thread gets its report. Restores (at start, and snapshots
 * installed from the leader) read the stream back chunk by chunk into the machine's
 * restore, which replaces the state only once the whole stream was verified. */
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "net/conn_pool.h"
#include "pipeline/conn_order.h"
#include "pipeline/envelope.h"
#include "pipeline/logging.h"
#include "pipeline/machine.h"
#include "pipeline/node_int.h"
#include "pipeline/probes.h"
#include "pipeline/snap_writer.h"
#include "pipeline/snapshot_file.h"

#define AEGIS_APPLY_PENDING_MS 10000u
#define AEGIS_APPLY_WAIT_MS 100
/* Snapshot chunks: the bytes read from the view per pass of the loop, and how many may be
 * queued to the writer at once (the snapshot's memory, whatever the state's size). */
#define AEGIS_APPLY_SNAP_CHUNK_BYTES ((size_t)(1u << 20))
#define AEGIS_APPLY_SNAP_CHUNKS 4u
#define AEGIS_APPLY_SNAP_WAITERS 64u
/* Restores read their source in slices of this size. */
#define AEGIS_APPLY_RESTORE_SLICE ((size_t)(1u << 20))

struct apply_reg {
    aegis_index index;
    aegis_term term;
    aegis_done_cb cb;
    void *data;
    aegis_node_id remote;
    uint64_t request_id;
    uint64_t deadline_ms;
};

struct apply_read {
    aegis_index index;
    struct aegis_buf *query;
    aegis_done_cb cb;
    void *data;
};

struct apply_waiter {
    aegis_done_cb cb;
    void *data;
};

/* The snapshot being taken: its view, the address section still to emit, its waiters. */
struct apply_snap {
    bool active;                  /* Begun at the writer, result not yet polled. */
    void *view;                   /* The machine's view; NULL once read to the end. */
    struct aegis_snapshot_meta meta;
    uint8_t prefix[AEGIS_ENV_SNAP_PREFIX_MAX];
    size_t prefix_len, prefix_off;
    struct apply_waiter waiters[AEGIS_APPLY_SNAP_WAITERS];
    uint32_t waiters_count;
};

struct aegis_apply_state {
    struct apply_reg *regs; /* Circular, power-of-two capacity. */
    uint32_t regs_head, regs_count, regs_mask;
    struct apply_read *reads; /* In arrival order, indices non-decreasing (read_floor). */
    uint32_t reads_count, reads_cap;
    aegis_index read_floor;   /* The highest index a read has waited for. */
    aegis_index applied;
    aegis_term applied_term;
    aegis_index reported;
    struct aegis_conf conf;
    struct aegis_peer_addr addrs[AEGIS_PEERS_MAX];
    uint32_t addrs_count;
    struct aegis_apply_report pending_report; /* A snapshot report the ring refused. */
    struct aegis_machine machine;
    struct aegis_snap_writer *writer; /* Started at the first snapshot. */
    struct apply_snap snap;
};

static uint64_t now_ms(void)
{
    return aegis__now_ns() / 1000000u;
}

/* Copy the addresses this thread knows to the node's shared table (INFO, AEGIS.MEMBERS). */
static void publish_addrs(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;

    pthread_mutex_lock(&n->status_lock);
    memcpy(n->addrs, s->addrs, s->addrs_count * sizeof(*s->addrs));
    n->addrs_count = s->addrs_count;
    pthread_mutex_unlock(&n->status_lock);
}

bool aegis__node_member_addr(struct aegis_node *n, aegis_node_id id,
                             struct aegis_peer_addr *out)
{
    bool found = false;

    pthread_mutex_lock(&n->status_lock);
    for (uint32_t i = 0; i < n->addrs_count && !found; i++) {
        if (n->addrs[i].id == id) {
            *out = n->addrs[i];
            found = true;
        }
    }
    pthread_mutex_unlock(&n->status_lock);
    return found;
}

int aegis__apply_init(struct aegis_node *n)
{
    struct aegis_apply_state *s;
    uint32_t cap = 1;

    /* Room for the raft thread's hard bound on proposals (2 * max_pending) plus the few
     * membership changes registered outside it. */
    while (cap < 2 * n->config.max_pending + 16) {
        cap <<= 1;
    }
    s = aegis__calloc(n->alloc, 1, sizeof(*s));
    if (s == NULL) {
        return AEGIS_ENOMEM;
    }
    s->regs = aegis__calloc(n->alloc, cap, sizeof(*s->regs));
    s->reads_cap = 1024;
    s->reads = aegis__calloc(n->alloc, s->reads_cap, sizeof(*s->reads));
    if (s->regs == NULL || s->reads == NULL) {
        aegis__free(n->alloc, s->regs);
        aegis__free(n->alloc, s->reads);
        aegis__free(n->alloc, s);
        return AEGIS_ENOMEM;
    }
    s->regs_mask = cap - 1;
    if (n->sm != NULL) {
        aegis__machine_user(&s->machine, n->sm, n->alloc);
    } else {
        aegis__machine_kv(&s->machine, &n->kv, n->alloc);
    }
    for (uint32_t i = 0; i < n->config.peers_count && i < AEGIS_PEERS_MAX; i++) {
        s->addrs[s->addrs_count++] = n->config.peers[i];
    }
    /* The bootstrap membership (node.c gives the core the same) until a snapshot or a
     * ConfigChange says otherwise: the snapshot files written here carry it. Left empty,
     * they claimed no members, and a node restarted from one never campaigned (seen once
     * InstallSnapshot moved these files byte for byte, pipeline/snap_transfer.h). */
    if (!n->config.join) {
        for (uint32_t i = 0; i < n->config.peers_count && i < AEGIS_MEMBERS_MAX; i++) {
            s->conf.members[s->conf.count++] = (struct aegis_member){
                .id = n->config.peers[i].id, .role = AEGIS_MEMBER_VOTER};
        }
    }
    n->apply_state = s;
    publish_addrs(n);
    return 0;
}

/* The applied position, membership and addresses of the snapshot the node starts from. */
void aegis__apply_restored(struct aegis_node *n, const struct aegis_snapshot_meta *meta,
                           const struct aegis_peer_addr *addrs, uint32_t addrs_count)
{
    struct aegis_apply_state *s = n->apply_state;

    s->applied = meta->index;
    s->applied_term = meta->term;
    s->reported = meta->index;
    s->conf = meta->conf;
    __atomic_store_n(&n->applied_index, meta->index, __ATOMIC_RELAXED);
    if (addrs_count > 0) {
        memcpy(s->addrs, addrs, addrs_count * sizeof(*addrs));
        s->addrs_count = addrs_count;
    }
    publish_addrs(n);
}

void aegis__apply_close(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;

    if (s == NULL) {
        return;
    }
    for (uint32_t i = 0; i < s->reads_count; i++) {
        aegis__buf_unref(s->reads[i].query);
    }
    AEGIS_ASSERT(s->writer == NULL && !s->snap.active); /* The apply thread ended them. */
    aegis__free(n->alloc, s->pending_report.meta);
    aegis__free(n->alloc, s->regs);
    aegis__free(n->alloc, s->reads);
    aegis__free(n->alloc, s);
    n->apply_state = NULL;
}

static void send_msg_post(struct aegis_node *n, void *arg, uint64_t u)
{
    (void)u;
    aegis__net_send_msg(n, arg);
}

/* Answer a forwarded proposal: a CLIENT_RESP to the follower that forwarded it. */
static void reply_remote(struct aegis_node *n, const struct apply_reg *r,
                         const struct aegis_result *res, struct aegis_buf *value)
{
    struct aegis_msg *m = aegis__calloc(n->alloc, 1, sizeof(*m));
    struct aegis_net_post p;

    if (m == NULL) {
        return; /* The follower times the request out as unknown. */
    }
    m->type = AEGIS_MSG_CLIENT_RESP;
    m->from = n->config.id;
    m->to = r->remote;
    m->client_resp.request_id = r->request_id;
    m->client_resp.status = res->status;
    m->client_resp.leader_hint = res->leader_hint;
    m->client_resp.index = res->index;
    m->client_resp.version = res->version;
    m->client_resp.integer = res->integer;
    m->client_resp.value = value != NULL ? aegis__buf_ref(value) : NULL;
    p = (struct aegis_net_post){.fn = send_msg_post, .arg = m};
    aegis__net_post_from_apply(n, &p);
}

static void complete_reg(struct aegis_node *n, const struct apply_reg *r,
                         const struct aegis_result *res, struct aegis_buf *value)
{
    /* Release: the raft thread may reuse the slot once it sees the count drop. */
    __atomic_fetch_sub(&n->inflight, 1, __ATOMIC_RELEASE);
    if (r->remote != AEGIS_NODE_NONE) {
        reply_remote(n, r, res, value);
    } else if (r->cb != NULL) {
        r->cb(r->data, res);
    }
}

static void fail_reg(struct aegis_node *n, const struct apply_reg *r, int status)
{
    struct aegis_result res = {.status = status};

    complete_reg(n, r, &res, NULL);
}

static struct apply_reg *reg_head(struct aegis_apply_state *s)
{
    return s->regs_count > 0 ? &s->regs[s->regs_head] : NULL;
}

static void reg_pop(struct aegis_apply_state *s)
{
    s->regs_head = (s->regs_head + 1) & s->regs_mask;
    s->regs_count--;
}

static void handle_register(struct aegis_node *n, const struct aegis_apply_item *it)
{
    struct aegis_apply_state *s = n->apply_state;
    struct apply_reg r = {
        .index = it->entry.index,
        .term = it->entry.term,
        .cb = it->cb,
        .data = it->data,
        .remote = it->remote,
        .request_id = it->request_id,
        .deadline_ms = now_ms() + AEGIS_APPLY_PENDING_MS,
    };

    /* Older registrations at or above this index were truncated from the leader's log:
     * they can never commit. Drop them from the tail. */
    while (s->regs_count > 0) {
        uint32_t tail = (s->regs_head + s->regs_count - 1) & s->regs_mask;

        if (s->regs[tail].index < r.index) {
            break;
        }
        fail_reg(n, &s->regs[tail], AEGIS_ENOTLEADER);
        s->regs_count--;
    }
    /* The raft thread keeps inflight below 2 * max_pending, within the capacity. */
    AEGIS_ASSERT(s->regs_count <= s->regs_mask);
    if (r.index <= s->applied) {
        fail_reg(n, &r, AEGIS_ENOTLEADER);
        return;
    }
    s->regs[(s->regs_head + s->regs_count) & s->regs_mask] = r;
    s->regs_count++;
}

static void learn_addr(struct aegis_node *n, const struct aegis_peer_addr *a);

/* Apply one committed entry to the state machine; fill @res and return the value buffer
 * (a reference the caller drops) for the proposer. */
static struct aegis_buf *apply_entry(struct aegis_node *n, const struct aegis_entry *e,
                                     struct aegis_result *res)
{
    struct aegis_apply_state *s = n->apply_state;
    const uint8_t *p = aegis__entry_data(e);
    uint32_t len = aegis__entry_len(e);
    uint8_t type = e->type;
    struct aegis_buf *value = NULL;

    memset(res, 0, sizeof(*res));
    res->index = e->index;
    if (type == AEGIS_ENTRY_CONFIG_CHANGE) {
        struct aegis_conf_change cc;

        if (aegis__conf_decode(p, len, &cc) == 0) {
            s->conf = cc.conf;
        }
    } else if (type == AEGIS_ENTRY_COMMAND && len > 0 && p[0] == AEGIS_ENV_META) {
        struct aegis_peer_addr a;

        if (aegis__env_addr_decode(p + 1, len - 1, &a) == 0) {
            learn_addr(n, &a);
        }
        type = AEGIS_ENTRY_NOOP; /* For the state machine it is a no-op. */
    } else if (type == AEGIS_ENTRY_COMMAND && (len == 0 || p[0] != AEGIS_ENV_COMMAND)) {
        res->status = AEGIS_ECORRUPT;
        type = AEGIS_ENTRY_NOOP;
    }
    value = s->machine.ops->apply(&s->machine, e, type,
                                  type == AEGIS_ENTRY_COMMAND ? p + 1 : NULL,
                                  type == AEGIS_ENTRY_COMMAND ? len - 1 : 0, res);
    s->applied = e->index;
    s->applied_term = e->term;
    return value;
}

static void handle_entry(struct aegis_node *n, struct aegis_apply_item *it)
{
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_result res;
    struct aegis_buf *value;
    struct apply_reg *r;
    void *req = NULL;

    if (it->entry.index <= s->applied) {
        aegis__entry_unref(&it->entry); /* Covered by an installed snapshot. */
        return;
    }
    AEGIS_ASSERT(it->entry.index == s->applied + 1);
    value = apply_entry(n, &it->entry, &res);
    /* A clock read per entry (applying one costs far more); its completions reuse it. */
    n->metrics.apply_ns = aegis__now_ns();
    n->metrics.apply_index = it->entry.index;
    aegis__metrics_since(&n->metrics, AEGIS_MH_COMMIT_APPLY, it->stamp_ns, n->metrics.apply_ns);
    aegis__metrics_add(&n->metrics, AEGIS_MT_APPLY, AEGIS_MC_APPLY_ENTRIES, 1);
    while ((r = reg_head(s)) != NULL && r->index <= it->entry.index) {
        if (r->index == it->entry.index && r->term == it->entry.term) {
            req = r->remote != AEGIS_NODE_NONE ? (void *)(uintptr_t)r->request_id : r->data;
            complete_reg(n, r, &res, value);
        } else {
            fail_reg(n, r, AEGIS_ENOTLEADER);
        }
        reg_pop(s);
    }
    AEGIS_PROBE2(applied, it->entry.index, req); /* One site: perf probe adds it once. */
    aegis__buf_unref(value);
    aegis__entry_unref(&it->entry);
    AEGIS_STAT_INC(n->stats.applied_entries);
}

static void serve_read(struct aegis_node *n, struct apply_read *rd)
{
    struct aegis_result res = {.index = rd->index};
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_buf *value;

    value = s->machine.ops->read(&s->machine, rd->query->data, rd->query->len, &res);
    if (rd->cb != NULL) {
        rd->cb(rd->data, &res);
    }
    aegis__buf_unref(value);
    aegis__buf_unref(rd->query);
    rd->query = NULL;
}

static void serve_ready_reads(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;
    uint32_t done = 0;

    /* Indices are non-decreasing (read_floor): the ready reads are a prefix. */
    while (done < s->reads_count && s->reads[done].index <= s->applied) {
        serve_read(n, &s->reads[done]);
        done++;
    }
    if (done > 0) {
        memmove(s->reads, s->reads + done, (s->reads_count - done) * sizeof(*s->reads));
        s->reads_count -= done;
    }
}

/* Reads are served in the order they arrive, each at an index at least that of the reads
 * before it (pipeline/conn_order.h): a later read of a connection never sees an older
 * state than an earlier one. In normal operation read indices arrive non-decreasing and
 * the floor changes nothing. */
static void handle_read(struct aegis_node *n, struct aegis_apply_item *it)
{
    struct aegis_apply_state *s = n->apply_state;
    struct apply_read rd = {.index = aegis__read_floor(&s->read_floor, it->index),
                            .query = it->buf, .cb = it->cb, .data = it->data};

    if (s->reads_count > 0) {
        serve_ready_reads(n); /* Earlier reads first, at the state they may see now. */
    }
    if (rd.index <= s->applied && s->reads_count == 0) {
        serve_read(n, &rd);
        return;
    }
    if (s->reads_count == s->reads_cap) {
        struct aegis_result res = {.status = AEGIS_EFULL};

        if (rd.cb != NULL) {
            rd.cb(rd.data, &res);
        }
        aegis__buf_unref(rd.query);
        return;
    }
    s->reads[s->reads_count++] = rd;
}

static void add_peer_post(struct aegis_node *n, void *arg, uint64_t u)
{
    struct aegis_peer_addr *a = arg;

    (void)u;
    if (a->id != n->config.id) {
        int rv = aegis__uring_loop_peer_add(n->loop, a->id, a->host, a->port);

        if (rv != 0 && rv != AEGIS_EEXIST) {
            AEGIS_LOG(AEGIS_LOG_WARN, "cannot add peer %llu at %s:%u: %s",
                      (unsigned long long)a->id, a->host, a->port, aegis_strerror(rv));
        }
    }
    aegis__free(n->alloc, a);
}

/* A member's address arrived through the log: remember it (it goes into snapshots) and
 * have the net thread dial it. */
static void learn_addr(struct aegis_node *n, const struct aegis_peer_addr *a)
{
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_peer_addr *copy;
    struct aegis_net_post p;
    uint32_t i;

    for (i = 0; i < s->addrs_count && s->addrs[i].id != a->id; i++) {
    }
    if (i == AEGIS_PEERS_MAX) {
        return;
    }
    s->addrs[i] = *a;
    if (i == s->addrs_count) {
        s->addrs_count++;
    }
    publish_addrs(n);
    copy = aegis__malloc(n->alloc, sizeof(*copy));
    if (copy == NULL) {
        return;
    }
    *copy = *a;
    p = (struct aegis_net_post){.fn = add_peer_post, .arg = copy};
    aegis__net_post_from_apply(n, &p);
}

/* A source of snapshot stream bytes: a snapshot file, or a buffer read in slices. */
struct restore_source {
    struct aegis_snapshot_reader *file;
    const struct aegis_buf *buf;
    size_t off;
};

static int source_next(struct restore_source *src, const uint8_t **p, size_t *len)
{
    size_t left;

    if (src->file != NULL) {
        return aegis__snapshot_reader_next(src->file, p, len);
    }
    left = src->buf != NULL ? src->buf->len - src->off : 0;
    *len = left < AEGIS_APPLY_RESTORE_SLICE ? left : AEGIS_APPLY_RESTORE_SLICE;
    *p = *len > 0 ? src->buf->data + src->off : NULL;
    src->off += *len;
    return 0;
}

/* Restore the machine from the stream of @src: the address section into @addrs, the rest
 * fed to the machine as it comes; the state is replaced only once the source reached its
 * verified end. 0, AEGIS_ECORRUPT, an I/O error, or the machine's error (state kept). */
static int restore_stream(struct aegis_node *n, struct restore_source *src,
                          struct aegis_peer_addr *addrs, uint32_t *addrs_count_out)
{
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_machine *m = &s->machine;
    struct aegis_env_snap_prefix *prefix;
    void *rs = NULL;
    const uint8_t *p;
    size_t len, used;
    int rv;

    prefix = aegis__calloc(n->alloc, 1, sizeof(*prefix));
    if (prefix == NULL) {
        return AEGIS_ENOMEM;
    }
    rv = m->ops->restore_begin(m, &rs);
    if (rv != 0) {
        aegis__free(n->alloc, prefix);
        return rv;
    }
    do {
        rv = source_next(src, &p, &len);
        if (rv == 0) {
            rv = aegis__env_snap_prefix_feed(prefix, p, len, &used);
        }
        if (rv == 0 && len > used) {
            rv = m->ops->restore_feed(m, rs, p + used, len - used);
        }
    } while (rv == 0 && len > 0);
    if (rv == 0) {
        rv = m->ops->restore_end(m, rs, true);
    } else {
        m->ops->restore_end(m, rs, false);
    }
    if (rv == 0) {
        memcpy(addrs, prefix->addrs, prefix->count * sizeof(*addrs));
        *addrs_count_out = prefix->count;
    }
    aegis__free(n->alloc, prefix);
    return rv;
}

int aegis__apply_restore(struct aegis_node *n, const struct aegis_buf *data,
                         struct aegis_peer_addr *addrs, uint32_t *addrs_count_out)
{
    struct restore_source src = {.buf = data};

    return restore_stream(n, &src, addrs, addrs_count_out);
}

int aegis__apply_restore_file(struct aegis_node *n, const char *path,
                              const struct aegis_snapshot_meta *meta,
                              struct aegis_peer_addr *addrs, uint32_t *addrs_count_out)
{
    struct aegis_snapshot_reader r;
    struct restore_source src = {.file = &r};
    char msg[AEGIS_SNAPSHOT_PATH_MAX + 128];
    int rv;

    rv = aegis__snapshot_reader_open(&r, path, NULL, n->alloc, meta->index);
    if (rv == 0) {
        rv = restore_stream(n, &src, addrs, addrs_count_out);
        aegis__snapshot_reader_close(&r);
    }
    if (rv == AEGIS_ECORRUPT && r.why != NULL) {
        aegis__snapshot_reader_error(&r, msg, sizeof(msg));
        AEGIS_LOG(AEGIS_LOG_ERROR, "%s", msg);
    } else if (rv != 0) {
        AEGIS_LOG(AEGIS_LOG_ERROR, "snapshot %s: cannot restore: %s", path, aegis_strerror(rv));
    }
    return rv;
}

static void snapshot_close_view(struct aegis_node *n);

static void handle_install(struct aegis_node *n, struct aegis_apply_item *it)
{
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_peer_addr addrs[AEGIS_PEERS_MAX];
    char path[AEGIS_SNAPSHOT_PATH_MAX];
    uint32_t count = 0;
    struct apply_reg *r;
    int rv;

    /* A snapshot being taken is abandoned: the machine's view must not outlive the state
     * it views, and the installed snapshot is newer anyway. Its waiters get ESTALE. */
    if (s->snap.view != NULL) {
        snapshot_close_view(n);
        aegis__snap_writer_end(s->writer, AEGIS_ESTALE);
    }
    /* snap-install: the received snapshot is the file the log thread committed
     * (snap_transfer.h), streamed into the machine like the one restored at start, every
     * chunk verified, one chunk in memory. */
    AEGIS_ASSERT(it->buf == NULL);
    aegis__snapshot_file_path(n->data_dir, it->meta->index, path, sizeof(path));
    rv = aegis__apply_restore_file(n, path, it->meta, addrs, &count);
    if (rv != 0) {
        aegis__node_fail(n, rv, "restoring a snapshot received from the leader");
    } else {
        s->applied = it->meta->index;
        s->applied_term = it->meta->term;
        s->conf = it->meta->conf;
        for (uint32_t i = 0; i < count; i++) {
            learn_addr(n, &addrs[i]);
        }
        /* Proposals covered by the snapshot: we cannot tell whether ours made it. */
        while ((r = reg_head(s)) != NULL && r->index <= s->applied) {
            fail_reg(n, r, AEGIS_ELEADERLOST);
            reg_pop(s);
        }
        AEGIS_STAT_INC(n->stats.snapshots_installed);
    }
    aegis__buf_unref(it->buf);
    aegis__free(n->alloc, it->meta);
}

static void push_report(struct aegis_node *n, const struct aegis_apply_report *rep)
{
    struct aegis_apply_state *s = n->apply_state;

    if (!aegis__ring_report_push_sp(&n->report_ring, rep)) {
        /* Keep it; retried at the next pass. Only snapshot reports get here in practice:
         * applied reports are monotonic and a later one replaces a lost one. */
        if (rep->kind == AEGIS_REPORT_SNAPSHOT) {
            AEGIS_ASSERT(s->pending_report.kind == 0);
            s->pending_report = *rep;
        }
    }
}

/* Answer every caller waiting for the snapshot in progress. */
static void answer_waiters(struct aegis_node *n, int status, aegis_index index)
{
    struct apply_snap *sn = &n->apply_state->snap;
    struct aegis_result res = {.status = status, .index = status == 0 ? index : 0};

    for (uint32_t i = 0; i < sn->waiters_count; i++) {
        sn->waiters[i].cb(sn->waiters[i].data, &res);
    }
    sn->waiters_count = 0;
}

/* The snapshot could not be taken or written: say so to its waiters and the raft thread,
 * which retries later (the core asks only once). */
static void snapshot_failed(struct aegis_node *n, int rv)
{
    AEGIS_LOG(AEGIS_LOG_WARN, "snapshot at index %llu failed: %s",
              (unsigned long long)n->apply_state->applied, aegis_strerror(rv));
    answer_waiters(n, rv, 0);
    push_report(n, &(struct aegis_apply_report){.kind = AEGIS_REPORT_SNAPSHOT, .status = rv});
}

static void wake_apply(void *data)
{
    struct aegis_node *n = data;

    aegis__waker_wake(&n->apply_waker);
}

static int writer_start(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_snap_writer_config c = {
        .dir = n->data_dir,
        .alloc = n->alloc,
        .chunk_bytes = AEGIS_APPLY_SNAP_CHUNK_BYTES,
        .chunks_in_flight = AEGIS_APPLY_SNAP_CHUNKS,
        .stats = &n->snap_stats,
        .wake = wake_apply,
        .wake_data = n,
    };

    const char *env = getenv("AEGIS_SNAPSHOT_CHUNK_BYTES");

    if (s->writer != NULL) {
        return 0;
    }
    /* Tests only (docs/runtime.md): smaller chunks, so that small states span many. */
    if (env != NULL && strtoull(env, NULL, 10) >= 512 &&
        strtoull(env, NULL, 10) <= AEGIS_SNAPSHOT_CHUNK_BYTES_MAX) {
        c.chunk_bytes = (size_t)strtoull(env, NULL, 10);
    }
    return aegis__snap_writer_create(&s->writer, &c);
}

/* Begin a snapshot at the applied index: open the machine's view and the writer's job.
 * The bytes follow, a chunk per pass (snapshot_pump). 0 or the error that stopped it. */
static int snapshot_begin(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;
    struct apply_snap *sn = &s->snap;
    uint64_t size;
    int rv;

    if (s->applied == 0) {
        return AEGIS_EUNAVAIL;
    }
    rv = writer_start(n);
    if (rv == 0) {
        rv = s->machine.ops->snap_open(&s->machine, &sn->view);
    }
    if (rv != 0) {
        return rv;
    }
    memset(&sn->meta, 0, sizeof(sn->meta));
    sn->meta.index = s->applied;
    sn->meta.term = s->applied_term;
    sn->meta.conf = s->conf;
    sn->prefix_len = aegis__env_snap_prefix_encode(s->addrs, s->addrs_count, sn->prefix);
    sn->prefix_off = 0;
    size = s->machine.ops->snap_size(&s->machine, sn->view);
    rv = aegis__snap_writer_begin(s->writer, &sn->meta, size > 0 ? size + sn->prefix_len : 0);
    AEGIS_ASSERT(rv == 0); /* No job is active: its result was polled. */
    sn->active = true;
    return 0;
}

/* Fill @buf (@cap bytes) with the next bytes of the snapshot stream: the rest of the
 * address section, then the view's. *@end_out once the view is exhausted. */
static int snapshot_fill(struct aegis_node *n, uint8_t *buf, size_t cap, size_t *len_out,
                         bool *end_out)
{
    struct aegis_apply_state *s = n->apply_state;
    struct apply_snap *sn = &s->snap;
    size_t len = 0, got;
    int rv = 0;

    *end_out = false;
    if (sn->prefix_off < sn->prefix_len) {
        len = sn->prefix_len - sn->prefix_off < cap ? sn->prefix_len - sn->prefix_off : cap;
        memcpy(buf, sn->prefix + sn->prefix_off, len);
        sn->prefix_off += len;
    }
    while (len < cap) {
        rv = s->machine.ops->snap_read(&s->machine, sn->view, buf + len, cap - len, &got);
        if (rv != 0 || got == 0) {
            *end_out = rv == 0;
            break;
        }
        len += got;
    }
    *len_out = len;
    return rv;
}

static void snapshot_close_view(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;

    if (s->snap.view != NULL) {
        s->machine.ops->snap_close(&s->machine, s->snap.view);
        s->snap.view = NULL;
    }
}

/* The writer finished the job: report it. */
static void snapshot_done(struct aegis_node *n, struct aegis_snap_result *res)
{
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_snapshot_meta *meta;

    s->snap.active = false;
    if (res->status != 0) {
        snapshot_failed(n, res->status);
        return;
    }
    AEGIS_STAT_INC(n->stats.snapshots_taken);
    AEGIS_LOG(AEGIS_LOG_INFO, "snapshot at index %llu durable: %llu bytes in %llu ms",
              (unsigned long long)res->meta.index, (unsigned long long)res->file_bytes,
              (unsigned long long)(res->duration_ns / 1000000u));
    answer_waiters(n, 0, res->meta.index);
    meta = aegis__malloc(n->alloc, sizeof(*meta));
    if (meta == NULL) {
        /* Durable on disk, but the core cannot hear of it: it retries later. */
        push_report(n, &(struct aegis_apply_report){.kind = AEGIS_REPORT_SNAPSHOT,
                                                    .status = AEGIS_ENOMEM});
        return;
    }
    *meta = res->meta;
    /* The file at meta->index is the snapshot: the core streams it to followers from
     * there (snap_transfer.h), whatever its size. */
    push_report(n, &(struct aegis_apply_report){.kind = AEGIS_REPORT_SNAPSHOT,
                                                .meta = meta,
                                                .file_bytes = res->file_bytes});
}

/* One pass of the snapshot in progress: at most one chunk read from the view and handed
 * to the writer, and the writer's result polled. Returns true when it did something (the
 * loop should come round again without sleeping). */
static bool snapshot_pump(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;
    struct apply_snap *sn = &s->snap;
    struct aegis_snap_result res;
    bool did = false;

    if (!sn->active) {
        return false;
    }
    if (sn->view != NULL) {
        int err = aegis__snap_writer_error(s->writer);
        uint8_t *buf = err == 0 ? aegis__snap_writer_buf(s->writer) : NULL;

        if (err != 0) {
            snapshot_close_view(n);
            aegis__snap_writer_end(s->writer, err);
        } else if (buf != NULL) {
            size_t len = 0;
            bool end = false;
            int rv = snapshot_fill(n, buf, aegis__snap_writer_chunk_bytes(s->writer), &len,
                                   &end);

            aegis__snap_writer_push(s->writer, buf, rv == 0 ? len : 0);
            if (rv != 0 || end) {
                snapshot_close_view(n);
                aegis__snap_writer_end(s->writer, rv);
            }
            did = true;
        }
    }
    if (aegis__snap_writer_poll(s->writer, &res)) {
        snapshot_done(n, &res);
        did = true;
    }
    return did;
}

/* Whether the snapshot in progress has work for this thread now (checked after the
 * waker's prepare: the writer wakes this thread when that changes). */
static bool snapshot_ready(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;

    return s->snap.active && aegis__snap_writer_ready(s->writer, s->snap.view != NULL);
}

/* AEGIS_APPLY_SNAPSHOT_NOW: begin a snapshot, or join the one in progress; @cb (if any)
 * is answered once it is durable or failed. */
static void take_snapshot(struct aegis_node *n, aegis_done_cb cb, void *data)
{
    struct aegis_apply_state *s = n->apply_state;
    struct apply_snap *sn = &s->snap;
    int rv;

    if (cb != NULL) {
        if (sn->waiters_count == AEGIS_APPLY_SNAP_WAITERS) {
            cb(data, &(struct aegis_result){.status = AEGIS_EFULL});
            return;
        }
        sn->waiters[sn->waiters_count++] = (struct apply_waiter){.cb = cb, .data = data};
    }
    if (sn->active) {
        return; /* It answers when the snapshot in progress is durable. */
    }
    if (s->pending_report.kind != 0) {
        /* The last snapshot is durable and its report on its way: that one it is. */
        answer_waiters(n, s->pending_report.status,
                       s->pending_report.meta != NULL ? s->pending_report.meta->index : 0);
        return;
    }
    rv = snapshot_begin(n);
    if (rv != 0) {
        snapshot_close_view(n);
        snapshot_failed(n, rv);
    }
}

/* The thread is stopping: abandon the snapshot in progress (its temporary file removed)
 * and stop the writer. */
static void snapshot_stop(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;

    snapshot_close_view(n);
    answer_waiters(n, AEGIS_ESHUTDOWN, 0);
    aegis__snap_writer_destroy(s->writer); /* Aborts the job in progress. */
    s->writer = NULL;
    s->snap.active = false;
}

static void handle_item(struct aegis_node *n, struct aegis_apply_item *it)
{
    struct aegis_result res;

    switch (it->kind) {
    case AEGIS_APPLY_ENTRY:
        handle_entry(n, it);
        break;
    case AEGIS_APPLY_REGISTER:
        handle_register(n, it);
        break;
    case AEGIS_APPLY_COMPLETE:
        memset(&res, 0, sizeof(res));
        res.status = it->status;
        res.leader_hint = it->leader_hint;
        if (it->cb != NULL) {
            it->cb(it->data, &res);
        }
        break;
    case AEGIS_APPLY_RESULT:
        memset(&res, 0, sizeof(res));
        res.status = it->status;
        res.index = it->index;
        res.version = it->version;
        res.integer = it->integer;
        res.leader_hint = it->leader_hint;
        if (it->buf != NULL) {
            res.value = it->buf->data;
            res.value_len = it->buf->len;
        }
        if (it->cb != NULL) {
            it->cb(it->data, &res);
        }
        aegis__buf_unref(it->buf);
        break;
    case AEGIS_APPLY_READ:
        handle_read(n, it);
        break;
    case AEGIS_APPLY_INSTALL:
        handle_install(n, it);
        break;
    case AEGIS_APPLY_SNAPSHOT_NOW:
        take_snapshot(n, it->cb, it->data);
        break;
    default:
        AEGIS_UNREACHABLE();
    }
}

static void expire(struct aegis_node *n, uint64_t now)
{
    struct aegis_apply_state *s = n->apply_state;
    struct apply_reg *r;

    /* Registrations are in index order and were made in time order; the head is the
     * oldest. Budget: at most the whole queue, once per wake-up. */
    while ((r = reg_head(s)) != NULL && r->deadline_ms <= now) {
        fail_reg(n, r, AEGIS_ELEADERLOST);
        reg_pop(s);
    }
}

/* Fail everything still waiting: the node is stopping. */
static void fail_all(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_apply_item it;
    struct apply_reg *r;

    while (aegis__ring_apply_pop_sc(&n->apply_ring, &it)) {
        if (it.kind == AEGIS_APPLY_ENTRY) {
            aegis__entry_unref(&it.entry);
        } else if (it.kind == AEGIS_APPLY_REGISTER) {
            struct apply_reg tmp = {.cb = it.cb, .data = it.data};

            fail_reg(n, &tmp, AEGIS_ELEADERLOST);
        } else if (it.kind == AEGIS_APPLY_INSTALL) {
            aegis__buf_unref(it.buf);
            aegis__free(n->alloc, it.meta);
        } else if (it.kind == AEGIS_APPLY_SNAPSHOT_NOW && it.cb == NULL) {
            continue;
        } else {
            struct aegis_result res = {.status = AEGIS_ESHUTDOWN};

            if (it.cb != NULL) {
                it.cb(it.data, &res);
            }
            aegis__buf_unref(it.buf);
        }
    }
    while ((r = reg_head(s)) != NULL) {
        fail_reg(n, r, AEGIS_ELEADERLOST);
        reg_pop(s);
    }
    for (uint32_t i = 0; i < s->reads_count; i++) {
        struct aegis_result res = {.status = AEGIS_ESHUTDOWN};

        if (s->reads[i].cb != NULL) {
            s->reads[i].cb(s->reads[i].data, &res);
        }
        aegis__buf_unref(s->reads[i].query);
    }
    s->reads_count = 0;
}

void *aegis__apply_thread_main(void *arg)
{
    struct aegis_node *n = arg;
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_apply_item it;
    uint64_t next_expire = now_ms() + AEGIS_APPLY_WAIT_MS;

    pthread_setname_np(pthread_self(), "aegis-apply");
    for (;;) {
        uint32_t batch = 0;
        bool snap_did;
        uint64_t now, *applied_ctr = &n->metrics.shard[AEGIS_MT_APPLY].c[AEGIS_MC_APPLY_ENTRIES];
        uint64_t applied_before = *applied_ctr; /* Our own shard: a plain read. */

        /* Drain everything queued: under load, one wake-up applies a whole batch. */
        while (aegis__ring_apply_pop_sc(&n->apply_ring, &it)) {
            handle_item(n, &it);
            batch++;
        }
        if (*applied_ctr > applied_before) {
            aegis__metrics_add(&n->metrics, AEGIS_MT_APPLY, AEGIS_MC_APPLY_BATCHES, 1);
            aegis__metrics_record(&n->metrics, AEGIS_MH_APPLY_BATCH_ENTRIES,
                                  *applied_ctr - applied_before);
        }
        if (batch > 0) {
            AEGIS_STAT_INC(n->stats.apply_batches);
            serve_ready_reads(n);
            if (s->applied != s->reported) {
                push_report(n, &(struct aegis_apply_report){.kind = AEGIS_REPORT_APPLIED,
                                                            .applied = s->applied});
                s->reported = s->applied;
                __atomic_store_n(&n->applied_index, s->applied, __ATOMIC_RELAXED);
            }
        }
        if (s->pending_report.kind != 0 &&
            aegis__ring_report_push_sp(&n->report_ring, &s->pending_report)) {
            memset(&s->pending_report, 0, sizeof(s->pending_report));
        }
        /* One chunk of the snapshot in progress between two batches. */
        snap_did = snapshot_pump(n);
        __atomic_store_n(&n->snap_stats.state_bytes,
                         s->machine.ops->state_bytes(&s->machine), __ATOMIC_RELAXED);
        now = now_ms();
        if (now >= next_expire) {
            expire(n, now);
            next_expire = now + AEGIS_APPLY_WAIT_MS;
        }
        if (__atomic_load_n(&n->storage_err, __ATOMIC_ACQUIRE) != 0) {
            struct apply_reg *r;

            /* Fail-stopped (raft_thread.c): nothing commits here any more; another leader
             * may still commit these entries, so their outcome is unknown. */
            while ((r = reg_head(s)) != NULL) {
                fail_reg(n, r, AEGIS_ELEADERLOST);
                reg_pop(s);
            }
        }
        if (__atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE) >= 2) {
            break;
        }
        if (batch > 0 || snap_did) {
            continue;
        }
        aegis__waker_prepare(&n->apply_waker);
        if (!aegis__ring_apply_empty(&n->apply_ring) || snapshot_ready(n)) {
            aegis__waker_cancel(&n->apply_waker);
            continue;
        }
        aegis__waker_wait(&n->apply_waker, AEGIS_APPLY_WAIT_MS);
    }
    fail_all(n);
    snapshot_stop(n);
    return NULL;
}
