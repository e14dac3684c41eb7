/* SPDX-License-Identifier: MIT */
/* aegis-bench --baseline: what this machine can do at best, measured in the same run as
 * the benchmark, so that the results can be read against the performance targets of
 * issue 7 (docs/benchmarking.md, "Performance targets").
 *
 * Measurements, all before the load starts (with --spawn the cluster is up but idle):
 *  (a) fdatasync: in the directory the nodes write to, a fresh file grows by one 128-byte
 *      write() followed by fdatasync(), BASELINE_FSYNC_SAMPLES times (fewer if that takes
 *      more than BASELINE_BUDGET_S); each sample times the write and the fdatasync
 *      together; the median and the 99th percentile are reported. The file grows, as a
 *      log does, so every sync also commits the new file size.
 *  (b) loopback round trip: a TCP connection over 127.0.0.1 (TCP_NODELAY at both ends)
 *      to a thread that echoes; one sample is a blocking send of 128 bytes until the echo
 *      is read back in full; BASELINE_RTT_SAMPLES samples after BASELINE_RTT_WARMUP; the
 *      median is reported. It includes the wake-up of a blocked thread on each side, as
 *      a request to a server does.
 *  (c) append bandwidth with fdatasync: a fresh file grows by 64 KiB writes, each
 *      followed by fdatasync, over BASELINE_BW_SMALL_BYTES; then another by 1 MiB writes
 *      over BASELINE_BW_LARGE_BYTES; MB/s (10^6 bytes) = bytes / elapsed time. The disk's
 *      append bandwidth is the larger of the two.
 * The temporary files are named aegis-bench-baseline.<pid> and removed afterwards.
 *
 * The targets (issue 7), computed by bench_baseline_targets:
 *  - one client without pipelining: p50 <= 1.2 x (fdatasync + round trip);
 *  - one client without pipelining: p99 < 2 ms;
 *  - 64 KiB values: value MB/s >= 70% of the disk's append bandwidth.
 * Header-only because every cmd/ source file becomes its own program; tests include it. */
#ifndef AEGIS_BENCH_BASELINE_H
#define AEGIS_BENCH_BASELINE_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BASELINE_FSYNC_SAMPLES  200
#define BASELINE_FSYNC_BYTES    128
#define BASELINE_RTT_SAMPLES    2000
#define BASELINE_RTT_WARMUP     200
#define BASELINE_RTT_BYTES      128
#define BASELINE_BW_SMALL       (64u * 1024u)
#define BASELINE_BW_SMALL_BYTES (8u << 20)
#define BASELINE_BW_LARGE       (1u << 20)
#define BASELINE_BW_LARGE_BYTES (32u << 20)
#define BASELINE_BUDGET_S       3.0 /* Per measurement: stop sampling after this long. */

/* Target constants of issue 7. */
#define BASELINE_P50_FACTOR     1.2
#define BASELINE_P99_LIMIT_US   2000.0
#define BASELINE_BW_FRACTION    0.70
#define BASELINE_BW_VALUE_MIN   (64u * 1024u) /* The bandwidth target is for values this big. */

struct bench_baseline {
    char dir[PATH_MAX];
    unsigned fsync_samples;
    double fsync_us;     /* Median of write(128 B) + fdatasync. */
    double fsync_p99_us; /* Its 99th percentile: the disk's own tail. */
    unsigned rtt_samples;
    double rtt_us; /* Median loopback TCP round trip of 128 bytes. */
    uint64_t bw_small_bytes;
    double bw_small_mb_s; /* 64 KiB appends, each followed by fdatasync. */
    uint64_t bw_large_bytes;
    double bw_large_mb_s; /* 1 MiB appends, each followed by fdatasync. */
};

/* One target: the limit, the measured value and whether the run's settings are the ones
 * the target is stated for (otherwise the comparison is shown but not judged). */
struct bench_target_check {
    double limit;
    double measured;
    bool applies;
    bool met;
};

struct bench_targets {
    struct bench_target_check p50_us;  /* measured p50 vs 1.2 x (fsync + rtt). */
    struct bench_target_check p99_us;  /* measured p99 vs 2000 us. */
    struct bench_target_check bw_mb_s; /* value MB/s vs 70% of the disk's bandwidth. */
};

static inline double baseline_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int baseline_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : (x > y ? 1 : 0);
}

