/* SPDX-License-Identifier: MIT */
/* The `sim` command: runs the simulation for one seed or a range of seeds.
 *
 *   sim --seed S [--steps N] [--nodes 3|5] [--bugs NAME[,NAME]] [--verbose]
 *   sim --seeds A..B | --seed S --count M   many seeds, stopping at the first failure
 *   sim ... --profile mixed|chaos|figure8|crash|partition   fault schedule (sim_world.c)
 *   sim ... --wipe                          some crashes erase the node's storage; it
 *                                           restarts guarded (config.fresh)
 *   sim ... --expect-violation              succeed iff some seed shows a violation found
 *                                           by a checker (a failed assertion does not
 *                                           count: the search goes on)
 *
 * Environment (ignored with --expect-violation): AEGIS_SEED=<n> replays that one seed
 * (whatever range was asked); AEGIS_SIM_SEEDS=<m> runs m seeds from the first (long
 * mode).
 *
 * On a violation it prints the seed, the step, the property and the message, the command
 * line that replays it, and the last SIM_TRACE_KEEP trace events. A failed assertion
 * (in the core or in the simulation) is reported the same way: the assertion hook jumps
 * back here. Exit status: 0 pass, 1 violation (or, with --expect-violation, none found),
 * 2 usage. */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/assert.h"
#include "sim.h"

static jmp_buf assert_jump;
static struct sim_world *running;

