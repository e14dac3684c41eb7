/* SPDX-License-Identifier: MIT */
/* The request parser of the Prometheus endpoint (pipeline/http_metrics.c), pure so a fuzz
 * target (tests/fuzz/fuzz_http.c) can call it.
 *
 * It looks at the bytes received so far on one connection and says whether the answer
 * is known: the head ends at the first empty line ("\r\n\r\n" or "\n\n"); the request
 * line must be METHOD SP TARGET SP HTTP/d.d, METHOD 1..15 capital letters, TARGET 1..255
 * visible ASCII characters. Headers are not interpreted. Nothing is allocated, no byte
 * past @len is read, and embedded NUL bytes are just bytes. */
#ifndef AEGIS_PIPELINE_HTTP_PARSE_H
#define AEGIS_PIPELINE_HTTP_PARSE_H

#include <stddef.h>

#include <aegis/types.h>

/* The largest request head read; a head not complete within it is answered 400. */
#define AEGIS_HTTP_HEAD_MAX 8192u

struct aegis_http_request {
    int status;      /* 200: serve the metrics; 400 malformed; 404 other path; 405 method. */
    bool head_only;  /* HEAD: the response carries headers only. */
    bool health;     /* With 200: the path is /health (not /metrics). */
};

/* Parse the head in @buf[0, @len). Returns 0 when more bytes are needed (and @len is
 * below AEGIS_HTTP_HEAD_MAX), 1 when the answer is known (then *out says it). Monotone: once
 * a prefix gives 1, every longer input with that prefix gives 1 and the same answer. */
int aegis__http_parse(const char *buf, size_t len, struct aegis_http_request *out);

#endif /* AEGIS_PIPELINE_HTTP_PARSE_H */
