/* SPDX-License-Identifier: MIT */
/* aegis-bench --spawn N: start a local N-node aegisd cluster, wait until it takes writes,
 * and tear it down after the run.
 *
 * Steps. (1) The aegisd binary is looked up next to aegis-bench (/proc/self/exe). (2) A
 * directory is made with mkdtemp under $TMPDIR (default /tmp): node-<id>/ is each node's
 * --data-dir and node-<id>.log its stdout and stderr. (3) 2N free loopback ports are
 * chosen by binding port 0 with every probe socket held open until all are chosen (so no
 * two coincide; another process may still take one before aegisd binds it, which the
 * readiness wait then reports). (4) Node i runs as
 *     aegisd --id i --peers 1=127.0.0.1:P1,...,N=127.0.0.1:PN --client 127.0.0.1:Ci
 *            --data-dir DIR/node-i --fsync MODE [--spawn-arg values...]
 * in its own process group, so a terminal's Ctrl-C reaches aegis-bench only and the
 * cluster is still stopped in order. (5) Readiness: every client port accepts, then a
 * "SET aegis-bench:probe 1" on some node answers +OK (a leader exists and commits), then
 * "INFO replication" on each node looks for "role:leader" to choose the target; with no
 * node saying so, every node is a target. The whole wait is bounded by
 * SPAWN_READY_TIMEOUT_S; a node that exits early fails it at once, with its log's tail.
 * (6) Stop: SIGTERM to every node, up to SPAWN_STOP_TIMEOUT_S for each to exit, then
 * SIGKILL; then the directory is removed (unless --spawn-keep).
 *
 * Written against the aegisd flags fixed in issue 6; it cannot be exercised until aegisd
 * exists. Header-only because every cmd/ source file becomes its own program. */
#ifndef AEGIS_BENCH_SPAWN_H
#define AEGIS_BENCH_SPAWN_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/bench_config.h"
#include "cmd/bench_resp.h"

#define SPAWN_READY_TIMEOUT_S 20
#define SPAWN_STOP_TIMEOUT_S  10

struct bench_cluster {
    char dir[PATH_MAX];
    char aegisd[PATH_MAX];
    unsigned nodes;
    pid_t pids[BENCH_SPAWN_MAX];
    unsigned client_ports[BENCH_SPAWN_MAX];
    unsigned peer_ports[BENCH_SPAWN_MAX];
    unsigned leader; /* 1-based id of the node that said role:leader; 0 if none did. */
    volatile sig_atomic_t *stop; /* Set (by a signal handler) to abandon the readiness wait. */
};

static inline double spawn_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void spawn_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static inline int spawn_find_aegisd(struct bench_cluster *cl)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (n <= 0) {
        fprintf(stderr, "aegis-bench: cannot read /proc/self/exe: %s\n", strerror(errno));
        return -1;
    }
    self[n] = '\0';
    if ((size_t)snprintf(cl->aegisd, sizeof(cl->aegisd), "%s/aegisd", dirname(self)) >=
        sizeof(cl->aegisd)) {
        return -1;
    }
    if (access(cl->aegisd, X_OK) != 0) {
        fprintf(stderr, "aegis-bench: --spawn needs aegisd next to aegis-bench: %s: %s\n",
                cl->aegisd, strerror(errno));
        return -1;
    }
    return 0;
}

/* Choose @count distinct free loopback ports. */
static inline int spawn_free_ports(unsigned *ports, unsigned count)
{
    int fds[2 * BENCH_SPAWN_MAX];
    unsigned i, opened = 0;
    int rv = 0;

    for (i = 0; i < count && rv == 0; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
        socklen_t len = sizeof(sa);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0) {
            rv = -1;
            break;
        }
        opened++;
        if (bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0) {
            rv = -1;
            break;
        }
        ports[i] = ntohs(sa.sin_port);
    }
    for (i = 0; i < opened; i++) {
        close(fds[i]);
    }
    return rv;
}

/* A blocking connection to 127.0.0.1:@port with 1 s timeouts; -1 if it fails. */
static inline int spawn_dial(unsigned port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send @cmd (already RESP-encoded) to @port and read one reply into @buf (NUL-terminated,
 * the reply's payload at *@text_out). Returns the reply type, or -1. */
static inline int spawn_command(unsigned port, const char *cmd, char *buf, size_t cap,
                                const char **text_out)
{
    struct bench_reply r;
    size_t len = 0;
    long n = BENCH_RESP_MORE;
    int fd = spawn_dial(port);

    memset(&r, 0, sizeof(r));
    if (fd < 0) {
        return -1;
    }
    if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd)) {
        close(fd);
        return -1;
    }
    while (len + 1 < cap && n == BENCH_RESP_MORE) {
        ssize_t got = read(fd, buf + len, cap - 1 - len);

        if (got <= 0) {
            break;
        }
        len += (size_t)got;
        n = bench_resp_parse(buf, len, &r);
    }
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[len] = '\0';
    ((char *)r.str)[r.len] = '\0';
    *text_out = r.str;
    return (int)r.type;
}