/* Median of @n samples (sorts @v in place); the mean of the middle two for even @n. */
static inline double bench_median(double *v, unsigned n)
{
    if (n == 0) {
        return 0.0;
    }
    qsort(v, n, sizeof(*v), baseline_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* write() all of @buf[0, len) at the end of @fd; 0 or -1 (errno set). */
static inline int baseline_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static inline int baseline_open(const char *dir, char *path, size_t cap)
{
    if ((size_t)snprintf(path, cap, "%s/aegis-bench-baseline.%ld", dir, (long)getpid()) >=
        cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

/* (a): the median and 99th percentile of write(@bytes) + fdatasync on a growing file, in
 * microseconds. */
static inline int baseline_fsync(const char *dir, unsigned samples, double *median_us,
                                 double *p99_us, unsigned *taken)
{
    char path[PATH_MAX + 64], buf[BASELINE_FSYNC_BYTES];
    double *v = calloc(samples, sizeof(*v)), start;
    int fd = baseline_open(dir, path, sizeof(path)), rv = 0;
    unsigned i;

    memset(buf, 'f', sizeof(buf));
    if (fd < 0 || v == NULL) {
        free(v);
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return -1;
    }
    start = baseline_now_s();
    for (i = 0; i < samples && baseline_now_s() - start < BASELINE_BUDGET_S; i++) {
        double t = baseline_now_s();

        if (baseline_write_all(fd, buf, sizeof(buf)) != 0 || fdatasync(fd) != 0) {
            rv = -1;
            break;
        }
        v[i] = (baseline_now_s() - t) * 1e6;
    }
    *taken = i;
    *median_us = bench_median(v, i); /* Sorts v[0, i). */
    *p99_us = i > 0 ? v[(size_t)i * 99 / 100] : 0.0;
    close(fd);
    unlink(path);
    free(v);
    return rv == 0 && i > 0 ? 0 : -1;
}

/* (c): MB/s of @chunk-byte appends each followed by fdatasync, @total bytes in all. */
static inline int baseline_bandwidth(const char *dir, size_t chunk, uint64_t total,
                                     double *mb_s, uint64_t *written)
{
    char path[PATH_MAX + 64];
    char *buf = malloc(chunk);
    int fd = baseline_open(dir, path, sizeof(path)), rv = 0;
    uint64_t done = 0;
    double start;

    if (fd < 0 || buf == NULL) {
        free(buf);
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return -1;
    }
    memset(buf, 'b', chunk);
    start = baseline_now_s();
    while (done < total && baseline_now_s() - start < BASELINE_BUDGET_S) {
        if (baseline_write_all(fd, buf, chunk) != 0 || fdatasync(fd) != 0) {
            rv = -1;
            break;
        }
        done += chunk;
    }
    *mb_s = done > 0 ? (double)done / (baseline_now_s() - start) / 1e6 : 0.0;
    *written = done;
    close(fd);
    unlink(path);
    free(buf);
    return rv == 0 && done > 0 ? 0 : -1;
}

/* Read exactly @len bytes; 0, or -1 on error or end of stream. */
static inline int baseline_read_all(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The echo side of (b): echo BASELINE_RTT_BYTES-byte messages until the peer closes. */
static inline void *baseline_echo_main(void *arg)
{
    int fd = *(int *)arg;
    char buf[BASELINE_RTT_BYTES];

    while (baseline_read_all(fd, buf, sizeof(buf)) == 0 &&
           baseline_write_all(fd, buf, sizeof(buf)) == 0) {
    }
    return NULL;
}

/* (b): the median loopback TCP round trip of BASELINE_RTT_BYTES bytes, in microseconds. */
static inline int baseline_rtt(unsigned samples, double *median_us, unsigned *taken)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), cfd = -1, sfd = -1, one = 1;
    double *v = calloc(samples, sizeof(*v)), start;
    char buf[BASELINE_RTT_BYTES];
    pthread_t echo;
    bool echoing = false;
    unsigned i = 0;
    int rv = -1;

    memset(buf, 'r', sizeof(buf));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || v == NULL || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0 || listen(lfd, 1) != 0) {
        goto out;
    }
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        goto out;
    }
    sfd = accept(lfd, NULL, NULL);
    if (sfd < 0) {
        goto out;
    }
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (pthread_create(&echo, NULL, baseline_echo_main, &sfd) != 0) {
        goto out;
    }
    echoing = true;
    for (i = 0; i < BASELINE_RTT_WARMUP; i++) {
        if (baseline_write_all(cfd, buf, sizeof(buf)) != 0 ||
            baseline_read_all(cfd, buf, sizeof(buf)) != 0) {
            goto out;
        }
    }
    start = baseline_now_s();
    for (i = 0; i < samples && baseline_now_s() - start < BASELINE_BUDGET_S; i++) {
        double t = baseline_now_s();

        if (baseline_write_all(cfd, buf, sizeof(buf)) != 0 ||
            baseline_read_all(cfd, buf, sizeof(buf)) != 0) {
            goto out;
        }
        v[i] = (baseline_now_s() - t) * 1e6;
    }
    rv = i > 0 ? 0 : -1;
out:
    *taken = rv == 0 ? i : 0;
    *median_us = rv == 0 ? bench_median(v, i) : 0.0;
    if (cfd >= 0) {
        shutdown(cfd, SHUT_RDWR); /* The echo thread reads end of stream and returns. */
    }
    if (echoing) {
        pthread_join(echo, NULL);
    }
    if (cfd >= 0) {
        close(cfd);
    }
    if (sfd >= 0) {
        close(sfd);
    }
    if (lfd >= 0) {
        close(lfd);
    }
    free(v);
    return rv;
}

/* Measure everything into @bl, writing in @dir. 0, or -1 with a message on stderr. */
static inline int bench_baseline_measure(struct bench_baseline *bl, const char *dir)
{
    memset(bl, 0, sizeof(*bl));
    snprintf(bl->dir, sizeof(bl->dir), "%s", dir);
    if (baseline_fsync(dir, BASELINE_FSYNC_SAMPLES, &bl->fsync_us, &bl->fsync_p99_us,
                       &bl->fsync_samples) != 0) {
        fprintf(stderr, "aegis-bench: baseline fdatasync in %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (baseline_rtt(BASELINE_RTT_SAMPLES, &bl->rtt_us, &bl->rtt_samples) != 0) {
        fprintf(stderr, "aegis-bench: baseline loopback round trip: %s\n", strerror(errno));
        return -1;
    }
    if (baseline_bandwidth(dir, BASELINE_BW_SMALL, BASELINE_BW_SMALL_BYTES,
                           &bl->bw_small_mb_s, &bl->bw_small_bytes) != 0 ||
        baseline_bandwidth(dir, BASELINE_BW_LARGE, BASELINE_BW_LARGE_BYTES,
                           &bl->bw_large_mb_s, &bl->bw_large_bytes) != 0) {
        fprintf(stderr, "aegis-bench: baseline append bandwidth in %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* The disk's append bandwidth with fdatasync: the better of the two chunk sizes. */
static inline double bench_baseline_disk_mb_s(const struct bench_baseline *bl)
{
    return bl->bw_small_mb_s > bl->bw_large_mb_s ? bl->bw_small_mb_s : bl->bw_large_mb_s;
}

/* Judge a run against the targets: @p50_us/@p99_us its latency percentiles, @value_mb_s
 * its value bytes per second (ops/s x value size / 10^6), with @clients x @pipeline
 * connections and @value_size-byte values. */
static inline void bench_baseline_targets(const struct bench_baseline *bl, double p50_us,
                                          double p99_us, double value_mb_s, unsigned clients,
                                          unsigned pipeline, uint64_t value_size,
                                          struct bench_targets *t)
{
    bool single = clients == 1 && pipeline == 1;

    t->p50_us.limit = BASELINE_P50_FACTOR * (bl->fsync_us + bl->rtt_us);
    t->p50_us.measured = p50_us;
    t->p50_us.applies = single;
    t->p50_us.met = p50_us <= t->p50_us.limit;
    t->p99_us.limit = BASELINE_P99_LIMIT_US;
    t->p99_us.measured = p99_us;
    t->p99_us.applies = single;
    t->p99_us.met = p99_us < t->p99_us.limit;
    t->bw_mb_s.limit = BASELINE_BW_FRACTION * bench_baseline_disk_mb_s(bl);
    t->bw_mb_s.measured = value_mb_s;
    t->bw_mb_s.applies = value_size >= BASELINE_BW_VALUE_MIN;
    t->bw_mb_s.met = value_mb_s >= t->bw_mb_s.limit;
}

/* The verdict word of a target check for the report. */
static inline const char *bench_target_verdict(const struct bench_target_check *c)
{
    if (!c->applies) {
        return "not judged: other settings";
    }
    return c->met ? "met" : "NOT met";
}

#endif /* AEGIS_BENCH_BASELINE_H */
