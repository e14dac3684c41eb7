/* SPDX-License-Identifier: MIT */
/* The RESP2 client port; see server.h.
 *
 * Commands. One table (srv_commands, below) names every command with its arity (Redis'
 * convention: N exactly N arguments counting the name, -N at least N), its flags (the
 * access it needs, whether it goes through the log or a read) and its handler. dispatch
 * looks the name up case-insensitively, checks the access and the arity, and calls the
 * handler; a handler returns false only when the node pushed back (the command is then
 * kept and run again later).
 *
 * Replies. Every command takes the connection's next sequence number. A reply whose
 * predecessors are all answered is written straight into the connection's output buffer
 * (net/resp.c's writer); one that completes early (a local reply behind an asynchronous
 * command) is parked in a struct srv_op in its slot until its predecessors are in. At
 * most one write per connection is in the loop: the output buffer and the buffer being
 * written swap when it completes, so steady pipelining allocates nothing per reply. All
 * memory comes from the node's allocator.
 *
 * Error replies. A client must be able to tell a definite failure from an indeterminate
 * one, so the prefixes say which:
 *   -TRYAGAIN <reason>  the command was not applied and will not be (no leader known,
 *                       overloaded, shutting down): retrying is safe;
 *   -UNKNOWN <reason>   the outcome is unknown (leadership lost or a timeout while the
 *                       command was in flight): it may or may not have been applied;
 *   -ERR ...            Redis' own errors (wrong arguments, not an integer, ...), with
 *                       Redis' wording; the command changed nothing. */
#include "pipeline/server.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "engine/assert.h"
#include "net/resp.h"
#include "pipeline/args.h"
#include "pipeline/conn_order.h"
#include "pipeline/logging.h"
#include "pipeline/probes.h"
#include "pipeline/version.h"

/* Defaults of struct aegis_server_config's zero fields. */
#define SRV_PIPELINE_DEFAULT 1024u
#define SRV_CLIENTS_DEFAULT 1024u
/* An idle connection's buffers are freed after a write leaves them above this. */
#define SRV_BUF_KEEP_BYTES (256u << 10)

struct srv_op;

struct srv_conn {
    aegis_uring_client_id id;
    struct aegis_server *srv;
    struct aegis_resp_parser parser;
    struct srv_op **slots;       /* pipeline_max, power of two: parked replies by seq. */
    uint64_t next_seq;           /* Next command's sequence number. */
    uint64_t ready_seq;          /* Replies below are in out (or further). */
    uint64_t sent_seq;           /* Replies below are in sending (or written). */
    struct aegis_resp_wbuf out;  /* Replies ready, in order, not yet handed to the loop. */
    struct aegis_resp_wbuf sending; /* The write in the loop's queue (while writing). */
    uint32_t refs;               /* Completions and writes in flight holding this. */
    struct aegis_conn_order order; /* Reads / writes in flight (pipeline/conn_order.h). */
    /* Access and deadlines (see server.h); times are the server's tick clock, in ms. */
    uint8_t role;                /* enum aegis_access. */
    bool reserved;               /* Opened in one of the admin-reserved slots. */
    bool auth_held;              /* A failed AUTH's reply is held until held_until_ms. */
    bool held_close;             /* ... and the connection closes after it. */
    bool timed_out;              /* Closed by a deadline. */
    uint32_t auth_fails;
    uint64_t held_seq;
    uint64_t held_until_ms;
    uint64_t opened_ms;
    uint64_t last_io_ms;         /* Bytes received or a write completed. */
    uint64_t partial_ms;         /* A command has been partly received since; 0: none. */
    bool paused;
    bool held;                   /* Paused: the next command waits for the other kind. */
    struct aegis_resp_cmd *pending; /* A command taken off the input that the node did
                                       not take yet (held, or pushed back): a copy (one
                                       allocation), run before anything else is parsed. */
    bool close_after_flush;
    bool closed;
    bool dirty;                  /* On the server's dirty list: replies to write. */
    bool writing;                /* A write is queued in the loop: the next one waits. */
    struct srv_conn *dirty_next;
};

struct aegis_server {
    struct aegis_node *node;
    const struct aegis_allocator *alloc; /* The node's. */
    struct aegis_server_config config;
    struct aegis_users users;    /* From config; empty: every connection is admin. */
    bool auth_required;
    uint32_t reserve;            /* Effective admin reserve (server.h). */
    uint64_t now_ms;             /* The net loop's clock at its last tick. */
    uint32_t slots_mask;
    struct srv_conn **map;       /* Open addressing by client id; capacity map_mask + 1. */
    uint32_t map_mask;
    uint32_t conns;
    bool overloaded;             /* Some connection is paused on AEGIS_EFULL. */
    struct srv_conn *dirty;      /* Connections with replies filled since the last flush. */
    uint64_t rx_ns;              /* When the bytes on_data parses arrived (metrics). */
};

/* What a reply is made of, once its command completed. */
enum srv_op_kind {
    OP_OK = 1,      /* +OK on success. */
    OP_INT,         /* :integer (INCR, DEL, CAS, EXISTS, DBSIZE). */
    OP_SET_NX,      /* +OK when set, a null bulk when the key existed (SET NX). */
    OP_BYTES,       /* The bytes in op->w (GET, MGET, and parked local replies). */
};

/* What a command needs from the apply thread once its read is confirmed. */
enum srv_read_kind {
    READ_NONE = 0,  /* A write, or a GET whose value comes in the result. */
    READ_EXISTS,    /* Count the keys present (keys follow the op). */
    READ_MGET,      /* Their values (keys follow the op). */
    READ_DBSIZE,    /* The store's key count. */
};

/* One reply on its way: an asynchronous command in flight, or a reply parked in its
 * slot until the replies before it are ready. One allocation (keys follow it). */
struct srv_op {
    struct srv_conn *conn;
    uint64_t seq;
    uint8_t kind;                /* enum srv_op_kind. */
    uint8_t read;                /* enum srv_read_kind. */
    uint8_t order;               /* enum aegis_order_class: what it counts as in flight. */
    bool is_write;
    int status;                  /* The command's outcome. */
    int64_t integer;
    struct aegis_resp_wbuf w;    /* OP_BYTES: the reply. */
    uint32_t keys_count;         /* EXISTS, MGET. */
    struct aegis_kv_bytes *keys;
    uint64_t received_ns;        /* Net thread: parsed at (metrics). */
    uint64_t applied_ns;         /* Apply thread: completed at (writes; metrics). */
};

static uint64_t map_hash(aegis_uring_client_id id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdull;
    return id ^ (id >> 33);
}

static struct srv_conn **map_find(struct aegis_server *s, aegis_uring_client_id id)
{
    for (uint64_t i = map_hash(id);; i++) {
        struct srv_conn **slot = &s->map[i & s->map_mask];

        if (*slot == NULL || (*slot)->id == id) {
            return slot;
        }
    }
}

static void map_remove(struct aegis_server *s, aegis_uring_client_id id)
{
    struct srv_conn **slot = map_find(s, id);
    uint64_t i;

    if (*slot == NULL) {
        return;
    }
    *slot = NULL;
    /* Re-insert the rest of the probe run (no tombstones). */
    i = (uint64_t)(slot - s->map) + 1;
    for (;; i++) {
        struct srv_conn **next = &s->map[i & s->map_mask];
        struct srv_conn *c = *next;

        if (c == NULL) {
            break;
        }
        *next = NULL;
        *map_find(s, c->id) = c;
    }
}

/* ---- Ops: one allocation each, from the node's allocator. ---- */

/* A new op for @c with room for @keys keys of @key_bytes bytes in all, or NULL. */
static struct srv_op *op_new(struct srv_conn *c, uint8_t kind, bool is_write, uint32_t keys,
                             size_t key_bytes)
{
    const struct aegis_allocator *a = c->srv->alloc;
    size_t size = sizeof(struct srv_op) + (size_t)keys * sizeof(struct aegis_kv_bytes);
    struct srv_op *op;

    if (key_bytes > SIZE_MAX - size) {
        return NULL;
    }
    op = aegis__malloc(a, size + key_bytes);
    if (op == NULL) {
        return NULL;
    }
    *op = (struct srv_op){.conn = c, .kind = kind, .is_write = is_write, .keys_count = keys};
    op->keys = keys > 0 ? (struct aegis_kv_bytes *)(op + 1) : NULL;
    aegis__resp_wbuf_init(&op->w, a, 0);
    return op;
}

static void op_free(struct srv_op *op)
{
    const struct aegis_allocator *a = op->conn->srv->alloc;

    aegis__resp_wbuf_close(&op->w);
    aegis__free(a, op);
}

static void conn_free(struct srv_conn *c)
{
    const struct aegis_allocator *a = c->srv->alloc;
    uint32_t mask = c->srv->slots_mask;

    AEGIS_ASSERT(c->refs == 0);
    for (uint64_t q = c->ready_seq; q < c->next_seq; q++) {
        if (c->slots[q & mask] != NULL) {
            op_free(c->slots[q & mask]);
        }
    }
    aegis__resp_parser_close(&c->parser);
    aegis__resp_wbuf_close(&c->out);
    aegis__resp_wbuf_close(&c->sending);
    aegis__free(a, c->pending);
    aegis__free(a, c->slots);
    aegis__free(a, c);
}

