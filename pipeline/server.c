/* SPDX-License-Identifier: MIT */
/* The RESP2 client port; see server.h.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "net/resp.h"
#include "pipeline/args.h"
#include "pipeline/conn_order.h"
#include "pipeline/logging.h"
#include "pipeline/probes.h"
#include "pipeline/version.h"

#define SRV_MAP_EMPTY 0u

struct srv_slot {
    char *bytes; /* Reply bytes (malloc), once done. */
    uint32_t len;
    bool done;
};

struct srv_conn {
    aegis_uring_client_id id;
    struct aegis_server *srv;
    struct aegis_resp_parser parser;
    struct srv_slot *slots;      /* pipeline_max, power of two. */
    uint64_t next_seq;           /* Next command's slot. */
    uint64_t flushed_seq;        /* Slots below were written. */
    uint32_t refs;               /* Completions in flight holding this connection. */
    struct aegis_conn_order order; /* Reads / writes in flight (pipeline/conn_order.h). */
    bool authed;
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
                                       malloc), run before anything else is parsed. */
    bool close_after_flush;
    bool closed;
    bool dirty;                  /* On the server's dirty list: replies to write. */
    bool writing;                /* A write is queued in the loop: the next one waits. */
    struct srv_conn *dirty_next;
};

struct aegis_server {
    struct aegis_node *node;
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

/* One asynchronous command in flight. */
enum srv_op_kind {
    OP_OK = 1,      /* +OK on success. */
    OP_INT,         /* :integer. */
    OP_CAS,         /* :1 or :0. */
    OP_GET,         /* Bulk or null. */
    OP_EXISTS,      /* Count of keys present (keys in args). */
    OP_MGET,        /* Array of bulks (keys in args). */
    OP_DBSIZE,      /* :count of keys in the store. */
};

struct srv_op {
    struct srv_conn *conn;
    uint64_t seq;
    uint8_t kind;
    uint8_t order;               /* enum aegis_order_class: what it counts as in flight. */
    bool is_write;
    char *reply;
    uint32_t reply_len;
    uint32_t keys_count;         /* EXISTS, MGET: keys follow in keys_buf. */
    struct aegis_kv_bytes *keys;
    char *keys_buf;
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

static char *fmt_alloc(uint32_t *len_out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *fmt_alloc(uint32_t *len_out, const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0) {
        *len_out = 0;
        return NULL;
    }
    *len_out = (uint32_t)n;
    return p;
}

/* The hot replies, without printf: writes answer +OK or an integer. */
static char *dup_bytes(const char *bytes, uint32_t len, uint32_t *len_out)
{
    char *p = malloc(len);

    if (p != NULL) {
        memcpy(p, bytes, len);
    }
    *len_out = p != NULL ? len : 0;
    return p;
}

static char *int_reply(int64_t v, uint32_t *len_out)
{
    char buf[32], *end = buf + sizeof(buf), *p = end;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    *--p = '\n';
    *--p = '\r';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *--p = '-';
    }
    *--p = ':';
    return dup_bytes(p, (uint32_t)(end - p), len_out);
}

static char *bulk_alloc(const void *data, size_t len, uint32_t *len_out)
{
    char head[32];
    int h = snprintf(head, sizeof(head), "$%zu\r\n", len);
    char *p = malloc((size_t)h + len + 2);

    if (p == NULL) {
        *len_out = 0;
        return NULL;
    }
    memcpy(p, head, (size_t)h);
    if (len > 0) {
        memcpy(p + h, data, len);
    }
    memcpy(p + h + len, "\r\n", 2);
    *len_out = (uint32_t)((size_t)h + len + 2);
    return p;
}

static void conn_free(struct srv_conn *c)
{
    uint32_t mask = c->srv->slots_mask;

    for (uint64_t q = c->flushed_seq; q < c->next_seq; q++) {
        free(c->slots[q & mask].bytes);
    }
    aegis__resp_parser_close(&c->parser);
    free(c->pending);
    free(c->slots);
    free(c);
}

/* A copy of @cmd in one allocation (arguments and their bytes), or NULL. The parser's
 * argv and the loop's buffer are valid only until on_data returns, and the bytes of an
 * inline command were unescaped in place, so parsing them again would not give the same
 * command: a command the node cannot take yet is kept as this copy. */
static struct aegis_resp_cmd *cmd_copy(const struct aegis_resp_cmd *cmd)
{
    size_t total = sizeof(*cmd) + cmd->argc * sizeof(cmd->argv[0]);
    struct aegis_resp_cmd *copy;
    char *data;

