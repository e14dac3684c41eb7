/* SPDX-License-Identifier: MIT */
/* aegis-bench: a RESP2 load generator for aegisd or any Redis-protocol server.
 *
 * Design. --threads worker threads each run their own epoll loop over their share of the
 * --clients connections (non-blocking sockets, TCP_NODELAY); connection i goes to target
 * i mod targets and to thread i mod threads. Every connection keeps up to --pipeline
 * requests in flight: whenever replies arrive it refills the window and writes the new
 * requests with one send(). A request's latency runs from just before the send() that
 * carried its last byte to the read() that brought its reply's last byte, and goes into a
 * log-linear histogram (engine/hist.h) owned by the worker. Replies are matched to
 * requests in order (RESP replies on a connection come in request order).
 *
 * Phases. The main thread drives a global phase: WARMUP (--warmup seconds), MEASURE
 * (--duration seconds, or until --requests requests have completed), STOP. A request
 * belongs to the phase in which it was issued and is counted in that phase's statistics
 * only, so no reset is ever needed: each worker keeps one set of statistics per phase, and
 * the main thread reads them (relaxed atomic loads, hist merge) without locks, for the
 * once-a-second progress line and for the final report. Requests still in flight at STOP
 * are neither counted nor timed.
 *
 * Errors. An error reply counts under its first word ("ERR", "TRYAGAIN", "UNKNOWN", ...);
 * a reply of an unexpected type counts as "unexpected"; connection failures count as
 * "connect" (could not connect), "closed" (the server closed or reset a connection) and
 * "lost" (requests in flight on a connection that closed: their outcome is unknown), and
 * an unparseable reply as "protocol". A closed connection reconnects after 100 ms. Only
 * successful replies are timed and counted as ops. The exit status is 0 after a run, 1 for
 * I/O errors or if no connection could be established at all, 2 for bad usage (as every
 * Aegis program), 3 if --spawn failed.
 *
 * Commands (keys are "key:" plus 12 digits, uniform over --keys; values are --value-size
 * bytes of 'x'): SET key value; GET key; INCR counter:<12 digits> (a key space of its
 * own, so INCR never meets a non-integer value); CAS key value value (aegisd's
 * compare-and-swap: swaps, to the same value, where the key holds a benchmark value). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cmd/bench_baseline.h"
#include "cmd/bench_breakdown.h"
#include "cmd/bench_config.h"
#include "cmd/bench_resp.h"
#include "cmd/bench_spawn.h"
#include "engine/assert.h"
#include "engine/hist.h"
#include "engine/rng.h"
#include "pipeline/version.h"

enum bench_phase { PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP };

/* Fixed error kinds first; then error-reply prefixes as they are met. */
enum {
    KIND_CONNECT,
    KIND_CLOSED,
    KIND_LOST,
    KIND_PROTOCOL,
    KIND_UNEXPECTED,
    KIND_OTHER, /* An error reply whose prefix found no free slot. */
    KIND_FIXED_COUNT
};
#define KINDS_MAX     32
#define KIND_NAME_MAX 24

static const char *const fixed_kind_names[KIND_FIXED_COUNT] = {
    "connect", "closed", "lost", "protocol", "unexpected", "other_error"};

#define RECONNECT_NS   (100 * 1000000ull)
#define EVENTS_MAX     64
#define KEY_DIGITS     12
#define REQUEST_EXTRA  128 /* Bytes of a request beyond its values: headers, key, CRLFs. */
#define IN_BUF_MIN     (64 * 1024)

/* Statistics of one phase of one worker. Written by the worker only, each field with a
 * relaxed store; read by the main thread with relaxed loads (hist: aegis__hist_merge). */
struct phase_stats {
    struct aegis_hist hist; /* Latency of successful replies, in ns. */
    uint64_t ops[BENCH_OP_COUNT];
    uint64_t issued;
    uint64_t errors;
    uint64_t tx_bytes;
    uint64_t rx_bytes;
    uint64_t kinds[KINDS_MAX];
    /* Names of kinds >= KIND_FIXED_COUNT. A name is written before kinds_count covers it
     * (release store), and never changes after; readers load kinds_count with acquire. */
    char kind_names[KINDS_MAX][KIND_NAME_MAX];
    uint32_t kinds_count;
};

struct inflight {
    uint64_t end_offset; /* Position of the request's last byte in the connection's stream. */
    uint64_t sent_ns;    /* When the send() carrying its last byte started; 0 until then. */
    uint8_t op;
    uint8_t phase;
};

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_READY };

struct conn {
    struct worker *w;
    unsigned id;
    unsigned target;
    int fd;
    enum conn_state state;
    bool epollout; /* EPOLLOUT currently requested. */
    uint64_t reconnect_at_ns;
    struct aegis_rng rng;
    char *out; /* Encoded requests not yet sent: out[out_off, out_len). */
    size_t out_len, out_off, out_cap;
    uint64_t queued_bytes; /* Stream position after the last encoded request. */
    uint64_t sent_bytes;   /* Stream position after the last byte sent. */
    char *in;              /* Received bytes not yet parsed: in[0, in_len). */
    size_t in_len, in_cap;
    struct inflight *q; /* Ring of --pipeline entries: q[head .. head+count). */
    unsigned q_head, q_count, q_sent;
};

struct worker {
    struct bench *b;
    unsigned index;
    pthread_t thread;
    int epfd;
    struct conn *conns;
    unsigned conns_count;
    uint64_t budget;  /* --requests: requests this worker still may issue in MEASURE. */
    uint64_t pending; /* --requests: MEASURE requests issued and not yet resolved. */
    uint64_t connect_failures; /* Relaxed store by the worker, load by main. */
    uint64_t done_ns;          /* --requests: when this worker finished; 0 before. */
    struct phase_stats stats[2];
};

struct bench {
    struct bench_config cfg;
    struct sockaddr_storage addrs[BENCH_TARGETS_MAX];
    socklen_t addr_lens[BENCH_TARGETS_MAX];
    char *value;        /* value_size bytes of 'x'. */
    size_t request_max; /* Bytes of the largest request the mix can encode. */
    struct worker *workers;
    uint32_t phase;          /* enum bench_phase; main stores (release), workers load. */
    uint32_t ever_connected; /* Set by any worker on its first established connection. */
    uint32_t workers_done;   /* --requests: workers that finished, atomic increment. */
    uint64_t measure_start_ns;
    uint64_t measure_end_ns;
};

static volatile sig_atomic_t interrupted;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted) {
    }
}

static uint64_t load_u64(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Single-writer counter increment: a relaxed load and store, no locked instruction. */
static void add_u64(uint64_t *p, uint64_t n)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static enum bench_phase load_phase(const struct bench *b)
{
    return (enum bench_phase)__atomic_load_n(&b->phase, __ATOMIC_ACQUIRE);
}

static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count, size);

    if (p == NULL) {
        fprintf(stderr, "aegis-bench: out of memory\n");
        exit(1);
    }
    return p;
}

/* Count one error of kind @kind (a fixed kind) or, when @prefix is not NULL, of the
 * error-reply kind named by @prefix (its first @len bytes, up to the first space). */
static void count_error(struct phase_stats *s, unsigned kind, const char *prefix, size_t len)
{
    uint32_t i, n = s->kinds_count;

    add_u64(&s->errors, 1);
    if (prefix == NULL) {
        add_u64(&s->kinds[kind], 1);
        return;
    }
    for (i = 0; i < len && i < KIND_NAME_MAX - 1; i++) {
        if (prefix[i] == ' ' || (unsigned char)prefix[i] < 0x21 ||
            (unsigned char)prefix[i] > 0x7e || prefix[i] == '"' || prefix[i] == '\\') {
            break;
        }
    }
    len = i;
    for (i = KIND_FIXED_COUNT; i < n; i++) {
        if (strlen(s->kind_names[i]) == len && memcmp(s->kind_names[i], prefix, len) == 0) {
            add_u64(&s->kinds[i], 1);
            return;
        }
    }
    if (n < KIND_FIXED_COUNT) {
        n = KIND_FIXED_COUNT;
    }
    if (n >= KINDS_MAX || len == 0) {
        add_u64(&s->kinds[KIND_OTHER], 1);
        return;
    }
    memcpy(s->kind_names[n], prefix, len);
    s->kind_names[n][len] = '\0';
    add_u64(&s->kinds[n], 1);
    /* Publish the name before the slot (release); pairs with the acquire in the reader. */
    __atomic_store_n(&s->kinds_count, n + 1, __ATOMIC_RELEASE);
}