/* A copy of @cmd in one allocation (arguments and their bytes), or NULL. The parser's
 * argv and the loop's buffer are valid only until on_data returns, and the bytes of an
 * inline command were unescaped in place, so parsing them again would not give the same
 * command: a command the node cannot take yet is kept as this copy. */
static struct aegis_resp_cmd *cmd_copy(const struct aegis_allocator *a,
                                       const struct aegis_resp_cmd *cmd)
{
    size_t total = sizeof(*cmd) + cmd->argc * sizeof(cmd->argv[0]);
    struct aegis_resp_cmd *copy;
    char *data;

    for (uint32_t i = 0; i < cmd->argc; i++) {
        total += cmd->argv[i].len;
    }
    copy = aegis__malloc(a, total);
    if (copy == NULL) {
        return NULL;
    }
    copy->argc = cmd->argc;
    copy->bytes = cmd->bytes;
    copy->argv = (struct aegis_resp_arg *)(copy + 1);
    data = (char *)(copy->argv + cmd->argc);
    for (uint32_t i = 0; i < cmd->argc; i++) {
        if (cmd->argv[i].len > 0) {
            memcpy(data, cmd->argv[i].ptr, cmd->argv[i].len);
        }
        copy->argv[i].ptr = data;
        copy->argv[i].len = cmd->argv[i].len;
        data += cmd->argv[i].len;
    }
    return copy;
}

/* ---- Writing replies out. ---- */

static void conn_flush(struct srv_conn *c);
static bool run_pending(struct srv_conn *c);

/* Let a paused connection go on: first its pending command, if any; reading resumes only
 * once the node took it. */
static void conn_resume(struct srv_conn *c)
{
    AEGIS_ASSERT(c->paused && !c->closed);
    if (c->pending != NULL && !run_pending(c)) {
        return; /* Still paused; resumed again by the event it now waits for. */
    }
    c->paused = false;
    aegis__uring_loop_client_resume(c->srv->node->loop, c->id);
    conn_flush(c); /* The pending command may have been answered at once. */
}

/* Whether a paused connection may be resumed for room: replies written, it does not
 * wait for its own commands of the other kind (those resume it, in deliver), and no
 * failed AUTH's reply is held back (auth_release resumes it). */
static bool resumable(const struct srv_conn *c)
{
    return c->paused && !c->held && !c->auth_held &&
           c->next_seq - c->sent_seq <= c->srv->slots_mask / 2;
}

static void flush_and_resume(struct srv_conn *c)
{
    conn_flush(c);
    if (resumable(c)) {
        conn_resume(c);
    }
}

/* A buffer left large by a burst is given back once it is empty. */
static void buf_trim(struct aegis_resp_wbuf *w)
{
    if (w->len == 0 && w->cap > SRV_BUF_KEEP_BYTES) {
        const struct aegis_allocator *a = w->alloc;

        aegis__resp_wbuf_close(w);
        aegis__resp_wbuf_init(w, a, 0);
    }
}

/* The loop finished (or dropped) a connection's write: the replies that completed in the
 * meantime go out now. */
static void write_done(struct aegis_uring_loop *loop, int status, void *data)
{
    struct srv_conn *c = data;

    (void)loop;
    AEGIS_ASSERT(c->writing && c->refs > 0);
    c->writing = false;
    c->refs--;
    c->sending.len = 0;
    buf_trim(&c->sending);
    if (c->closed) {
        if (c->refs == 0 && !c->dirty) {
            conn_free(c);
        }
    } else if (status == 0) {
        c->last_io_ms = c->srv->now_ms;
        flush_and_resume(c);
    }
}

/* Hand the ready replies to the loop. At most one write per connection is in the loop's
 * queue: the loop's per-client queue is bounded (a write it refuses would be a reply lost
 * and every later reply misattributed by the client), and a client that does not read
 * its replies then fills its reply window, which stops reading it: memory per
 * connection stays bounded by the window's replies. */
static void conn_flush(struct srv_conn *c)
{
    struct aegis_server *s = c->srv;

    if (c->writing) {
        return; /* write_done flushes again. */
    }
    if (c->out.len > 0) {
        struct iovec iov;
        int rv;

        AEGIS_ASSERT(c->sending.len == 0);
        aegis__resp_wbuf_swap(&c->out, &c->sending);
        c->sent_seq = c->ready_seq;
        iov = (struct iovec){.iov_base = c->sending.data, .iov_len = c->sending.len};
        rv = aegis__uring_loop_client_write(s->node->loop, c->id, &iov, 1, write_done, c);
        if (rv == 0) {
            c->writing = true;
            c->refs++;
            aegis__metrics_add(&s->node->metrics, AEGIS_MT_NET, AEGIS_MC_CLIENT_BYTES_OUT,
                               c->sending.len);
        } else {
            c->sending.len = 0;
            /* Replies lost: the connection must not go on out of step. */
            aegis__uring_loop_client_close(s->node->loop, c->id, false);
        }
    }
    if (c->close_after_flush && c->sent_seq == c->next_seq && !c->writing) {
        aegis__uring_loop_client_close(s->node->loop, c->id, true);
    }
}

/* The connection cannot go on in step (its reply could not be stored): close it. */
static void conn_fail(struct srv_conn *c)
{
    c->close_after_flush = true;
    if (c->srv->node->loop != NULL) {
        aegis__uring_loop_client_close(c->srv->node->loop, c->id, false);
    }
}

/* Count an error reply by its prefix (see the file comment). */
static void count_error(struct srv_conn *c, const char *bytes, size_t len)
{
    enum aegis_mctr kind;

    if (len == 0 || bytes[0] != '-') {
        return;
    }
    kind = len >= 9 && memcmp(bytes, "-TRYAGAIN", 9) == 0  ? AEGIS_MC_ERR_CLIENT_TRYAGAIN
           : len >= 8 && memcmp(bytes, "-UNKNOWN", 8) == 0 ? AEGIS_MC_ERR_CLIENT_UNKNOWN
                                                            : AEGIS_MC_ERR_CLIENT_OTHER;
    aegis__metrics_add(&c->srv->node->metrics, AEGIS_MT_NET, kind, 1);
}

/* ---- Building one reply: open, write with net/resp.c, close. ---- */

struct srv_reply {
    struct aegis_resp_wbuf *w;   /* Where the reply goes: c->out, or op->w. */
    size_t start;                /* Its first byte in w. */
    struct srv_op *op;           /* Parked: the op holding it; NULL: straight in out. */
    uint64_t seq;
    int rv;                      /* The first writer's failure, if any. */
};

/* Open the reply of the connection's next command. Returns false (and fails the
 * connection) when it cannot be stored. */
static bool reply_open(struct srv_conn *c, struct srv_reply *r)
{
    *r = (struct srv_reply){.seq = c->next_seq};
    if (c->ready_seq == c->next_seq) {
        r->w = &c->out; /* Every earlier reply is ready: no need to park it. */
    } else {
        r->op = op_new(c, OP_BYTES, false, 0, 0);
        if (r->op == NULL) {
            conn_fail(c);
            return false;
        }
        r->op->seq = r->seq;
        r->w = &r->op->w;
    }
    r->start = r->w->len;
    return true;
}

/* Note a writer's result. */
static void rput(struct srv_reply *r, int rv)
{
    if (rv != 0 && r->rv == 0) {
        r->rv = rv;
    }
}

/* Close the reply: it takes its sequence number (in out, or parked in its slot). */
static void reply_close(struct srv_conn *c, struct srv_reply *r)
{
    AEGIS_ASSERT(r->seq == c->next_seq);
    if (r->rv != 0) {
        r->w->len = r->start; /* A partial reply is no reply. */
        if (r->op != NULL) {
            op_free(r->op);
        }
        conn_fail(c);
        return;
    }
    count_error(c, r->w->data + r->start, r->w->len - r->start);
    c->next_seq++;
    if (r->op == NULL) {
        c->ready_seq = c->next_seq;
    } else {
        AEGIS_ASSERT(c->slots[r->seq & c->srv->slots_mask] == NULL);
        c->slots[r->seq & c->srv->slots_mask] = r->op;
    }
}

/* One-call replies. */
static void reply_simple(struct srv_conn *c, const char *text)
{
    struct srv_reply r;

    if (reply_open(c, &r)) {
        rput(&r, aegis__resp_add_simple(r.w, text));
        reply_close(c, &r);
    }
}

static void reply_error(struct srv_conn *c, const char *text)
{
    struct srv_reply r;

    if (reply_open(c, &r)) {
        rput(&r, aegis__resp_add_error(r.w, text));
        reply_close(c, &r);
    }
}

static void reply_bulk(struct srv_conn *c, const void *data, size_t len)
{
    struct srv_reply r;

    if (reply_open(c, &r)) {
        rput(&r, aegis__resp_add_bulk(r.w, data, len));
        reply_close(c, &r);
    }
}

