/* SPDX-License-Identifier: MIT */
/* aegis-bench: a RESP2 load generator for aegisd or any Redis-protocol server.
 *
 * Design. --threads worker threads each run their own epoll loop over their share of the
 * --clients connections (non-blocking sockets, TCP_NODELAY); connection i goes to target
 * i mod targets and to thread i mod threads. Every connection keeps up to --pipeline
 * requests in flight: whenever replies arrive it refills the window and writes the new
 * requests with one send() (closed loop). A request's latency runs from just before the
 * send() that carried its last byte to the read() that brought its reply's last byte, and
 * goes into a log-linear histogram (engine/hist.h) owned by the worker. Replies are
 * matched to requests in order (RESP replies on a connection come in request order).
 *
 * Open loop (--rate, --sweep). Each connection has a schedule of intended send times
 * (rate / clients per second, even or exponential gaps), staggered across connections. A
 * request is issued when its time has come and the window has room, stamped with its
 * intended time, and its latency runs from that time, not from its send: a server stall
 * that fills the window makes the schedule fall behind, and every request that waited in
 * the client counts the wait (coordinated omission corrected, as wrk2 does). The worker
 * sleeps until the next intended send (epoll_pwait2, ns timeout). How far the schedule is
 * behind when measuring ends tells whether the rate was reached.
 *
 * Phases. The main thread drives a global phase: WARMUP (--warmup seconds), MEASURE
 * (--duration seconds, or until --requests requests have completed), STOP. A request
 * belongs to the phase in which it was issued and is counted in that phase's statistics
 * only, so no reset is ever needed: each worker keeps one set of statistics per phase, and
 * the main thread reads them (relaxed atomic loads, hist merge) without locks, once a
 * second (the per-second series and the progress line) and for the final report.
 * Requests still in flight at STOP are neither counted nor timed. Once a second while
 * measuring, the main thread also reads every aegisd target's INFO counters of leader
 * changes and snapshots, to mark them as events.
 *
 * Runs. A run is workers up, warmup, measure, workers down. --repeat N makes N runs (the
 * medians and their noise are reported); --sweep one run per rate until a rate misses
 * its SLO. The outputs (report, JSON schema 2, CSV, SVG, HdrHistogram text) are written
 * from plain result data by cmd/bench_output.h; `aegis-bench compare` is
 * cmd/bench_compare.h; the workload generators are cmd/bench_workload.h.
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
 * Commands (keys are "key:" plus 12 digits, over --keys by --distribution; values are
 * --value-size bytes of 'x', the size fixed or drawn per request): SET key value; GET key;
 * INCR counter:<12 digits> (a key space of its own, so INCR never meets a non-integer
 * value); CAS key value value (aegisd's compare-and-swap: swaps, to the same value, where
 * the key holds a benchmark value). */
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

#include "cmd/bench_args.h"
#include "cmd/bench_baseline.h"
#include "cmd/bench_breakdown.h"
#include "cmd/bench_compare.h"
#include "cmd/bench_config.h"
#include "cmd/bench_output.h"
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

static const char *const fixed_kind_names[KIND_FIXED_COUNT] = {
    "connect", "closed", "lost", "protocol", "unexpected", "other_error"};

#define RECONNECT_NS   (100 * 1000000ull)
#define EVENTS_MAX     64
#define KEY_DIGITS     12
#define REQUEST_EXTRA  128 /* Bytes of a request beyond its values: headers, key, CRLFs. */
#define IN_BUF_MIN     (64 * 1024)
#define BENCH_EVENTS_MAX 64

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
    uint64_t intended_ns; /* --rate: when the schedule said to send it; else 0. */
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
    struct bench_keys keys; /* Key choice (and "latest"'s sequence). */
    uint64_t next_ns;       /* --rate: the intended send time of the next request. */
    double gap_ns;          /* --rate: mean time between this connection's sends. */
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
    struct bench_zipf zipf; /* Zipfian ranks over the key space. */
    size_t request_max; /* Bytes of the largest request the mix can encode. */
    struct worker *workers;
    uint32_t phase;          /* enum bench_phase; main stores (release), workers load. */
    uint32_t ever_connected; /* Set by any worker on its first established connection. */
    uint32_t workers_done;   /* --requests: workers that finished, atomic increment. */
    uint64_t measure_start_ns;
    uint64_t measure_end_ns;
    uint64_t schedule_start_ns; /* --rate: when the connections' schedules begin. */
    uint64_t lag_ns;            /* --rate: the schedule's lag when measuring ended. */
    struct bench_second *series; /* The measured phase, second by second. */
    size_t series_count, series_cap;
    struct svg_event events[BENCH_EVENTS_MAX]; /* Seen while measuring. */
    size_t events_count;
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
    uint64_t key = bench_key_next(&c->keys, &c->rng, op == BENCH_OP_SET);
    size_t vlen = (size_t)bench_vsize_next(&b->cfg.vsize, &c->rng);
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