/* Append "$<len>\r\n<bytes>\r\n" to @p; returns the end. */
static char *put_bulk(char *p, const char *s, size_t len)
{
    p += sprintf(p, "$%zu\r\n", len);
    memcpy(p, s, len);
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Append the bulk "<prefix><12-digit key>" to @p. */
static char *put_key(char *p, const char *prefix, uint64_t key)
{
    char k[48];
    size_t plen = strlen(prefix);
    int i;

    memcpy(k, prefix, plen);
    for (i = KEY_DIGITS - 1; i >= 0; i--) {
        k[plen + (size_t)i] = (char)('0' + key % 10);
        key /= 10;
    }
    return put_bulk(p, k, plen + KEY_DIGITS);
}

static enum bench_op pick_op(struct conn *c)
{
    const struct bench_config *cfg = &c->w->b->cfg;
    uint64_t r = aegis__rng_range(&c->rng, 0, cfg->weights_total - 1u);
    unsigned op;

    for (op = 0; op + 1 < BENCH_OP_COUNT; op++) {
        if (r < cfg->weights[op]) {
            break;
        }
        r -= cfg->weights[op];
    }
    return (enum bench_op)op;
}

/* Encode one request of a random command at the end of c->out; returns its command. */
static enum bench_op encode_request(struct conn *c)
{
    const struct bench *b = c->w->b;
    enum bench_op op = pick_op(c);
    uint64_t key = aegis__rng_range(&c->rng, 0, b->cfg.keys - 1);
    size_t vlen = (size_t)b->cfg.value_size;
    char *start = c->out + c->out_len, *p = start;

    /* setup_conn sized c->out for --pipeline requests of the largest command in the mix. */
    AEGIS_ASSERT(c->out_cap - c->out_len >= b->request_max);
    switch (op) {
    case BENCH_OP_SET:
        p = put_key(p + sprintf(p, "*3\r\n$3\r\nSET\r\n"), "key:", key);
        p = put_bulk(p, b->value, vlen);
        break;
    case BENCH_OP_GET:
        p = put_key(p + sprintf(p, "*2\r\n$3\r\nGET\r\n"), "key:", key);
        break;
    case BENCH_OP_INCR:
        p = put_key(p + sprintf(p, "*2\r\n$4\r\nINCR\r\n"), "counter:", key);
        break;
    case BENCH_OP_CAS:
    default:
        p = put_key(p + sprintf(p, "*4\r\n$3\r\nCAS\r\n"), "key:", key);
        p = put_bulk(p, b->value, vlen);
        p = put_bulk(p, b->value, vlen);
        break;
    }
    c->out_len += (size_t)(p - start);
    c->queued_bytes += (uint64_t)(p - start);
    return op;
}

/* May this worker issue one more request now? */
static bool may_issue(struct worker *w, enum bench_phase phase)
{
    if (phase == PHASE_STOP) {
        return false;
    }
    if (w->b->cfg.requests == 0 || phase == PHASE_WARMUP) {
        return true;
    }
    return w->budget > 0;
}

/* Fill the connection's window up to --pipeline requests. */
static void fill_window(struct conn *c, enum bench_phase phase)
{
    struct worker *w = c->w;
    unsigned depth = w->b->cfg.pipeline;

    while (c->q_count < depth && may_issue(w, phase)) {
        struct inflight *f = &c->q[(c->q_head + c->q_count) % depth];

        f->op = (uint8_t)encode_request(c);
        f->phase = (uint8_t)phase;
        f->end_offset = c->queued_bytes;
        f->sent_ns = 0;
        c->q_count++;
        add_u64(&w->stats[phase].issued, 1);
        if (phase == PHASE_MEASURE && w->b->cfg.requests != 0) {
            w->budget--;
            w->pending++;
        }
    }
}

static void set_epollout(struct conn *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = c};

    if (c->epollout == on) {
        return;
    }
    c->epollout = on;
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        AEGIS_ASSERT(!"epoll_ctl MOD failed");
    }
}

static void close_conn(struct conn *c, unsigned kind);

/* Send what is queued; stamp the requests whose last byte went out. */
static void flush_out(struct conn *c, enum bench_phase phase)
{
    unsigned depth = c->w->b->cfg.pipeline;

    while (c->out_off < c->out_len) {
        uint64_t t = now_ns();
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            close_conn(c, KIND_CLOSED);
            return;
        }
        c->out_off += (size_t)n;
        c->sent_bytes += (uint64_t)n;
        add_u64(&c->w->stats[phase == PHASE_STOP ? PHASE_MEASURE : phase].tx_bytes,
                (uint64_t)n);
        while (c->q_sent < c->q_count) {
            struct inflight *f = &c->q[(c->q_head + c->q_sent) % depth];

            if (f->end_offset > c->sent_bytes) {
                break;
            }
            f->sent_ns = t;
            c->q_sent++;
        }
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    }
    set_epollout(c, c->out_off < c->out_len);
}

/* Resolve the oldest in-flight request of @c as finished (its stats already counted). */
static struct inflight *pop_inflight(struct conn *c)
{
    struct inflight *f = &c->q[c->q_head];

    AEGIS_ASSERT(c->q_count > 0);
    c->q_head = (c->q_head + 1) % c->w->b->cfg.pipeline;
    c->q_count--;
    if (c->q_sent > 0) {
        c->q_sent--;
    }
    if (f->phase == PHASE_MEASURE && c->w->b->cfg.requests != 0) {
        AEGIS_ASSERT(c->w->pending > 0);
        c->w->pending--;
    }
    return f;
}

static void close_conn(struct conn *c, unsigned kind)
{
    struct worker *w = c->w;

    if (c->fd >= 0) {
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    if (kind == KIND_CONNECT) {
        add_u64(&w->connect_failures, 1);
    }
    count_error(&w->stats[load_phase(w->b) == PHASE_WARMUP ? 0 : 1], kind, NULL, 0);
    while (c->q_count > 0) {
        struct inflight *f = pop_inflight(c);

        count_error(&w->stats[f->phase], KIND_LOST, NULL, 0);
    }
    c->q_head = c->q_sent = 0;
    c->out_len = c->out_off = c->in_len = 0;
    c->queued_bytes = c->sent_bytes = 0;
    c->state = CONN_IDLE;
    c->epollout = false;
    c->reconnect_at_ns = now_ns() + RECONNECT_NS;
}

static void start_connect(struct conn *c)
{
    struct bench *b = c->w->b;
    const struct sockaddr *sa = (const struct sockaddr *)&b->addrs[c->target];
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    int one = 1;

    c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        close_conn(c, KIND_CONNECT);
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, sa, b->addr_lens[c->target]) != 0 && errno != EINPROGRESS) {
        close_conn(c, KIND_CONNECT);
        return;
    }
    c->state = CONN_CONNECTING;
    c->epollout = true;
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close_conn(c, KIND_CONNECT);
    }
}

/* The connection finished connecting (EPOLLOUT or an error while CONNECTING). */
static void finish_connect(struct conn *c, enum bench_phase phase)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        close_conn(c, KIND_CONNECT);
        return;
    }
    c->state = CONN_READY;
    __atomic_store_n(&c->w->b->ever_connected, 1, __ATOMIC_RELAXED);
    fill_window(c, phase);
    flush_out(c, phase);
}