/* A command name for an error text: lower case, printable, at most 40 bytes. */
static void name_text(const struct aegis_resp_arg *a, char *out, size_t cap, bool lower)
{
    size_t n = a->len < cap - 1 ? a->len : cap - 1;

    AEGIS_ASSERT(cap > 1);
    for (size_t i = 0; i < n; i++) {
        char ch = a->ptr[i];

        if (lower && ch >= 'A' && ch <= 'Z') {
            ch = (char)(ch - 'A' + 'a');
        }
        out[i] = ch >= ' ' && ch != 0x7f ? ch : '?';
    }
    out[n] = '\0';
}

static void reply_wrong_args(struct srv_conn *c, const struct aegis_resp_arg *name)
{
    struct srv_reply r;
    char text[41];

    name_text(name, text, sizeof(text), true);
    if (reply_open(c, &r)) {
        rput(&r, aegis__resp_add_errorf(r.w, "ERR wrong number of arguments for '%s' command",
                                        text));
        reply_close(c, &r);
    }
}

/* The error text for a failed command; see the file comment for the prefixes. */
static int add_status_error(struct aegis_resp_wbuf *w, struct aegis_node *n, int status,
                            bool is_write)
{
    AEGIS_ASSERT(status != 0);
    switch (status) {
    case AEGIS_ESTORAGE:
        /* Not retryable here: the node's disk failed and it is about to exit. */
        return aegis__resp_add_errorf(w, "ERR storage failed: %s (node is stopping)",
                                      aegis_strerror(aegis__node_storage_error(n)));
    case AEGIS_ENOTLEADER:
        return aegis__resp_add_error(w, "TRYAGAIN no leader known; the command was not "
                                        "applied");
    case AEGIS_EFULL:
    case AEGIS_EBUSY:
        return aegis__resp_add_error(w, "TRYAGAIN node busy; the command was not applied");
    case AEGIS_ESHUTDOWN:
        return aegis__resp_add_error(w, "TRYAGAIN node shutting down; the command was not "
                                        "applied");
    case AEGIS_ETYPE:
        return aegis__resp_add_error(w, "ERR value is not an integer or out of range");
    case AEGIS_EOVERFLOW:
        return aegis__resp_add_error(w, "ERR increment or decrement would overflow");
    case AEGIS_ETOOBIG:
        return aegis__resp_add_error(w, "ERR value too large");
    case AEGIS_ELEADERLOST:
    case AEGIS_ETIMEDOUT:
        if (!is_write) {
            return aegis__resp_add_error(w, "TRYAGAIN read not confirmed by a leader in time");
        }
        return aegis__resp_add_errorf(w, "UNKNOWN outcome unknown: %s; the command may or "
                                         "may not have been applied",
                                      aegis_strerror(status));
    default:
        return aegis__resp_add_errorf(w, "ERR %s", aegis_strerror(status));
    }
}

static void reply_status_error(struct srv_conn *c, int status, bool is_write)
{
    struct srv_reply r;

    if (reply_open(c, &r)) {
        rput(&r, add_status_error(r.w, c->srv->node, status, is_write));
        reply_close(c, &r);
    }
}

/* ---- Completions. ---- */

/* Append a completed op's reply to the connection's output (net thread). */
static int op_render(struct srv_conn *c, struct srv_op *op)
{
    struct aegis_resp_wbuf *w = &c->out;
    size_t start = w->len;
    int rv;

    if (op->status != 0) {
        rv = add_status_error(w, c->srv->node, op->status, op->is_write);
    } else {
        switch (op->kind) {
        case OP_OK:
            rv = aegis__resp_add_simple(w, "OK");
            break;
        case OP_INT:
            rv = aegis__resp_add_int(w, op->integer);
            break;
        case OP_SET_NX:
            rv = op->integer == 1 ? aegis__resp_add_simple(w, "OK") : aegis__resp_add_null(w);
            break;
        case OP_BYTES:
            rv = aegis__resp_add_raw(w, op->w.data, op->w.len);
            break;
        default:
            AEGIS_UNREACHABLE();
        }
    }
    if (rv == 0) {
        count_error(c, w->data + start, w->len - start);
    }
    return rv;
}

/* Move the replies that are now in order from their slots to the output. */
static void conn_collect(struct srv_conn *c)
{
    uint32_t mask = c->srv->slots_mask;

    while (c->ready_seq < c->next_seq && c->slots[c->ready_seq & mask] != NULL) {
        struct srv_op *op = c->slots[c->ready_seq & mask];

        AEGIS_ASSERT(op->seq == c->ready_seq);
        c->slots[c->ready_seq & mask] = NULL;
        if (op_render(c, op) != 0) {
            op_free(op);
            conn_fail(c);
            return;
        }
        op_free(op);
        c->ready_seq++;
    }
}

static void mark_dirty(struct srv_conn *c)
{
    struct aegis_server *s = c->srv;

    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = s->dirty;
        s->dirty = c;
    }
}

/* Progress was made: let paused-on-overload connections try again. */
static void overload_release(struct aegis_server *s)
{
    if (!s->overloaded) {
        return;
    }
    s->overloaded = false;
    for (uint32_t i = 0; i <= s->map_mask; i++) {
        struct srv_conn *o = s->map[i];

        if (o != NULL && resumable(o)) {
            conn_resume(o);
        }
    }
}

static void deliver_metrics(struct aegis_node *n, struct srv_op *op)
{
    uint64_t now = n->metrics.net_wake_ns; /* Read once per wake-up (net_thread.c). */

    if (!op->is_write) {
        return;
    }
    if (now < op->applied_ns) {
        now = aegis__now_ns(); /* Posted after this wake-up read the clock. */
    }
    aegis__metrics_since(&n->metrics, AEGIS_MH_APPLY_REPLY, op->applied_ns, now);
    aegis__metrics_since(&n->metrics, AEGIS_MH_REQUEST, op->received_ns, now);
}

/* Runs on the net thread: a completion's reply reaches its connection. */
static void deliver(struct aegis_node *n, void *arg, uint64_t u)
{
    struct srv_op *op = arg;
    struct srv_conn *c = op->conn;
    struct aegis_server *srv = c->srv; /* c may be freed below. */

    (void)u;
    AEGIS_ASSERT(c->refs > 0);
    AEGIS_ASSERT(op->seq >= c->ready_seq && op->seq < c->next_seq);
    deliver_metrics(n, op);
    AEGIS_PROBE2(reply_sent, op, c->id);
    c->refs--;
    if (aegis__order_done(&c->order, (enum aegis_order_class)op->order) && c->held &&
        !c->closed) {
        /* The last command of its kind is answered: the held one may go now. */
        c->held = false;
        conn_resume(c);
    }
    if (c->closed) {
        op_free(op);
        if (c->refs == 0 && !c->dirty) {
            conn_free(c);
        }
    } else {
        AEGIS_ASSERT(c->slots[op->seq & c->srv->slots_mask] == NULL);
        c->slots[op->seq & c->srv->slots_mask] = op;
        conn_collect(c);
        mark_dirty(c); /* Written in on_flush, together with every reply of this batch. */
    }
    overload_release(srv);
}

/* Apply thread: read op's keys from the store (the apply thread owns it) at this one
 * linearization point: their count present, or their values. */
static int read_keys(struct aegis_node *n, struct srv_op *op)
{
    int rv = op->read == READ_MGET ? aegis__resp_add_array(&op->w, op->keys_count) : 0;

    op->integer = 0;
    for (uint32_t i = 0; rv == 0 && i < op->keys_count; i++) {
        struct aegis_buf *v = NULL;

        if (aegis__kv_get(&n->kv, op->keys[i].data, op->keys[i].len, &v, NULL) == 0) {
            op->integer++;
        }
        if (op->read == READ_MGET) {
            rv = v != NULL ? aegis__resp_add_bulk(&op->w, v->data, v->len)
                           : aegis__resp_add_null(&op->w);
        }
        aegis__buf_unref(v);
    }
    return rv;
}

/* Apply thread: what the reply needs from @res or the store, while it is there. */
static int op_result(struct aegis_node *n, struct srv_op *op, const struct aegis_result *res)
{
    op->integer = res->integer;
    switch (op->read) {
    case READ_EXISTS:
    case READ_MGET:
        return read_keys(n, op);
    case READ_DBSIZE:
        op->integer = (int64_t)aegis__kv_count(&n->kv);
        return 0;
    default:
        break;
    }
    if (op->kind != OP_BYTES) {
        return 0;
    }
    /* GET: the value is valid only during this call. */
    return res->value != NULL ? aegis__resp_add_bulk(&op->w, res->value, res->value_len)
                              : aegis__resp_add_null(&op->w);
}

