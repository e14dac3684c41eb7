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
 * Snapshots are taken here, between entries, so the state is consistent without locks;
 * the other threads keep replicating meanwhile. The file is written by this thread too,
 * so the log thread's group commit never waits behind a large snapshot. */
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "net/conn_pool.h"
#include "pipeline/conn_order.h"
#include "pipeline/envelope.h"
#include "pipeline/logging.h"
#include "pipeline/node_int.h"
#include "pipeline/probes.h"
#include "pipeline/snapshot_file.h"

#define AEGIS_APPLY_PENDING_MS 10000u
#define AEGIS_APPLY_WAIT_MS 100

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
    aegis__buf_unref(s->pending_report.data);
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

static void result_from_kv(struct aegis_result *res, const struct aegis_kv_result *kr,
                           const struct aegis_kv_cmd *cmd, aegis_index index)
{
    memset(res, 0, sizeof(*res));
    res->status = kr->status;
    res->index = index;
    res->version = kr->version;
    if (kr->value != NULL) {
        res->value = kr->value->data;
        res->value_len = kr->value->len;
    }
    switch (cmd != NULL ? cmd->type : 0) {
    case AEGIS_KV_INCREMENT:
        res->integer = kr->integer;
        break;
    case AEGIS_KV_CAS:
        res->integer = kr->swapped ? 1 : 0;
        if (kr->status == AEGIS_ECASMISMATCH) {
            res->status = 0; /* A CAS that did not swap is an answer, not an error. */
        }
        break;
    case AEGIS_KV_DELETE:
    case AEGIS_KV_MSET:
        res->integer = (int64_t)kr->count;
        break;
    default:
        break;
    }
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
    if (n->sm != NULL) {
        if (type == AEGIS_ENTRY_COMMAND) {
            n->sm->apply(n->sm->data, e->index, p + 1, len - 1, res);
            if (res->value != NULL) {
                /* The embedder's bytes are valid only during apply: keep a copy for the
                 * proposer's callback, and for the follower that forwarded it. */
                value = aegis__buf_from(n->alloc, res->value, res->value_len);
                res->value = value != NULL ? value->data : NULL;
                res->value_len = value != NULL ? value->len : 0;
            }
        }
    } else {
        struct aegis_kv_result kr;
        struct aegis_kv_cmd cmd;
        bool is_cmd = type == AEGIS_ENTRY_COMMAND;
        int rv;

        rv = aegis__kv_apply(&n->kv, e->index, e->term, type, is_cmd ? p + 1 : NULL,
                             is_cmd ? len - 1 : 0, &kr);
        AEGIS_ASSERT(rv == 0); /* In order by construction; ENOMEM is fatal here. */
        if (is_cmd) {
            bool decoded = aegis__kv_cmd_decode(p + 1, len - 1, &cmd) == 0;

            result_from_kv(res, &kr, decoded ? &cmd : NULL, e->index);
            value = kr.value;
            kr.value = NULL;
        }
        aegis__kv_result_release(&kr);
    }
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
    struct aegis_buf *value = NULL;

    if (n->sm != NULL) {
        if (n->sm->read != NULL) {
            n->sm->read(n->sm->data, rd->query->data, rd->query->len, &res);
        } else {
            res.status = AEGIS_ENOTSUP;
        }
    } else {
        struct aegis_kv_cmd cmd;

        if (aegis__kv_cmd_decode(rd->query->data, rd->query->len, &cmd) != 0 ||
            cmd.type != AEGIS_KV_GET) {
            res.status = AEGIS_EINVAL;
        } else {
            aegis_index version = 0;

            res.status = aegis__kv_get(&n->kv, cmd.key.data, cmd.key.len, &value, &version);
            res.version = version;
            if (value != NULL) {
                res.value = value->data;
                res.value_len = value->len;
            }
        }
    }
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

int aegis__apply_restore(struct aegis_node *n, const struct aegis_buf *data,
                         struct aegis_peer_addr *addrs, uint32_t *addrs_count_out)
{
    const uint8_t *sm;
    size_t sm_len;
    int rv;

    rv = aegis__env_snapshot_parse(data->data, data->len, addrs, addrs_count_out, &sm,
                                   &sm_len);
    if (rv != 0) {
        return rv;
    }
    if (n->sm != NULL) {
        return n->sm->restore(n->sm->data, sm, sm_len);
    }
    return aegis__kv_restore(&n->kv, sm, sm_len);
}

static void handle_install(struct aegis_node *n, struct aegis_apply_item *it)
{
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_peer_addr addrs[AEGIS_PEERS_MAX];
    uint32_t count = 0;
    struct apply_reg *r;
    int rv = 0;

    if (it->buf == NULL) {
        /* snap-install: the received snapshot is a file now (pipeline/snap_transfer.h). */
        struct aegis_snapshot_meta got;
        bool found = false;

        rv = aegis__snapshot_file_load(n->data_dir, NULL, n->alloc, &got, &it->buf, &found);
        if (rv == 0 && (!found || got.index != it->meta->index)) {
            rv = AEGIS_ECORRUPT;
        }
    }
    rv = rv != 0 ? rv : aegis__apply_restore(n, it->buf, addrs, &count);
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
            s->pending_report = *rep;
        }
    }
}