static void on_assert(const char *expr, const char *file, int line)
{
    if (running != NULL) {
        sim_fail(running, "Assertion", "%s:%d: %s", file, line, expr);
        longjmp(assert_jump, 1);
    }
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

static const struct {
    const char *name;
    uint32_t bit;
} bug_table[] = {
    {"commit_old_term", AEGIS_RAFT_BUG_COMMIT_OLD_TERM},
    {"vote_any_log", AEGIS_RAFT_BUG_VOTE_ANY_LOG},
    {"ack_before_durable", AEGIS_RAFT_BUG_ACK_BEFORE_DURABLE},
    {"read_without_index", AEGIS_RAFT_BUG_READ_WITHOUT_INDEX},
    {"no_amnesia_guard", AEGIS_RAFT_BUG_NO_AMNESIA_GUARD},
};

static bool parse_bugs(const char *s, uint32_t *bits)
{
    char buf[256], *save = NULL;

    if (strlen(s) >= sizeof(buf)) {
        return false;
    }
    strcpy(buf, s);
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        bool found = false;

        for (size_t i = 0; i < sizeof(bug_table) / sizeof(bug_table[0]); i++) {
            if (strcasecmp(t, bug_table[i].name) == 0) {
                *bits |= bug_table[i].bit;
                found = true;
            }
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sim [--seed S] [--seeds A..B | --count M] [--steps N] [--nodes 3|5]\n"
            "           [--bugs commit_old_term,vote_any_log,ack_before_durable,"
            "read_without_index,no_amnesia_guard]\n"
            "           [--profile mixed|chaos|figure8|crash|partition]\n"
            "           [--expect-violation] [--verbose] [--wipe]\n"
            "env: AEGIS_SEED=<n> replays one seed; AEGIS_SIM_SEEDS=<m> runs m seeds\n");
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void replay_line(const struct sim_options *o, FILE *f)
{
    fprintf(f, "replay: sim --seed %" PRIu64 " --steps %" PRIu64 " --nodes %u", o->seed,
            o->steps, o->nodes);
    if (o->bug_names != NULL) {
        fprintf(f, " --bugs %s", o->bug_names);
    }
    if (o->profile != SIM_PROFILE_MIXED) {
        fprintf(f, " --profile %s", sim_profile_name(o->profile));
    }
    if (o->wipe) {
        fprintf(f, " --wipe");
    }
    fprintf(f, " --verbose\n");
}

static void report_failure(const struct sim_world *w, bool with_trace)
{
    fprintf(stderr, "FAIL seed=%" PRIu64 " step=%" PRIu64 " %s\n", w->opt.seed, w->fail_step,
            w->failure);
    replay_line(&w->opt, stderr);
    if (with_trace) {
        sim_dump_trace(w, stderr);
        fprintf(stderr, "FAIL seed=%" PRIu64 " step=%" PRIu64 " %s\n", w->opt.seed,
                w->fail_step, w->failure);
    }
}

static void add_stats(struct sim_stats *t, const struct sim_stats *s)
{
    t->msgs_sent += s->msgs_sent;
    t->msgs_dropped += s->msgs_dropped;
    t->msgs_duplicated += s->msgs_duplicated;
    t->crashes += s->crashes;
    t->commit_kills += s->commit_kills;
    t->old_term_commits += s->old_term_commits;
    t->torn += s->torn;
    t->partitions += s->partitions;
    t->pauses += s->pauses;
    t->transfers += s->transfers;
    t->wipes += s->wipes;
    t->amnesia_stops += s->amnesia_stops;
    t->conf_changes += s->conf_changes;
    t->leaders += s->leaders;
    t->snapshots_taken += s->snapshots_taken;
    t->snapshots_installed += s->snapshots_installed;
    t->ops_ok += s->ops_ok;
    t->ops_indeterminate += s->ops_indeterminate;
    t->reads_ok += s->reads_ok;
    t->lin_steps += s->lin_steps;
}

/* Run one seed; returns true when it passed, else stores the violated property. The
 * world is freed unless an assertion jumped out of it (its state is then inconsistent; it
 * stays reachable and leaks). */
static bool run_seed(const struct sim_options *o, struct sim_stats *total, bool quiet_fail,
                     const char **property_out)
{
    struct sim_world *w = sim_xcalloc(1, sizeof(*w));
    bool ok;

    running = w;
    if (setjmp(assert_jump) == 0) {
        sim_world_init(w, o);
        ok = !w->failed && sim_world_run(w);
        running = NULL;
        if (!ok) {
            report_failure(w, !quiet_fail || o->verbose);
            *property_out = w->fail_property;
        }
        add_stats(total, &w->stats);
        sim_world_close(w);
        free(w);
        return ok;
    }
    running = NULL;
    report_failure(w, !quiet_fail || o->verbose);
    *property_out = w->fail_property;
    return false; /* w leaks on purpose: see above. */
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;

    if (s == NULL || *s == 0) {
        return false;
    }
    *out = strtoull(s, &end, 0);
    return *end == 0;
}

struct sim_cli {
    struct sim_options o;
    uint64_t first;
    uint64_t count;
    bool expect_violation;
};

static bool parse_profile(const char *v, enum sim_profile *out)
{
    for (int k = SIM_PROFILE_MIXED; k <= SIM_PROFILE_PARTITION; k++) {
        if (v != NULL && strcmp(v, sim_profile_name((enum sim_profile)k)) == 0) {
            *out = (enum sim_profile)k;
            return true;
        }
    }
    return false;
}

/* Parse the command line into @cli; false on a usage error. */
static bool parse_args(int argc, char **argv, struct sim_cli *cli)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = true;
        uint64_t x;

        if (strcmp(a, "--seed") == 0 && parse_u64(v, &x)) {
            cli->first = x;
        } else if (strcmp(a, "--seeds") == 0 && v != NULL && strstr(v, "..") != NULL) {
            char *end;

            cli->first = strtoull(v, &end, 0);
            x = strtoull(end + 2, NULL, 0);
            if (x < cli->first) {
                return false;
            }
            cli->count = x - cli->first + 1;
        } else if (strcmp(a, "--count") == 0 && parse_u64(v, &x) && x > 0) {
            cli->count = x;
        } else if (strcmp(a, "--steps") == 0 && parse_u64(v, &x)) {
            cli->o.steps = x;
        } else if (strcmp(a, "--nodes") == 0 && parse_u64(v, &x) && x >= 1 &&
                   x <= SIM_NODES_MAX) {
            cli->o.nodes = (unsigned)x;
        } else if (strcmp(a, "--bugs") == 0 && v != NULL && parse_bugs(v, &cli->o.bugs)) {
            cli->o.bug_names = v;
        } else if (strcmp(a, "--profile") == 0 && parse_profile(v, &cli->o.profile)) {
            /* Parsed. */
        } else if (strcmp(a, "--expect-violation") == 0) {
            cli->expect_violation = true;
            takes_value = false;
        } else if (strcmp(a, "--verbose") == 0) {
            cli->o.verbose = true;
            takes_value = false;
        } else if (strcmp(a, "--wipe") == 0) {
            cli->o.wipe = true;
            takes_value = false;
        } else {
            return false;
        }
        i += takes_value;
    }
    return true;
}

