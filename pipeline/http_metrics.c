/* SPDX-License-Identifier: MIT */
/* The Prometheus endpoint (aegisd --metrics HOST:PORT): HTTP GET /metrics.
 *
 * Design. One small thread (aegis-metrics) of its own, away from the io_uring loop, so a
 * slow scraper never delays a client or a peer. It serves up to HTTP_CONNS_MAX
 * connections at once from one poll() over the listening socket, the stop pipe and every
 * open connection (non-blocking sockets). Each connection has one deadline for its whole
 * request, HTTP_TIMEOUT_MS from its accept: reading the head and writing the response
 * must both be done by then, or it is closed. So a client that trickles bytes (or never
 * reads) holds one slot for at most that long and never delays another scrape. While
 * every slot is taken the listener is not polled: new connections wait in the kernel's
 * backlog. Every wait is the one poll() with the stop pipe in it, so stop() is prompt
 * and nothing spins.
 *
 * Responses (HTTP/1.1, "Connection: close"), decided by aegis__http_parse
 * (pipeline/http_parse.h):
 *   GET /metrics          200, Content-Type: text/plain; version=0.0.4, the text of
 *                         aegis__metrics_prometheus();
 *   GET /health           200 when the node is healthy, 503 when not, both with a small
 *                         JSON body (below);
 *   GET / or HEAD ...     the same rules (HEAD: headers only);
 *   another path          404; another method 405; a malformed head, or none complete
 *                         within AEGIS_HTTP_HEAD_MAX bytes, 400.
 * Healthy (/health) means, as this node sees it: it is a member of the current
 * configuration (a voter or a learner), a leader is known (itself or another node: a
 * leader that loses its quorum steps down within an election timeout, check-quorum, and a
 * follower forgets a silent leader by its election timeout), and it has not stopped on a
 * fatal condition (a storage failure, the amnesia guard). Each reason for 503 is named in
 * "reason". The body, from aegis_node_status():
 *   {"healthy":true,"reason":"ok","id":1,"role":"leader","leader":1,"term":3,
 *    "commit":41,"applied":41,"has_quorum":true,"version":"0.2.0"}
 * "has_quorum" is "a leader is known" (a leader exists only with a quorum behind it).
 * The body is built afresh for each scrape: merging a dozen live histograms takes well
 * under a millisecond and touches no lock the other threads take on their hot paths. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <aegis/aegis.h>

#include "pipeline/http_parse.h"
#include "pipeline/logging.h"
#include "pipeline/metrics.h"
#include "pipeline/node_int.h"

#define HTTP_TIMEOUT_MS 2000
#define HTTP_CONNS_MAX 16

struct http_conn {
    int fd;                 /* -1: free slot. */
    uint64_t deadline_ms;   /* The whole request: read, answer, write. */
    size_t len;
    char *out;              /* The response, once known (malloc). */
    size_t out_len, out_off;
    char buf[AEGIS_HTTP_HEAD_MAX];
};

struct aegis_metrics_http {
    struct aegis_node *node;
    int listen_fd;
    int stop_pipe[2];   /* stop() writes one byte to [1]; the thread polls [0]. */
    uint16_t port;
    pthread_t thread;
    struct http_conn conns[HTTP_CONNS_MAX];
};

static uint64_t now_ms(void)
{
    return aegis__now_ns() / 1000000u;
}