/* Runs on the apply thread: record the outcome, post the op to the net thread. */
static void op_done(void *data, const struct aegis_result *res)
{
    struct srv_op *op = data;
    struct aegis_node *n = op->conn->srv->node;
    struct aegis_net_post p;

    if (op->is_write) {
        /* The apply thread's clock read for this entry, if that is where we are. */
        op->applied_ns = res->index != 0 && res->index == n->metrics.apply_index
                             ? n->metrics.apply_ns
                             : aegis__now_ns();
    }
    op->status = res->status;
    if (!op->is_write && res->status == AEGIS_ENOTFOUND) {
        op->status = 0; /* A GET of an absent key: a null bulk. */
    }
    if (op->status == 0) {
        op->status = op_result(n, op, res);
    }
    p = (struct aegis_net_post){.fn = deliver, .arg = op};
    aegis__net_post_from_apply(n, &p);
}

/* Submit @cmd (encoded KV command, consumed) as a write or a read. Returns false when the
 * node pushed back (AEGIS_EFULL): the caller stops reading this connection. */
static bool submit(struct srv_conn *c, struct srv_op *op, struct aegis_buf *cmd, bool read)
{
    struct aegis_node *n = c->srv->node;
    int rv;

    if (op == NULL || cmd == NULL) {
        if (op != NULL) {
            op_free(op);
        }
        aegis__buf_unref(cmd);
        reply_error(c, "ERR out of memory");
        return true;
    }
    op->seq = c->next_seq;
    op->received_ns = c->srv->rx_ns;
    AEGIS_PROBE2(request_received, op, c->id);
    rv = read ? aegis_node_read(n, cmd->data, cmd->len, op_done, op)
              : aegis_node_propose(n, cmd->data, cmd->len, op_done, op);
    aegis__buf_unref(cmd);
    if (rv != 0) {
        op_free(op);
        if (rv == AEGIS_EFULL) {
            return false;
        }
        reply_status_error(c, rv, !read);
        return true;
    }
    op->order = read ? AEGIS_ORDER_READ : AEGIS_ORDER_WRITE;
    aegis__order_started(&c->order, (enum aegis_order_class)op->order);
    c->next_seq++;
    c->refs++;
    return true;
}

/* Whether a command of class @k may go now, or must wait for the connection's commands of
 * the other class (pipeline/conn_order.h). Returns false, as a push back does, when it
 * must: the command is kept pending, reading stops, and deliver resumes the connection
 * once the last command of the other class is answered. */
static bool order_admits(struct srv_conn *c, enum aegis_order_class k)
{
    if (aegis__order_may_start(&c->order, k)) {
        return true;
    }
    c->held = true;
    return false;
}

/* ---- Command handlers. Each answers its command (at once or on completion) and
 * returns false only when the node pushed back. ---- */

static bool parse_i64(const struct aegis_resp_arg *a, int64_t *out)
{
    char buf[32], *end;
    long long v;

    if (a->len == 0 || a->len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, a->ptr, a->len);
    buf[a->len] = '\0';
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0' || buf[0] == '+' || buf[0] == ' ') {
        return false;
    }
    *out = v;
    return true;
}

static bool arg_is(const struct aegis_resp_arg *a, const char *name)
{
    size_t len = strlen(name);

    return a->len == len && strncasecmp(a->ptr, name, len) == 0;
}

static struct aegis_kv_bytes kv_bytes(const struct aegis_resp_arg *a)
{
    return (struct aegis_kv_bytes){(const uint8_t *)a->ptr, a->len};
}

/* Propose the encoded command @b (or answer the encoder's failure @rv). */
static bool propose(struct srv_conn *c, int rv, struct aegis_buf *b, uint8_t kind)
{
    if (rv != 0) {
        aegis__buf_unref(b);
        reply_status_error(c, rv, false);
        return true;
    }
    return submit(c, op_new(c, kind, true, 0, 0), b, false);
}

/* SET key value [NX]: NX is a CAS expecting the key absent (+OK, or a null bulk when it
 * was there). XX has no counterpart in the store's commands yet (it needs "present"
 * as a condition): it is refused, as are expiries. */
static bool cmd_set(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    const struct aegis_resp_arg *a = cmd->argv;
    struct aegis_buf *b = NULL;
    int rv;

    if (cmd->argc > 4 || (cmd->argc == 4 && !arg_is(&a[3], "nx"))) {
        reply_error(c, cmd->argc == 4 && arg_is(&a[3], "xx") ? "ERR SET XX is not supported"
                                                              : "ERR syntax error");
        return true;
    }
    if (!order_admits(c, AEGIS_ORDER_WRITE)) {
        return false;
    }
    if (cmd->argc == 4) {
        rv = aegis__kv_encode_cas(c->srv->alloc, a[1].ptr, a[1].len, NULL, a[2].ptr, a[2].len,
                                  &b);
        return propose(c, rv, b, OP_SET_NX);
    }
    rv = aegis__kv_encode_set(c->srv->alloc, a[1].ptr, a[1].len, a[2].ptr, a[2].len, &b);
    return propose(c, rv, b, OP_OK);
}

/* INCR, DECR, INCRBY and DECRBY: one increment of @delta. */
static bool increment(struct srv_conn *c, const struct aegis_resp_arg *key, int64_t delta)
{
    struct aegis_buf *b = NULL;
    int rv;

    if (!order_admits(c, AEGIS_ORDER_WRITE)) {
        return false;
    }
    rv = aegis__kv_encode_increment(c->srv->alloc, key->ptr, key->len, delta, &b);
    return propose(c, rv, b, OP_INT);
}

static bool cmd_incr(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    return increment(c, &cmd->argv[1], 1);
}

static bool cmd_decr(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    return increment(c, &cmd->argv[1], -1);
}

static bool cmd_incrby(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    int64_t delta;

    if (!parse_i64(&cmd->argv[2], &delta)) {
        reply_error(c, "ERR value is not an integer or out of range");
        return true;
    }
    return increment(c, &cmd->argv[1], delta);
}

static bool cmd_decrby(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    int64_t delta;

    if (!parse_i64(&cmd->argv[2], &delta)) {
        reply_error(c, "ERR value is not an integer or out of range");
        return true;
    }
    if (delta == INT64_MIN) {
        reply_error(c, "ERR decrement would overflow");
        return true;
    }
    return increment(c, &cmd->argv[1], -delta);
}

/* CAS key expected new: :1 swapped, :0 not. */
static bool cmd_cas(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    const struct aegis_resp_arg *a = cmd->argv;
    struct aegis_kv_bytes expected = kv_bytes(&a[2]);
    struct aegis_buf *b = NULL;
    int rv;

    if (!order_admits(c, AEGIS_ORDER_WRITE)) {
        return false;
    }
    rv = aegis__kv_encode_cas(c->srv->alloc, a[1].ptr, a[1].len, &expected, a[3].ptr, a[3].len,
                              &b);
    return propose(c, rv, b, OP_INT);
}

/* DEL key [key ...] (@stride 1) and MSET key value [key value ...] (@stride 2): the
 * arguments as key (and value) arrays for the encoder. */
static bool multi_write(struct srv_conn *c, const struct aegis_resp_cmd *cmd, uint32_t stride)
{
    const struct aegis_allocator *al = c->srv->alloc;
    const struct aegis_resp_arg *a = cmd->argv;
    uint32_t count = (cmd->argc - 1) / stride;
    struct aegis_kv_bytes *keys;
    struct aegis_buf *b = NULL;
    int rv = AEGIS_ENOMEM;

    AEGIS_ASSERT(count >= 1 && (stride == 1 || stride == 2));
    if (!order_admits(c, AEGIS_ORDER_WRITE)) {
        return false;
    }
    keys = aegis__calloc(al, (size_t)count * stride, sizeof(*keys));
    if (keys != NULL) {
        /* keys[0..count) the keys, keys[count..2 count) the values (MSET). */
        for (uint32_t i = 0; i < count; i++) {
            keys[i] = kv_bytes(&a[1 + stride * i]);
            if (stride == 2) {
                keys[count + i] = kv_bytes(&a[2 + stride * i]);
            }
        }
        rv = stride == 1 ? aegis__kv_encode_delete(al, keys, count, &b)
                         : aegis__kv_encode_mset(al, keys, keys + count, count, &b);
        aegis__free(al, keys);
    }
    return propose(c, rv, b, stride == 1 ? OP_INT : OP_OK);
}

static bool cmd_del(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    return multi_write(c, cmd, 1);
}

static bool cmd_mset(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    if (cmd->argc % 2 == 0) {
        reply_wrong_args(c, &cmd->argv[0]);
        return true;
    }
    return multi_write(c, cmd, 2);
}

/* Reads go through ReadIndex (aegis_node_read) with the encoded GET of @key (DBSIZE: the
 * empty key); the op's read kind says what the apply thread adds once it is confirmed
 * (EXISTS, MGET, DBSIZE: the store at that linearization point). A GET sent while the
 * connection has writes in flight goes through the log instead, right behind them (the
 * state machine answers a GET entry with the value at that point, on the leader, and the
 * answer travels back to a follower like a write's): it needs no wait and counts as a
 * write for the order of the connection's next commands. MGET and EXISTS wait. */