static inline void spawn_print_log_tail(const struct bench_cluster *cl, unsigned id)
{
    char path[PATH_MAX + 32], tail[2048];
    int fd;
    off_t size;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/node-%u.log", cl->dir, id);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    size = lseek(fd, 0, SEEK_END);
    lseek(fd, size > (off_t)sizeof(tail) - 1 ? size - (off_t)sizeof(tail) + 1 : 0, SEEK_SET);
    n = read(fd, tail, sizeof(tail) - 1);
    close(fd);
    if (n > 0) {
        tail[n] = '\0';
        fprintf(stderr, "--- end of %s ---\n%s\n---\n", path, tail);
    }
}

static inline pid_t spawn_node(const struct bench_cluster *cl, const struct bench_config *cfg,
                               unsigned id, const char *peers)
{
    char idstr[16], client[64], data_dir[PATH_MAX + 16], log_path[PATH_MAX + 16];
    const char *argv[16 + BENCH_SPAWN_ARGS_MAX];
    unsigned i, argc = 0;
    pid_t pid;

    snprintf(idstr, sizeof(idstr), "%u", id);
    snprintf(client, sizeof(client), "127.0.0.1:%u", cl->client_ports[id - 1]);
    snprintf(data_dir, sizeof(data_dir), "%s/node-%u", cl->dir, id);
    snprintf(log_path, sizeof(log_path), "%s/node-%u.log", cl->dir, id);
    argv[argc++] = cl->aegisd;
    argv[argc++] = "--id";
    argv[argc++] = idstr;
    argv[argc++] = "--peers";
    argv[argc++] = peers;
    argv[argc++] = "--client";
    argv[argc++] = client;
    argv[argc++] = "--data-dir";
    argv[argc++] = data_dir;
    argv[argc++] = "--fsync";
    argv[argc++] = cfg->fsync;
    for (i = 0; i < cfg->spawn_args_count; i++) {
        argv[argc++] = cfg->spawn_args[i];
    }
    argv[argc] = NULL;
    pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        setpgid(0, 0);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(cl->aegisd, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", cl->aegisd, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Has any node exited? Reports it and returns true. */
static inline bool spawn_any_dead(struct bench_cluster *cl)
{
    unsigned i;

    for (i = 0; i < cl->nodes; i++) {
        int status;

        if (cl->pids[i] > 0 && waitpid(cl->pids[i], &status, WNOHANG) == cl->pids[i]) {
            fprintf(stderr, "aegis-bench: aegisd node %u exited early (status %d)\n", i + 1,
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            cl->pids[i] = 0;
            spawn_print_log_tail(cl, i + 1);
            return true;
        }
    }
    return false;
}

/* Wait until every client port accepts and some node commits a write. */
static inline int spawn_wait_ready(struct bench_cluster *cl)
{
    static const char probe[] = "*3\r\n$3\r\nSET\r\n$17\r\naegis-bench:probe\r\n$1\r\n1\r\n";
    double deadline = spawn_now_s() + SPAWN_READY_TIMEOUT_S;
    unsigned up = 0;
    char buf[4096];
    const char *text;

    while (up < cl->nodes) {
        int fd = spawn_dial(cl->client_ports[up]);

        if (fd >= 0) {
            close(fd);
            up++;
            continue;
        }
        if (spawn_any_dead(cl) || spawn_now_s() > deadline || *cl->stop) {
            goto timeout;
        }
        spawn_sleep_ms(50);
    }
    for (;;) {
        unsigned i;

        for (i = 0; i < cl->nodes; i++) {
            if (spawn_command(cl->client_ports[i], probe, buf, sizeof(buf), &text) ==
                    BENCH_REPLY_STATUS &&
                strcmp(text, "OK") == 0) {
                return 0;
            }
        }
        if (spawn_any_dead(cl) || spawn_now_s() > deadline || *cl->stop) {
            goto timeout;
        }
        spawn_sleep_ms(100);
    }
timeout:
    fprintf(stderr, "aegis-bench: the spawned cluster did not become ready%s\n",
            *cl->stop ? " before the interruption" : "");
    if (!*cl->stop && spawn_now_s() > deadline) {
        for (up = 0; up < cl->nodes; up++) {
            spawn_print_log_tail(cl, up + 1);
        }
    }
    return -1;
}

/* Ask every node for INFO replication; remember the one with role:leader. */
static inline void spawn_find_leader(struct bench_cluster *cl)
{
    static const char info[] = "*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n";
    char buf[65536];
    const char *text;
    unsigned i;

    cl->leader = 0;
    for (i = 0; i < cl->nodes && cl->leader == 0; i++) {
        if (spawn_command(cl->client_ports[i], info, buf, sizeof(buf), &text) ==
                BENCH_REPLY_BULK &&
            strstr(text, "role:leader") != NULL) {
            cl->leader = i + 1;
        }
    }
}

static inline int spawn_remove_entry(const char *path, const struct stat *st, int flag,
                                     struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Stop every node (SIGTERM, then SIGKILL after the timeout) and remove the directory. */
static inline void bench_cluster_stop(struct bench_cluster *cl, bool keep_dir)
{
    double deadline = spawn_now_s() + SPAWN_STOP_TIMEOUT_S;
    unsigned i, alive;

    for (i = 0; i < cl->nodes; i++) {
        if (cl->pids[i] > 0) {
            kill(cl->pids[i], SIGTERM);
        }
    }
    do {
        alive = 0;
        for (i = 0; i < cl->nodes; i++) {
            if (cl->pids[i] > 0 && waitpid(cl->pids[i], NULL, WNOHANG) == 0) {
                alive++;
            } else {
                cl->pids[i] = 0;
            }
        }
        if (alive > 0) {
            spawn_sleep_ms(20);
        }
    } while (alive > 0 && spawn_now_s() < deadline);
    for (i = 0; i < cl->nodes; i++) {
        if (cl->pids[i] > 0) {
            fprintf(stderr, "aegis-bench: node %u ignored SIGTERM; killing it\n", i + 1);
            kill(cl->pids[i], SIGKILL);
            waitpid(cl->pids[i], NULL, 0);
            cl->pids[i] = 0;
        }
    }
    if (cl->dir[0] != '\0' && !keep_dir) {
        nftw(cl->dir, spawn_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    } else if (cl->dir[0] != '\0') {
        fprintf(stderr, "aegis-bench: kept the cluster directory %s\n", cl->dir);
    }
}

/* Start the cluster and fill @cfg's targets with the leader's client port (or every
 * node's, with --spawn-all or when no node reports role:leader). @stop, when it becomes
 * non-zero, abandons the wait for readiness. 0 or -1 (the cluster is then already stopped
 * and removed). */
static inline int bench_cluster_start(struct bench_cluster *cl, struct bench_config *cfg,
                                      volatile sig_atomic_t *stop)
{
    char peers[BENCH_SPAWN_MAX * 32] = "";
    unsigned ports[2 * BENCH_SPAWN_MAX];
    const char *tmp = getenv("TMPDIR");
    unsigned i;

    memset(cl, 0, sizeof(*cl));
    cl->nodes = cfg->spawn;
    cl->stop = stop;
    if (spawn_find_aegisd(cl) != 0) {
        return -1;
    }
    snprintf(cl->dir, sizeof(cl->dir), "%s/aegis-bench-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(cl->dir) == NULL) {
        fprintf(stderr, "aegis-bench: mkdtemp %s: %s\n", cl->dir, strerror(errno));
        cl->dir[0] = '\0';
        return -1;
    }
    if (spawn_free_ports(ports, 2 * cl->nodes) != 0) {
        fprintf(stderr, "aegis-bench: cannot find free ports: %s\n", strerror(errno));
        goto err;
    }
    for (i = 0; i < cl->nodes; i++) {
        size_t len = strlen(peers);

        cl->peer_ports[i] = ports[i];
        cl->client_ports[i] = ports[cl->nodes + i];
        snprintf(peers + len, sizeof(peers) - len, "%s%u=127.0.0.1:%u", i ? "," : "", i + 1,
                 cl->peer_ports[i]);
    }
    for (i = 0; i < cl->nodes; i++) {
        cl->pids[i] = spawn_node(cl, cfg, i + 1, peers);
        if (cl->pids[i] < 0) {
            fprintf(stderr, "aegis-bench: fork: %s\n", strerror(errno));
            goto err;
        }
    }
    if (spawn_wait_ready(cl) != 0) {
        goto err;
    }
    spawn_find_leader(cl);
    cfg->targets_count = 0;
    for (i = 0; i < cl->nodes; i++) {
        if (cfg->spawn_all || cl->leader == 0 || cl->leader == i + 1) {
            struct bench_target *t = &cfg->targets[cfg->targets_count++];

            snprintf(t->host, sizeof(t->host), "127.0.0.1");
            snprintf(t->port, sizeof(t->port), "%u", cl->client_ports[i]);
        }
    }
    return 0;
err:
    bench_cluster_stop(cl, cfg->spawn_keep);
    return -1;
}

#endif /* AEGIS_BENCH_SPAWN_H */
