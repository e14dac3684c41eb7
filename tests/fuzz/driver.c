/* SPDX-License-Identifier: MIT */
/* A replay driver for libFuzzer targets, so every fuzz target also runs under ctest with
 * gcc (no libFuzzer) and in every preset.
 *
 * It provides main() for a file defining LLVMFuzzerTestOneInput() and runs, in order:
 *   1. every file in the corpus directories (or files) named on the command line, as is;
 *   2. --runs N generated inputs (default 20000): seven in eight are
 *      corpus inputs put through 1 to 4 mutations (bit flips, interesting bytes and
 *      integers, truncation, insertion, deletion, duplication, splicing with another
 *      corpus input), the rest random bytes; generation stops early after --seconds S
 *      (default 3) so a slow build (asan) stays quick.
 * Everything derives from --seed (default 1): a crash replays exactly by rerunning with
 * the printed seed. The environment variables AEGIS_FUZZ_RUNS, AEGIS_FUZZ_SECONDS and
 * AEGIS_SEED override the options (so "AEGIS_FUZZ_RUNS=10000000 AEGIS_FUZZ_SECONDS=600
 * ctest -L fuzz" fuzzes longer). Each input is copied into a buffer of exactly its size
 * so AddressSanitizer catches any read past its end. A target signals a failed property
 * by aborting; the driver returns 0 when every input passed.
 *
 * Usage: fuzz_<target> [--runs N] [--seconds S] [--seed X] [corpus-dir-or-file ...] */
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CORPUS_FILES_MAX 4096
#define INPUT_BYTES_MAX (1u << 20)
#define GENERATED_BYTES_MAX 4096u

struct input {
    uint8_t *data;
    size_t size;
};

static struct input corpus[CORPUS_FILES_MAX];
static size_t corpus_count;
static uint64_t rng_state;

/* splitmix64: small, seedable, good enough to pick mutations. */
static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t below(size_t n)
{
    return n == 0 ? 0 : (size_t)(next_u64() % n);
}