static bool read_submit(struct srv_conn *c, struct srv_op *op, const struct aegis_resp_arg *key)
{
    bool via_log = op != NULL && op->read == READ_NONE && c->order.writes > 0;
    struct aegis_buf *b = NULL;
    int rv;

    if (!via_log && !order_admits(c, AEGIS_ORDER_READ)) {
        if (op != NULL) {
            op_free(op);
        }
        return false;
    }
    rv = aegis__kv_encode_get(c->srv->alloc, key != NULL ? key->ptr : "",
                              key != NULL ? key->len : 0, &b);
    if (rv != 0) {
        if (op != NULL) {
            op_free(op);
        }
        reply_status_error(c, rv, false);
        return true;
    }
    return submit(c, op, b, !via_log);
}

static bool cmd_get(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    return read_submit(c, op_new(c, OP_BYTES, false, 0, 0), &cmd->argv[1]);
}

static bool cmd_dbsize(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    struct srv_op *op = op_new(c, OP_INT, false, 0, 0);

    (void)cmd;
    if (op != NULL) {
        op->read = READ_DBSIZE;
    }
    return read_submit(c, op, NULL);
}

/* EXISTS and MGET: the keys are copied into the op (the input is gone by completion). */
static bool read_keys_submit(struct srv_conn *c, const struct aegis_resp_cmd *cmd,
                             uint8_t kind, uint8_t read)
{
    uint32_t count = cmd->argc - 1;
    size_t bytes = 0;
    struct srv_op *op;
    uint8_t *data;

    for (uint32_t i = 1; i < cmd->argc; i++) {
        bytes += cmd->argv[i].len;
    }
    op = op_new(c, kind, false, count, bytes);
    if (op != NULL) {
        op->read = read;
        data = (uint8_t *)(op->keys + count);
        for (uint32_t i = 0; i < count; i++) {
            const struct aegis_resp_arg *k = &cmd->argv[1 + i];

            if (k->len > 0) {
                memcpy(data, k->ptr, k->len);
            }
            op->keys[i] = (struct aegis_kv_bytes){data, k->len};
            data += k->len;
        }
    }
    return read_submit(c, op, &cmd->argv[1]);
}

static bool cmd_exists(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    return read_keys_submit(c, cmd, OP_INT, READ_EXISTS);
}

static bool cmd_mget(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    return read_keys_submit(c, cmd, OP_BYTES, READ_MGET);
}

static bool cmd_ping(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    if (cmd->argc > 2) {
        reply_wrong_args(c, &cmd->argv[0]);
    } else if (cmd->argc == 2) {
        reply_bulk(c, cmd->argv[1].ptr, cmd->argv[1].len);
    } else {
        reply_simple(c, "PONG");
    }
    return true;
}

static bool cmd_echo(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    reply_bulk(c, cmd->argv[1].ptr, cmd->argv[1].len);
    return true;
}

/* COMMAND: enough for redis-cli to start (no command docs). */
static bool cmd_command(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    struct srv_reply r;

    (void)cmd;
    if (reply_open(c, &r)) {
        rput(&r, aegis__resp_add_array(r.w, 0));
        reply_close(c, &r);
    }
    return true;
}

/* SELECT and CLIENT: accepted and ignored (one database; no client names). */
static bool cmd_ignored(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    (void)cmd;
    reply_simple(c, "OK");
    return true;
}

static bool cmd_quit(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    (void)cmd;
    reply_simple(c, "OK");
    c->close_after_flush = true;
    return true;
}

/* ---- INFO and the admin commands. ---- */

static const char *role_name(enum aegis_node_role r)
{
    switch (r) {
    case AEGIS_NODE_LEADER:
        return "leader";
    case AEGIS_NODE_CANDIDATE:
        return "candidate";
    case AEGIS_NODE_LEARNER:
        return "learner";
    default:
        return "follower";
    }
}

/* A member's peer address as this node knows it: from --peers, or learned from the log
 * (AEGIS.ADD puts it there) or a snapshot, so members added at runtime show theirs. */
static const char *peer_addr(struct aegis_server *s, aegis_node_id id, char *buf, size_t cap)
{
    struct aegis_peer_addr a;

    if (aegis__node_member_addr(s->node, id, &a)) {
        /* [::1]:7001 for an IPv6 address, as --peers and AEGIS.ADD read it. */
        aegis__args_format_hostport(a.host, a.port, buf, cap);
        return buf;
    }
    return "?";
}

static bool section_wanted(const char *want, const char *name)
{
    return want == NULL || strcasecmp(want, "all") == 0 || strcasecmp(want, "everything") == 0 ||
           strcasecmp(want, name) == 0;
}

static int info_server(struct aegis_server *s, struct aegis_resp_wbuf *w)
{
    struct aegis_node *n = s->node;

    return aegis__resp_add_rawf(w, "# Server\r\naegis_version:%s\r\naegis_git_sha1:%s\r\n"
                                   "node_id:%llu\r\ndata_dir:%s\r\nfsync:%s\r\n"
                                   "client_port:%u\r\n\r\n",
                                aegis_version(), aegis__version_commit(),
                                (unsigned long long)n->config.id, n->data_dir,
                                n->config.fsync == AEGIS_FSYNC_NONE ? "none" : "batch",
                                aegis__node_client_port(n));
}

static int info_replication(struct aegis_server *s, struct aegis_resp_wbuf *w)
{
    struct aegis_status st;
    char addr[AEGIS_HOST_MAX + 8];
    int rv;

    aegis_node_status(s->node, &st);
    rv = aegis__resp_add_rawf(w, "# Replication\r\nrole:%s\r\nnode_id:%llu\r\nleader_id:%llu\r\n"
                                 "term:%llu\r\ncommit_index:%llu\r\nlast_applied:%llu\r\n"
                                 "last_index:%llu\r\nsnapshot_index:%llu\r\nmembers:%u\r\n",
                              role_name(st.role), (unsigned long long)st.id,
                              (unsigned long long)st.leader, (unsigned long long)st.term,
                              (unsigned long long)st.commit_index,
                              (unsigned long long)st.applied_index,
                              (unsigned long long)st.last_index,
                              (unsigned long long)st.snapshot_index, st.members_count);
    for (uint32_t i = 0; rv == 0 && i < st.members_count; i++) {
        const struct aegis_member_status *m = &st.members[i];

        rv = aegis__resp_add_rawf(w, "member_%llu:id=%llu,addr=%s,voter=%d,match_index=%llu\r\n",
                                  (unsigned long long)m->id, (unsigned long long)m->id,
                                  peer_addr(s, m->id, addr, sizeof(addr)), m->voter ? 1 : 0,
                                  (unsigned long long)m->match_index);
    }
    return rv != 0 ? rv : aegis__resp_add_raw(w, "\r\n", 2);
}

/* The sections of the metrics renderer (pipeline/metrics.c): stats, latency, ... */
static int info_metrics(struct aegis_server *s, struct aegis_resp_wbuf *w, const char *want)
{
    struct aegis_text t = {0};
    int rv = 0;

    aegis__metrics_info(s->node, want, &t);
    if (t.len > 0) {
        rv = aegis__resp_add_raw(w, t.data, t.len);
    }
    aegis__text_free(&t);
    return rv;
}

/* Reply with the INFO text of section @want (NULL: all) as one bulk string. */
static void reply_info(struct srv_conn *c, const char *want)
{
    struct aegis_server *s = c->srv;
    struct aegis_resp_wbuf text;
    struct srv_reply r;
    int rv = 0;

    aegis__resp_wbuf_init(&text, s->alloc, 0);
    if (section_wanted(want, "server")) {
        rv = info_server(s, &text);
    }
    if (rv == 0 && section_wanted(want, "replication")) {
        rv = info_replication(s, &text);
    }
    if (rv == 0) {
        rv = info_metrics(s, &text, want);
    }
    if (reply_open(c, &r)) {
        rput(&r, rv != 0 ? rv : aegis__resp_add_bulk(r.w, text.data, text.len));
        reply_close(c, &r);
    }
    aegis__resp_wbuf_close(&text);
}

static bool cmd_info(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    char want[32] = "";

    if (cmd->argc > 1 && cmd->argv[1].len < sizeof(want)) {
        memcpy(want, cmd->argv[1].ptr, cmd->argv[1].len);
        want[cmd->argv[1].len] = '\0';
    }
    reply_info(c, want[0] != '\0' ? want : NULL);
    return true;
}

/* AEGIS.MEMBERS and AEGIS.STATUS: INFO's replication section. */
static bool cmd_members(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    (void)cmd;
    reply_info(c, "replication");
    return true;
}

/* A membership change was handed to the node (@rv 0: @op answers on completion). */
static void admin_submit(struct srv_conn *c, int rv, struct srv_op *op)
{
    AEGIS_ASSERT(op->seq == c->next_seq);
    if (rv != 0) {
        op_free(op);
        reply_status_error(c, rv, false);
        return;
    }
    c->next_seq++;
    c->refs++;
}

/* The op of an admin command answered on completion; NULL (answered already) on
 * exhaustion. */
static struct srv_op *admin_op_new(struct srv_conn *c)
{
    struct srv_op *op = op_new(c, OP_OK, true, 0, 0);

    if (op == NULL) {
        reply_error(c, "ERR out of memory");
        return NULL;
    }
    op->seq = c->next_seq;
    return op;
}

