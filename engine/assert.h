/* SPDX-License-Identifier: MIT */
/* Assertions that stay on in every build.
 *
 * AEGIS_ASSERT(x) checks a programmer error (never input: decoders return
 * AEGIS_ECORRUPT). On failure it calls the installed failure hook, or prints
 * "file:line: assertion failed: expr" with the thread's context string and aborts.
 * AEGIS_DASSERT(x) is for O(n) checks: on in Debug and simulation builds only.
 * AEGIS_STATIC_ASSERT(x) checks sizes and relations between constants at compile time. */
#ifndef AEGIS_ASSERT_H
#define AEGIS_ASSERT_H

#include <aegis/types.h>

typedef void (*aegis_assert_hook)(const char *expr, const char *file, int line);

/* Replace the failure handler (tests install one that longjmps or records). NULL restores
 * the default. Not thread-safe: call before starting threads. */
void aegis__assert_set_hook(aegis_assert_hook hook);

/* Set a short per-thread context ("node 2 term 7") printed with a failed assertion. The
 * string is borrowed and must outlive the thread's use of it. */
void aegis__assert_set_context(const char *ctx);

_Noreturn void aegis__assert_fail(const char *expr, const char *file, int line);

#define AEGIS_ASSERT(x)                                                                    \
    ((__builtin_expect(!!(x), 1)) ? (void)0 : aegis__assert_fail(#x, __FILE__, __LINE__))

#if !defined(NDEBUG) || defined(AEGIS_SIM)
#define AEGIS_DASSERT(x) AEGIS_ASSERT(x)
#else
#define AEGIS_DASSERT(x) ((void)0)
#endif

#define AEGIS_STATIC_ASSERT(x) _Static_assert((x), #x)

#define AEGIS_UNREACHABLE() aegis__assert_fail("unreachable", __FILE__, __LINE__)

#endif /* AEGIS_ASSERT_H */