    for (uint32_t i = 0; i < cmd->argc; i++) {
        total += cmd->argv[i].len;
    }
    copy = malloc(total);
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

/* One write in the loop's queue; freed when the kernel is done with it. */
struct srv_write {
    struct srv_conn *conn;
    char bytes[];
};

static void conn_flush(struct srv_conn *c);
static bool run_pending(struct srv_conn *c);

/* Let a paused connection go on: first its pending command, if any; reading resumes only
 * once the node took it. */
static void conn_resume(struct srv_conn *c)
{
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
           c->next_seq - c->flushed_seq <= c->srv->slots_mask / 2;
}

static void flush_and_resume(struct srv_conn *c)
{
    conn_flush(c);
    if (resumable(c)) {
        conn_resume(c);
    }
}

/* The loop finished (or dropped) a connection's write: the replies that completed in the
 * meantime go out now. */
static void write_done(struct aegis_uring_loop *loop, int status, void *data)
{
    struct srv_write *wr = data;
    struct srv_conn *c = wr->conn;

    (void)loop;
    free(wr);
    c->writing = false;
    c->refs--;
    if (c->closed) {
        if (c->refs == 0 && !c->dirty) {
            conn_free(c);
        }
    } else if (status == 0) {
        c->last_io_ms = c->srv->now_ms;
        flush_and_resume(c);
    }
}

/* Write the replies that are done, in order. At most one write per connection is in the
 * loop's queue: the loop's per-client queue is bounded (a write it refuses would be a
 * reply lost and every later reply misattributed by the client), and a client that does
 * not read its replies then fills its reply slots, which stops reading it: memory per
 * connection stays bounded by the slots and one write. */
static void conn_flush(struct srv_conn *c)
{
    struct aegis_server *s = c->srv;
    struct aegis_resp_wbuf w;
    uint64_t q = c->flushed_seq;

    if (c->writing) {
        return; /* write_done flushes again. */
    }
    aegis__resp_wbuf_init(&w, NULL, 0);
    while (q < c->next_seq && c->slots[q & s->slots_mask].done) {
        struct srv_slot *slot = &c->slots[q & s->slots_mask];

        if (slot->bytes != NULL) {
            aegis__resp_add_raw(&w, slot->bytes, slot->len);
        }
        free(slot->bytes);
        *slot = (struct srv_slot){0};
        q++;
    }
    c->flushed_seq = q;
    if (w.len > 0) {
        struct srv_write *wr = malloc(sizeof(*wr) + w.len);
        struct iovec iov;
        int rv = AEGIS_ENOMEM;

        if (wr != NULL) {
            wr->conn = c;
            memcpy(wr->bytes, w.data, w.len);
            iov = (struct iovec){.iov_base = wr->bytes, .iov_len = w.len};
            rv = aegis__uring_loop_client_write(s->node->loop, c->id, &iov, 1, write_done, wr);
        }
        if (rv == 0) {
            c->writing = true;
            c->refs++;
            aegis__metrics_add(&s->node->metrics, AEGIS_MT_NET, AEGIS_MC_CLIENT_BYTES_OUT,
                               w.len);
        } else {
            free(wr);
            /* Replies lost: the connection must not go on out of step. */
            aegis__uring_loop_client_close(s->node->loop, c->id, false);
        }
    }
    aegis__resp_wbuf_close(&w);
    if (c->close_after_flush && c->flushed_seq == c->next_seq && !c->writing) {
        aegis__uring_loop_client_close(s->node->loop, c->id, true);
    }
}

static void slot_fill(struct srv_conn *c, uint64_t seq, char *bytes, uint32_t len)
{
    struct srv_slot *slot = &c->slots[seq & c->srv->slots_mask];

    if (bytes != NULL && len > 0 && bytes[0] == '-') {
        enum aegis_mctr kind = strncmp(bytes, "-TRYAGAIN", 9) == 0  ? AEGIS_MC_ERR_CLIENT_TRYAGAIN
                               : strncmp(bytes, "-UNKNOWN", 8) == 0 ? AEGIS_MC_ERR_CLIENT_UNKNOWN
                                                                    : AEGIS_MC_ERR_CLIENT_OTHER;

        aegis__metrics_add(&c->srv->node->metrics, AEGIS_MT_NET, kind, 1);
    }
    slot->bytes = bytes;
    slot->len = len;
    slot->done = true;
}

/* Reply at once, in the connection's next slot. */
static void reply_now(struct srv_conn *c, char *bytes, uint32_t len)
{
    slot_fill(c, c->next_seq++, bytes, len);
}

/* A macro so that the format stays a literal the compiler checks. */
#define reply_fmt(c, fmt, arg)                                                             \
    do {                                                                                   \
        uint32_t rf_len_;                                                                  \
        char *rf_p_ = fmt_alloc(&rf_len_, (fmt), (arg));                                   \
        reply_now((c), rf_p_, rf_len_);                                                    \
    } while (0)

#define REPLY_LIT(c, lit) reply_now((c), strdup(lit), (uint32_t)(sizeof(lit) - 1))

/* The error reply for a failed command; see the file comment for the prefixes. */
static char *error_reply(struct aegis_node *n, int status, bool is_write, uint32_t *len)
{
    switch (status) {
    case AEGIS_ESTORAGE:
        /* Not retryable here: the node's disk failed and it is about to exit. */
        return fmt_alloc(len, "-ERR storage failed: %s (node is stopping)\r\n",
                         aegis_strerror(aegis__node_storage_error(n)));
    case AEGIS_ENOTLEADER:
        return fmt_alloc(len, "-TRYAGAIN no leader known; the command was not applied\r\n");
    case AEGIS_EFULL:
    case AEGIS_EBUSY:
        return fmt_alloc(len, "-TRYAGAIN node busy; the command was not applied\r\n");
    case AEGIS_ESHUTDOWN:
        return fmt_alloc(len, "-TRYAGAIN node shutting down; the command was not applied\r\n");
    case AEGIS_ETYPE:
        return fmt_alloc(len, "-ERR value is not an integer or out of range\r\n");
    case AEGIS_EOVERFLOW:
        return fmt_alloc(len, "-ERR increment or decrement would overflow\r\n");
    case AEGIS_ETOOBIG:
        return fmt_alloc(len, "-ERR value too large\r\n");
    case AEGIS_ELEADERLOST:
    case AEGIS_ETIMEDOUT:
        if (!is_write) {
            return fmt_alloc(len, "-TRYAGAIN read not confirmed by a leader in time\r\n");
        }
        return fmt_alloc(len, "-UNKNOWN outcome unknown: %s; the command may or may not "
                              "have been applied\r\n",
                         aegis_strerror(status));
    default:
        return fmt_alloc(len, "-ERR %s\r\n", aegis_strerror(status));
    }
}

/* Runs on the net thread: a completion's reply reaches its connection. */
static void deliver(struct aegis_node *n, void *arg, uint64_t u)
{
    struct srv_op *op = arg;
    struct srv_conn *c = op->conn;
    struct aegis_server *s = c->srv;
    uint64_t now = n->metrics.net_wake_ns; /* Read once per wake-up (net_thread.c). */

    (void)u;
    if (op->is_write && now < op->applied_ns) {
        now = aegis__now_ns(); /* Posted after this wake-up read the clock. */
    }
    if (op->is_write) {
        aegis__metrics_since(&n->metrics, AEGIS_MH_APPLY_REPLY, op->applied_ns, now);
        aegis__metrics_since(&n->metrics, AEGIS_MH_REQUEST, op->received_ns, now);
    }
    AEGIS_PROBE2(reply_sent, op, c->id);
    c->refs--;
    if (aegis__order_done(&c->order, (enum aegis_order_class)op->order) && c->held &&
        !c->closed) {
        /* The last command of its kind is answered: the held one may go now. */
        c->held = false;
        conn_resume(c);
    }
    if (c->closed) {
        free(op->reply);
        if (c->refs == 0 && !c->dirty) {
            conn_free(c);
        }
    } else {
        slot_fill(c, op->seq, op->reply, op->reply_len);
        /* Written in on_flush, together with every other reply of this batch. */
        if (!c->dirty) {
            c->dirty = true;
            c->dirty_next = s->dirty;
            s->dirty = c;
        }
    }
    if (s->overloaded) {
        /* Progress was made: let paused-on-overload connections try again. */
        s->overloaded = false;
        for (uint32_t i = 0; i <= s->map_mask; i++) {
            struct srv_conn *o = s->map[i];

            if (o != NULL && resumable(o)) {
                conn_resume(o);
            }
        }
    }
    free(op->keys);
    free(op->keys_buf);
    free(op);
}

static void read_keys(struct aegis_node *n, struct srv_op *op, struct aegis_resp_wbuf *w,
                      int64_t *present)
{
    for (uint32_t i = 0; i < op->keys_count; i++) {
        struct aegis_buf *v = NULL;
        int rv = aegis__kv_get(&n->kv, op->keys[i].data, op->keys[i].len, &v, NULL);

        if (rv == 0) {
            (*present)++;
        }
        if (w != NULL) {
            if (v != NULL) {
                aegis__resp_add_bulk(w, v->data, v->len);
            } else {
                aegis__resp_add_null(w);
            }
        }
        aegis__buf_unref(v);
    }
}

/* Runs on the apply thread: format the reply, post it to the net thread. */
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
    if (res->status != 0 && !(!op->is_write && res->status == AEGIS_ENOTFOUND)) {
        op->reply = error_reply(n, res->status, op->is_write, &op->reply_len);
    } else {
        switch (op->kind) {
        case OP_OK:
            op->reply = dup_bytes("+OK\r\n", 5, &op->reply_len);
            break;
        case OP_INT:
        case OP_CAS:
            op->reply = int_reply(res->integer, &op->reply_len);
            break;
        case OP_GET:
            if (res->value == NULL) {
                op->reply = fmt_alloc(&op->reply_len, "$-1\r\n");
            } else {
                op->reply = bulk_alloc(res->value, res->value_len, &op->reply_len);
            }
            break;
        case OP_EXISTS:
        case OP_MGET: {
            /* The read is confirmed at this point and we run on the apply thread, which
             * owns the store: read every key at this same linearization point. */
            struct aegis_resp_wbuf w;
            int64_t present = 0;

            aegis__resp_wbuf_init(&w, NULL, 0);
            if (op->kind == OP_MGET) {
                aegis__resp_add_array(&w, op->keys_count);
                read_keys(n, op, &w, &present);
                op->reply = malloc(w.len);
                if (op->reply != NULL) {
                    memcpy(op->reply, w.data, w.len);
                    op->reply_len = (uint32_t)w.len;
                }
            } else {
                read_keys(n, op, NULL, &present);
                op->reply = fmt_alloc(&op->reply_len, ":%lld\r\n", (long long)present);
            }
            aegis__resp_wbuf_close(&w);
            break;
        }
        case OP_DBSIZE:
            /* Same linearization point as MGET: the apply thread owns the store. */
            op->reply = fmt_alloc(&op->reply_len, ":%llu\r\n",
                                  (unsigned long long)aegis__kv_count(&n->kv));
            break;
        default:
            AEGIS_UNREACHABLE();
        }
    }
    p = (struct aegis_net_post){.fn = deliver, .arg = op};
    aegis__net_post_from_apply(n, &p);
}

static struct srv_op *op_new(struct srv_conn *c, uint8_t kind, bool is_write)
{
    struct srv_op *op = calloc(1, sizeof(*op));