/* The op of an admin command answered on completion, and its node id argument; NULL
 * (answered already) when the id is not one or on exhaustion. */
static struct srv_op *admin_op(struct srv_conn *c, const struct aegis_resp_cmd *cmd,
                               aegis_node_id *id)
{
    int64_t v;

    if (!parse_i64(&cmd->argv[1], &v) || v <= 0) {
        reply_wrong_args(c, &cmd->argv[0]);
        return NULL;
    }
    *id = (aegis_node_id)v;
    return admin_op_new(c);
}

/* AEGIS.ADD id host:port (HOST:PORT or [IPV6]:PORT, by the rules of aegisd's --peers,
 * pipeline/args.c). */
static bool cmd_add(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    const struct aegis_resp_arg *a = cmd->argv;
    char text[AEGIS_ARGS_HOSTPORT_BYTES];
    struct aegis_peer_addr peer = {0};
    struct srv_op *op;

    if ((op = admin_op(c, cmd, &peer.id)) == NULL) {
        return true;
    }
    if (a[2].len >= sizeof(text) || memchr(a[2].ptr, '\0', a[2].len) != NULL) {
        op_free(op);
        reply_error(c, "ERR expected host:port");
        return true;
    }
    memcpy(text, a[2].ptr, a[2].len);
    text[a[2].len] = '\0';
    if (aegis__args_hostport("AEGIS.ADD", text, peer.host, sizeof(peer.host), &peer.port, NULL,
                             0) != 0) {
        op_free(op);
        reply_error(c, "ERR expected host:port");
        return true;
    }
    admin_submit(c, aegis_node_add_member(c->srv->node, &peer, op_done, op), op);
    return true;
}

static bool cmd_remove(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    aegis_node_id id;
    struct srv_op *op = admin_op(c, cmd, &id);

    if (op != NULL) {
        admin_submit(c, aegis_node_remove_member(c->srv->node, id, op_done, op), op);
    }
    return true;
}

/* Forwarded from a follower; answers once the leader's core took or refused it. */
static bool cmd_transfer(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    aegis_node_id id;
    struct srv_op *op = admin_op(c, cmd, &id);

    if (op != NULL) {
        admin_submit(c, aegis__node_transfer(c->srv->node, id, op_done, op), op);
    }
    return true;
}

/* Answers once the snapshot is durable, or with the error that stopped it. */
static bool cmd_snapshot(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    struct srv_op *op = admin_op_new(c);

    (void)cmd;
    if (op != NULL) {
        admin_submit(c, aegis_node_snapshot_async(c->srv->node, op_done, op), op);
    }
    return true;
}

/* ---- Access: AUTH (see server.h and pipeline/users.h). ---- */

/* A failed AUTH: count it, and hold its reply (not reading the connection meanwhile)
 * for a delay that doubles with each failure; close after AEGIS_AUTH_FAILS_MAX. The held
 * reply keeps its sequence number: an op parked in its slot when released. */
static void auth_failed(struct srv_conn *c)
{
    struct aegis_server *s = c->srv;
    uint32_t shift = c->auth_fails < 7 ? c->auth_fails : 6;

    aegis__metrics_add(&s->node->metrics, AEGIS_MT_NET, AEGIS_MC_AUTH_FAILURES, 1);
    c->auth_fails++;
    c->auth_held = true;
    c->held_close = c->auth_fails >= AEGIS_AUTH_FAILS_MAX;
    c->held_seq = c->next_seq++;
    c->held_until_ms = s->now_ms + ((uint64_t)AEGIS_AUTH_DELAY_MS << shift);
    c->paused = true;
    aegis__uring_loop_client_pause(s->node->loop, c->id);
}

/* The held reply of a failed AUTH goes out; reading resumes (or the connection ends). */
static void auth_release(struct srv_conn *c)
{
    struct srv_op *op = op_new(c, OP_BYTES, false, 0, 0);

    AEGIS_ASSERT(c->auth_held && c->held_seq >= c->ready_seq);
    c->auth_held = false;
    if (op == NULL || aegis__resp_add_error(&op->w, "WRONGPASS invalid username-password "
                                                    "pair or user is disabled.") != 0) {
        if (op != NULL) {
            op_free(op);
        }
        conn_fail(c);
        return;
    }
    op->seq = c->held_seq;
    c->slots[op->seq & c->srv->slots_mask] = op;
    conn_collect(c);
    if (c->held_close) {
        c->close_after_flush = true;
    }
    flush_and_resume(c);
}

/* AUTH password | AUTH user password. */
static bool cmd_auth(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    const struct aegis_resp_arg *a = cmd->argv;
    const struct aegis_resp_arg *pw = &a[cmd->argc - 1];
    enum aegis_access role;

    if (cmd->argc > 3) {
        reply_error(c, "ERR syntax error");
    } else if (!c->srv->auth_required) {
        reply_error(c, "ERR AUTH <password> called without any password configured for the "
                       "default user. Are you sure your configuration is correct?");
    } else if ((role = aegis__users_check(&c->srv->users, cmd->argc == 3 ? a[1].ptr : NULL,
                                          cmd->argc == 3 ? a[1].len : 0, pw->ptr,
                                          pw->len)) == AEGIS_ACCESS_NONE) {
        auth_failed(c);
    } else if (c->reserved && role != AEGIS_ACCESS_ADMIN) {
        reply_error(c, "ERR max number of clients reached (the remaining connections are "
                       "reserved for admin users)");
        c->close_after_flush = true;
    } else {
        c->role = (uint8_t)role;
        reply_simple(c, "OK");
    }
    return true;
}

/* ---- CONFIG. ---- */

/* The settings CONFIG GET answers, with their running values (flags of aegisd). */
enum srv_setting {
    SET_SAVE,
    SET_APPENDONLY,
    SET_MAXCLIENTS,
    SET_TIMEOUT,
    SET_PROTO_MAX_BULK_LEN,
    SET_PORT,
    SET_BIND,
    SET_DATABASES,
    SET_COUNT,
};

static const char *const srv_setting_names[SET_COUNT] = {
    [SET_SAVE] = "save",
    [SET_APPENDONLY] = "appendonly",
    [SET_MAXCLIENTS] = "maxclients",
    [SET_TIMEOUT] = "timeout",
    [SET_PROTO_MAX_BULK_LEN] = "proto-max-bulk-len",
    [SET_PORT] = "port",
    [SET_BIND] = "bind",
    [SET_DATABASES] = "databases",
};

/* Setting @i's running value, as text in @buf. No RDB snapshots and no AOF (the log is
 * the node's own), so save is empty and appendonly no, as redis-benchmark expects. */
static const char *setting_value(struct aegis_server *s, enum srv_setting i, char *buf,
                                 size_t cap)
{
    const struct aegis_server_config *k = &s->config;

    switch (i) {
    case SET_SAVE:
        return "";
    case SET_APPENDONLY:
        return "no";
    case SET_MAXCLIENTS:
        snprintf(buf, cap, "%u", k->clients_max);
        return buf;
    case SET_TIMEOUT:
        snprintf(buf, cap, "%u", k->idle_ms / 1000u);
        return buf;
    case SET_PROTO_MAX_BULK_LEN:
        snprintf(buf, cap, "%llu", (unsigned long long)k->value_bytes_max);
        return buf;
    case SET_PORT:
        snprintf(buf, cap, "%u", s->node->loop != NULL ? aegis__node_client_port(s->node)
                                                       : k->port);
        return buf;
    case SET_BIND:
        return k->host != NULL ? k->host : "";
    case SET_DATABASES:
        return "1";
    default:
        AEGIS_UNREACHABLE();
    }
    return "";
}

/* Which settings match one of the patterns argv[2..argc) (Redis 7 takes several). */
static uint32_t settings_matching(const struct aegis_resp_cmd *cmd, bool match[SET_COUNT])
{
    uint32_t found = 0;

    for (uint32_t i = 0; i < SET_COUNT; i++) {
        match[i] = false;
    }
    for (uint32_t j = 2; j < cmd->argc; j++) {
        char pat[64];

        snprintf(pat, sizeof(pat), "%.*s", (int)(cmd->argv[j].len < 63 ? cmd->argv[j].len : 63),
                 cmd->argv[j].ptr);
        for (uint32_t i = 0; i < SET_COUNT; i++) {
            if (!match[i] && fnmatch(pat, srv_setting_names[i], FNM_CASEFOLD) == 0) {
                match[i] = true;
                found++;
            }
        }
    }
    return found;
}

static void config_get(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    bool match[SET_COUNT];
    uint32_t found = settings_matching(cmd, match);
    struct srv_reply r;

    if (!reply_open(c, &r)) {
        return;
    }
    rput(&r, aegis__resp_add_array(r.w, 2u * found));
    for (uint32_t i = 0; i < SET_COUNT; i++) {
        char buf[32];
        const char *v;

        if (!match[i]) {
            continue;
        }
        v = setting_value(c->srv, (enum srv_setting)i, buf, sizeof(buf));
        rput(&r, aegis__resp_add_bulk(r.w, srv_setting_names[i], strlen(srv_setting_names[i])));
        rput(&r, aegis__resp_add_bulk(r.w, v, strlen(v)));
    }
    reply_close(c, &r);
}