static void print_summary(const struct sim_options *o, uint64_t ran, uint64_t first,
                          bool failed, double secs, const struct sim_stats *t)
{
    printf("sim: %" PRIu64 " seed(s) from %" PRIu64 ", %u nodes, %" PRIu64 " steps%s%s: %s"
           " in %.1f s\n", ran, first, o->nodes, o->steps, o->bug_names ? ", bugs " : "",
           o->bug_names ? o->bug_names : "", failed ? "VIOLATION" : "all passed", secs);
    printf("sim: leaders %" PRIu64 ", crashes %" PRIu64 " (torn %" PRIu64 "), partitions %"
           PRIu64 ", pauses %" PRIu64 ", transfers %" PRIu64 ", conf changes %" PRIu64 "\n",
           t->leaders, t->crashes, t->torn, t->partitions, t->pauses, t->transfers,
           t->conf_changes);
    if (o->wipe) {
        printf("sim: wipes %" PRIu64 ", nodes stopped by the amnesia guard %" PRIu64 "\n",
               t->wipes, t->amnesia_stops);
    }
    printf("sim: msgs %" PRIu64 " (dropped %" PRIu64 ", dup %" PRIu64 "), snapshots %" PRIu64
           "/%" PRIu64 " taken/installed, commit kills %" PRIu64 ", leader commits resting on"
           " an earlier term %" PRIu64 "\n", t->msgs_sent, t->msgs_dropped,
           t->msgs_duplicated, t->snapshots_taken, t->snapshots_installed, t->commit_kills,
           t->old_term_commits);
    printf("sim: client writes ok %" PRIu64 ", indeterminate %" PRIu64 ", reads ok %" PRIu64
           ", linearizability search steps %" PRIu64 "\n", t->ops_ok, t->ops_indeterminate,
           t->reads_ok, t->lin_steps);
}

int main(int argc, char **argv)
{
    struct sim_cli cli = {.o = {.steps = 3000, .nodes = 3}, .first = 1, .count = 1};
    struct sim_stats total = {0};
    uint64_t ran = 0, failed_seed = 0, assertions = 0;
    const char *caught_by = NULL, *env;
    bool failed = false;
    double start;

    if (!parse_args(argc, argv, &cli)) {
        usage();
        return 2;
    }
    /* The environment steers the default run; a bug hunt (--expect-violation) keeps the
     * range it was given. */
    if (!cli.expect_violation && (env = getenv("AEGIS_SIM_SEEDS")) != NULL &&
        parse_u64(env, &cli.count) && cli.count == 0) {
        cli.count = 1;
    }
    if (!cli.expect_violation && (env = getenv("AEGIS_SEED")) != NULL &&
        parse_u64(env, &cli.first)) {
        cli.count = 1;
    }
    aegis__assert_set_hook(on_assert);
    setvbuf(stdout, NULL, _IOLBF, 0);
    start = now_s();
    for (uint64_t s = cli.first; s < cli.first + cli.count; s++) {
        const char *property = NULL;

        cli.o.seed = s;
        ran++;
        if (run_seed(&cli.o, &total, cli.expect_violation, &property)) {
            continue;
        }
        if (cli.expect_violation && strcmp(property, "Assertion") == 0) {
            /* A crash of the core is not a checker catching the bug: keep looking. */
            assertions++;
            continue;
        }
        failed = true;
        failed_seed = s;
        caught_by = property;
        break;
    }
    print_summary(&cli.o, ran, cli.first, failed, now_s() - start, &total);
    if (!cli.expect_violation) {
        return failed ? 1 : 0;
    }
    if (!failed) {
        printf("sim: NO violation in %" PRIu64 " seeds (%" PRIu64 " ended in an assertion):"
               " the checkers missed the bug\n", ran, assertions);
        return 1;
    }
    printf("sim: %s violation caught at seed %" PRIu64 " (seed %" PRIu64 " of %" PRIu64
           " allowed; %" PRIu64 " seeds ended in an assertion)\n", caught_by, failed_seed, ran,
           cli.count, assertions);
    return 0;
}