static void conn_close(struct http_conn *c)
{
    close(c->fd);
    free(c->out);
    c->fd = -1;
    c->out = NULL;
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

/* The /health verdict and its JSON body into @t; returns 200 or 503 (see the top). */
static int health(struct aegis_node *n, struct aegis_text *t)
{
    struct aegis_status s;
    const char *reason = "ok";
    bool member = false;
    int fatal = __atomic_load_n(&n->fatal, __ATOMIC_ACQUIRE);

    aegis_node_status(n, &s);
    for (uint32_t i = 0; i < s.members_count; i++) {
        member = member || s.members[i].id == s.id;
    }
    if (aegis__node_storage_error(n) != 0) {
        reason = "storage failed"; /* From the failure on, not only after fail_stop_ms. */
    } else if (fatal != 0) {
        reason = "stopped (fatal)";
    } else if (!member) {
        reason = "not a member of the configuration";
    } else if (s.leader == AEGIS_NODE_NONE) {
        reason = "no leader known";
    }
    aegis__text_printf(t,
                       "{\"healthy\":%s,\"reason\":\"%s\",\"id\":%llu,\"role\":\"%s\","
                       "\"leader\":%llu,\"term\":%llu,\"commit\":%llu,\"applied\":%llu,"
                       "\"has_quorum\":%s,\"version\":\"%s\"}\n",
                       strcmp(reason, "ok") == 0 ? "true" : "false", reason,
                       (unsigned long long)s.id, role_name(s.role),
                       (unsigned long long)s.leader, (unsigned long long)s.term,
                       (unsigned long long)s.commit_index, (unsigned long long)s.applied_index,
                       s.leader != AEGIS_NODE_NONE ? "true" : "false", aegis_version());
    return strcmp(reason, "ok") == 0 ? 200 : 503;
}

/* Build the whole response of @req into c->out (NULL when out of memory). */
static void respond(struct aegis_metrics_http *h, struct http_conn *c,
                    const struct aegis_http_request *req)
{
    static const char plain[] = "text/plain; charset=utf-8";
    struct aegis_text t = {0};
    const char *reason = "Bad Request", *type = plain, *body = "bad request\n";
    int code = 200; /* Of a 200 request: /health may make it 503. */
    char head[256];
    size_t body_len;
    int n;

    if (req->status == 200 && req->health) {
        code = health(h->node, &t);
        reason = t.failed ? "Internal Server Error" : code == 200 ? "OK" : "Service Unavailable";
        type = t.failed ? plain : "application/json";
        body = t.failed ? "out of memory\n" : t.data;
    } else if (req->status == 200) {
        aegis__metrics_prometheus(h->node, &t);
        reason = t.failed ? "Internal Server Error" : "OK";
        type = t.failed ? plain : "text/plain; version=0.0.4; charset=utf-8";
        body = t.failed ? "out of memory\n" : t.data;
    } else if (req->status == 404) {
        reason = "Not Found";
        body = "try /metrics or /health\n";
    } else if (req->status == 405) {
        reason = "Method Not Allowed";
        body = "GET only\n";
    }
    body_len = req->status == 200 && !t.failed ? t.len : strlen(body);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 req->status == 200 && t.failed ? 500 : req->status == 200 ? code : req->status,
                 reason, type, body_len);
    AEGIS_ASSERT(n > 0 && (size_t)n < sizeof(head));
    if (req->head_only) {
        body_len = 0;
    }
    c->out = malloc((size_t)n + body_len);
    if (c->out != NULL) {
        memcpy(c->out, head, (size_t)n);
        if (body_len > 0) {
            memcpy(c->out + n, body, body_len);
        }
        c->out_len = (size_t)n + body_len;
        c->out_off = 0;
    }
    aegis__text_free(&t);
}

/* Send what the socket takes now; close when done or broken. */
static void conn_write(struct http_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return; /* poll() says when to go on. */
        }
        break;
    }
    conn_close(c);
}

/* Read what is there; answer once the head is known. */
static void conn_read(struct aegis_metrics_http *h, struct http_conn *c)
{
    struct aegis_http_request req;
    ssize_t n;

    n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    if (aegis__http_parse(c->buf, c->len, &req) == 0) {
        return; /* Bounded: the parser answers 400 once the buffer is full. */
    }
    respond(h, c, &req);
    if (c->out == NULL) {
        conn_close(c);
        return;
    }
    conn_write(c);
}

static void accept_one(struct aegis_metrics_http *h, struct http_conn *slot)
{
    int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
            AEGIS_LOG_RATELIMITED(AEGIS_LOG_WARN, "metrics: accept failed: %s",
                                  strerror(errno));
            /* EMFILE and friends: back off instead of spinning on a ready socket. */
            struct pollfd p = {.fd = h->stop_pipe[0], .events = POLLIN};

            while (poll(&p, 1, 100) < 0 && errno == EINTR) {
            }
        }
        return;
    }
    *slot = (struct http_conn){.fd = fd, .deadline_ms = now_ms() + HTTP_TIMEOUT_MS};
}

