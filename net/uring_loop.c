/* SPDX-License-Identifier: MIT */
/* The io_uring loop: the ring, one iteration, the timer, the wake-up eventfd, the
 * listeners, creation and teardown. See uring_loop.h for the contract and
 * uring_loop_int.h for how the files divide the work.
 *
 * One iteration (aegis__uring_loop_run_once):
 *   1. prepare: look at the peers when due (dial, deadlines), then at each connection
 *      marked dirty since the last iteration (start a sendmsg covering everything queued,
 *      re-arm a read, offer buffered client bytes after a resume). SQEs are only
 *      prepared here and in completion handlers, never submitted one by one;
 *   2. one io_uring_submit_and_wait_timeout call submits them all and sleeps until at
 *      least one completion is ready (or the caller's timeout);
 *   3. reap: every ready completion is handled, callbacks run. A CQE is marked seen
 *      before it is handled, so a handler may prepare SQEs freely (when the submission
 *      ring is full, aegis__uring_sqe submits early to make room).
 * Idle, the loop sleeps in the kernel: it wakes for I/O, for the eventfd, and for the
 * tick timer (an absolute IORING_OP_TIMEOUT on CLOCK_MONOTONIC, re-armed each period).
 *
 * Wake-ups. aegis__uring_loop_wake() coalesces: a flag records that a wake is pending and
 * only the caller that raises it writes the eventfd. The loop clears the flag with an
 * exchange before on_wake, so either a waker saw the flag clear (and writes the eventfd:
 * another on_wake follows) or its exchange precedes ours in the flag's modification order
 * and synchronises with it (and the on_wake we are about to run sees its pushes). */
#include "net/uring_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "net/uring_loop_int.h"

#define DEFAULT_PEERS_MAX 16u
#define DEFAULT_CLIENTS_MAX 1024u
#define DEFAULT_FRAME_BYTES_MAX (16u << 20)
#define DEFAULT_PEER_READ_BYTES (256u << 10)
#define DEFAULT_PEER_QUEUE_MAX 1024u
#define DEFAULT_CLIENT_READ_BYTES (16u << 10)
#define DEFAULT_CLIENT_READ_BYTES_MAX ((1u << 20) + (64u << 10))
#define DEFAULT_CLIENT_QUEUE_MAX 256u
#define DEFAULT_BACKOFF_BASE_MS AEGIS_CONN_POOL_BACKOFF_BASE_MS_DEFAULT
#define DEFAULT_BACKOFF_MAX_MS AEGIS_CONN_POOL_BACKOFF_MAX_MS_DEFAULT
#define DEFAULT_CONNECT_TIMEOUT_MS 3000u
#define DEFAULT_TICK_MS 10u
#define DEFAULT_RING_ENTRIES 256u
/* Completions handled per iteration at most (a budget, so prepare runs regularly). */
#define REAP_BUDGET 4096
/* Teardown waits this long for the kernel to give back every operation. */
#define DRAIN_ROUNDS_MAX 200

uint64_t aegis__uring_loop_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *aegis__uring_errtext(int err)
{
    /* The table has the domain codes; strerror has every errno (io_uring returns any). */
    if (err < 0 && err > -4000) {
        return strerror(-err);
    }
    return aegis_strerror(err);
}