/* Was @r the reply expected for @op? */
static bool reply_expected(enum bench_op op, const struct bench_reply *r)
{
    switch (op) {
    case BENCH_OP_SET:
        return r->type == BENCH_REPLY_STATUS && r->len == 2 && memcmp(r->str, "OK", 2) == 0;
    case BENCH_OP_GET:
        return r->type == BENCH_REPLY_BULK || r->type == BENCH_REPLY_NIL;
    case BENCH_OP_INCR:
    case BENCH_OP_CAS:
    default:
        return r->type == BENCH_REPLY_INT;
    }
}

/* Account one reply to the oldest in-flight request. */
static void account_reply(struct conn *c, const struct bench_reply *r, uint64_t t)
{
    struct inflight *f = pop_inflight(c);
    struct phase_stats *s = &c->w->stats[f->phase];

    if (r->type == BENCH_REPLY_ERROR) {
        count_error(s, 0, r->str, r->len);
    } else if (!reply_expected((enum bench_op)f->op, r)) {
        count_error(s, KIND_UNEXPECTED, NULL, 0);
    } else {
        add_u64(&s->ops[f->op], 1);
        aegis__hist_record(&s->hist, t > f->sent_ns ? t - f->sent_ns : 0);
    }
}

/* Parse every complete reply in c->in; false if the connection was closed. */
static bool parse_replies(struct conn *c, uint64_t t)
{
    size_t off = 0;

    for (;;) {
        struct bench_reply r;
        long n = bench_resp_parse(c->in + off, c->in_len - off, &r);

        if (n == BENCH_RESP_MORE) {
            break;
        }
        if (n < 0 || c->q_sent == 0) {
            /* Garbage, or a reply to a request we have not finished sending. */
            close_conn(c, KIND_PROTOCOL);
            return false;
        }
        account_reply(c, &r, t);
        off += (size_t)n;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return true;
}

/* Make room for more input: a reply larger than the buffer doubles it (bounded by the
 * parser's bulk limit). */
static bool grow_in(struct conn *c)
{
    size_t cap = c->in_cap * 2;
    char *p;

    if (c->in_len < c->in_cap) {
        return true;
    }
    if (cap > (size_t)BENCH_RESP_BULK_MAX * 2) {
        return false;
    }
    p = realloc(c->in, cap);
    if (p == NULL) {
        return false;
    }
    c->in = p;
    c->in_cap = cap;
    return true;
}

static void on_readable(struct conn *c, enum bench_phase phase)
{
    ssize_t n;

    if (!grow_in(c)) {
        close_conn(c, KIND_PROTOCOL);
        return;
    }
    n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        close_conn(c, KIND_CLOSED);
        return;
    }
    c->in_len += (size_t)n;
    add_u64(&c->w->stats[phase].rx_bytes, (uint64_t)n);
    if (!parse_replies(c, now_ns())) {
        return;
    }
    fill_window(c, phase);
    flush_out(c, phase);
}

static void on_event(struct conn *c, uint32_t events, enum bench_phase phase)
{
    if (c->fd < 0) {
        return; /* Closed earlier in this batch of events. */
    }
    if (c->state == CONN_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            finish_connect(c, phase);
        }
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(c, phase);
    }
    if (c->fd >= 0 && (events & EPOLLOUT)) {
        flush_out(c, phase);
    }
}

/* Reconnect idle connections whose back-off expired; refill ready ones whose window has
 * room (after a phase change, or in --requests mode). Returns the epoll timeout in ms. */
static int service_conns(struct worker *w, enum bench_phase phase)
{
    uint64_t t = now_ns();
    unsigned i;

    for (i = 0; i < w->conns_count; i++) {
        struct conn *c = &w->conns[i];

        if (c->state == CONN_IDLE && t >= c->reconnect_at_ns && may_issue(w, phase)) {
            start_connect(c);
        } else if (c->state == CONN_READY && c->q_count < w->b->cfg.pipeline) {
            fill_window(c, phase);
            flush_out(c, phase);
        }
    }
    return 20;
}

static bool worker_finished(const struct worker *w, enum bench_phase phase)
{
    if (phase == PHASE_STOP) {
        return true;
    }
    return w->b->cfg.requests != 0 && phase == PHASE_MEASURE && w->budget == 0 &&
           w->pending == 0;
}