/* --rate: the time from one intended send to the next, fixed or exponential (Poisson
 * arrivals) with the same mean. */
static uint64_t next_gap(struct conn *c)
{
    double u;

    if (!c->w->b->cfg.poisson) {
        return (uint64_t)c->gap_ns;
    }
    u = bench_rng_unit(&c->rng);
    return (uint64_t)(-log(1.0 - u) * c->gap_ns);
}

/* Fill the connection's window up to --pipeline requests. With --rate only the requests
 * whose intended send time has come, each stamped with that time: a request that waits
 * for room in the window is late, and its latency counts from when it should have left. */
static void fill_window(struct conn *c, enum bench_phase phase)
{
    struct worker *w = c->w;
    unsigned depth = w->b->cfg.pipeline;
    bool open_loop = w->b->cfg.rate > 0;
    uint64_t t = open_loop ? now_ns() : 0;

    while (c->q_count < depth && may_issue(w, phase)) {
        struct inflight *f = &c->q[(c->q_head + c->q_count) % depth];

        if (open_loop) {
            if (c->next_ns > t) {
                break;
            }
            f->intended_ns = c->next_ns;
            c->next_ns += next_gap(c);
        } else {
            f->intended_ns = 0;
        }
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
        uint64_t from = f->intended_ns != 0 && !c->w->b->cfg.from_sent ? f->intended_ns
                                                                         : f->sent_ns;

        add_u64(&s->ops[f->op], 1);
        aegis__hist_record(&s->hist, t > from ? t - from : 0);
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

#define SERVICE_NS (20 * 1000000ull) /* Longest wait between passes over the connections. */

/* Reconnect idle connections whose back-off expired; refill ready ones whose window has
 * room (after a phase change, in --requests mode, or when --rate's schedule says so).
 * Returns how long the event loop may wait, in ns: until the next intended send. */
static uint64_t service_conns(struct worker *w, enum bench_phase phase)
{
    uint64_t t = now_ns(), wait = SERVICE_NS;
    unsigned i;

    for (i = 0; i < w->conns_count; i++) {
        struct conn *c = &w->conns[i];

        if (c->state == CONN_IDLE && t >= c->reconnect_at_ns && may_issue(w, phase)) {
            start_connect(c);
        } else if (c->state == CONN_READY && c->q_count < w->b->cfg.pipeline) {
            fill_window(c, phase);
            flush_out(c, phase);
            if (w->b->cfg.rate > 0 && c->fd >= 0 && c->q_count < w->b->cfg.pipeline) {
                uint64_t now = now_ns();

                wait = c->next_ns <= now ? 0 : (c->next_ns - now < wait ? c->next_ns - now : wait);
            }
        }
    }
    return wait;
}

/* epoll_wait with a timeout in ns (epoll_pwait2; --rate needs better than 1 ms), falling
 * back to a millisecond timeout, rounded up, on kernels without it. */
static int wait_events(int epfd, struct epoll_event *events, uint64_t timeout_ns)
{
    static int no_pwait2;
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000ull),
                          .tv_nsec = (long)(timeout_ns % 1000000000ull)};

    if (!__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
        int n = epoll_pwait2(epfd, events, EVENTS_MAX, &ts, NULL);

        if (n >= 0 || errno != ENOSYS) {
            return n;
        }
        __atomic_store_n(&no_pwait2, 1, __ATOMIC_RELAXED);
    }
    return epoll_wait(epfd, events, EVENTS_MAX, (int)((timeout_ns + 999999) / 1000000));
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
    uint64_t timeout = 0;

    /* The loop ends when the phase becomes STOP or this worker's --requests are done. */
    while (!worker_finished(w, phase)) {
        int i, n = wait_events(w->epfd, events, timeout);

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

/* Once a second: the last interval's rate and percentiles, from the difference between
 * this second's totals (@cur) and the last's (@prev, of the same phase; zero at a phase's
 * start), recorded in the series while measuring and printed as the progress line if
 * asked. @scratch is a histogram to work in. Afterwards @prev holds @cur. */
static void sample_second(struct bench *b, enum bench_phase phase, struct totals *prev,
                          struct totals *cur, struct aegis_hist *scratch, uint64_t t,
                          double elapsed_s, double interval_s)
{
    struct aegis_hist *keep;
    double p50, p99;

    collect(b, phase, cur);
    aegis__hist_reset(scratch);
    aegis__hist_merge(scratch, cur->hist);
    aegis__hist_sub(scratch, prev->hist);
    p50 = (double)aegis__hist_percentile(scratch, 50.0);
    p99 = (double)aegis__hist_percentile(scratch, 99.0);
    if (phase == PHASE_MEASURE) {
        struct bench_second *sec;

        if (b->series_count == b->series_cap) {
            b->series_cap = b->series_cap ? 2 * b->series_cap : 64;
            b->series = realloc(b->series, b->series_cap * sizeof(*b->series));
            if (b->series == NULL) {
                fprintf(stderr, "aegis-bench: out of memory\n");
                exit(1);
            }
        }
        sec = &b->series[b->series_count++];
        sec->t_s = (double)(t - b->measure_start_ns) / 1e9;
        sec->ops = cur->ops_total - prev->ops_total;
        sec->errors = cur->errors - prev->errors;
        sec->ops_per_s = (double)sec->ops / interval_s;
        sec->p50_us = p50 / 1e3;
        sec->p99_us = p99 / 1e3;
    }
    if (b->cfg.progress) {
        printf("\r[%5.0fs] %-7s %10.0f ops/s  p50 %8.3f ms  p99 %8.3f ms  errors %" PRIu64
               "\033[K",
               elapsed_s, phase == PHASE_WARMUP ? "warmup" : "measure",
               (double)(cur->ops_total - prev->ops_total) / interval_s, p50 / 1e6, p99 / 1e6,
               cur->errors);
        fflush(stdout);
    }
    keep = prev->hist;
    *prev = *cur;
    cur->hist = keep;
}

/* The nodes whose INFO is read: for --breakdown's stage histograms, and once a second for
 * the events (leader changes, snapshots) marked on the report and the plot. Every target,
 * or every spawned node. */
static struct breakdown_node info_nodes[BREAKDOWN_NODES_MAX];
static unsigned info_count;
static long long seen_leader_changes[BREAKDOWN_NODES_MAX];
static long long seen_snapshots[BREAKDOWN_NODES_MAX];
static bool watch_events; /* Some node answered INFO with the counters. */

static void info_setup(const struct bench *b, const struct bench_cluster *cluster)
{
    unsigned count = cluster != NULL ? cluster->nodes : b->cfg.targets_count;

    info_count = 0;
    for (unsigned i = 0; i < count && info_count < BREAKDOWN_NODES_MAX; i++) {
        struct breakdown_node *n = &info_nodes[info_count++];

        if (cluster != NULL) {
            snprintf(n->host, sizeof(n->host), "127.0.0.1");
            snprintf(n->port, sizeof(n->port), "%u", cluster->client_ports[i]);
        } else {
            snprintf(n->host, sizeof(n->host), "%s", b->cfg.targets[i].host);
            snprintf(n->port, sizeof(n->port), "%s", b->cfg.targets[i].port);
        }
    }
}

/* Record event @what at @t_s, once per reading: every node sees a leader change, and it
 * is one event (labelled with the first node's port that saw it). */
static void add_event(struct bench *b, double t_s, const char *what, unsigned node)
{
    for (size_t i = b->events_count; i-- > 0 && b->events[i].t_s == t_s;) {
        if (strncmp(b->events[i].label, what, strlen(what)) == 0) {
            return;
        }
    }
    if (b->events_count < BENCH_EVENTS_MAX) {
        struct svg_event *e = &b->events[b->events_count++];

        e->t_s = t_s;
        snprintf(e->label, sizeof(e->label), "%s (%s)", what, info_nodes[node].port);
    }
}

/* Read every node's leader_changes and snapshots_taken + snapshots_installed; with @mark,
 * an increase since the last reading is an event at @t_s. A node that is not an aegisd
 * (no such counters) is left out. */
static void poll_events(struct bench *b, bool mark, double t_s)
{
    static const char cmd[] = "*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n";

    for (unsigned i = 0; i < info_count; i++) {
        int type = 0;
        char *info = breakdown_command(&info_nodes[i], cmd, &type);
        long long lc = info ? breakdown_counter(info, "leader_changes") : -1;
        long long sn = info ? breakdown_counter(info, "snapshots_taken") : -1;
        long long si = info ? breakdown_counter(info, "snapshots_installed") : -1;

        free(info);
        if (lc < 0) {
            continue;
        }
        watch_events = true;
        sn = sn + (si > 0 ? si : 0);
        if (mark && lc > seen_leader_changes[i]) {
            add_event(b, t_s, "leader change", i);
        }
        if (mark && sn > seen_snapshots[i]) {
            add_event(b, t_s, "snapshot", i);
        }
        seen_leader_changes[i] = lc; /* Also after a reset (CONFIG RESETSTAT) lowered it. */
        seen_snapshots[i] = sn;
    }
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
        if ((b->cfg.progress || phase == PHASE_MEASURE) && t - last >= 1000000000ull) {
            sample_second(b, phase, &prev, &cur, h[2], t, (double)(t - run_start_ns) / 1e9,
                          (double)(t - last) / 1e9);
            last = t;
            if (phase == PHASE_MEASURE && watch_events) {
                poll_events(b, true, (double)(t - b->measure_start_ns) / 1e9);
            }
        }
    }
    if (ok && phase == PHASE_MEASURE && t - last >= 500000000ull) {
        /* The last part-second of the phase, when it is at least half a second. */
        sample_second(b, phase, &prev, &cur, h[2], t, (double)(t - run_start_ns) / 1e9,
                      (double)(t - last) / 1e9);
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
    c->keys.dist = b->cfg.dist;
    c->keys.keys = b->cfg.keys;
    c->keys.zipf = &b->zipf;
    c->keys.latest = b->cfg.keys / b->cfg.clients * id; /* Sequences start spread out. */
    if (b->cfg.rate > 0) {
        /* The rate is spread evenly over the connections; their schedules are staggered
         * over one gap so that they do not all send at once. */
        c->gap_ns = 1e9 * (double)b->cfg.clients / b->cfg.rate;
        c->next_ns = b->schedule_start_ns + (uint64_t)(c->gap_ns * id / b->cfg.clients);
    }
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
    b->schedule_start_ns = now_ns();
    b->series_count = 0;
    b->events_count = 0;
    b->lag_ns = 0;
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

/* --rate: how far behind its schedule the furthest-behind connection was when measuring
 * ended (after the workers stopped: their connections are ours to read). */
static void schedule_lag(struct bench *b)
{
    uint64_t oldest = UINT64_MAX;

    for (unsigned i = 0; i < b->cfg.threads; i++) {
        for (unsigned j = 0; j < b->workers[i].conns_count; j++) {
            uint64_t next = b->workers[i].conns[j].next_ns;

            oldest = next < oldest ? next : oldest;
        }
    }
    b->lag_ns = oldest < b->measure_end_ns ? b->measure_end_ns - oldest : 0;
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
        breakdown_reset(info_nodes, info_count); /* INFO latency counts from here. */
        poll_events(b, false, 0.0);               /* The reset zeroed the counters too. */
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
    if (b->cfg.rate > 0) {
        schedule_lag(b);
    }
    return ok;
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

/* The results of the run just finished (workers stopped, not yet torn down) into @r,
 * whose histogram the caller allocated. */
static void fill_report(struct bench *b, struct report *r)
{
    const struct bench_config *cfg = &b->cfg;

    collect(b, PHASE_MEASURE, &r->t);
    r->duration_s = (double)(b->measure_end_ns - b->measure_start_ns) / 1e9;
    r->ops_per_s = r->mb_sent_per_s = r->mb_received_per_s = r->sent_per_s = 0;
    if (r->duration_s > 0) {
        r->ops_per_s = (double)r->t.ops_total / r->duration_s;
        r->mb_sent_per_s = (double)r->t.tx_bytes / r->duration_s / 1e6;
        r->mb_received_per_s = (double)r->t.rx_bytes / r->duration_s / 1e6;
        r->sent_per_s = (double)r->t.issued / r->duration_s;
    }
    r->lag_ms = (double)b->lag_ns / 1e6;
    r->rate_reached = false;
    if (cfg->rate > 0) {
        double gap_ms = 1e3 * (double)cfg->clients / cfg->rate;

        r->rate_reached = r->lag_ms <= fmax(fmax(BENCH_LAG_OK_MS, 2 * gap_ms),
                                            BENCH_LAG_OK_FRACTION * r->duration_s * 1e3);
    }
    r->series = b->series;
    r->series_count = b->series_count;
    r->events = b->events;
    r->events_count = b->events_count;
}

/* One run: workers up, warmup and measurement, results into @r, workers down. */
static bool run_once(struct bench *b, struct report *r)
{
    bool ok;

    poll_events(b, false, 0.0); /* Before any load: the event counters to compare with. */
    setup_workers(b);
    ok = run(b);
    fill_report(b, r);
    teardown_workers(b);
    return ok;
}

/* --sweep: one run per rate, from the lowest up, until a rate is not reached or its p99
 * is over --slo-ms (higher rates would only queue more). */
static bool run_sweep(struct bench *b, struct report *r)
{
    static struct bench_sweep_point points[100];
    struct bench_config *cfg = &b->cfg;
    bool ok = true;
    unsigned i;

    r->sweep = points;
    r->sweep_count = 0;
    for (i = 0; i < cfg->sweep_steps && ok; i++) {
        struct bench_sweep_point *p = &points[r->sweep_count];
        char prefix[64];

        cfg->rate = cfg->sweep_lo + (cfg->sweep_hi - cfg->sweep_lo) * i / (cfg->sweep_steps - 1);
        ok = run_once(b, r);
        if (!ok) {
            break;
        }
        r->sweep_count++;
        p->rate = cfg->rate;
        p->sent_per_s = r->sent_per_s;
        p->ops_per_s = r->ops_per_s;
        p->p50_us = (double)aegis__hist_percentile(r->t.hist, 50.0) / 1e3;
        p->p99_us = (double)aegis__hist_percentile(r->t.hist, 99.0) / 1e3;
        p->p999_us = (double)aegis__hist_percentile(r->t.hist, 99.9) / 1e3;
        p->errors = r->t.errors;
        p->lag_ms = r->lag_ms;
        p->reached = r->rate_reached;
        p->within_slo = p->p99_us <= cfg->slo_ms * 1e3;
        hist_curve(r->t.hist, "", &p->curve);
        snprintf(prefix, sizeof(prefix), "rate %.0f: ", cfg->rate);
        print_oneline(cfg, r, prefix);
        fflush(stdout);
        if (!p->reached || !p->within_slo) {
            break;
        }
    }
    return ok || r->sweep_count > 0;
}

/* --repeat N (1 without it): N runs; the report is the last run's, with every run's main
 * figures for the medians and the noise. */
static bool run_repeats(struct bench *b, struct report *r)
{
    static double ops[BENCH_REPEAT_MAX], p50[BENCH_REPEAT_MAX], p99[BENCH_REPEAT_MAX];
    unsigned n = b->cfg.repeat > 1 ? b->cfg.repeat : 1, i;
    bool ok = true;

    for (i = 0; i < n && ok; i++) {
        ok = run_once(b, r);
        ops[i] = r->ops_per_s;
        p50[i] = (double)aegis__hist_percentile(r->t.hist, 50.0) / 1e3;
        p99[i] = (double)aegis__hist_percentile(r->t.hist, 99.0) / 1e3;
        if (ok && (b->cfg.oneline || n > 1)) {
            char prefix[32];

            snprintf(prefix, sizeof(prefix), n > 1 ? "run %u: " : "", i + 1);
            print_oneline(&b->cfg, r, prefix);
            fflush(stdout);
        }
    }
    if (n > 1 && ok) {
        r->rep_ops = ops;
        r->rep_p50_us = p50;
        r->rep_p99_us = p99;
        r->repeats = n;
    }
    return ok;
}

/* Everything the run asked for after the load: report, breakdown, files. */
static int write_outputs(struct bench *b, struct report *r)
{
    const struct bench_config *cfg = &b->cfg;
    static char *infos[BREAKDOWN_NODES_MAX];
    int status = 0;

    if (cfg->breakdown) {
        breakdown_fetch(info_nodes, info_count, infos);
        r->nodes = info_nodes;
        r->infos = infos;
        r->nodes_count = info_count;
    }
    if (cfg->oneline && r->sweep != NULL) {
        print_sweep_answer(cfg, r);
    }
    if (!cfg->oneline) {
        print_report(cfg, r);
        if (r->sweep != NULL) {
            print_sweep(cfg, r);
        }
        if (cfg->breakdown) {
            breakdown_print(info_nodes, infos, info_count);
        }
    }
    if (cfg->json_path != NULL && write_json(cfg, r, cfg->json_path) != 0) {
        status = 1;
    }
    if (cfg->histogram_path != NULL && write_histogram(r->t.hist, cfg->histogram_path) != 0) {
        status = 1;
    }
    if (cfg->csv_path != NULL && write_csv(r, cfg->csv_path) != 0) {
        status = 1;
    }
    if (cfg->plot_path != NULL && write_plot(cfg, r, cfg->plot_path) != 0) {
        status = 1;
    }
    for (unsigned i = 0; i < BREAKDOWN_NODES_MAX; i++) {
        free(infos[i]);
        infos[i] = NULL;
    }
    return status;
}

/* Every output file can be written (checked before the run). */
static bool outputs_writable(const struct bench_config *c)
{
    return (c->json_path == NULL || bench_output_ok(c->json_path, "--json")) &&
           (c->histogram_path == NULL || bench_output_ok(c->histogram_path, "--histogram")) &&
           (c->csv_path == NULL || bench_output_ok(c->csv_path, "--csv")) &&
           (c->plot_path == NULL || bench_output_ok(c->plot_path, "--plot"));
}

/* Run the benchmark against the configured targets and report. Returns the exit status. */
static int bench_and_report(struct bench *b, const struct bench_cluster *cluster,
                            const struct bench_baseline *baseline, int argc, char **argv)
{
    struct report r = {.cluster = cluster, .baseline = baseline, .argc = argc, .argv = argv};
    bool ok;
    int status = 0;

    r.start_time = time(NULL);
    if (resolve_targets(b) != 0) {
        return 1;
    }
    info_setup(b, cluster);
    r.t.hist = aegis__hist_create(NULL);
    if (r.t.hist == NULL) {
        fprintf(stderr, "aegis-bench: out of memory\n");
        exit(1);
    }
    ok = b->cfg.sweep_steps ? run_sweep(b, &r) : run_repeats(b, &r);
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
        status = write_outputs(b, &r);
    }
    aegis__hist_destroy(NULL, r.t.hist);
    free(b->series);
    b->series = NULL;
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
    int rv;
    size_t i;

    if (argc >= 2 && strcmp(argv[1], "compare") == 0) {
        return bench_compare_main(argc - 1, argv + 1);
    }
    rv = parse_args(argc, argv, &b.cfg);
    if (rv == 0 && !outputs_writable(&b.cfg)) {
        return 2;
    }
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
    if (b.cfg.dist != BENCH_DIST_UNIFORM) {
        bench_zipf_init(&b.zipf, b.cfg.keys, b.cfg.theta);
    }
    bench_vsize_prepare(&b.cfg.vsize);
    b.value = xcalloc(1, (size_t)b.cfg.value_size + 1);
    for (i = 0; i < b.cfg.value_size; i++) {
        b.value[i] = 'x';
    }
    if (b.cfg.spawn != 0) {
        if (bench_cluster_start(&cluster, &b.cfg, &interrupted) != 0) {
            free(b.value);
            return 3;
        }
        rv = bench_and_report(&b, &cluster, measure_baseline(&b.cfg, &cluster, &baseline), argc,
                              argv);
        bench_cluster_stop(&cluster, b.cfg.spawn_keep);
    } else {
        rv = bench_and_report(&b, NULL, measure_baseline(&b.cfg, NULL, &baseline), argc, argv);
    }
    free(b.value);
    return rv;
}