void aegis__uring_log(struct aegis_uring_loop *loop, int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[512];
    int n;
    va_list ap;

    if (level > loop->config.log_level) {
        return;
    }
    /* With a callback (aegisd: pipeline/logging.c) the line's head already says the
     * node and the level; the prefix is for the bare stderr fallback only. */
    n = loop->cb.on_log != NULL ? 0
                                : snprintf(line, sizeof(line), "net[%" PRIu64 "] %s: ",
                                           loop->config.self_id, names[level & 3]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (loop->cb.on_log != NULL) {
        loop->cb.on_log(level, line, loop->cb.data);
    } else {
        fprintf(stderr, "%s\n", line);
    }
}

void aegis__uring_log_limited(struct aegis_uring_loop *loop, struct aegis_ratelimit *rl,
                              int level, const char *fmt, ...)
{
    char line[400];
    uint64_t suppressed = 0;
    va_list ap;

    if (level > loop->config.log_level ||
        !aegis__ratelimit_pass(rl, aegis__uring_loop_now_ms(), &suppressed)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (suppressed > 0) {
        aegis__uring_log(loop, level, "%s (%" PRIu64 " similar suppressed in the last second)",
                         line, suppressed);
    } else {
        aegis__uring_log(loop, level, "%s", line);
    }
}

struct io_uring_sqe *aegis__uring_sqe(struct aegis_uring_loop *loop, uint64_t user_data)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);

    if (sqe == NULL) {
        /* The submission ring is full: hand it to the kernel now to make room. Bounded:
         * after a submit the whole ring is free again. */
        io_uring_submit(&loop->ring);
        loop->stats.submits++;
        sqe = io_uring_get_sqe(&loop->ring);
    }
    AEGIS_ASSERT(sqe != NULL);
    io_uring_sqe_set_data64(sqe, user_data);
    loop->ops_inflight++;
    return sqe;
}

