/* SPDX-License-Identifier: MIT */
/* Fuzz target for the metrics endpoint's request parser (pipeline/http_parse.c).
 *
 * The whole input is one connection's bytes. Checked, abort() on violation:
 *   - the parser reads only the bytes it is given: it runs on an exact-size heap copy, so
 *     ASan catches a read past the end;
 *   - the answer is one of 200, 400, 404, 405, and head_only only for a well-formed HEAD;
 *   - it needs more bytes only while below AEGIS_HTTP_HEAD_MAX;
 *   - monotone: the shortest prefix that gives an answer gives the same answer as the
 *     whole input, and so does every prefix tried after it (several lengths). */
#include <stdlib.h>
#include <string.h>

#include "pipeline/http_parse.h"

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static int parse_copy(const uint8_t *data, size_t len, struct aegis_http_request *out)
{
    char *copy = malloc(len > 0 ? len : 1);
    int rv;

    check(copy != NULL);
    if (len > 0) {
        memcpy(copy, data, len);
    }
    rv = aegis__http_parse(copy, len, out);
    free(copy);
    return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_http_request whole, part;
    int rv = parse_copy(data, size, &whole);
    size_t first = 0;

    check(rv == 0 || rv == 1);
    if (rv == 0) {
        check(size < AEGIS_HTTP_HEAD_MAX);
        return 0;
    }
    check(whole.status == 200 || whole.status == 400 || whole.status == 404 ||
          whole.status == 405);
    check(!whole.head_only || whole.status != 400);
    check(!whole.head_only || (size >= 4 && memcmp(data, "HEAD", 4) == 0));
    /* The shortest answering prefix (binary search on the monotone predicate). */
    for (size_t lo = 0, hi = size; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;

        if (parse_copy(data, mid, &part) == 1) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
        first = hi;
    }
    for (size_t k = first; k <= size; k += (size - first) / 3 + 1) {
        check(parse_copy(data, k, &part) == 1);
        check(part.status == whole.status && part.head_only == whole.head_only);
    }
    if (first > 0) {
        check(parse_copy(data, first - 1, &part) == 0);
    }
    return 0;
}
