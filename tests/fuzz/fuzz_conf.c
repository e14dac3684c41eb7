/* SPDX-License-Identifier: MIT */
/* Fuzz target for the membership-change payload (engine/conf.c, format in conf.h): the
 * bytes of a ConfigChange log entry, decoded by every node that applies it or receives it
 * in AppendEntries.
 *
 * Properties (abort() on violation): decode never crashes, asserts or reads past its
 * length and fails only with AEGIS_ECORRUPT; what it accepts is a valid change (known op,
 * non-zero id, valid configuration) whose encoding is exactly the input (the format is
 * canonical: aegis__conf_encoded_size == input length, aegis__conf_encode gives the same
 * bytes). Then the decoded configuration goes through the core's own operations, which
 * assert on invalid input: applying the op again (aegis__conf_change) either fails with
 * a documented code or gives a valid configuration one member larger (add), with the
 * member promoted, or one smaller (remove); quorum and voter counts stay in range. */
#include <stdlib.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void check_change(const struct aegis_conf_change *cc)
{
    const struct aegis_member *m = aegis__conf_find(&cc->conf, cc->id);
    struct aegis_conf next;
    uint32_t voters = aegis__conf_voter_count(&cc->conf);
    int rv;

    check(voters <= cc->conf.count);
    check(aegis__conf_quorum(&cc->conf) == voters / 2 + 1);
    check(aegis__conf_equal(&cc->conf, &cc->conf));
    rv = aegis__conf_change(&cc->conf, cc->op, cc->id, &next);
    if (rv != 0) {
        check(rv == AEGIS_EEXIST || rv == AEGIS_EUNKNOWNNODE || rv == AEGIS_EINVAL ||
              rv == AEGIS_EFULL || rv == AEGIS_ECONFIG);
        return;
    }
    check(aegis__conf_valid(&next));
    switch (cc->op) {
    case AEGIS_CONF_ADD_LEARNER:
        check(m == NULL && next.count == cc->conf.count + 1);
        check(!aegis__conf_is_voter(&next, cc->id) && aegis__conf_find(&next, cc->id) != NULL);
        break;
    case AEGIS_CONF_PROMOTE:
        check(m != NULL && next.count == cc->conf.count && aegis__conf_is_voter(&next, cc->id));
        break;
    default:
        check(m != NULL && next.count + 1 == cc->conf.count &&
              aegis__conf_find(&next, cc->id) == NULL);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aegis_conf_change cc;
    uint8_t *again;
    int rv = aegis__conf_decode(size > 0 ? data : NULL, size, &cc);

    if (rv != 0) {
        check(rv == AEGIS_ECORRUPT);
        return 0;
    }
    check(cc.op >= AEGIS_CONF_ADD_LEARNER && cc.op <= AEGIS_CONF_REMOVE);
    check(cc.id != AEGIS_NODE_NONE && aegis__conf_valid(&cc.conf));
    check(aegis__conf_encoded_size(&cc) == size);
    again = malloc(size);
    check(again != NULL);
    check(aegis__conf_encode(&cc, again) == size);
    check(memcmp(again, data, size) == 0);
    free(again);
    check_change(&cc);
    return 0;
}