static void errmsg_set(char *errmsg, size_t bytes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errmsg_set(char *errmsg, size_t bytes, const char *fmt, ...)
{
    va_list ap;

    if (errmsg == NULL || bytes == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errmsg, bytes, fmt, ap);
    va_end(ap);
}

static void config_defaults(struct aegis_uring_config *c)
{
#define DEFAULT(field, value)                                                              \
    do {                                                                                   \
        if (c->field == 0) {                                                               \
            c->field = (value);                                                            \
        }                                                                                  \
    } while (0)
    DEFAULT(peers_max, DEFAULT_PEERS_MAX);
    DEFAULT(clients_max, DEFAULT_CLIENTS_MAX);
    DEFAULT(frame_bytes_max, DEFAULT_FRAME_BYTES_MAX);
    DEFAULT(peer_read_bytes, DEFAULT_PEER_READ_BYTES);
    DEFAULT(peer_queue_max, DEFAULT_PEER_QUEUE_MAX);
    DEFAULT(client_read_bytes, DEFAULT_CLIENT_READ_BYTES);
    DEFAULT(client_read_bytes_max, DEFAULT_CLIENT_READ_BYTES_MAX);
    DEFAULT(client_queue_max, DEFAULT_CLIENT_QUEUE_MAX);
    DEFAULT(backoff_base_ms, DEFAULT_BACKOFF_BASE_MS);
    DEFAULT(backoff_max_ms, DEFAULT_BACKOFF_MAX_MS);
    DEFAULT(connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
    DEFAULT(tick_ms, DEFAULT_TICK_MS);
    DEFAULT(ring_entries, DEFAULT_RING_ENTRIES);
    DEFAULT(rng_seed, c->self_id * 0x9e3779b97f4a7c15ull + c->cluster_id);
#undef DEFAULT
    if (c->peer_read_bytes < AEGIS_URING_HELLO_BYTES) {
        c->peer_read_bytes = AEGIS_URING_HELLO_BYTES;
    }
    if (c->client_read_bytes_max < c->client_read_bytes) {
        c->client_read_bytes_max = c->client_read_bytes;
    }
}

static int config_check(const struct aegis_uring_config *c, char *errmsg, size_t bytes)
{
    const char *why = NULL;

    if (c->self_id == AEGIS_NODE_NONE) {
        why = "self_id must be non-zero";
    } else if (c->cluster_id == 0) {
        why = "cluster_id must be non-zero";
    } else if (c->peers_max > AEGIS_CONN_POOL_PEERS_MAX || c->peers_count > c->peers_max) {
        why = "too many peers";
    } else if (c->frame_bytes_max > AEGIS_URING_FRAME_MAX) {
        why = "frame_bytes_max above 256 MiB";
    } else if (c->backoff_max_ms < c->backoff_base_ms) {
        why = "backoff_max_ms below backoff_base_ms";
    } else if (c->peer_queue_max > (1u << 20) || c->client_queue_max > (1u << 20)) {
        why = "queue size above 1M";
    } else if (c->log_level < 0 || c->log_level > AEGIS_URING_LOG_DEBUG) {
        why = "log_level out of range";
    } else if ((c->tls_cert != NULL || c->tls_key != NULL || c->tls_ca != NULL) &&
               (c->tls_cert == NULL || c->tls_key == NULL || c->tls_ca == NULL)) {
        why = "TLS needs a certificate, its key and the CA together";
    } else if (c->client_tls && c->tls_cert == NULL) {
        why = "client TLS needs the TLS certificate, key and CA";
    }
    if (why != NULL) {
        errmsg_set(errmsg, bytes, "invalid network config: %s", why);
        return AEGIS_EINVAL;
    }
    return 0;
}

static int tls_init(struct aegis_uring_loop *loop, char *errmsg, size_t bytes)
{
    struct aegis_uring_config *c = &loop->config;
    int rv;

    if (c->tls_cert == NULL) {
        return 0;
    }
    rv = aegis__tls_ctx_create(&loop->peer_tls, c->tls_cert, c->tls_key, c->tls_ca, true,
                               errmsg, bytes);
    if (rv == 0 && c->client_tls && c->client_host != NULL) {
        rv = aegis__tls_ctx_create(&loop->client_tls, c->tls_cert, c->tls_key, c->tls_ca,
                                   false, errmsg, bytes);
    }
    /* The paths are not kept: the files were read. */
    c->tls_cert = c->tls_key = c->tls_ca = NULL;
    return rv;
}

static int ring_init(struct aegis_uring_loop *loop, char *errmsg, size_t bytes)
{
    struct io_uring_params p;
    int rv;

    memset(&p, 0, sizeof(p));
    /* COOP_TASKRUN (5.19): completions are run when we enter the kernel anyway, rather
     * than by interrupting the thread. Older kernels refuse the flag: retry without. */
    p.flags = IORING_SETUP_COOP_TASKRUN;
    rv = io_uring_queue_init_params(loop->config.ring_entries, &loop->ring, &p);
    if (rv == -EINVAL) {
        memset(&p, 0, sizeof(p));
        rv = io_uring_queue_init_params(loop->config.ring_entries, &loop->ring, &p);
    }
    if (rv == -ENOSYS || rv == -EPERM) {
        errmsg_set(errmsg, bytes,
                   "io_uring unavailable: io_uring_queue_init: %s (kernel without io_uring, "
                   "a seccomp filter, or sysctl kernel.io_uring_disabled)",
                   strerror(-rv));
        return rv == -ENOSYS ? AEGIS_ENOSYS : AEGIS_EPERM;
    }
    if (rv < 0) {
        errmsg_set(errmsg, bytes, "io_uring_queue_init: %s", strerror(-rv));
        return rv;
    }
    loop->ring_ready = true;
    return 0;
}

static int listen_on(const char *host, uint16_t port, int *fd_out, uint16_t *port_out,
                     char *errmsg, size_t bytes)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    struct addrinfo hints, *res = NULL;
    char port_text[8];
    int fd, one = 1, rv;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    snprintf(port_text, sizeof(port_text), "%u", (unsigned)port);
    if (getaddrinfo(host, port_text, &hints, &res) != 0 || res == NULL) {
        errmsg_set(errmsg, bytes, "listen %s:%u: cannot resolve the address", host,
                   (unsigned)port);
        return AEGIS_ENOENT;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rv = -errno;
        goto err_after_res;
    }
    /* A restarted node binds the same port while old connections sit in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        rv = -errno;
        goto err_after_fd;
    }
    freeaddrinfo(res);
    *fd_out = fd;
    *port_out = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                 : ((struct sockaddr_in *)&addr)->sin_port);
    return 0;

err_after_fd:
    close(fd);
err_after_res:
    freeaddrinfo(res);
    errmsg_set(errmsg, bytes, "listen %s:%u: %s", host, (unsigned)port, strerror(-rv));
    AEGIS_ASSERT(rv != 0);
    return rv;
}

static void arm_accept(struct aegis_uring_loop *loop, bool client)
{
    struct io_uring_sqe *sqe;

    if (loop->destroying) {
        return;
    }
    if (client) {
        AEGIS_ASSERT(!loop->accept_client_armed);
        sqe = aegis__uring_sqe(loop, URING_UD_ACCEPT_CLIENT);
        io_uring_prep_accept(sqe, loop->client_lfd, NULL, NULL, SOCK_CLOEXEC);
        loop->accept_client_armed = true;
    } else {
        AEGIS_ASSERT(!loop->accept_peer_armed);
        sqe = aegis__uring_sqe(loop, URING_UD_ACCEPT_PEER);
        io_uring_prep_accept(sqe, loop->peer_lfd, NULL, NULL, SOCK_CLOEXEC);
        loop->accept_peer_armed = true;
    }
}

static void arm_wake(struct aegis_uring_loop *loop)
{
    struct io_uring_sqe *sqe;

    AEGIS_ASSERT(!loop->wake_armed);
    sqe = aegis__uring_sqe(loop, URING_UD_WAKE);
    io_uring_prep_read(sqe, loop->wake_fd, &loop->wake_value, sizeof(loop->wake_value), 0);
    loop->wake_armed = true;
}

static void arm_timer(struct aegis_uring_loop *loop)
{
    struct io_uring_sqe *sqe;

    AEGIS_ASSERT(!loop->timer_armed);
    loop->tick_ts.tv_sec = (long long)(loop->next_tick_ms / 1000u);
    loop->tick_ts.tv_nsec = (long long)(loop->next_tick_ms % 1000u) * 1000000;
    sqe = aegis__uring_sqe(loop, URING_UD_TIMER);
    /* Absolute deadlines on CLOCK_MONOTONIC (the timeout's default clock): no drift. */
    io_uring_prep_timeout(sqe, &loop->tick_ts, 0, IORING_TIMEOUT_ABS);
    loop->timer_armed = true;
}

static int peers_init(struct aegis_uring_loop *loop, char *errmsg, size_t bytes)
{
    const struct aegis_uring_config *c = &loop->config;
    int rv;

    rv = aegis__conn_pool_init(&loop->pool, c->self_id, c->peers_max, c->backoff_base_ms,
                               c->backoff_max_ms, loop->alloc);
    if (rv != 0) {
        errmsg_set(errmsg, bytes, "peer table: %s", aegis_strerror(rv));
        return rv;
    }
    for (uint32_t i = 0; i < c->peers_count; i++) {
        const struct aegis_uring_peer_addr *p = &c->peers[i];
        if (p->id == c->self_id) {
            continue;
        }
        rv = aegis__conn_pool_add(&loop->pool, p->id, p->host, p->port, NULL);
        if (rv != 0) {
            errmsg_set(errmsg, bytes, "peer %" PRIu64 " at %s:%u: %s", p->id,
                       p->host != NULL ? p->host : "(null)", (unsigned)p->port,
                       aegis_strerror(rv));
            return rv;
        }
    }
    return 0;
}

static int slots_init(struct aegis_uring_loop *loop)
{
    const struct aegis_uring_config *c = &loop->config;

    /* Each peer: the current link plus one closing; plus inbound links in their hello. */
    loop->peer_slots = c->peers_max * 2 + URING_PEER_PENDING_MAX;
    loop->conns_count = loop->peer_slots + (c->client_host != NULL ? c->clients_max : 0);
    loop->conns = aegis__calloc(loop->alloc, loop->conns_count, sizeof(*loop->conns));
    loop->dirty = aegis__calloc(loop->alloc, loop->conns_count, sizeof(*loop->dirty));
    if (loop->conns == NULL || loop->dirty == NULL) {
        return AEGIS_ENOMEM;
    }
    for (uint32_t i = 0; i < loop->conns_count; i++) {
        loop->conns[i].slot = i;
        loop->conns[i].gen = 1;
        loop->conns[i].fd = -1;
    }
    return 0;
}

static void copy_host(char *dst, const char *src)
{
    size_t n = strlen(src);

    if (n > AEGIS_PEER_HOST_LEN_MAX) {
        n = AEGIS_PEER_HOST_LEN_MAX;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int create_sockets(struct aegis_uring_loop *loop, char *errmsg, size_t bytes)
{
    struct aegis_uring_config *c = &loop->config;
    int rv;

    copy_host(loop->peer_host, c->peer_host != NULL ? c->peer_host : "127.0.0.1");
    c->peer_host = loop->peer_host;
    rv = listen_on(loop->peer_host, c->peer_port, &loop->peer_lfd, &loop->peer_port, errmsg,
                   bytes);
    if (rv != 0) {
        return rv;
    }
    if (c->client_host != NULL) {
        copy_host(loop->client_host, c->client_host);
        c->client_host = loop->client_host;
        rv = listen_on(loop->client_host, c->client_port, &loop->client_lfd,
                       &loop->client_port, errmsg, bytes);
        if (rv != 0) {
            return rv;
        }
    }
    loop->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (loop->wake_fd < 0) {
        rv = -errno;
        errmsg_set(errmsg, bytes, "eventfd: %s", strerror(errno));
        return rv;
    }
    return 0;
}

int aegis__uring_loop_create(const struct aegis_uring_config *config,
                             const struct aegis_uring_callbacks *callbacks,
                             struct aegis_uring_loop **loop_out, char *errmsg,
                             size_t errmsg_bytes)
{
    struct aegis_uring_loop *loop;
    int rv;

    AEGIS_ASSERT(config != NULL);
    AEGIS_ASSERT(loop_out != NULL);
    *loop_out = NULL;
    loop = aegis__calloc(config->alloc, 1, sizeof(*loop));
    if (loop == NULL) {
        errmsg_set(errmsg, errmsg_bytes, "out of memory");
        return AEGIS_ENOMEM;
    }
    loop->config = *config;
    loop->config.peers = NULL; /* Copied into the pool below; not kept. */
    loop->alloc = config->alloc;
    loop->peer_lfd = loop->client_lfd = loop->wake_fd = -1;
    if (callbacks != NULL) {
        loop->cb = *callbacks;
    }
    config_defaults(&loop->config);
    rv = config_check(&loop->config, errmsg, errmsg_bytes);
    if (rv != 0) {
        goto err;
    }
    loop->config.peers = config->peers;
    rv = peers_init(loop, errmsg, errmsg_bytes);
    loop->config.peers = NULL;
    loop->config.peers_count = 0;
    if (rv != 0) {
        goto err;
    }
    aegis__rng_seed(&loop->rng, loop->config.rng_seed);
    rv = slots_init(loop);
    if (rv != 0) {
        errmsg_set(errmsg, errmsg_bytes, "out of memory");
        goto err;
    }
    rv = tls_init(loop, errmsg, errmsg_bytes);
    if (rv != 0) {
        goto err;
    }
    rv = ring_init(loop, errmsg, errmsg_bytes);
    if (rv != 0) {
        goto err;
    }
    rv = create_sockets(loop, errmsg, errmsg_bytes);
    if (rv != 0) {
        goto err;
    }
    loop->now_ms = aegis__uring_loop_now_ms();
    loop->next_tick_ms = loop->now_ms + loop->config.tick_ms;
    arm_accept(loop, false);
    if (loop->client_lfd >= 0) {
        arm_accept(loop, true);
    }
    arm_wake(loop);
    arm_timer(loop);
    loop->service_due = true;
    *loop_out = loop;
    return 0;

err:
    aegis__uring_loop_destroy(loop);
    AEGIS_ASSERT(rv != 0);
    return rv;
}

static void handle_accept(struct aegis_uring_loop *loop, bool client, int res)
{
    if (client) {
        loop->accept_client_armed = false;
    } else {
        loop->accept_peer_armed = false;
    }
    if (res >= 0 && loop->destroying) {
        close(res);
        return;
    }
    if (res < 0) {
        if (res != -ECANCELED) {
            /* EMFILE and friends: retry on the next tick instead of spinning. */
            aegis__uring_log(loop, AEGIS_URING_LOG_WARN, "accept: %s", strerror(-res));
            loop->accept_retry = true;
        }
        return;
    }
    if (client) {
        aegis__uring_client_accepted(loop, res);
    } else {
        aegis__uring_peer_accepted(loop, res);
    }
    arm_accept(loop, client);
}

static void handle_wake(struct aegis_uring_loop *loop, int res)
{
    loop->wake_armed = false;
    if (loop->destroying) {
        return;
    }
    if (res < 0 && res != -EINTR && res != -EAGAIN) {
        aegis__uring_log(loop, AEGIS_URING_LOG_ERROR, "eventfd read: %s", strerror(-res));
    }
    /* Pairs with the exchange in aegis__uring_loop_wake (see the file comment). */
    __atomic_exchange_n(&loop->wake_pending, 0u, __ATOMIC_ACQ_REL);
    arm_wake(loop);
    loop->stats.wakes++;
    if (loop->cb.on_wake != NULL) {
        loop->cb.on_wake(loop, loop->cb.data);
    }
}

static void handle_timer(struct aegis_uring_loop *loop, int res)
{
    uint64_t now;

    loop->timer_armed = false;
    if (loop->destroying) {
        return;
    }
    AEGIS_ASSERT(res == -ETIME || res == 0 || res == -ECANCELED);
    now = aegis__uring_loop_now_ms();
    loop->now_ms = now;
    loop->next_tick_ms += loop->config.tick_ms;
    if (loop->next_tick_ms <= now) {
        /* We fell behind (a long callback, a stopped process): skip the missed ticks. */
        loop->next_tick_ms = now + loop->config.tick_ms;
    }
    arm_timer(loop);
    if (loop->accept_retry) {
        loop->accept_retry = false;
        if (!loop->accept_peer_armed) {
            arm_accept(loop, false);
        }
        if (loop->client_lfd >= 0 && !loop->accept_client_armed) {
            arm_accept(loop, true);
        }
    }
    loop->service_due = true;
    loop->stats.ticks++;
    if (loop->cb.on_tick != NULL) {
        loop->cb.on_tick(loop, now, loop->cb.data);
    }
}

static void handle_cqe(struct aegis_uring_loop *loop, uint64_t ud, int res)
{
    AEGIS_ASSERT(loop->ops_inflight > 0);
    loop->ops_inflight--;
    loop->stats.cqes++;
    if (ud >= 8) {
        struct aegis_uring_conn *conn = (struct aegis_uring_conn *)(uintptr_t)(ud & ~URING_OP_MASK);
        AEGIS_ASSERT(conn >= loop->conns && conn < loop->conns + loop->conns_count);
        aegis__uring_conn_complete(conn, ud & URING_OP_MASK, res);
        return;
    }
    switch (ud) {
    case URING_UD_IGNORE:
        break;
    case URING_UD_ACCEPT_PEER:
        handle_accept(loop, false, res);
        break;
    case URING_UD_ACCEPT_CLIENT:
        handle_accept(loop, true, res);
        break;
    case URING_UD_WAKE:
        handle_wake(loop, res);
        break;
    case URING_UD_TIMER:
        handle_timer(loop, res);
        break;
    default:
        AEGIS_UNREACHABLE();
    }
}

static int reap(struct aegis_uring_loop *loop)
{
    struct io_uring_cqe *cqe;
    int handled = 0;

    /* Budget: REAP_BUDGET completions, then back to prepare and submit. */
    while (handled < REAP_BUDGET && io_uring_peek_cqe(&loop->ring, &cqe) == 0) {
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;

        io_uring_cqe_seen(&loop->ring, cqe);
        handle_cqe(loop, ud, res);
        handled++;
    }
    return handled;
}

static void prepare(struct aegis_uring_loop *loop)
{
    loop->now_ms = aegis__uring_loop_now_ms();
    if (loop->service_due) {
        loop->service_due = false;
        aegis__uring_peer_service(loop);
    }
    aegis__uring_conn_prepare(loop);
}

int aegis__uring_loop_run_once(struct aegis_uring_loop *loop, int timeout_ms)
{
    struct io_uring_cqe *cqe = NULL;
    int rv;

    AEGIS_ASSERT(loop != NULL);
    AEGIS_ASSERT(!loop->destroying);
    loop->stats.loop_iterations++;
    prepare(loop);
    loop->stats.submits++;
    if (timeout_ms == 0) {
        rv = io_uring_submit(&loop->ring);
    } else if (timeout_ms < 0) {
        rv = io_uring_submit_and_wait(&loop->ring, 1);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = timeout_ms / 1000,
            .tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
        };
        rv = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
    }
    if (rv < 0 && rv != -ETIME && rv != -EINTR && rv != -EAGAIN && rv != -EBUSY) {
        aegis__uring_log(loop, AEGIS_URING_LOG_ERROR, "io_uring_submit: %s", strerror(-rv));
        return rv;
    }
    return reap(loop);
}

int aegis__uring_loop_run(struct aegis_uring_loop *loop)
{
    AEGIS_ASSERT(loop != NULL);
    /* Not bounded by design: the net thread's loop ends only on stop. */
    while (__atomic_load_n(&loop->stop_requested, __ATOMIC_ACQUIRE) == 0) {
        int rv = aegis__uring_loop_run_once(loop, -1);
        if (rv < 0) {
            return rv;
        }
    }
    __atomic_store_n(&loop->stop_requested, 0u, __ATOMIC_RELAXED);
    return 0;
}

void aegis__uring_loop_stop(struct aegis_uring_loop *loop)
{
    AEGIS_ASSERT(loop != NULL);
    /* Publish the request before the wake-up (release), read by run (acquire). */
    __atomic_store_n(&loop->stop_requested, 1u, __ATOMIC_RELEASE);
    aegis__uring_loop_wake(loop);
}

void aegis__uring_loop_wake(struct aegis_uring_loop *loop)
{
    uint64_t one = 1;
    ssize_t n;

    AEGIS_ASSERT(loop != NULL);
    /* Only the waker that raises the flag writes the eventfd; see the file comment. */
    if (__atomic_exchange_n(&loop->wake_pending, 1u, __ATOMIC_ACQ_REL) != 0) {
        return;
    }
    do {
        n = write(loop->wake_fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* An eventfd write fails only when the counter would overflow: it is then non-zero,
     * so a wake-up is pending anyway. */
}

static void cancel_global(struct aegis_uring_loop *loop, bool armed, uint64_t ud)
{
    struct io_uring_sqe *sqe;

    if (!armed) {
        return;
    }
    sqe = aegis__uring_sqe(loop, URING_UD_IGNORE);
    io_uring_prep_cancel64(sqe, ud, 0);
}

/* Close everything and wait until the kernel has completed every operation, so that no
 * buffer we free can still be in use by it. */
static void drain(struct aegis_uring_loop *loop)
{
    loop->destroying = true;
    aegis__uring_conns_close_all(loop, AEGIS_ESHUTDOWN);
    cancel_global(loop, loop->accept_peer_armed, URING_UD_ACCEPT_PEER);
    cancel_global(loop, loop->accept_client_armed, URING_UD_ACCEPT_CLIENT);
    cancel_global(loop, loop->wake_armed, URING_UD_WAKE);
    cancel_global(loop, loop->timer_armed, URING_UD_TIMER);
    for (int round = 0; loop->ops_inflight > 0; round++) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000};
        struct io_uring_cqe *cqe;

        AEGIS_ASSERT(round < DRAIN_ROUNDS_MAX);
        io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
        reap(loop);
    }
    aegis__uring_conns_finalize_idle(loop);
}

void aegis__uring_loop_destroy(struct aegis_uring_loop *loop)
{
    if (loop == NULL) {
        return;
    }
    if (loop->ring_ready) {
        drain(loop);
        io_uring_queue_exit(&loop->ring);
    }
    for (uint32_t i = 0; loop->conns != NULL && i < loop->conns_count; i++) {
        AEGIS_ASSERT(!loop->conns[i].in_use);
    }
    if (loop->peer_lfd >= 0) {
        close(loop->peer_lfd);
    }
    if (loop->client_lfd >= 0) {
        close(loop->client_lfd);
    }
    if (loop->wake_fd >= 0) {
        close(loop->wake_fd);
    }
    if (loop->pool.peers != NULL) {
        aegis__conn_pool_close(&loop->pool);
    }
    aegis__tls_ctx_destroy(loop->peer_tls);
    aegis__tls_ctx_destroy(loop->client_tls);
    aegis__free(loop->alloc, loop->conns);
    aegis__free(loop->alloc, loop->dirty);
    aegis__free(loop->alloc, loop);
}

int aegis__uring_loop_peer_add(struct aegis_uring_loop *loop, aegis_node_id id,
                               const char *host, uint16_t port)
{
    int rv;

    AEGIS_ASSERT(loop != NULL);
    if (loop->destroying) {
        return AEGIS_ESHUTDOWN;
    }
    rv = aegis__conn_pool_add(&loop->pool, id, host, port, NULL);
    if (rv == 0) {
        loop->service_due = true;
    }
    return rv;
}

int aegis__uring_loop_peer_remove(struct aegis_uring_loop *loop, aegis_node_id id)
{
    struct aegis_peer *peer;

    AEGIS_ASSERT(loop != NULL);
    peer = aegis__conn_pool_get(&loop->pool, id);
    if (peer == NULL) {
        return AEGIS_EUNKNOWNNODE;
    }
    if (peer->conn != NULL) {
        aegis__uring_conn_close(peer->conn, AEGIS_ESHUTDOWN);
    }
    AEGIS_ASSERT(peer->conn == NULL);
    return aegis__conn_pool_remove(&loop->pool, id);
}

int aegis__uring_loop_peer_reset(struct aegis_uring_loop *loop, aegis_node_id id, int status)
{
    struct aegis_peer *peer;

    AEGIS_ASSERT(loop != NULL);
    AEGIS_ASSERT(status < 0);
    peer = aegis__conn_pool_get(&loop->pool, id);
    if (peer == NULL) {
        return AEGIS_EUNKNOWNNODE;
    }
    if (peer->conn != NULL) {
        aegis__uring_conn_close(peer->conn, status);
    }
    return 0;
}

int aegis__uring_loop_peer_state(struct aegis_uring_loop *loop, aegis_node_id id)
{
    struct aegis_peer *peer = aegis__conn_pool_get(&loop->pool, id);

    return peer != NULL ? (int)peer->state : -1;
}

int aegis__uring_loop_peer_stats(struct aegis_uring_loop *loop, aegis_node_id id,
                                 struct aegis_peer_stats *stats_out)
{
    struct aegis_peer *peer = aegis__conn_pool_get(&loop->pool, id);

    if (peer == NULL) {
        return AEGIS_EUNKNOWNNODE;
    }
    *stats_out = peer->stats;
    return 0;
}

uint16_t aegis__uring_loop_peer_port(const struct aegis_uring_loop *loop)
{
    return loop->peer_port;
}

uint16_t aegis__uring_loop_client_port(const struct aegis_uring_loop *loop)
{
    return loop->client_port;
}

void aegis__uring_loop_stats(const struct aegis_uring_loop *loop,
                             struct aegis_uring_stats *stats_out)
{
    *stats_out = loop->stats;
}