/* CONFIG GET answers the settings above; CONFIG SET is refused (every setting is a flag
 * of aegisd); CONFIG RESETSTAT restarts the INFO latency counts. */
static bool cmd_config(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    const struct aegis_resp_arg *a = cmd->argv;

    if (cmd->argc == 2 && arg_is(&a[1], "resetstat")) {
        /* Redis' CONFIG RESETSTAT: INFO latency counts from here (aegis-bench --breakdown). */
        if (aegis__metrics_reset_baseline(&c->srv->node->metrics) == 0) {
            reply_simple(c, "OK");
        } else {
            reply_error(c, "ERR out of memory");
        }
    } else if (arg_is(&a[1], "set")) {
        reply_error(c, "ERR CONFIG SET is not supported; restart with flags");
    } else if (cmd->argc >= 3 && arg_is(&a[1], "get")) {
        config_get(c, cmd);
    } else {
        reply_error(c, "ERR unknown CONFIG subcommand or wrong number of arguments; try "
                       "CONFIG GET name, CONFIG RESETSTAT");
    }
    return true;
}

/* ---- The command table and dispatch. ---- */

/* A command's flags: the access it needs (exactly one of the first four), and how. */
enum {
    CMD_NOAUTH = 1u << 0,   /* Allowed before AUTH. */
    CMD_READ = 1u << 1,     /* Needs the read role. */
    CMD_WRITE = 1u << 2,    /* Needs the write role. */
    CMD_ADMIN = 1u << 3,    /* Needs the admin role. */
    CMD_GET_READS = 1u << 4, /* Its GET subcommand needs only the read role (CONFIG). */
};

struct srv_command {
    const char *name;       /* Lower case. */
    int32_t arity;          /* N: exactly N arguments with the name; -N: at least N. */
    uint32_t flags;
    bool (*fn)(struct srv_conn *c, const struct aegis_resp_cmd *cmd);
};

static const struct srv_command srv_commands[] = {
    {"get", 2, CMD_READ, cmd_get},
    {"set", -3, CMD_WRITE, cmd_set},
    {"incr", 2, CMD_WRITE, cmd_incr},
    {"decr", 2, CMD_WRITE, cmd_decr},
    {"incrby", 3, CMD_WRITE, cmd_incrby},
    {"decrby", 3, CMD_WRITE, cmd_decrby},
    {"cas", 4, CMD_WRITE, cmd_cas},
    {"del", -2, CMD_WRITE, cmd_del},
    {"mset", -3, CMD_WRITE, cmd_mset},
    {"exists", -2, CMD_READ, cmd_exists},
    {"mget", -2, CMD_READ, cmd_mget},
    {"dbsize", 1, CMD_READ, cmd_dbsize},
    {"ping", -1, CMD_READ, cmd_ping},
    {"echo", 2, CMD_READ, cmd_echo},
    {"info", -1, CMD_READ, cmd_info},
    {"command", -1, CMD_READ, cmd_command},
    {"select", -1, CMD_READ, cmd_ignored},
    {"client", -1, CMD_READ, cmd_ignored},
    {"config", -2, CMD_ADMIN | CMD_GET_READS, cmd_config},
    {"auth", -2, CMD_NOAUTH, cmd_auth},
    {"quit", -1, CMD_NOAUTH, cmd_quit},
    {"aegis.members", -1, CMD_READ, cmd_members},
    {"aegis.status", -1, CMD_READ, cmd_members},
    {"aegis.add", 3, CMD_ADMIN, cmd_add},
    {"aegis.remove", 2, CMD_ADMIN, cmd_remove},
    {"aegis.transfer", 2, CMD_ADMIN, cmd_transfer},
    {"aegis.snapshot", 1, CMD_ADMIN, cmd_snapshot},
};

#define SRV_COMMANDS_COUNT (sizeof(srv_commands) / sizeof(srv_commands[0]))

/* The table's entry for @name (any case), or NULL. A linear scan of 27 names, most
 * rejected on their length: cheaper than the hash it would take. */
static const struct srv_command *command_find(const struct aegis_resp_arg *name)
{
    for (size_t i = 0; i < SRV_COMMANDS_COUNT; i++) {
        if (arg_is(name, srv_commands[i].name)) {
            return &srv_commands[i];
        }
    }
    return NULL;
}

static bool arity_ok(const struct srv_command *sc, uint32_t argc)
{
    return sc->arity >= 0 ? argc == (uint32_t)sc->arity : argc >= (uint32_t)-sc->arity;
}

/* The role @cmd needs: its entry's; an unknown command needs admin (pipeline/users.h). */
static enum aegis_access command_access(const struct srv_command *sc,
                                        const struct aegis_resp_cmd *cmd)
{
    if (sc == NULL) {
        return AEGIS_ACCESS_ADMIN;
    }
    if ((sc->flags & CMD_GET_READS) != 0 && cmd->argc > 1 && arg_is(&cmd->argv[1], "get")) {
        return AEGIS_ACCESS_READ;
    }
    return (sc->flags & CMD_NOAUTH) != 0  ? AEGIS_ACCESS_NONE
           : (sc->flags & CMD_READ) != 0  ? AEGIS_ACCESS_READ
           : (sc->flags & CMD_WRITE) != 0 ? AEGIS_ACCESS_WRITE
                                          : AEGIS_ACCESS_ADMIN;
}

/* The one permission check: the role @cmd needs against the connection's. */
static bool permitted(struct srv_conn *c, const struct srv_command *sc,
                      const struct aegis_resp_cmd *cmd)
{
    struct srv_reply r;
    char name[41];

    if (command_access(sc, cmd) <= c->role) {
        return true;
    }
    if (c->role == AEGIS_ACCESS_NONE) {
        reply_error(c, "NOAUTH Authentication required.");
        return false;
    }
    name_text(&cmd->argv[0], name, sizeof(name), true);
    if (reply_open(c, &r)) {
        rput(&r, aegis__resp_add_errorf(r.w, "NOPERM this user has no permissions to run the "
                                             "'%s' command", name));
        reply_close(c, &r);
    }
    return false;
}

static void reply_unknown(struct srv_conn *c, const struct aegis_resp_arg *name)
{
    struct srv_reply r;
    char text[41];

    name_text(name, text, sizeof(text), false);
    if (reply_open(c, &r)) {
        rput(&r, aegis__resp_add_errorf(r.w, "ERR unknown command '%s'", text));
        reply_close(c, &r);
    }
}

/* Run one complete command. Returns false when the node pushed back: the command was not
 * taken and must be run again later. */
static bool dispatch(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    const struct srv_command *sc;
    uint64_t seq = c->next_seq;
    bool taken;

    AEGIS_ASSERT(cmd->argc > 0 && !c->closed);
    sc = command_find(&cmd->argv[0]);
    if (!permitted(c, sc, cmd)) {
        return true;
    }
    if (sc == NULL) {
        reply_unknown(c, &cmd->argv[0]);
        return true;
    }
    if (!arity_ok(sc, cmd->argc)) {
        reply_wrong_args(c, &cmd->argv[0]);
        return true;
    }
    taken = sc->fn(c, cmd);
    /* A command taken has its sequence number (or closed the connection); one pushed back
     * has none. */
    AEGIS_ASSERT(taken ? c->next_seq == seq + 1 || c->close_after_flush : c->next_seq == seq);
    return taken;
}

/* Run the connection's pending command. Returns whether the node took it (it is then
 * gone); otherwise it stays pending and the reason is recorded (held or overloaded). */
static bool run_pending(struct srv_conn *c)
{
    c->srv->rx_ns = aegis__now_ns(); /* Its request latency counts from now (metrics). */
    c->held = false;
    if (!dispatch(c, c->pending)) {
        c->srv->overloaded = c->srv->overloaded || !c->held;
        return false;
    }
    aegis__free(c->srv->alloc, c->pending);
    c->pending = NULL;
    return true;
}

/* ---- Connections: the loop's client hooks. ---- */