    if (op != NULL) {
        op->conn = c;
        op->kind = kind;
        op->is_write = is_write;
    }
    return op;
}

/* Submit @cmd (encoded KV command, consumed) as a write or a read. Returns false when the
 * node pushed back (AEGIS_EFULL): the caller stops reading this connection. */
static bool submit(struct srv_conn *c, struct srv_op *op, struct aegis_buf *cmd, bool read)
{
    struct aegis_node *n = c->srv->node;
    uint32_t len;
    int rv;

    if (op == NULL || cmd == NULL) {
        free(op);
        aegis__buf_unref(cmd);
        REPLY_LIT(c, "-ERR out of memory\r\n");
        return true;
    }
    op->seq = c->next_seq;
    op->received_ns = c->srv->rx_ns;
    AEGIS_PROBE2(request_received, op, c->id);
    rv = read ? aegis_node_read(n, cmd->data, cmd->len, op_done, op)
              : aegis_node_propose(n, cmd->data, cmd->len, op_done, op);
    aegis__buf_unref(cmd);
    if (rv == AEGIS_EFULL) {
        free(op->keys);
        free(op->keys_buf);
        free(op);
        return false;
    }
    if (rv != 0) {
        char *p = error_reply(n, rv, !read, &len);

        free(op->keys);
        free(op->keys_buf);
        free(op);
        reply_now(c, p, len);
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

static void reply_wrong_args(struct srv_conn *c, const struct aegis_resp_arg *name)
{
    char cmd[64];
    size_t n = name->len < sizeof(cmd) - 1 ? name->len : sizeof(cmd) - 1;

    for (size_t i = 0; i < n; i++) {
        char ch = name->ptr[i];

        cmd[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    cmd[n] = '\0';
    reply_fmt(c, "-ERR wrong number of arguments for '%s' command\r\n", cmd);
}

/* Copy the keys argv[first..argc) into @op (EXISTS, MGET). */
static bool op_keys(struct srv_op *op, const struct aegis_resp_cmd *cmd, uint32_t first)
{
    size_t total = 0, off = 0;

    op->keys_count = cmd->argc - first;
    for (uint32_t i = first; i < cmd->argc; i++) {
        total += cmd->argv[i].len;
    }
    op->keys = calloc(op->keys_count, sizeof(*op->keys));
    op->keys_buf = malloc(total + 1);
    if (op->keys == NULL || op->keys_buf == NULL) {
        return false;
    }
    for (uint32_t i = first; i < cmd->argc; i++) {
        memcpy(op->keys_buf + off, cmd->argv[i].ptr, cmd->argv[i].len);
        op->keys[i - first] = (struct aegis_kv_bytes){(uint8_t *)op->keys_buf + off,
                                                      cmd->argv[i].len};
        off += cmd->argv[i].len;
    }
    return true;
}

static void reply_encode_error(struct srv_conn *c, int rv)
{
    uint32_t len;

    char *reply_ = error_reply(c->srv->node, rv, false, &len);


    reply_now(c, reply_, len);
}

/* Commands that change the store: encode, propose, reply on apply. */
static bool cmd_write(struct srv_conn *c, const struct aegis_resp_cmd *cmd, int which)
{
    const struct aegis_resp_arg *a = cmd->argv;
    struct aegis_kv_bytes kbuf[64], vbuf[64];
    struct aegis_kv_bytes *keys = kbuf, *vals = vbuf;
    struct aegis_kv_bytes expected;
    struct aegis_buf *b = NULL;
    uint8_t kind = OP_OK;
    int64_t delta = 1;
    uint32_t count;
    bool ok;
    int rv;

    if (!order_admits(c, AEGIS_ORDER_WRITE)) {
        return false;
    }
    switch (which) {
    case 's': /* SET key value */
        rv = aegis__kv_encode_set(NULL, a[1].ptr, a[1].len, a[2].ptr, a[2].len, &b);
        break;
    case 'i': /* INCR, DECR, INCRBY, DECRBY */
    case 'd':
    case 'I':
    case 'D':
        if ((which == 'I' || which == 'D') && !parse_i64(&a[2], &delta)) {
            REPLY_LIT(c, "-ERR value is not an integer or out of range\r\n");
            return true;
        }
        if (which == 'd' || which == 'D') {
            if (delta == INT64_MIN) {
                REPLY_LIT(c, "-ERR decrement would overflow\r\n");
                return true;
            }
            delta = -delta;
        }
        kind = OP_INT;
        rv = aegis__kv_encode_increment(NULL, a[1].ptr, a[1].len, delta, &b);
        break;
    case 'c': /* CAS key expected new */
        kind = OP_CAS;
        expected = (struct aegis_kv_bytes){(const uint8_t *)a[2].ptr, a[2].len};
        rv = aegis__kv_encode_cas(NULL, a[1].ptr, a[1].len, &expected, a[3].ptr, a[3].len, &b);
        break;
    case 'x': /* DEL key [key ...] */
    case 'm': /* MSET key value [key value ...] */
        count = which == 'x' ? cmd->argc - 1 : (cmd->argc - 1) / 2;
        if (count > 64) {
            keys = calloc(count, sizeof(*keys));
            vals = calloc(count, sizeof(*vals));
        }
        ok = keys != NULL && vals != NULL;
        for (uint32_t i = 0; ok && i < count; i++) {
            uint32_t k = which == 'x' ? 1 + i : 1 + 2 * i;

            keys[i] = (struct aegis_kv_bytes){(const uint8_t *)a[k].ptr, a[k].len};
            if (which == 'm') {
                vals[i] = (struct aegis_kv_bytes){(const uint8_t *)a[k + 1].ptr, a[k + 1].len};
            }
        }
        if (!ok) {
            rv = AEGIS_ENOMEM;
        } else if (which == 'x') {
            kind = OP_INT;
            rv = aegis__kv_encode_delete(NULL, keys, count, &b);
        } else {
            rv = aegis__kv_encode_mset(NULL, keys, vals, count, &b);
        }
        if (keys != kbuf) {
            free(keys);
            free(vals);
        }
        break;
    default:
        AEGIS_UNREACHABLE();
    }
    if (rv != 0) {
        reply_encode_error(c, rv);
        return true;
    }
    return submit(c, op_new(c, kind, true), b, false);
}

/* Reads: GET, EXISTS, MGET, DBSIZE go through ReadIndex (aegis_node_read); DBSIZE reads
 * the empty key, and counts the store's keys on the apply thread when the read is
 * confirmed (linearizable, like MGET). A GET sent while the
 * connection has writes in flight goes through the log instead, right behind them (the
 * state machine answers a GET entry with the value at that point, on the leader, and the
 * answer travels back to a follower like a write's): it needs no wait and counts as a
 * write for the order of the connection's next commands. MGET and EXISTS wait. */
static bool cmd_read(struct srv_conn *c, const struct aegis_resp_cmd *cmd, uint8_t kind)
{
    bool via_log = kind == OP_GET && c->order.writes > 0;
    struct srv_op *op;
    struct aegis_buf *b = NULL;
    int rv;

    if (!via_log && !order_admits(c, AEGIS_ORDER_READ)) {
        return false;
    }
    op = op_new(c, kind, false);
    if (op != NULL && kind != OP_GET && kind != OP_DBSIZE && !op_keys(op, cmd, 1)) {
        free(op->keys);
        free(op->keys_buf);
        free(op);
        op = NULL;
    }
    rv = kind == OP_DBSIZE ? aegis__kv_encode_get(NULL, "", 0, &b)
                           : aegis__kv_encode_get(NULL, cmd->argv[1].ptr, cmd->argv[1].len, &b);
    if (rv != 0) {
        if (op != NULL) {
            free(op->keys);
            free(op->keys_buf);
            free(op);
        }
        reply_encode_error(c, rv);
        return true;
    }
    return submit(c, op, b, !via_log);
}

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

static void wprintf(struct aegis_resp_wbuf *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void wprintf(struct aegis_resp_wbuf *w, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0) {
        aegis__resp_add_raw(w, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
}

static bool section_wanted(const char *want, const char *name)
{
    return want == NULL || strcasecmp(want, "all") == 0 || strcasecmp(want, "everything") == 0 ||
           strcasecmp(want, name) == 0;
}

/* The sections "stats", "latency" and "persistence" (pipeline/metrics.c). */
static void metrics_info(struct aegis_server *s, struct aegis_resp_wbuf *w, const char *want)
{
    struct aegis_text t = {0};

    aegis__metrics_info(s->node, want, &t);
    if (t.len > 0) {
        aegis__resp_add_raw(w, t.data, t.len);
    }
    aegis__text_free(&t);
}

static void append_info(struct aegis_server *s, struct aegis_resp_wbuf *w, const char *want)
{
    struct aegis_node *n = s->node;
    struct aegis_status status;
    char addr[AEGIS_HOST_MAX + 8];

    aegis_node_status(n, &status);
    if (section_wanted(want, "server")) {
        wprintf(w, "# Server\r\naegis_version:%s\r\naegis_git_sha1:%s\r\nnode_id:%llu\r\n"
                   "data_dir:%s\r\nfsync:%s\r\nclient_port:%u\r\n\r\n",
                aegis_version(), aegis__version_commit(), (unsigned long long)status.id,
                n->data_dir, n->config.fsync == AEGIS_FSYNC_NONE ? "none" : "batch",
                aegis__node_client_port(n));
    }
    if (section_wanted(want, "replication")) {
        wprintf(w, "# Replication\r\nrole:%s\r\nnode_id:%llu\r\nleader_id:%llu\r\nterm:%llu\r\n"
                   "commit_index:%llu\r\nlast_applied:%llu\r\nlast_index:%llu\r\n"
                   "snapshot_index:%llu\r\nmembers:%u\r\n",
                role_name(status.role), (unsigned long long)status.id,
                (unsigned long long)status.leader, (unsigned long long)status.term,
                (unsigned long long)status.commit_index,
                (unsigned long long)status.applied_index, (unsigned long long)status.last_index,
                (unsigned long long)status.snapshot_index, status.members_count);
        for (uint32_t i = 0; i < status.members_count; i++) {
            const struct aegis_member_status *m = &status.members[i];

            wprintf(w, "member_%llu:id=%llu,addr=%s,voter=%d,match_index=%llu\r\n",
                    (unsigned long long)m->id, (unsigned long long)m->id,
                    peer_addr(s, m->id, addr, sizeof(addr)), m->voter ? 1 : 0,
                    (unsigned long long)m->match_index);
        }
        aegis__resp_add_raw(w, "\r\n", 2);
    }
    metrics_info(s, w, want);
}

static void reply_wbuf_bulk(struct srv_conn *c, struct aegis_resp_wbuf *w)
{
    uint32_t len;

    char *reply_ = bulk_alloc(w->data, w->len, &len);


    reply_now(c, reply_, len);
}

static void cmd_info(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    struct aegis_resp_wbuf w;
    char want[32] = "";

    if (cmd->argc > 1 && cmd->argv[1].len < sizeof(want)) {
        memcpy(want, cmd->argv[1].ptr, cmd->argv[1].len);
        want[cmd->argv[1].len] = '\0';
    }
    aegis__resp_wbuf_init(&w, NULL, 0);
    append_info(c->srv, &w, want[0] != '\0' ? want : NULL);
    reply_wbuf_bulk(c, &w);
    aegis__resp_wbuf_close(&w);
}

/* A membership change's completion: the same formatting path as writes. */
static void admin_submit(struct srv_conn *c, int rv, struct srv_op *op)
{
    uint32_t len;

    if (rv != 0) {
        free(op);
        char *reply_ = error_reply(c->srv->node, rv, false, &len);

        reply_now(c, reply_, len);
        return;
    }
    c->next_seq++;
    c->refs++;
}

/* The op of an admin command answered on completion; NULL (answered already) on
 * exhaustion. */
static struct srv_op *admin_op(struct srv_conn *c)
{
    struct srv_op *op = op_new(c, OP_OK, true);

    if (op == NULL) {
        REPLY_LIT(c, "-ERR out of memory\r\n");
        return NULL;
    }
    op->seq = c->next_seq;
    return op;
}

static bool parse_id(const struct aegis_resp_arg *a, aegis_node_id *out)
{
    int64_t v;

    if (!parse_i64(a, &v) || v <= 0) {
        return false;
    }
    *out = (aegis_node_id)v;
    return true;
}

static void cmd_admin(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    struct aegis_node *n = c->srv->node;
    const struct aegis_resp_arg *a = cmd->argv;
    struct aegis_resp_wbuf w;
    aegis_node_id id = 0;
    struct srv_op *op;

    if (arg_is(&a[0], "aegis.members") || arg_is(&a[0], "aegis.status")) {
        aegis__resp_wbuf_init(&w, NULL, 0);
        append_info(c->srv, &w, "replication");
        reply_wbuf_bulk(c, &w);
        aegis__resp_wbuf_close(&w);
    } else if (arg_is(&a[0], "aegis.add") && cmd->argc == 3 && parse_id(&a[1], &id)) {
        struct aegis_peer_addr peer = {.id = id};
        char text[AEGIS_ARGS_HOSTPORT_BYTES];

        /* HOST:PORT or [IPV6]:PORT, by the rules of aegisd's --peers (pipeline/args.c). */
        if (a[2].len >= sizeof(text) || memchr(a[2].ptr, '\0', a[2].len) != NULL) {
            REPLY_LIT(c, "-ERR expected host:port\r\n");
            return;
        }
        memcpy(text, a[2].ptr, a[2].len);
        text[a[2].len] = '\0';
        if (aegis__args_hostport("AEGIS.ADD", text, peer.host, sizeof(peer.host), &peer.port,
                                 NULL, 0) != 0) {
            REPLY_LIT(c, "-ERR expected host:port\r\n");
            return;
        }
        if ((op = admin_op(c)) == NULL) {
            return;
        }
        admin_submit(c, aegis_node_add_member(n, &peer, op_done, op), op);
    } else if (arg_is(&a[0], "aegis.remove") && cmd->argc == 2 && parse_id(&a[1], &id)) {
        if ((op = admin_op(c)) == NULL) {
            return;
        }
        admin_submit(c, aegis_node_remove_member(n, id, op_done, op), op);
    } else if (arg_is(&a[0], "aegis.transfer") && cmd->argc == 2 && parse_id(&a[1], &id)) {
        /* Forwarded from a follower; answers once the leader's core took or refused it. */
        if ((op = admin_op(c)) == NULL) {
            return;
        }
        admin_submit(c, aegis__node_transfer(n, id, op_done, op), op);
    } else if (arg_is(&a[0], "aegis.snapshot") && cmd->argc == 1) {
        /* Answers once the snapshot is durable, or with the error that stopped it. */
        if ((op = admin_op(c)) == NULL) {
            return;
        }
        admin_submit(c, aegis_node_snapshot_async(n, op_done, op), op);
    } else {
        reply_wrong_args(c, &a[0]);
    }
}

/* ---- Access: roles, AUTH, CONFIG (see server.h and pipeline/users.h). ---- */

/* The one permission check: the role @cmd needs against the connection's. */
static bool permitted(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    const struct aegis_resp_arg *a = cmd->argv;
    enum aegis_access need = aegis__command_role(a[0].ptr, a[0].len,
                                               cmd->argc > 1 ? a[1].ptr : NULL,
                                               cmd->argc > 1 ? a[1].len : 0);
    char name[48];
    size_t n = a[0].len < 40 ? a[0].len : 40;

    if (need <= c->role) {
        return true;
    }
    if (c->role == AEGIS_ACCESS_NONE) {
        REPLY_LIT(c, "-NOAUTH Authentication required.\r\n");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = a[0].ptr[i];

        name[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch >= ' ' ? ch : '?');
    }
    name[n] = '\0';
    reply_fmt(c, "-NOPERM this user has no permissions to run the '%s' command\r\n", name);
    return false;
}

/* A failed AUTH: count it, and hold its reply (not reading the connection meanwhile)
 * for a delay that doubles with each failure; close after AEGIS_AUTH_FAILS_MAX. */
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
    c->auth_held = false;
    slot_fill(c, c->held_seq,
              strdup("-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
              (uint32_t)sizeof("-WRONGPASS invalid username-password pair or user is "
                               "disabled.\r\n") - 1);
    if (c->held_close) {
        c->close_after_flush = true;
    }
    flush_and_resume(c);
}

/* AUTH password | AUTH user password. */
static void cmd_auth(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    const struct aegis_resp_arg *a = cmd->argv;
    const struct aegis_resp_arg *pw = &a[cmd->argc - 1];
    enum aegis_access role;

    if (!c->srv->auth_required) {
        REPLY_LIT(c, "-ERR AUTH <password> called without any password configured for "
                     "the default user. Are you sure your configuration is correct?\r\n");
        return;
    }
    role = aegis__users_check(&c->srv->users, cmd->argc == 3 ? a[1].ptr : NULL,
                              cmd->argc == 3 ? a[1].len : 0, pw->ptr, pw->len);
    if (role == AEGIS_ACCESS_NONE) {
        auth_failed(c);
    } else if (c->reserved && role != AEGIS_ACCESS_ADMIN) {
        REPLY_LIT(c, "-ERR max number of clients reached (the remaining connections are "
                     "reserved for admin users)\r\n");
        c->close_after_flush = true;
    } else {
        c->role = (uint8_t)role;
        REPLY_LIT(c, "+OK\r\n");
    }
}

/* CONFIG GET answers the settings redis-benchmark asks for; CONFIG SET is refused (every
 * setting is a flag of aegisd); CONFIG RESETSTAT restarts the INFO latency counts. */
static void cmd_config(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    static const char *const keys[][2] = {{"save", ""}, {"appendonly", "no"}};
    const struct aegis_resp_arg *a = cmd->argv;
    struct aegis_resp_wbuf w;
    char pat[64];
    uint32_t found = 0;

    if (cmd->argc == 2 && arg_is(&a[1], "resetstat")) {
        /* Redis' CONFIG RESETSTAT: INFO latency counts from here (aegis-bench --breakdown). */
        if (aegis__metrics_reset_baseline(&c->srv->node->metrics) == 0) {
            REPLY_LIT(c, "+OK\r\n");
        } else {
            REPLY_LIT(c, "-ERR out of memory\r\n");
        }
        return;
    }
    if (cmd->argc >= 2 && arg_is(&a[1], "set")) {
        REPLY_LIT(c, "-ERR CONFIG SET is not supported; restart with flags\r\n");
        return;
    }
    if (cmd->argc != 3 || !arg_is(&a[1], "get")) {
        REPLY_LIT(c, "-ERR unknown CONFIG subcommand or wrong number of arguments; "
                     "try CONFIG GET name, CONFIG RESETSTAT\r\n");
        return;
    }
    snprintf(pat, sizeof(pat), "%.*s", (int)(a[2].len < 63 ? a[2].len : 63), a[2].ptr);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        found += fnmatch(pat, keys[i][0], FNM_CASEFOLD) == 0 ? 1u : 0u;
    }
    aegis__resp_wbuf_init(&w, NULL, 0);
    aegis__resp_add_array(&w, 2u * found);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (fnmatch(pat, keys[i][0], FNM_CASEFOLD) == 0) {
            aegis__resp_add_bulk(&w, keys[i][0], strlen(keys[i][0]));
            aegis__resp_add_bulk(&w, keys[i][1], strlen(keys[i][1]));
        }
    }
    {
        uint32_t len;
        char *bytes = dup_bytes(w.data, (uint32_t)w.len, &len);

        reply_now(c, bytes, len);
    }
    aegis__resp_wbuf_close(&w);
}

/* Run one complete command. Returns false when the node pushed back: the command was not
 * taken and must be parsed again later. */
static bool dispatch(struct srv_conn *c, const struct aegis_resp_cmd *cmd)
{
    const struct aegis_resp_arg *a = cmd->argv;
    uint32_t argc = cmd->argc;

    if (!permitted(c, cmd)) {
        return true;
    }
    if (arg_is(&a[0], "get") && argc == 2) {
        return cmd_read(c, cmd, OP_GET);
    } else if (arg_is(&a[0], "set") && argc == 3) {
        return cmd_write(c, cmd, 's');
    } else if (arg_is(&a[0], "set") && argc > 3) {
        REPLY_LIT(c, "-ERR syntax error\r\n");
    } else if (arg_is(&a[0], "incr") && argc == 2) {
        return cmd_write(c, cmd, 'i');
    } else if (arg_is(&a[0], "decr") && argc == 2) {
        return cmd_write(c, cmd, 'd');
    } else if (arg_is(&a[0], "incrby") && argc == 3) {
        return cmd_write(c, cmd, 'I');
    } else if (arg_is(&a[0], "decrby") && argc == 3) {
        return cmd_write(c, cmd, 'D');
    } else if (arg_is(&a[0], "cas") && argc == 4) {
        return cmd_write(c, cmd, 'c');
    } else if (arg_is(&a[0], "del") && argc >= 2) {
        return cmd_write(c, cmd, 'x');
    } else if (arg_is(&a[0], "mset") && argc >= 3 && argc % 2 == 1) {
        return cmd_write(c, cmd, 'm');
    } else if (arg_is(&a[0], "exists") && argc >= 2) {
        return cmd_read(c, cmd, OP_EXISTS);
    } else if (arg_is(&a[0], "mget") && argc >= 2) {
        return cmd_read(c, cmd, OP_MGET);
    } else if (arg_is(&a[0], "dbsize") && argc == 1) {
        return cmd_read(c, cmd, OP_DBSIZE);
    } else if (arg_is(&a[0], "ping") && argc <= 2) {
        if (argc == 2) {
            uint32_t len;

            char *reply_ = bulk_alloc(a[1].ptr, a[1].len, &len);


            reply_now(c, reply_, len);
        } else {
            REPLY_LIT(c, "+PONG\r\n");
        }
    } else if (arg_is(&a[0], "echo") && argc == 2) {
        uint32_t len;

        char *reply_ = bulk_alloc(a[1].ptr, a[1].len, &len);


        reply_now(c, reply_, len);
    } else if (arg_is(&a[0], "info")) {
        cmd_info(c, cmd);
    } else if (arg_is(&a[0], "config")) {
        cmd_config(c, cmd);
    } else if (arg_is(&a[0], "command")) {
        /* Enough for redis-cli to start: no command docs. */
        REPLY_LIT(c, "*0\r\n");
    } else if (arg_is(&a[0], "auth") && (argc == 2 || argc == 3)) {
        cmd_auth(c, cmd);
    } else if (arg_is(&a[0], "select") || arg_is(&a[0], "client")) {
        REPLY_LIT(c, "+OK\r\n");
    } else if (arg_is(&a[0], "quit")) {
        REPLY_LIT(c, "+OK\r\n");
        c->close_after_flush = true;
    } else if (a[0].len > 6 && strncasecmp(a[0].ptr, "aegis.", 6) == 0) {
        cmd_admin(c, cmd);
    } else {
        static const char *const known[] = {"get", "set", "incr", "decr", "incrby", "decrby",
                                            "cas", "del", "mset", "exists", "mget", "ping",
                                            "echo", "dbsize"};
        char name[64];
        size_t n = a[0].len < 40 ? a[0].len : 40;

        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (arg_is(&a[0], known[i])) {
                reply_wrong_args(c, &a[0]);
                return true;
            }
        }
        memcpy(name, a[0].ptr, n);
        name[n] = '\0';
        reply_fmt(c, "-ERR unknown command '%s'\r\n", name);
    }
    return true;
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
    free(c->pending);
    c->pending = NULL;
    return true;
}

static void on_open(struct aegis_node *n, aegis_uring_client_id id, void *data)
{
    struct aegis_server *s = data;
    struct aegis_resp_limits limits = aegis__resp_limits_default();
    struct srv_conn *c = calloc(1, sizeof(*c));

    if (c != NULL) {
        c->slots = calloc(s->slots_mask + 1, sizeof(*c->slots));
    }
    if (c == NULL || c->slots == NULL || s->conns * 2 >= s->map_mask) {
        if (c != NULL) {
            free(c->slots);
        }
        free(c);
        aegis__uring_loop_client_close(n->loop, id, false);
        return;
    }
    c->id = id;
    c->srv = s;
    c->role = s->auth_required ? AEGIS_ACCESS_NONE : AEGIS_ACCESS_ADMIN;
    c->reserved = s->reserve > 0 && s->conns >= s->config.clients_max - s->reserve;
    c->opened_ms = c->last_io_ms = s->now_ms;
    limits.bulk_bytes_max = s->config.value_bytes_max;
    aegis__resp_parser_init(&c->parser, &limits, NULL);
    *map_find(s, id) = c;
    s->conns++;
}

static size_t on_data(struct aegis_node *n, aegis_uring_client_id id, const uint8_t *bytes,
                      size_t len, void *data)
{
    struct aegis_server *s = data;
    struct srv_conn *c = *map_find(s, id);
    size_t used = 0;
    bool partial = false;

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
    while (used < len && !c->auth_held) {
        struct aegis_resp_cmd cmd;
        int rv;

        if (c->next_seq - c->flushed_seq > s->slots_mask) {
            /* Too many replies outstanding: stop reading until some are written. */
            c->paused = true;
            aegis__uring_loop_client_pause(n->loop, id);
            break;
        }
        /* The loop's buffer is ours until we return; the parser unescapes inline
         * commands in place, so it takes it as mutable. */
        rv = aegis__resp_parse(&c->parser, (char *)(uintptr_t)(bytes + used), len - used, &cmd);
        if (rv == 0) {
            partial = true;
            break;
        }
        if (rv < 0) {
            reply_fmt(c, "-%s\r\n", rv == AEGIS_ENOMEM ? "ERR out of memory" : c->parser.err);
            c->close_after_flush = true;
            used = len;
            break;
        }
        c->held = false;
        if (cmd.argc > 0 && !dispatch(c, &cmd)) {
            c->paused = true;
            s->overloaded = s->overloaded || !c->held; /* Held: waits for its own replies. */
            aegis__uring_loop_client_pause(n->loop, id);
            c->pending = cmd_copy(&cmd);
            if (c->pending != NULL) {
                used += cmd.bytes; /* Kept as a copy; else parsed again on resume. */
            }
            break;
        }
        used += cmd.bytes;
    }
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
    map_remove(s, id);
    s->conns--;
    c->closed = true;
    if (c->refs == 0 && !c->dirty) {
        conn_free(c);
    }
}

int aegis__server_create(struct aegis_server **out, struct aegis_node *n,
                         const struct aegis_server_config *c)
{
    struct aegis_server *s = calloc(1, sizeof(*s));
    struct aegis_client_hooks hooks = {.on_open = on_open, .on_data = on_data,
                                       .on_close = on_close, .on_flush = on_flush,
                                       .on_tick = on_tick};
    uint32_t slots = 1, map = 1;

    if (s == NULL) {
        return AEGIS_ENOMEM;
    }
    while (slots < (c->pipeline_max != 0 ? c->pipeline_max : 1024)) {
        slots <<= 1;
    }
    while (map < (c->clients_max != 0 ? c->clients_max : 1024) * 2u + 2u) {
        map <<= 1;
    }
    s->map = calloc(map, sizeof(*s->map));
    if (s->map == NULL) {
        free(s);
        return AEGIS_ENOMEM;
    }
    s->node = n;
    s->config = *c;
    s->slots_mask = slots - 1;
    s->map_mask = map - 1;
    s->users = c->users;
    s->config.users = (struct aegis_users){0};
    s->auth_required = s->users.count > 0;
    s->config.clients_max = c->clients_max != 0 ? c->clients_max : 1024;
    s->reserve = c->admin_reserve < s->config.clients_max / 4 ? c->admin_reserve
                                                               : s->config.clients_max / 4;
    s->now_ms = aegis__uring_loop_now_ms();
    hooks.data = s;
    aegis__node_set_client_hooks(n, &hooks);
    aegis__node_set_client_port(n, c->host, c->port, c->clients_max != 0 ? c->clients_max : 1024,
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
            conn_free(s->map[i]);
        }
    }
    while (s->dirty != NULL) {
        struct srv_conn *next = s->dirty->dirty_next;

        conn_free(s->dirty);
        s->dirty = next;
    }
    free(s->map);
    aegis__users_free(&s->users);
    free(s);
}
