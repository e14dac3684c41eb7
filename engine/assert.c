/* SPDX-License-Identifier: MIT */
/* The failure path of AEGIS_ASSERT.
 *
 * This is the one file of engine/ allowed <stdio.h> (tests/tidy allowlists it): a failed
 * assertion must say where it failed even in the pure core, and it never returns. */
#include "engine/assert.h"

#include <stdio.h>
#include <stdlib.h>

static aegis_assert_hook assert_hook;
static _Thread_local const char *assert_context;

void aegis__assert_set_hook(aegis_assert_hook hook)
{
    assert_hook = hook;
}

void aegis__assert_set_context(const char *ctx)
{
    assert_context = ctx;
}

_Noreturn void aegis__assert_fail(const char *expr, const char *file, int line)
{
    if (assert_hook != NULL) {
        assert_hook(expr, file, line);
    }
    fprintf(stderr, "%s:%d: assertion failed: %s%s%s\n", file, line, expr,
            assert_context != NULL ? " | " : "", assert_context != NULL ? assert_context : "");
    fflush(stderr);
    abort();
}