/* One poll round: returns false when stopped (or poll failed). */
static bool serve_round(struct aegis_metrics_http *h)
{
    struct pollfd p[HTTP_CONNS_MAX + 2];
    int map[HTTP_CONNS_MAX + 2];
    struct http_conn *free_slot = NULL;
    uint64_t now = now_ms(), soonest = UINT64_MAX;
    nfds_t np = 0;
    int timeout, rv;

    p[np++] = (struct pollfd){.fd = h->stop_pipe[0], .events = POLLIN};
    for (int i = 0; i < HTTP_CONNS_MAX; i++) {
        struct http_conn *c = &h->conns[i];

        if (c->fd >= 0 && now >= c->deadline_ms) {
            conn_close(c); /* Past its one deadline: whatever it was doing. */
        }
        if (c->fd < 0) {
            free_slot = free_slot != NULL ? free_slot : c;
            continue;
        }
        soonest = c->deadline_ms < soonest ? c->deadline_ms : soonest;
        map[np] = i;
        p[np++] = (struct pollfd){.fd = c->fd, .events = c->out != NULL ? POLLOUT : POLLIN};
    }
    if (free_slot != NULL) {
        map[np] = -1;
        p[np++] = (struct pollfd){.fd = h->listen_fd, .events = POLLIN};
    }
    timeout = soonest == UINT64_MAX ? -1 : (int)(soonest - now);
    rv = poll(p, np, timeout);
    if (rv < 0) {
        return errno == EINTR;
    }
    if ((p[0].revents & POLLIN) != 0) {
        return false;
    }
    for (nfds_t k = 1; k < np; k++) {
        if (p[k].revents == 0) {
            continue;
        }
        if (map[k] < 0) {
            accept_one(h, free_slot);
        } else if (h->conns[map[k]].out != NULL) {
            conn_write(&h->conns[map[k]]);
        } else {
            conn_read(h, &h->conns[map[k]]);
        }
    }
    return true;
}

static void *http_thread(void *arg)
{
    struct aegis_metrics_http *h = arg;

    pthread_setname_np(pthread_self(), "aegis-metrics");
    for (int i = 0; i < HTTP_CONNS_MAX; i++) {
        h->conns[i].fd = -1;
    }
    /* Not bounded by design: the thread ends when stop() writes to the pipe. */
    while (serve_round(h)) {
    }
    for (int i = 0; i < HTTP_CONNS_MAX; i++) {
        if (h->conns[i].fd >= 0) {
            conn_close(&h->conns[i]);
        }
    }
    return NULL;
}

static int listen_on(const char *host, uint16_t port, int *fd_out, uint16_t *port_out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof(ss);
    char service[8];
    int fd, one = 1, rv;

    snprintf(service, sizeof(service), "%u", port);
    if (getaddrinfo(host, service, &hints, &res) != 0 || res == NULL) {
        return AEGIS_EINVAL;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rv = -errno;
        freeaddrinfo(res);
        return rv;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &ss_len) != 0) {
        rv = -errno;
        close(fd);
        freeaddrinfo(res);
        return rv;
    }
    freeaddrinfo(res);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

int aegis__metrics_http_start(struct aegis_metrics_http **out, struct aegis_node *n,
                              const char *host, uint16_t port)
{
    struct aegis_metrics_http *h = calloc(1, sizeof(*h));
    int rv;

    if (h == NULL) {
        return AEGIS_ENOMEM;
    }
    h->node = n;
    h->stop_pipe[0] = h->stop_pipe[1] = -1;
    rv = listen_on(host, port, &h->listen_fd, &h->port);
    if (rv != 0) {
        free(h);
        return rv;
    }
    if (pipe2(h->stop_pipe, O_CLOEXEC) != 0) {
        rv = -errno;
        goto err_after_listen;
    }
    if (pthread_create(&h->thread, NULL, http_thread, h) != 0) {
        rv = AEGIS_ENOMEM;
        close(h->stop_pipe[0]);
        close(h->stop_pipe[1]);
        goto err_after_listen;
    }
    *out = h;
    return 0;

err_after_listen:
    close(h->listen_fd);
    free(h);
    AEGIS_ASSERT(rv != 0);
    return rv;
}

uint16_t aegis__metrics_http_port(const struct aegis_metrics_http *h)
{
    return h->port;
}

void aegis__metrics_http_stop(struct aegis_metrics_http *h)
{
    if (h == NULL) {
        return;
    }
    /* The thread polls the pipe's read end in every wait: one byte ends it. */
    while (write(h->stop_pipe[1], "x", 1) < 0 && errno == EINTR) {
    }
    pthread_join(h->thread, NULL);
    close(h->stop_pipe[0]);
    close(h->stop_pipe[1]);
    close(h->listen_fd);
    free(h);
}