/* Serialise the state machine at the applied index, write the snapshot file and report
 * it to the raft thread. Returns 0 (reported, or a report already on its way) or the
 * error that stopped it. */
static int make_snapshot(struct aegis_node *n)
{
    struct aegis_apply_state *s = n->apply_state;
    struct aegis_snapshot_meta *meta;
    struct aegis_buf *sm_buf = NULL, *data;
    void *raw = NULL;
    size_t raw_len = 0;
    int rv;

    if (s->pending_report.kind != 0) {
        return 0;
    }
    if (s->applied == 0) {
        return AEGIS_EUNAVAIL;
    }
    if (n->sm != NULL) {
        rv = n->sm->snapshot(n->sm->data, &raw, &raw_len);
    } else {
        rv = aegis__kv_snapshot(&n->kv, &sm_buf);
        if (rv == 0) {
            raw = sm_buf->data;
            raw_len = sm_buf->len;
        }
    }
    if (rv != 0) {
        return rv;
    }
    data = aegis__env_snapshot(n->alloc, s->addrs, s->addrs_count, raw, raw_len);
    if (sm_buf != NULL) {
        aegis__buf_unref(sm_buf);
    } else {
        free(raw); /* The embedder's buffer, from malloc() as aegis.h says. */
    }
    meta = aegis__calloc(n->alloc, 1, sizeof(*meta));
    if (data == NULL || meta == NULL) {
        aegis__buf_unref(data);
        aegis__free(n->alloc, meta);
        return AEGIS_ENOMEM;
    }
    meta->index = s->applied;
    meta->term = s->applied_term;
    meta->conf = s->conf;
    rv = aegis__snapshot_file_write(n->data_dir, NULL, meta, data->data, data->len);
    if (rv != 0) {
        aegis__buf_unref(data);
        aegis__free(n->alloc, meta);
        return rv;
    }
    AEGIS_STAT_INC(n->stats.snapshots_taken);
    push_report(n, &(struct aegis_apply_report){.kind = AEGIS_REPORT_SNAPSHOT,
                                                .meta = meta,
                                                .data = data});
    return 0;
}

static void take_snapshot(struct aegis_node *n)
{
    int rv = make_snapshot(n);

    if (rv != 0) {
        /* Tell the raft thread, which retries later: the core asks only once. */
        AEGIS_LOG(AEGIS_LOG_WARN, "snapshot at index %llu failed: %s",
                  (unsigned long long)n->apply_state->applied, aegis_strerror(rv));
        push_report(n, &(struct aegis_apply_report){.kind = AEGIS_REPORT_SNAPSHOT,
                                                    .status = rv});
    }
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
        take_snapshot(n);
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
        } else if (it.kind == AEGIS_APPLY_SNAPSHOT_NOW) {
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
        if (batch > 0) {
            continue;
        }
        aegis__waker_prepare(&n->apply_waker);
        if (!aegis__ring_apply_empty(&n->apply_ring)) {
            aegis__waker_cancel(&n->apply_waker);
            continue;
        }
        aegis__waker_wait(&n->apply_waker, AEGIS_APPLY_WAIT_MS);
    }
    fail_all(n);
    return NULL;
}
