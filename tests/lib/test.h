/* SPDX-License-Identifier: MIT */
/* A small test harness in the spirit of munit.
 *
 *   TEST(log, append_then_get) { ... ASSERT_EQ_U64(a, b); ... }
 *
 * Tests register themselves at load time; tests/lib/test.c provides main(), which runs
 * every test (or those whose "suite.name" contains argv[1]), prints one line per test and
 * a closing "N passed, N failed, N skipped" line, and exits non-zero on any failure.
 * A test returns early through the ASSERT macros; SKIP("why") marks it skipped, and an
 * executable whose every test skipped exits 77 (ctest's SKIP_RETURN_CODE). */
#ifndef AEGIS_TEST_H
#define AEGIS_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum test_result { TEST_PASS = 0, TEST_FAIL = 1, TEST_SKIP = 2 };

typedef enum test_result (*test_fn)(void);

void test_register(const char *suite, const char *name, test_fn fn);
void test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Seed for randomised tests: AEGIS_SEED from the environment, else a fixed default. */
uint64_t test_seed(void);

#define TEST(suite, name)                                                                  \
    static enum test_result test_##suite##_##name(void);                                   \
    __attribute__((constructor)) static void test_reg_##suite##_##name(void)               \
    {                                                                                      \
        test_register(#suite, #name, test_##suite##_##name);                               \
    }                                                                                      \
    static enum test_result test_##suite##_##name(void)

#define FAIL(...)                                                                          \
    do {                                                                                   \
        test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                                     \
        return TEST_FAIL;                                                                  \
    } while (0)

#define SKIP(why)                                                                          \
    do {                                                                                   \
        fprintf(stderr, "  skip: %s\n", (why));                                            \
        return TEST_SKIP;                                                                  \
    } while (0)

#define ASSERT_TRUE(x)                                                                     \
    do {                                                                                   \
        if (!(x)) {                                                                        \
            FAIL("expected true: %s", #x);                                                 \
        }                                                                                  \
    } while (0)

#define ASSERT_FALSE(x)                                                                    \
    do {                                                                                   \
        if (x) {                                                                           \
            FAIL("expected false: %s", #x);                                                \
        }                                                                                  \
    } while (0)

#define ASSERT_EQ_U64(a, b)                                                                \
    do {                                                                                   \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                   \
        if (a_ != b_) {                                                                    \
            FAIL("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, a_, b_);                     \
        }                                                                                  \
    } while (0)

#define ASSERT_EQ_I64(a, b)                                                                \
    do {                                                                                   \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                      \
        if (a_ != b_) {                                                                    \
            FAIL("%s == %s: %" PRId64 " != %" PRId64, #a, #b, a_, b_);                     \
        }                                                                                  \
    } while (0)

#define ASSERT_NE_I64(a, b)                                                                \
    do {                                                                                   \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                      \
        if (a_ == b_) {                                                                    \
            FAIL("%s != %s: both %" PRId64, #a, #b, a_);                                   \
        }                                                                                  \
    } while (0)

/* An AEGIS error code: prints the symbolic names on mismatch. */
#define ASSERT_ERR(a, b)                                                                   \
    do {                                                                                   \
        int a_ = (int)(a), b_ = (int)(b);                                                  \
        if (a_ != b_) {                                                                    \
            FAIL("%s == %s: %d (%s) != %d (%s)", #a, #b, a_, test_err_name(a_), b_,        \
                 test_err_name(b_));                                                       \
        }                                                                                  \
    } while (0)

#define ASSERT_OK(x) ASSERT_ERR((x), 0)

#define ASSERT_STR_EQ(a, b)                                                                \
    do {                                                                                   \
        const char *a_ = (a), *b_ = (b);                                                   \
        if (strcmp(a_, b_) != 0) {                                                         \
            FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_, b_);                            \
        }                                                                                  \
    } while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                             \
    do {                                                                                   \
        if (memcmp((a), (b), (n)) != 0) {                                                  \
            FAIL("%s and %s differ in their first %zu bytes", #a, #b, (size_t)(n));        \
        }                                                                                  \
    } while (0)

const char *test_err_name(int err);

#endif /* AEGIS_TEST_H */