static void *worker_main(void *data)
{
    struct worker *w = data;
    struct epoll_event events[EVENTS_MAX];
    enum bench_phase phase = load_phase(w->b);
    int timeout = 0;

    /* The loop ends when the phase becomes STOP or this worker's --requests are done. */
    while (!worker_finished(w, phase)) {
        int i, n = epoll_wait(w->epfd, events, EVENTS_MAX, timeout);

        phase = load_phase(w->b);
        if (phase == PHASE_STOP) {
            break;
        }
        for (i = 0; i < n; i++) {
            on_event(events[i].data.ptr, events[i].events, phase);
        }
        timeout = service_conns(w, phase);
    }
    if (w->b->cfg.requests != 0) {
        __atomic_store_n(&w->done_ns, now_ns(), __ATOMIC_RELAXED);
        __atomic_add_fetch(&w->b->workers_done, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* What the report needs from one phase, summed over the workers. */
struct totals {
    struct aegis_hist *hist;
    uint64_t ops[BENCH_OP_COUNT];
    uint64_t ops_total;
    uint64_t issued;
    uint64_t errors;
    uint64_t tx_bytes;
    uint64_t rx_bytes;
    unsigned kinds_count;
    char kind_names[KINDS_MAX][KIND_NAME_MAX];
    uint64_t kinds[KINDS_MAX];
};

static void totals_add_kind(struct totals *t, const char *name, uint64_t n)
{
    unsigned i;

    if (n == 0) {
        return;
    }
    for (i = 0; i < t->kinds_count; i++) {
        if (strcmp(t->kind_names[i], name) == 0) {
            t->kinds[i] += n;
            return;
        }
    }
    if (t->kinds_count == KINDS_MAX) {
        i = 0; /* Cannot happen with fewer than KINDS_MAX names per worker; keep a count. */
        while (strcmp(t->kind_names[i], "other_error") != 0 && i + 1 < KINDS_MAX) {
            i++;
        }
        t->kinds[i] += n;
        return;
    }
    snprintf(t->kind_names[t->kinds_count], KIND_NAME_MAX, "%s", name);
    t->kinds[t->kinds_count++] = n;
}

/* Sum phase @phase over every worker into @t (its histogram must exist). */
static void collect(struct bench *b, enum bench_phase phase, struct totals *t)
{
    struct aegis_hist *hist = t->hist;
    unsigned i, k, op;

    memset(t, 0, sizeof(*t));
    t->hist = hist;
    aegis__hist_reset(t->hist);
    for (i = 0; i < b->cfg.threads; i++) {
        struct phase_stats *s = &b->workers[i].stats[phase];
        uint32_t named = __atomic_load_n(&s->kinds_count, __ATOMIC_ACQUIRE);

        aegis__hist_merge(t->hist, &s->hist);
        for (op = 0; op < BENCH_OP_COUNT; op++) {
            t->ops[op] += load_u64(&s->ops[op]);
        }
        t->issued += load_u64(&s->issued);
        t->errors += load_u64(&s->errors);
        t->tx_bytes += load_u64(&s->tx_bytes);
        t->rx_bytes += load_u64(&s->rx_bytes);
        for (k = 0; k < KIND_FIXED_COUNT; k++) {
            totals_add_kind(t, fixed_kind_names[k], load_u64(&s->kinds[k]));
        }
        for (k = KIND_FIXED_COUNT; k < named; k++) {
            totals_add_kind(t, s->kind_names[k], load_u64(&s->kinds[k]));
        }
    }
    for (op = 0; op < BENCH_OP_COUNT; op++) {
        t->ops_total += t->ops[op];
    }
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* The once-a-second line: the last interval's rate and percentiles, from the difference
 * between this second's totals (@cur) and the last's (@prev, of the same phase; zero at a
 * phase's start). @scratch is a histogram to work in. Afterwards @prev holds @cur. */
static void print_progress(struct bench *b, enum bench_phase phase, struct totals *prev,
                           struct totals *cur, struct aegis_hist *scratch, double elapsed_s,
                           double interval_s)
{
    struct aegis_hist *keep;

    collect(b, phase, cur);
    aegis__hist_reset(scratch);
    aegis__hist_merge(scratch, cur->hist);
    aegis__hist_sub(scratch, prev->hist);
    printf("\r[%5.0fs] %-7s %10.0f ops/s  p50 %8.3f ms  p99 %8.3f ms  errors %" PRIu64
           "\033[K",
           elapsed_s, phase == PHASE_WARMUP ? "warmup" : "measure",
           (double)(cur->ops_total - prev->ops_total) / interval_s,
           ms(aegis__hist_percentile(scratch, 50.0)), ms(aegis__hist_percentile(scratch, 99.0)),
           cur->errors);
    fflush(stdout);
    keep = prev->hist;
    *prev = *cur;
    cur->hist = keep;
}

static uint64_t connect_failures(struct bench *b)
{
    uint64_t n = 0;
    unsigned i;

    for (i = 0; i < b->cfg.threads; i++) {
        n += load_u64(&b->workers[i].connect_failures);
    }
    return n;
}

/* Nothing connected yet and every client has failed to connect at least once. */
static bool hopeless(struct bench *b)
{
    return !__atomic_load_n(&b->ever_connected, __ATOMIC_RELAXED) &&
           connect_failures(b) >= b->cfg.clients;
}

static bool requests_done(struct bench *b)
{
    return b->cfg.requests != 0 &&
           __atomic_load_n(&b->workers_done, __ATOMIC_ACQUIRE) == b->cfg.threads;
}

/* Let phase @phase run for @length_ns (0: until the --requests are done), printing
 * progress every second on a terminal. False if the run must stop early. */
static bool run_phase(struct bench *b, enum bench_phase phase, uint64_t length_ns,
                      uint64_t run_start_ns)
{
    struct aegis_hist *h[3] = {aegis__hist_create(NULL), aegis__hist_create(NULL),
                               aegis__hist_create(NULL)};
    struct totals prev = {.hist = h[0]}, cur = {.hist = h[1]};
    uint64_t start = now_ns(), last = start, t = start;
    bool ok = true;

    if (h[0] == NULL || h[1] == NULL || h[2] == NULL) {
        fprintf(stderr, "aegis-bench: out of memory\n");
        exit(1);
    }
    __atomic_store_n(&b->phase, (uint32_t)phase, __ATOMIC_RELEASE);
    /* Bounded: every pass sleeps up to 100 ms, and the phase ends at its length, at
     * --requests completion, on SIGINT, or when no connection can be made. */
    while (length_ns == 0 ? !requests_done(b) : t - start < length_ns) {
        uint64_t nap = 100 * 1000000ull;

        if (length_ns != 0 && length_ns - (t - start) < nap) {
            nap = length_ns - (t - start); /* End the phase on time, not on a 100 ms tick. */
        }
        sleep_ns(nap);
        t = now_ns();
        if (interrupted || hopeless(b)) {
            ok = false;
            break;
        }
        if (b->cfg.progress && t - last >= 1000000000ull) {
            print_progress(b, phase, &prev, &cur, h[2], (double)(t - run_start_ns) / 1e9,
                           (double)(t - last) / 1e9);
            last = t;
        }
    }
    aegis__hist_destroy(NULL, h[0]);
    aegis__hist_destroy(NULL, h[1]);
    aegis__hist_destroy(NULL, h[2]);
    return ok;
}

static void setup_conn(struct bench *b, struct worker *w, struct conn *c, unsigned id)
{
    c->w = w;
    c->id = id;
    c->target = id % b->cfg.targets_count;
    c->fd = -1;
    c->state = CONN_IDLE;
    aegis__rng_seed(&c->rng, b->cfg.seed * 0x9e3779b97f4a7c15ull + id + 1);
    c->out_cap = b->request_max * b->cfg.pipeline;
    c->out = xcalloc(1, c->out_cap);
    c->in_cap = (size_t)b->cfg.value_size + REQUEST_EXTRA;
    c->in_cap = c->in_cap < IN_BUF_MIN ? IN_BUF_MIN : c->in_cap;
    c->in = xcalloc(1, c->in_cap);
    c->q = xcalloc(b->cfg.pipeline, sizeof(*c->q));
}

static void setup_workers(struct bench *b)
{
    const struct bench_config *cfg = &b->cfg;
    unsigned i, id;

    b->request_max = (size_t)cfg->value_size * (cfg->weights[BENCH_OP_CAS] ? 2 : 1) +
                     REQUEST_EXTRA;
    b->workers = xcalloc(cfg->threads, sizeof(*b->workers));
    for (i = 0; i < cfg->threads; i++) {
        struct worker *w = &b->workers[i];

        w->b = b;
        w->index = i;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->epfd < 0) {
            fprintf(stderr, "aegis-bench: epoll_create1: %s\n", strerror(errno));
            exit(1);
        }
        aegis__hist_init(&w->stats[0].hist);
        aegis__hist_init(&w->stats[1].hist);
        w->conns_count = cfg->clients / cfg->threads + (i < cfg->clients % cfg->threads);
        w->conns = xcalloc(w->conns_count, sizeof(*w->conns));
        w->budget = cfg->requests / cfg->threads + (i < cfg->requests % cfg->threads);
    }
    /* Connection id i runs on thread i mod threads and talks to target i mod targets. */
    for (id = 0; id < cfg->clients; id++) {
        struct worker *w = &b->workers[id % cfg->threads];

        setup_conn(b, w, &w->conns[id / cfg->threads], id);
    }
}

static void teardown_workers(struct bench *b)
{
    unsigned i, j;

    for (i = 0; i < b->cfg.threads; i++) {
        struct worker *w = &b->workers[i];

        for (j = 0; j < w->conns_count; j++) {
            if (w->conns[j].fd >= 0) {
                close(w->conns[j].fd);
            }
            free(w->conns[j].out);
            free(w->conns[j].in);
            free(w->conns[j].q);
        }
        free(w->conns);
        close(w->epfd);
    }
    free(b->workers);
}

/* --breakdown: the nodes whose stage histograms are read (every target, or every spawned
 * node). */
static struct breakdown_node breakdown_nodes[BREAKDOWN_NODES_MAX];
static unsigned breakdown_count;

static void breakdown_setup(const struct bench *b, const struct bench_cluster *cluster)
{
    unsigned count = cluster != NULL ? cluster->nodes : b->cfg.targets_count;

    for (unsigned i = 0; i < count && breakdown_count < BREAKDOWN_NODES_MAX; i++) {
        struct breakdown_node *n = &breakdown_nodes[breakdown_count++];

        if (cluster != NULL) {
            snprintf(n->host, sizeof(n->host), "127.0.0.1");
            snprintf(n->port, sizeof(n->port), "%u", cluster->client_ports[i]);
        } else {
            snprintf(n->host, sizeof(n->host), "%s", b->cfg.targets[i].host);
            snprintf(n->port, sizeof(n->port), "%s", b->cfg.targets[i].port);
        }
    }
}

/* Run warmup and measurement. Returns false if interrupted or nothing could connect. */
static bool run(struct bench *b)
{
    uint64_t start = now_ns();
    unsigned i;
    bool ok = true;

    b->phase = b->cfg.warmup_s > 0 ? PHASE_WARMUP : PHASE_MEASURE;
    b->measure_start_ns = start;
    for (i = 0; i < b->cfg.threads; i++) {
        if (pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i]) != 0) {
            fprintf(stderr, "aegis-bench: pthread_create failed\n");
            exit(1);
        }
    }
    if (b->cfg.warmup_s > 0) {
        ok = run_phase(b, PHASE_WARMUP, (uint64_t)(b->cfg.warmup_s * 1e9), start);
    }
    if (ok && b->cfg.breakdown) {
        breakdown_reset(breakdown_nodes, breakdown_count); /* INFO latency counts from here. */
    }
    b->measure_start_ns = now_ns();
    if (ok) {
        ok = run_phase(b, PHASE_MEASURE,
                       b->cfg.requests ? 0 : (uint64_t)(b->cfg.duration_s * 1e9), start);
    }
    b->measure_end_ns = now_ns();
    __atomic_store_n(&b->phase, (uint32_t)PHASE_STOP, __ATOMIC_RELEASE);
    for (i = 0; i < b->cfg.threads; i++) {
        pthread_join(b->workers[i].thread, NULL);
    }
    if (b->cfg.requests && ok) {
        /* --requests: the run ends when the last worker resolved its last request. */
        b->measure_end_ns = b->measure_start_ns;
        for (i = 0; i < b->cfg.threads; i++) {
            if (b->workers[i].done_ns > b->measure_end_ns) {
                b->measure_end_ns = b->workers[i].done_ns;
            }
        }
    }
    if (b->cfg.progress) {
        printf("\n");
    }
    return ok;
}

static void format_targets(const struct bench_config *cfg, char *buf, size_t cap)
{
    size_t len = 0;
    unsigned i;

    buf[0] = '\0';
    for (i = 0; i < cfg->targets_count && len < cap; i++) {
        const char *h = cfg->targets[i].host;
        bool v6 = strchr(h, ':') != NULL;

        len += (size_t)snprintf(buf + len, cap - len, "%s%s%s%s:%s", i ? " " : "",
                                v6 ? "[" : "", h, v6 ? "]" : "", cfg->targets[i].port);
    }
}

static void format_ratio(const struct bench_config *cfg, char *buf, size_t cap)
{
    snprintf(buf, cap, "set=%u,get=%u,incr=%u,cas=%u", cfg->weights[BENCH_OP_SET],
             cfg->weights[BENCH_OP_GET], cfg->weights[BENCH_OP_INCR],
             cfg->weights[BENCH_OP_CAS]);
}

struct report {
    struct totals t;
    double duration_s;
    double ops_per_s;
    double mb_sent_per_s;
    double mb_received_per_s;
    const struct bench_cluster *cluster; /* --spawn: the cluster; else NULL. */
    const struct bench_baseline *baseline; /* --baseline: this machine's; else NULL. */
    struct bench_targets targets;          /* --baseline: the run against issue 7's. */
};

/* The --baseline lines: this machine's fdatasync, round trip and append bandwidth, then
 * the run against each target of issue 7 (judged only under the target's settings). */
static void print_baseline(const struct report *r)
{
    const struct bench_baseline *bl = r->baseline;
    const struct bench_targets *t = &r->targets;

    printf("  baseline    fdatasync %.3f ms (p99 %.3f, 128 B append), loopback RTT %.3f ms "
           "(medians of %u, %u)\n",
           bl->fsync_us / 1e3, bl->fsync_p99_us / 1e3, bl->rtt_us / 1e3, bl->fsync_samples,
           bl->rtt_samples);
    printf("              append+fdatasync 64 KiB %.1f MB/s, 1 MiB %.1f MB/s, in %s\n",
           bl->bw_small_mb_s, bl->bw_large_mb_s, bl->dir);
    printf("  target p50  %.3f ms vs 1.2 x (fdatasync + RTT) = %.3f ms (%.2fx): %s\n",
           t->p50_us.measured / 1e3, t->p50_us.limit / 1e3,
           t->p50_us.measured / t->p50_us.limit, bench_target_verdict(&t->p50_us));
    printf("  target p99  %.3f ms vs 2 ms (%.2fx): %s\n", t->p99_us.measured / 1e3,
           t->p99_us.measured / t->p99_us.limit, bench_target_verdict(&t->p99_us));
    printf("  target MB/s %.1f MB/s of values vs 70%% of %.1f = %.1f MB/s (%.2fx): %s\n",
           t->bw_mb_s.measured, bench_baseline_disk_mb_s(bl), t->bw_mb_s.limit,
           t->bw_mb_s.limit > 0 ? t->bw_mb_s.measured / t->bw_mb_s.limit : 0.0,
           bench_target_verdict(&t->bw_mb_s));
}

static void print_report(const struct bench *b, const struct report *r)
{
    const struct bench_config *cfg = &b->cfg;
    const struct aegis_hist *h = r->t.hist;
    char targets[4096], ratio[128];
    unsigned k;

    format_targets(cfg, targets, sizeof(targets));
    format_ratio(cfg, ratio, sizeof(ratio));
    printf("aegis-bench report\n");
    if (r->cluster != NULL) {
        printf("  cluster     %u aegisd nodes, fsync %s, leader %u\n", r->cluster->nodes,
               cfg->fsync, r->cluster->leader);
    }
    printf("  targets     %s\n", targets);
    printf("  clients     %u x pipeline %u on %u thread%s\n", cfg->clients, cfg->pipeline,
           cfg->threads, cfg->threads == 1 ? "" : "s");
    printf("  workload    value %" PRIu64 " B, keys %" PRIu64 ", ratio %s, seed %" PRIu64 "\n",
           cfg->value_size, cfg->keys, ratio, cfg->seed);
    printf("  duration    %.2f s measured after %.1f s warmup\n", r->duration_s, cfg->warmup_s);
    printf("  requests    %" PRIu64 " issued, %" PRIu64 " ok, %" PRIu64 " errors\n",
           r->t.issued, r->t.ops_total, r->t.errors);
    printf("  throughput  %.0f ops/s, %.2f MB/s sent, %.2f MB/s received\n", r->ops_per_s,
           r->mb_sent_per_s, r->mb_received_per_s);
    printf("  latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f)\n",
           ms(aegis__hist_percentile(h, 50.0)), ms(aegis__hist_percentile(h, 90.0)),
           ms(aegis__hist_percentile(h, 99.0)), ms(aegis__hist_percentile(h, 99.9)),
           ms(aegis__hist_max(h)), aegis__hist_mean(h) / 1e6);
    printf("  errors     ");
    if (r->t.errors == 0) {
        printf(" none");
    }
    for (k = 0; k < r->t.kinds_count; k++) {
        printf(" %s %" PRIu64 "%s", r->t.kind_names[k], r->t.kinds[k],
               k + 1 < r->t.kinds_count ? "," : "");
    }
    printf("\n");
    if (r->baseline != NULL) {
        print_baseline(r);
    }
}

/* Write @s as a JSON string. Names and hosts are printable ASCII, but escape anyway. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\') {
            fprintf(f, "\\%c", ch);
        } else if (ch < 0x20) {
            fprintf(f, "\\u%04x", ch);
        } else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
}

static void json_settings(FILE *f, const struct bench *b)
{
    const struct bench_config *cfg = &b->cfg;
    unsigned i;

    fprintf(f, "  \"settings\": {\n    \"targets\": [");
    for (i = 0; i < cfg->targets_count; i++) {
        char t[BENCH_HOST_MAX + 16];

        snprintf(t, sizeof(t), "%s:%s", cfg->targets[i].host, cfg->targets[i].port);
        fprintf(f, "%s", i ? ", " : "");
        json_string(f, t);
    }
    fprintf(f, "],\n    \"clients\": %u,\n    \"pipeline\": %u,\n    \"threads\": %u,\n",
            cfg->clients, cfg->pipeline, cfg->threads);
    fprintf(f, "    \"value_size\": %" PRIu64 ",\n    \"keys\": %" PRIu64 ",\n", cfg->value_size,
            cfg->keys);
    fprintf(f, "    \"ratio\": {\"set\": %u, \"get\": %u, \"incr\": %u, \"cas\": %u},\n",
            cfg->weights[BENCH_OP_SET], cfg->weights[BENCH_OP_GET],
            cfg->weights[BENCH_OP_INCR], cfg->weights[BENCH_OP_CAS]);
    fprintf(f, "    \"warmup_s\": %.3f,\n    \"duration_s\": %.3f,\n", cfg->warmup_s,
            cfg->duration_s);
    fprintf(f, "    \"requests\": %" PRIu64 ",\n    \"seed\": %" PRIu64 ",\n", cfg->requests,
            cfg->seed);
    fprintf(f, "    \"spawn\": %u,\n    \"fsync\": ", cfg->spawn);
    if (cfg->spawn) {
        json_string(f, cfg->fsync);
    } else {
        fprintf(f, "null");
    }
    fprintf(f, "\n  },\n");
}

static void json_results(FILE *f, const struct report *r)
{
    const struct aegis_hist *h = r->t.hist;
    unsigned k;

    fprintf(f, "  \"results\": {\n    \"duration_s\": %.6f,\n", r->duration_s);
    fprintf(f, "    \"ops\": %" PRIu64 ",\n    \"issued\": %" PRIu64 ",\n", r->t.ops_total,
            r->t.issued);
    fprintf(f, "    \"errors\": %" PRIu64 ",\n", r->t.errors);
    fprintf(f, "    \"ops_per_sec\": %.1f,\n    \"mb_per_sec_sent\": %.3f,\n", r->ops_per_s,
            r->mb_sent_per_s);
    fprintf(f, "    \"mb_per_sec_received\": %.3f,\n", r->mb_received_per_s);
    fprintf(f, "    \"ops_by_command\": {");
    for (k = 0; k < BENCH_OP_COUNT; k++) {
        fprintf(f, "%s\"%s\": %" PRIu64, k ? ", " : "", bench_op_names[k], r->t.ops[k]);
    }
    fprintf(f, "},\n    \"errors_by_kind\": {");
    for (k = 0; k < r->t.kinds_count; k++) {
        fprintf(f, "%s", k ? ", " : "");
        json_string(f, r->t.kind_names[k]);
        fprintf(f, ": %" PRIu64, r->t.kinds[k]);
    }
    fprintf(f, "},\n    \"latency_us\": {\"min\": %.3f, \"p50\": %.3f, \"p90\": %.3f, ",
            (double)aegis__hist_min(h) / 1e3, (double)aegis__hist_percentile(h, 50.0) / 1e3,
            (double)aegis__hist_percentile(h, 90.0) / 1e3);
    fprintf(f, "\"p99\": %.3f, \"p99_9\": %.3f, \"p99_99\": %.3f, \"max\": %.3f, ",
            (double)aegis__hist_percentile(h, 99.0) / 1e3,
            (double)aegis__hist_percentile(h, 99.9) / 1e3,
            (double)aegis__hist_percentile(h, 99.99) / 1e3, (double)aegis__hist_max(h) / 1e3);
    fprintf(f, "\"mean\": %.3f, \"stddev\": %.3f},\n", aegis__hist_mean(h) / 1e3,
            aegis__hist_stddev(h) / 1e3);
    fprintf(f, "    \"histogram\": {\"sub_bucket_bits\": %u, \"relative_error\": %.6f}\n  }\n",
            AEGIS_HIST_SUB_BITS, AEGIS_HIST_REL_ERROR);
}

static void json_target(FILE *f, const char *name, const struct bench_target_check *c,
                        bool last)
{
    fprintf(f, "      \"%s\": {\"limit\": %.3f, \"measured\": %.3f, \"applies\": %s, "
            "\"met\": %s}%s\n",
            name, c->limit, c->measured, c->applies ? "true" : "false",
            c->met ? "true" : "false", last ? "" : ",");
}

/* --baseline: "baseline" (this machine) and "targets" (the run against issue 7's). */
static void json_baseline(FILE *f, const struct report *r)
{
    const struct bench_baseline *bl = r->baseline;

    fprintf(f, "  \"baseline\": {\n    \"dir\": ");
    json_string(f, bl->dir);
    fprintf(f, ",\n    \"fdatasync_us\": %.3f,\n    \"fdatasync_p99_us\": %.3f,\n",
            bl->fsync_us, bl->fsync_p99_us);
    fprintf(f, "    \"fdatasync_samples\": %u,\n", bl->fsync_samples);
    fprintf(f, "    \"loopback_rtt_us\": %.3f,\n    \"loopback_rtt_samples\": %u,\n",
            bl->rtt_us, bl->rtt_samples);
    fprintf(f, "    \"append_64k_mb_per_sec\": %.3f,\n    \"append_1m_mb_per_sec\": %.3f,\n",
            bl->bw_small_mb_s, bl->bw_large_mb_s);
    fprintf(f, "    \"disk_mb_per_sec\": %.3f,\n    \"targets\": {\n",
            bench_baseline_disk_mb_s(bl));
    json_target(f, "p50_us_vs_1.2x_fdatasync_plus_rtt", &r->targets.p50_us, false);
    json_target(f, "p99_us_vs_2ms", &r->targets.p99_us, false);
    json_target(f, "value_mb_per_sec_vs_70pct_disk", &r->targets.bw_mb_s, true);
    fprintf(f, "    }\n  },\n");
}

static int write_json(const struct bench *b, const struct report *r, const char *path)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"tool\": \"aegis-bench\",\n  \"format\": 1,\n");
    json_settings(f, b);
    if (r->cluster != NULL) {
        fprintf(f, "  \"cluster\": {\"nodes\": %u, \"leader\": %u},\n", r->cluster->nodes,
                r->cluster->leader);
    }
    if (r->baseline != NULL) {
        json_baseline(f, r);
    }
    json_results(f, r);
    fprintf(f, "}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The value reported at a percentile line: the highest value of the bucket where the
 * cumulative count reaches the line's rank (HdrHistogram's "highest equivalent value"),
 * capped at the recorded max. */
static void hgrm_line(FILE *f, const struct aegis_hist *h, double level, uint64_t *seen_out)
{
    uint64_t rank = (uint64_t)ceil(level / 100.0 * (double)h->count), seen = 0;
    struct aegis_hist_iter it;
    struct aegis_hist_bucket bk = {0};

    rank = rank < 1 ? 1 : (rank > h->count ? h->count : rank);
    aegis__hist_iter_init(&it);
    while (aegis__hist_iter_next(h, &it, &bk)) {
        seen = bk.cumulative;
        if (seen >= rank) {
            break;
        }
    }
    if (level < 100.0) {
        fprintf(f, "%12.3f %2.12f %10" PRIu64 " %14.2f\n",
                ms(bk.hi < h->max ? bk.hi : h->max), level / 100.0, seen,
                1.0 / (1.0 - level / 100.0));
    } else {
        fprintf(f, "%12.3f %2.12f %10" PRIu64 "\n", ms(h->max), 1.0, seen);
    }
    *seen_out = seen;
}

/* HdrHistogram's percentile-distribution text (as its outputPercentileDistribution and
 * wrk2 write it, values in milliseconds, 5 ticks per half distance), which HdrHistogram's
 * plotFiles.html and hdr-plot read. */
static int write_histogram(const struct aegis_hist *h, const char *path)
{
    FILE *f = fopen(path, "w");
    double level = 0.0;
    uint64_t seen = 0;
    int lines;

    if (f == NULL) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
            "1/(1-Percentile)");
    /* Bounded: the step halves every time the remaining distance to 100% halves, and the
     * walk ends once the rank reaches the last sample (or after 2000 lines). */
    for (lines = 0; h->count > 0 && lines < 2000; lines++) {
        double ticks = 5.0 * pow(2.0, floor(log2(100.0 / (100.0 - level))) + 1.0);

        hgrm_line(f, h, level, &seen);
        if (seen >= h->count) {
            break;
        }
        level += 100.0 / ticks;
    }
    if (h->count > 0) {
        hgrm_line(f, h, 100.0, &seen);
    }
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", aegis__hist_mean(h) / 1e6,
            aegis__hist_stddev(h) / 1e6);
    fprintf(f, "#[Max     = %12.3f, Total count    = %12" PRIu64 "]\n", ms(aegis__hist_max(h)),
            h->count);
    fprintf(f, "#[Buckets = %12u, SubBuckets     = %12u]\n",
            AEGIS_HIST_BUCKETS / AEGIS_HIST_SUB_COUNT, AEGIS_HIST_SUB_COUNT);
    if (fclose(f) != 0) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: aegis-bench [options]\n"
        "A RESP2 load generator for aegisd or any Redis-protocol server.\n\n"
        "Targets (connections are spread over every target, round robin):\n"
        "  --host H            server host (repeatable; default 127.0.0.1)\n"
        "  --port P            server port (repeatable; default 6379); --host and --port\n"
        "                      lists pair up in order, or a single one applies to all\n"
        "  --target H:P        a target (repeatable; [v6addr]:port for IPv6)\n"
        "  --spawn N           start a local N-node aegisd cluster (aegisd next to this\n"
        "                      program) in a temporary directory, run against its leader,\n"
        "                      then stop it and remove the directory\n"
        "  --fsync MODE        with --spawn: durability mode, batch (default) or none\n"
        "  --spawn-all         with --spawn: spread connections over every node\n"
        "  --spawn-arg ARG     with --spawn: pass ARG to every aegisd (repeatable)\n"
        "  --spawn-keep        with --spawn: keep the directory (node logs) afterwards\n\n"
        "Load:\n"
        "  --clients N         connections (default 50)\n"
        "  --pipeline N        requests in flight per connection (default 16)\n"
        "  --threads N         worker threads, each with its own epoll loop (default 1)\n"
        "  --value-size B      value bytes for SET and CAS (default 128)\n"
        "  --keys N            key space, keys chosen uniformly (default 100000)\n"
        "  --ratio SPEC        command mix, 'S:G[:I[:C]]' (set:get:incr:cas weights, e.g.\n"
        "                      1:0, 1:1) or 'set=70,get=20,incr=10,cas=0' (default 1:0)\n"
        "  --duration S        seconds to measure (default 10)\n"
        "  --warmup S          seconds of load before measuring (default 1)\n"
        "  --requests N        measure N requests instead of a duration\n"
        "  --seed N            seed for keys and commands (default 1)\n\n"
        "Output:\n"
        "  --json FILE         write the whole report with every setting as JSON\n"
        "  --histogram FILE    write the latency distribution (HdrHistogram percentile\n"
        "                      format, milliseconds) for plotting\n"
        "  --baseline          measure this machine's fdatasync, loopback round trip and\n"
        "                      append bandwidth before the run and judge the run against\n"
        "                      the performance targets (default with --spawn)\n"
        "  --no-baseline       do not\n"
        "  --baseline-dir DIR  where to measure fdatasync (default: the --spawn directory,\n"
        "                      else $TMPDIR or /tmp)\n"
        "  --progress          print the once-a-second line even when not on a terminal\n"
        "  --quiet             never print the once-a-second line\n"
        "  --breakdown         after the run, print where the time went on each node, stage\n"
        "                      by stage (aegisd's INFO latency; reset when measuring starts)\n"
        "  --help              this text\n"
        "  --version           print the version and exit\n\n"
        "Exit status: 0 after a run, 1 on I/O errors or if no connection could be made,\n"
        "2 on bad usage, 3 if --spawn could not start the cluster.\n");
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_TARGET, OPT_CLIENTS, OPT_PIPELINE, OPT_THREADS,
    OPT_VALUE_SIZE, OPT_KEYS, OPT_RATIO, OPT_DURATION, OPT_WARMUP, OPT_REQUESTS, OPT_SEED,
    OPT_JSON, OPT_HISTOGRAM, OPT_SPAWN, OPT_FSYNC, OPT_SPAWN_ALL, OPT_SPAWN_ARG,
    OPT_SPAWN_KEEP, OPT_PROGRESS, OPT_QUIET, OPT_HELP, OPT_BREAKDOWN, OPT_BASELINE,
    OPT_NO_BASELINE, OPT_BASELINE_DIR, OPT_VERSION
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"target", required_argument, NULL, OPT_TARGET},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"pipeline", required_argument, NULL, OPT_PIPELINE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
    {"keys", required_argument, NULL, OPT_KEYS},
    {"ratio", required_argument, NULL, OPT_RATIO},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"requests", required_argument, NULL, OPT_REQUESTS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"json", required_argument, NULL, OPT_JSON},
    {"histogram", required_argument, NULL, OPT_HISTOGRAM},
    {"spawn", required_argument, NULL, OPT_SPAWN},
    {"fsync", required_argument, NULL, OPT_FSYNC},
    {"spawn-all", no_argument, NULL, OPT_SPAWN_ALL},
    {"spawn-arg", required_argument, NULL, OPT_SPAWN_ARG},
    {"spawn-keep", no_argument, NULL, OPT_SPAWN_KEEP},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {"breakdown", no_argument, NULL, OPT_BREAKDOWN},
    {"baseline", no_argument, NULL, OPT_BASELINE},
    {"no-baseline", no_argument, NULL, OPT_NO_BASELINE},
    {"baseline-dir", required_argument, NULL, OPT_BASELINE_DIR},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