static void load_file(const char *path)
{
    FILE *f;
    long size;

    if (corpus_count == CORPUS_FILES_MAX) {
        return;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        return;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || size > INPUT_BYTES_MAX ||
        fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return;
    }
    corpus[corpus_count].data = malloc((size_t)size + 1);
    corpus[corpus_count].size = fread(corpus[corpus_count].data, 1, (size_t)size, f);
    corpus_count++;
    fclose(f);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load @path: a file, or every regular file of a directory in name order (so the
 * sequence of inputs, and hence a crash, replays the same on every machine). */
static void load_path(const char *path)
{
    char *names[CORPUS_FILES_MAX];
    size_t n = 0;
    struct dirent *de;
    struct stat st;
    DIR *dir;

    if (stat(path, &st) != 0) {
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        load_file(path);
        return;
    }
    dir = opendir(path);
    if (dir == NULL) {
        return;
    }
    while ((de = readdir(dir)) != NULL && n < CORPUS_FILES_MAX) {
        if (de->d_name[0] != '.') {
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(dir);
    qsort(names, n, sizeof(names[0]), compare_names);
    for (size_t i = 0; i < n; i++) {
        char full[4096];

        snprintf(full, sizeof(full), "%s/%s", path, names[i]);
        load_file(full);
        free(names[i]);
    }
}

static void run_one(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy: ASan flags any read past the end. */
    uint8_t *copy = malloc(size > 0 ? size : 1);

    if (size > 0) {
        memcpy(copy, data, size);
    }
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
}

static const uint64_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff,
                                       0xffffffff, 0x8000000000000000u, UINT64_MAX, 16, 17};

/* Apply one random mutation to @buf (@*size bytes used, @cap available). */
static void mutate(uint8_t *buf, size_t *size, size_t cap)
{
    size_t n = *size, at = below(n + 1), len;

    switch (below(8)) {
    case 0: /* Flip a bit. */
        if (n > 0) {
            buf[below(n)] ^= (uint8_t)(1u << below(8));
        }
        break;
    case 1: /* An interesting byte. */
        if (n > 0) {
            buf[below(n)] = (uint8_t)interesting[below(5)];
        }
        break;
    case 2: /* An interesting little-endian integer of 1, 2, 4 or 8 bytes. */
        len = (size_t)1 << below(4);
        if (n >= len) {
            uint64_t v = interesting[below(sizeof(interesting) / sizeof(interesting[0]))];

            at = below(n - len + 1);
            for (size_t i = 0; i < len; i++) {
                buf[at + i] = (uint8_t)(v >> (8 * i));
            }
        }
        break;
    case 3: /* Truncate. */
        *size = below(n + 1);
        break;
    case 4: /* Insert random bytes. */
        len = 1 + below(8);
        if (n + len <= cap) {
            memmove(buf + at + len, buf + at, n - at);
            for (size_t i = 0; i < len; i++) {
                buf[at + i] = (uint8_t)next_u64();
            }
            *size = n + len;
        }
        break;
    case 5: /* Delete a range. */
        if (at < n) {
            len = 1 + below(n - at);
            memmove(buf + at, buf + at + len, n - at - len);
            *size = n - len;
        }
        break;
    case 6: /* Duplicate a range at the end. */
        if (at < n) {
            len = 1 + below(n - at);
            if (n + len <= cap) {
                memcpy(buf + n, buf + at, len);
                *size = n + len;
            }
        }
        break;
    default: /* Splice: overwrite the tail with another corpus input's tail. */
        if (corpus_count > 0) {
            const struct input *o = &corpus[below(corpus_count)];
            size_t from = below(o->size + 1);

            len = o->size - from;
            if (at + len > cap) {
                len = cap - at;
            }
            memcpy(buf + at, o->data + from, len);
            *size = at + len;
        }
        break;
    }
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The environment overrides the command line, so ctest runs can be lengthened. */
static void apply_env(uint64_t *runs, double *seconds, uint64_t *seed)
{
    const char *env_runs = getenv("AEGIS_FUZZ_RUNS"), *env_seed = getenv("AEGIS_SEED");
    const char *env_seconds = getenv("AEGIS_FUZZ_SECONDS");

    if (env_runs != NULL) {
        *runs = strtoull(env_runs, NULL, 0);
    }
    if (env_seconds != NULL) {
        *seconds = strtod(env_seconds, NULL);
    }
    if (env_seed != NULL) {
        *seed = strtoull(env_seed, NULL, 0);
    }
}

int main(int argc, char **argv)
{
    uint64_t runs = 20000, seed = 1;
    double seconds = 3, start;
    uint64_t done = 0;
    uint8_t *buf;

    if (LLVMFuzzerInitialize != NULL) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = strtod(argv[++i], NULL);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
        } else {
            load_path(argv[i]);
        }
    }
    apply_env(&runs, &seconds, &seed);
    printf("fuzz replay: seed %" PRIu64 ", %zu corpus inputs\n", seed, corpus_count);
    fflush(stdout);
    rng_state = seed;
    start = now_seconds();
    for (size_t i = 0; i < corpus_count; i++) {
        run_one(corpus[i].data, corpus[i].size);
    }
    buf = malloc(INPUT_BYTES_MAX + GENERATED_BYTES_MAX);
    for (; done < runs; done++) {
        size_t size;

        if ((done & 255) == 0 && now_seconds() - start > seconds) {
            break;
        }
        if (corpus_count > 0 && below(8) != 0) {
            const struct input *in = &corpus[below(corpus_count)];
            int mutations = 1 + (int)below(4);

            memcpy(buf, in->data, in->size);
            size = in->size;
            for (int m = 0; m < mutations; m++) {
                mutate(buf, &size, in->size + GENERATED_BYTES_MAX);
            }
        } else {
            size = below(GENERATED_BYTES_MAX / 16);
            for (size_t i = 0; i < size; i++) {
                buf[i] = (uint8_t)next_u64();
            }
        }
        run_one(buf, size);
    }
    printf("fuzz replay: %" PRIu64 " generated inputs in %.2f s: ok\n", done,
           now_seconds() - start);
    free(buf);
    for (size_t i = 0; i < corpus_count; i++) {
        free(corpus[i].data);
    }
    return 0;
}
