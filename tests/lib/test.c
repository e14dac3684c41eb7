/* SPDX-License-Identifier: MIT */
/* The harness's runner; see test.h. */
#include "lib/test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

#include <aegis/error.h>

#define TESTS_MAX 1024

struct test_case {
    const char *suite;
    const char *name;
    test_fn fn;
};

static struct test_case tests[TESTS_MAX];
static int tests_count;

void test_register(const char *suite, const char *name, test_fn fn)
{
    if (tests_count == TESTS_MAX) {
        fprintf(stderr, "too many tests (raise TESTS_MAX)\n");
        abort();
    }
    tests[tests_count++] = (struct test_case){suite, name, fn};
}

void test_fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *test_err_name(int err)
{
    return aegis_err_name(err);
}

uint64_t test_seed(void)
{
    const char *s = getenv("AEGIS_SEED");

    return s != NULL ? strtoull(s, NULL, 0) : 0x5eed;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    char full[256];

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < tests_count; i++) {
        struct test_case *t = &tests[i];
        enum test_result res;
        double start;

        snprintf(full, sizeof(full), "%s.%s", t->suite, t->name);
        if (argc > 1 && strstr(full, argv[1]) == NULL) {
            continue;
        }
        start = now_ms();
        res = t->fn();
        printf("%-60s %s (%.1f ms)\n", full,
               res == TEST_PASS ? "ok" : res == TEST_SKIP ? "SKIP" : "FAIL", now_ms() - start);
        passed += res == TEST_PASS;
        failed += res == TEST_FAIL;
        skipped += res == TEST_SKIP;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    if (failed > 0) {
        return 1;
    }
    if (passed == 0 && skipped > 0) {
        return 77;
    }
    return 0;
}