struct arg_lists {
    const char *hosts[BENCH_TARGETS_MAX];
    const char *ports[BENCH_TARGETS_MAX];
    unsigned hosts_count, ports_count;
};

static void config_defaults(struct bench_config *c)
{
    memset(c, 0, sizeof(*c));
    c->clients = 50;
    c->pipeline = 16;
    c->threads = 1;
    c->value_size = 128;
    c->keys = 100000;
    c->weights[BENCH_OP_SET] = 1;
    c->duration_s = 10.0;
    c->warmup_s = 1.0;
    c->seed = 1;
    c->fsync = "batch";
    c->progress = -1;
    c->baseline = -1;
}

static bool set_unsigned(const char *arg, uint64_t lo, uint64_t hi, unsigned *out)
{
    uint64_t v;

    if (!bench_parse_u64(arg, lo, hi, &v)) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

/* Apply one option; false if its value is invalid. */
static bool apply_option(struct bench_config *c, struct arg_lists *l, int opt, const char *arg)
{
    switch (opt) {
    case OPT_HOST:
        return l->hosts_count < BENCH_TARGETS_MAX && (l->hosts[l->hosts_count++] = arg);
    case OPT_PORT:
        return l->ports_count < BENCH_TARGETS_MAX && (l->ports[l->ports_count++] = arg);
    case OPT_TARGET:
        return c->targets_count < BENCH_TARGETS_MAX &&
               bench_parse_target(arg, &c->targets[c->targets_count++]);
    case OPT_CLIENTS: return set_unsigned(arg, 1, 100000, &c->clients);
    case OPT_PIPELINE: return set_unsigned(arg, 1, 65536, &c->pipeline);
    case OPT_THREADS: return set_unsigned(arg, 1, 256, &c->threads);
    case OPT_VALUE_SIZE: return bench_parse_u64(arg, 0, 64u << 20, &c->value_size);
    case OPT_KEYS: return bench_parse_u64(arg, 1, 1000000000000ull, &c->keys);
    case OPT_RATIO: return bench_parse_ratio(arg, c->weights);
    case OPT_DURATION: return bench_parse_seconds(arg, &c->duration_s) && c->duration_s > 0;
    case OPT_WARMUP: return bench_parse_seconds(arg, &c->warmup_s);
    case OPT_REQUESTS: return bench_parse_u64(arg, 1, UINT64_MAX / 2, &c->requests);
    case OPT_SEED: return bench_parse_u64(arg, 0, UINT64_MAX, &c->seed);
    case OPT_JSON: c->json_path = arg; return true;
    case OPT_HISTOGRAM: c->histogram_path = arg; return true;
    case OPT_SPAWN: return set_unsigned(arg, 1, BENCH_SPAWN_MAX, &c->spawn);
    case OPT_FSYNC:
        c->fsync = arg;
        return strcmp(arg, "batch") == 0 || strcmp(arg, "none") == 0;
    case OPT_SPAWN_ALL: c->spawn_all = true; return true;
    case OPT_SPAWN_KEEP: c->spawn_keep = true; return true;
    case OPT_SPAWN_ARG:
        return c->spawn_args_count < BENCH_SPAWN_ARGS_MAX &&
               (c->spawn_args[c->spawn_args_count++] = arg);
    case OPT_PROGRESS: c->progress = 1; return true;
    case OPT_QUIET: c->progress = 0; return true;
    case OPT_BREAKDOWN: c->breakdown = true; return true;
    case OPT_BASELINE: c->baseline = 1; return true;
    case OPT_NO_BASELINE: c->baseline = 0; return true;
    case OPT_BASELINE_DIR: c->baseline_dir = arg; return true;
    default: return false;
    }
}

/* Parse the command line into @c. 0 on success, 2 on a usage error, -1 for --help, -2 for
 * --version. */
static int parse_args(int argc, char **argv, struct bench_config *c)
{
    struct arg_lists l = {.hosts_count = 0};
    int opt;

    config_defaults(c);
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (opt == OPT_HELP || opt == OPT_VERSION) {
            return opt == OPT_HELP ? -1 : -2;
        }
        if (opt == '?' || !apply_option(c, &l, opt, optarg)) {
            if (opt != '?') {
                fprintf(stderr, "aegis-bench: invalid value for --%s: '%s'\n",
                        long_options[opt - OPT_HOST].name, optarg ? optarg : "");
            }
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aegis-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!bench_pair_hosts_ports(c, l.hosts, l.hosts_count, l.ports, l.ports_count)) {
        fprintf(stderr, "aegis-bench: %u --host and %u --port values do not pair up\n",
                l.hosts_count, l.ports_count);
        return 2;
    }
    if (c->targets_count == 0 && c->spawn == 0) {
        bench_pair_hosts_ports(c, NULL, 0, NULL, 0);
        snprintf(c->targets[0].host, sizeof(c->targets[0].host), "127.0.0.1");
        snprintf(c->targets[0].port, sizeof(c->targets[0].port), "6379");
        c->targets_count = 1;
    }
    if (c->spawn != 0 && c->targets_count != 0) {
        fprintf(stderr, "aegis-bench: --spawn chooses its own targets\n");
        return 2;
    }
    if (c->threads > c->clients) {
        c->threads = c->clients;
    }
    for (opt = 0; opt < BENCH_OP_COUNT; opt++) {
        c->weights_total += c->weights[opt];
    }
    if (c->progress < 0) {
        c->progress = isatty(STDOUT_FILENO);
    }
    if (c->baseline < 0) {
        c->baseline = c->spawn != 0;
    }
    return 0;
}

static int resolve_targets(struct bench *b)
{
    unsigned i;

    for (i = 0; i < b->cfg.targets_count; i++) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int rv = getaddrinfo(b->cfg.targets[i].host, b->cfg.targets[i].port, &hints, &res);

        if (rv != 0 || res == NULL) {
            fprintf(stderr, "aegis-bench: cannot resolve %s:%s: %s\n", b->cfg.targets[i].host,
                    b->cfg.targets[i].port, gai_strerror(rv));
            return -1;
        }
        memcpy(&b->addrs[i], res->ai_addr, res->ai_addrlen);
        b->addr_lens[i] = res->ai_addrlen;
        freeaddrinfo(res);
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* Raise the open-file limit to the hard limit: one descriptor per client. */
static void raise_fd_limit(unsigned clients)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < clients + 64u) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Run the benchmark against the configured targets and report. Returns the exit status. */
static int bench_and_report(struct bench *b, const struct bench_cluster *cluster,
                            const struct bench_baseline *baseline)
{
    struct report r = {.cluster = cluster, .baseline = baseline};
    bool ok;
    int status = 0;

    if (resolve_targets(b) != 0) {
        return 1;
    }
    setup_workers(b);
    if (b->cfg.breakdown) {
        breakdown_setup(b, cluster);
    }
    ok = run(b);
    r.t.hist = aegis__hist_create(NULL);
    if (r.t.hist == NULL) {
        fprintf(stderr, "aegis-bench: out of memory\n");
        exit(1);
    }
    collect(b, PHASE_MEASURE, &r.t);
    r.duration_s = (double)(b->measure_end_ns - b->measure_start_ns) / 1e9;
    if (r.duration_s > 0) {
        r.ops_per_s = (double)r.t.ops_total / r.duration_s;
        r.mb_sent_per_s = (double)r.t.tx_bytes / r.duration_s / 1e6;
        r.mb_received_per_s = (double)r.t.rx_bytes / r.duration_s / 1e6;
    }
    if (baseline != NULL) {
        const struct aegis_hist *h = r.t.hist;
        double written = (double)(r.t.ops[BENCH_OP_SET] + r.t.ops[BENCH_OP_CAS]) *
                         (double)b->cfg.value_size;

        bench_baseline_targets(baseline, (double)aegis__hist_percentile(h, 50.0) / 1e3,
                               (double)aegis__hist_percentile(h, 99.0) / 1e3,
                               r.duration_s > 0 ? written / r.duration_s / 1e6 : 0.0,
                               b->cfg.clients, b->cfg.pipeline, b->cfg.value_size,
                               &r.targets);
    }
    if (!ok && !__atomic_load_n(&b->ever_connected, __ATOMIC_RELAXED)) {
        char targets[4096];

        format_targets(&b->cfg, targets, sizeof(targets));
        fprintf(stderr, "aegis-bench: could not connect to %s\n", targets);
        status = 1;
    } else {
        print_report(b, &r);
        if (b->cfg.breakdown) {
            breakdown_print(breakdown_nodes, breakdown_count);
        }
        if (b->cfg.json_path != NULL && write_json(b, &r, b->cfg.json_path) != 0) {
            status = 1;
        }
        if (b->cfg.histogram_path != NULL && write_histogram(r.t.hist,
                                                             b->cfg.histogram_path) != 0) {
            status = 1;
        }
    }
    aegis__hist_destroy(NULL, r.t.hist);
    teardown_workers(b);
    return status;
}

/* --baseline: measure before the load, in the nodes' directory when spawned. NULL when
 * not asked for, or when it failed (the benchmark still runs). */
static const struct bench_baseline *measure_baseline(const struct bench_config *cfg,
                                                     const struct bench_cluster *cluster,
                                                     struct bench_baseline *bl)
{
    const char *dir = cfg->baseline_dir;

    if (!cfg->baseline) {
        return NULL;
    }
    if (dir == NULL) {
        dir = cluster != NULL ? cluster->dir : getenv("TMPDIR");
    }
    if (dir == NULL || *dir == '\0') {
        dir = "/tmp";
    }
    return bench_baseline_measure(bl, dir) == 0 ? bl : NULL;
}

int main(int argc, char **argv)
{
    static struct bench b; /* Large (per-target addresses); zeroed, off the stack. */
    struct bench_cluster cluster;
    struct bench_baseline baseline;
    int rv = parse_args(argc, argv, &b.cfg);
    size_t i;

    if (rv == -2) {
        aegis__version_print("aegis-bench");
        return 0;
    }
    if (rv < 0) {
        usage(stdout);
        return 0;
    }
    if (rv > 0) {
        fprintf(stderr, "Try 'aegis-bench --help'.\n");
        return 2;
    }
    install_signals();
    raise_fd_limit(b.cfg.clients);
    b.value = xcalloc(1, (size_t)b.cfg.value_size + 1);
    for (i = 0; i < b.cfg.value_size; i++) {
        b.value[i] = 'x';
    }
    if (b.cfg.spawn != 0) {
        if (bench_cluster_start(&cluster, &b.cfg, &interrupted) != 0) {
            free(b.value);
            return 3;
        }
        rv = bench_and_report(&b, &cluster, measure_baseline(&b.cfg, &cluster, &baseline));
        bench_cluster_stop(&cluster, b.cfg.spawn_keep);
    } else {
        rv = bench_and_report(&b, NULL, measure_baseline(&b.cfg, NULL, &baseline));
    }
    free(b.value);
    return rv;
}