static struct srv_conn *conn_new(struct aegis_server *s, aegis_uring_client_id id)
{
    struct aegis_resp_limits limits = aegis__resp_limits_default();
    struct srv_conn *c = aegis__calloc(s->alloc, 1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->slots = aegis__calloc(s->alloc, (size_t)s->slots_mask + 1, sizeof(*c->slots));
    if (c->slots == NULL) {
        aegis__free(s->alloc, c);
        return NULL;
    }
    c->id = id;
    c->srv = s;
    c->role = s->auth_required ? AEGIS_ACCESS_NONE : AEGIS_ACCESS_ADMIN;
    c->reserved = s->reserve > 0 && s->conns >= s->config.clients_max - s->reserve;
    c->opened_ms = c->last_io_ms = s->now_ms;
    limits.bulk_bytes_max = s->config.value_bytes_max;
    aegis__resp_parser_init(&c->parser, &limits, s->alloc);
    aegis__resp_wbuf_init(&c->out, s->alloc, 0);
    aegis__resp_wbuf_init(&c->sending, s->alloc, 0);
    return c;
}

static void on_open(struct aegis_node *n, aegis_uring_client_id id, void *data)
{
    struct aegis_server *s = data;
    struct srv_conn *c = s->conns * 2 < s->map_mask ? conn_new(s, id) : NULL;

    if (c == NULL) {
        aegis__uring_loop_client_close(n->loop, id, false);
        return;
    }
    AEGIS_ASSERT(*map_find(s, id) == NULL);
    *map_find(s, id) = c;
    s->conns++;
}

/* The node did not take @cmd (pushed back or held): stop reading, keep a copy. Returns
 * whether the copy was kept (its bytes are then consumed). */
static bool conn_hold(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    struct aegis_server *s = c->srv;

    AEGIS_ASSERT(c->pending == NULL);
    c->paused = true;
    s->overloaded = s->overloaded || !c->held; /* Held: waits for its own replies. */
    aegis__uring_loop_client_pause(s->node->loop, c->id);
    c->pending = cmd_copy(s->alloc, cmd);
    return c->pending != NULL; /* Else parsed again on resume. */
}

/* Parse and run the commands in @bytes; returns the bytes used. */
static size_t conn_parse(struct srv_conn *c, const uint8_t *bytes, size_t len, bool *partial)
{
    struct aegis_server *s = c->srv;
    size_t used = 0;

    while (used < len && !c->auth_held) {
        struct aegis_resp_cmd cmd;
        int rv;

        if (c->next_seq - c->sent_seq > s->slots_mask) {
            /* Too many replies outstanding: stop reading until some are written. */
            c->paused = true;
            aegis__uring_loop_client_pause(s->node->loop, c->id);
            break;
        }
        /* The loop's buffer is ours until we return; the parser unescapes inline
         * commands in place, so it takes it as mutable. */
        rv = aegis__resp_parse(&c->parser, (char *)(uintptr_t)(bytes + used), len - used, &cmd);
        if (rv == 0) {
            *partial = true;
            break;
        }
        if (rv < 0) {
            reply_error(c, rv == AEGIS_ENOMEM ? "ERR out of memory" : c->parser.err);
            c->close_after_flush = true;
            return len;
        }
        c->held = false;
        if (cmd.argc > 0 && !dispatch(c, &cmd)) {
            used += conn_hold(c, &cmd) ? cmd.bytes : 0;
            break;
        }
        used += cmd.bytes;
    }
    return used;
}

static size_t on_data(struct aegis_node *n, aegis_uring_client_id id, const uint8_t *bytes,
                      size_t len, void *data)
{
    struct aegis_server *s = data;
    struct srv_conn *c = *map_find(s, id);
    bool partial = false;
    size_t used;

    if (c == NULL || c->close_after_flush) {
        return len;
    }
    s->rx_ns = aegis__now_ns(); /* One clock read for every command in these bytes. */
    c->last_io_ms = s->now_ms;
    if (c->pending != NULL && !run_pending(c)) {
        c->paused = true;
        aegis__uring_loop_client_pause(n->loop, id);
        conn_flush(c);
        return 0;
    }
    used = conn_parse(c, bytes, len, &partial);
    /* The request deadline runs from a partial command's first byte seen. */
    if (!partial) {
        c->partial_ms = 0;
    } else if (c->partial_ms == 0 || used > 0) {
        c->partial_ms = s->now_ms;
    }
    conn_flush(c);
    return used;
}

/* End of a batch of completions on the net thread: one write per connection. */
static void on_flush(struct aegis_node *n, void *data)
{
    struct aegis_server *s = data;
    struct srv_conn *c = s->dirty;

    (void)n;
    s->dirty = NULL;
    while (c != NULL) {
        struct srv_conn *next = c->dirty_next;

        AEGIS_ASSERT(c->dirty);
        c->dirty = false;
        if (c->closed) {
            if (c->refs == 0) {
                conn_free(c);
            }
        } else {
            flush_and_resume(c);
        }
        c = next;
    }
}

/* Why @c should be closed at @now, or NULL. */
static const char *deadline_passed(const struct aegis_server *s, const struct srv_conn *c,
                                   uint64_t now)
{
    uint64_t req = s->config.request_ms, idle = s->config.idle_ms;

    if (req != 0 && c->role == AEGIS_ACCESS_NONE && now - c->opened_ms >= req) {
        return "not authenticated within the request deadline";
    }
    if (req != 0 && c->partial_ms != 0 && !c->paused && now - c->partial_ms >= req) {
        return "command not complete within the request deadline";
    }
    if (c->reserved && !s->auth_required && req != 0 && (idle == 0 || req < idle)) {
        idle = req; /* Open port: reserved slots turn over quickly. */
    }
    if (idle != 0 && now - c->last_io_ms >= idle) {
        return "idle";
    }
    return NULL;
}

/* Every loop tick: release held AUTH replies, close connections past a deadline. O(map)
 * every 100 ms: a few thousand pointer reads. */
static void on_tick(struct aegis_node *n, uint64_t now_ms, void *data)
{
    struct aegis_server *s = data;

    s->now_ms = now_ms;
    for (uint32_t i = 0; i <= s->map_mask; i++) {
        struct srv_conn *c = s->map[i];
        const char *why;

        if (c == NULL || c->timed_out) {
            continue;
        }
        if (c->auth_held && now_ms >= c->held_until_ms) {
            auth_release(c);
        }
        why = deadline_passed(s, c, now_ms);
        if (why != NULL) {
            c->timed_out = true;
            aegis__metrics_add(&n->metrics, AEGIS_MT_NET, AEGIS_MC_CLIENT_TIMEOUTS, 1);
            AEGIS_LOG_RATELIMITED(AEGIS_LOG_INFO, "client connection closed: %s", why);
            aegis__uring_loop_client_close(n->loop, c->id, false);
        }
    }
}

static void on_close(struct aegis_node *n, aegis_uring_client_id id, int status, void *data)
{
    struct aegis_server *s = data;
    struct srv_conn *c = *map_find(s, id);

    (void)n;
    (void)status;
    if (c == NULL) {
        return;
    }
    AEGIS_ASSERT(s->conns > 0);
    map_remove(s, id);
    s->conns--;
    c->closed = true;
    if (c->refs == 0 && !c->dirty) {
        conn_free(c);
    }
}

static uint32_t pow2_at_least(uint32_t v)
{
    uint32_t p = 1;

    while (p < v) {
        p <<= 1;
    }
    return p;
}

/* The server's state from @c, with the defaults of zero fields; NULL on exhaustion. */
static struct aegis_server *server_new(struct aegis_node *n, const struct aegis_server_config *c)
{
    const struct aegis_allocator *a = n->alloc;
    struct aegis_server *s = aegis__calloc(a, 1, sizeof(*s));
    uint32_t clients = c->clients_max != 0 ? c->clients_max : SRV_CLIENTS_DEFAULT;

    if (s == NULL) {
        return NULL;
    }
    s->map_mask = pow2_at_least(clients * 2u + 2u) - 1;
    s->map = aegis__calloc(a, (size_t)s->map_mask + 1, sizeof(*s->map));
    if (s->map == NULL) {
        aegis__free(a, s);
        return NULL;
    }
    s->node = n;
    s->alloc = a;
    s->config = *c;
    s->config.clients_max = clients;
    s->slots_mask = pow2_at_least(c->pipeline_max != 0 ? c->pipeline_max
                                                        : SRV_PIPELINE_DEFAULT) - 1;
    s->users = c->users;
    s->config.users = (struct aegis_users){0};
    s->auth_required = s->users.count > 0;
    s->reserve = c->admin_reserve < clients / 4 ? c->admin_reserve : clients / 4;
    return s;
}

int aegis__server_create(struct aegis_server **out, struct aegis_node *n,
                         const struct aegis_server_config *c)
{
    struct aegis_client_hooks hooks = {.on_open = on_open, .on_data = on_data,
                                       .on_close = on_close, .on_flush = on_flush,
                                       .on_tick = on_tick};
    struct aegis_server *s = server_new(n, c);

    if (s == NULL) {
        return AEGIS_ENOMEM;
    }
    s->now_ms = aegis__uring_loop_now_ms();
    hooks.data = s;
    aegis__node_set_client_hooks(n, &hooks);
    aegis__node_set_client_port(n, c->host, c->port, s->config.clients_max,
                                (uint32_t)(c->value_bytes_max + (64u << 10)));
    *out = s;
    return 0;
}

void aegis__server_destroy(struct aegis_server *s)
{
    if (s == NULL) {
        return;
    }
    for (uint32_t i = 0; i <= s->map_mask; i++) {
        if (s->map[i] != NULL && !s->map[i]->dirty) {
            s->map[i]->refs = 0; /* The node is stopped: nothing is in flight any more. */
            conn_free(s->map[i]);
        }
    }
    while (s->dirty != NULL) {
        struct srv_conn *next = s->dirty->dirty_next;

        s->dirty->refs = 0;
        conn_free(s->dirty);
        s->dirty = next;
    }
    aegis__free(s->alloc, s->map);
    aegis__users_free(&s->users);
    aegis__free(s->alloc, s);
}
