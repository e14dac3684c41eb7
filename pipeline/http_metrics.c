/* The Prometheus endpoint (aegisd --metrics HOST:PORT): HTTP GET /metrics.
 *
 * Design. One small thread (aegis-metrics) of its own, away from the io_uring loop, so a
 * slow scraper never delays a client or a peer: it sleeps in poll() on the listening socket
 * and on the read end of a stop pipe, takes one connection at a time, reads the request
 * head (at most HTTP_HEAD_MAX bytes, within HTTP_TIMEOUT_MS), answers and closes. Every
 * wait is a poll() with the stop pipe in it, so stop() is prompt and nothing spins.
 *
 * Responses (HTTP/1.1, "Connection: close"):
 *   GET /metrics          200, Content-Type: text/plain; version=0.0.4, the text of
 *                         aegis__metrics_prometheus();
 *   GET / or HEAD ...     the same rules (HEAD: headers only);
 *   another path          404; another method 405; a malformed or oversized head 400.
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
#include <unistd.h>

#include "pipeline/logging.h"
#include "pipeline/metrics.h"
#include "pipeline/node_int.h"

#define HTTP_HEAD_MAX 8192
#define HTTP_TIMEOUT_MS 2000

struct aegis_metrics_http {
    struct aegis_node *node;
    int listen_fd;
    int stop_pipe[2];   /* stop() writes one byte to [1]; the thread polls [0]. */
    uint16_t port;
    pthread_t thread;
};

/* Wait until @fd is ready for @events or the stop pipe fires. 1 ready, 0 stop or timeout,
 * -1 error. */
static int wait_fd(struct aegis_metrics_http *h, int fd, short events, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = h->stop_pipe[0], .events = POLLIN}};
    int rv;

    do {
        rv = poll(p, 2, timeout_ms);
    } while (rv < 0 && errno == EINTR);
    if (rv < 0) {
        return -1;
    }
    if (rv == 0 || (p[1].revents & POLLIN) != 0) {
        return 0;
    }
    return 1;
}

static bool send_all(struct aegis_metrics_http *h, int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            wait_fd(h, fd, POLLOUT, HTTP_TIMEOUT_MS) == 1) {
            continue;
        }
        return false;
    }
    return true;
}

static void respond(struct aegis_metrics_http *h, int fd, int code, const char *reason,
                    const char *type, const char *body, size_t body_len, bool head_only)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, reason, type, body_len);

    AEGIS_ASSERT(n > 0 && (size_t)n < sizeof(head));
    if (send_all(h, fd, head, (size_t)n) && !head_only && body_len > 0) {
        send_all(h, fd, body, body_len);
    }
}

/* Read the request head into @buf (NUL-terminated). Returns its length, or 0 when the
 * client went away, timed out, or sent more than fits. */
static size_t read_head(struct aegis_metrics_http *h, int fd, char *buf, size_t cap)
{
    size_t len = 0;

    /* Bounded: every round adds at least one byte or returns. */
    while (len + 1 < cap) {
        ssize_t n;

        if (wait_fd(h, fd, POLLIN, HTTP_TIMEOUT_MS) != 1) {
            return 0;
        }
        n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            continue;
        }
        if (n <= 0) {
            return 0;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL || strstr(buf, "\n\n") != NULL) {
            return len;
        }
    }
    return 0;
}

static void serve(struct aegis_metrics_http *h, int fd)
{
    static const char plain[] = "text/plain; charset=utf-8";
    char buf[HTTP_HEAD_MAX], method[16], path[256];
    struct aegis_text t = {0};
    bool head_only;

    if (read_head(h, fd, buf, sizeof(buf)) == 0 ||
        sscanf(buf, "%15s %255s", method, path) != 2) {
        respond(h, fd, 400, "Bad Request", plain, "bad request\n", 12, false);
        return;
    }
    head_only = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !head_only) {
        respond(h, fd, 405, "Method Not Allowed", plain, "GET only\n", 9, false);
        return;
    }
    /* The query string, if any, is ignored (Prometheus sends none by default). */
    path[strcspn(path, "?")] = '\0';
    if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0) {
        respond(h, fd, 404, "Not Found", plain, "try /metrics\n", 13, head_only);
        return;
    }
    aegis__metrics_prometheus(h->node, &t);
    if (t.failed) {
        respond(h, fd, 500, "Internal Server Error", plain, "out of memory\n", 14, head_only);
    } else {
        respond(h, fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", t.data, t.len,
                head_only);
    }
    aegis__text_free(&t);
}

static void *http_thread(void *arg)
{
    struct aegis_metrics_http *h = arg;

    pthread_setname_np(pthread_self(), "aegis-metrics");
    for (;;) {
        int rv = wait_fd(h, h->listen_fd, POLLIN, -1);
        int fd;

        if (rv <= 0) {
            break; /* Stopped (or poll failed: nothing sensible left to do). */
        }
        fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
                AEGIS_LOG_RATELIMITED(AEGIS_LOG_WARN, "metrics: accept failed: %s",
                                      strerror(errno));
                /* EMFILE and friends: back off instead of spinning on a ready socket. */
                if (wait_fd(h, h->stop_pipe[0], POLLIN, 100) != 0) {
                    break;
                }
            }
            continue;
        }
        serve(h, fd);
        close(fd);
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
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 16) != 0 ||
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
