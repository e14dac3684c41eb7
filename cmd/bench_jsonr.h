/* SPDX-License-Identifier: MIT */
/* A small JSON reader for `aegis-bench compare`: it reads a whole document and flattens
 * it into leaves named by path, in document order: {"a": {"b": [1, 2]}} gives "a.b[0]" = 1
 * and "a.b[1]" = 2. Numbers become doubles, strings are kept (escapes decoded; \u escapes
 * outside ASCII become '?'), true/false become 1/0, null a leaf of kind null.
 *
 * The input is hostile (a file named on the command line): the parser checks every byte,
 * nests at most JSONR_DEPTH_MAX deep, rejects paths longer than JSONR_PATH_MAX, files
 * larger than JSONR_FILE_MAX and trailing garbage, and never reads past the end. On error
 * it says where. Header-only because every cmd/ source file becomes its own program. */
#ifndef AEGIS_BENCH_JSONR_H
#define AEGIS_BENCH_JSONR_H

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSONR_DEPTH_MAX 32
#define JSONR_PATH_MAX  256
#define JSONR_FILE_MAX  (256L << 20)

enum jsonr_kind { JSONR_NUMBER, JSONR_STRING, JSONR_NULL };

struct jsonr_leaf {
    char *path;
    enum jsonr_kind kind;
    double num;
    char *str; /* JSONR_STRING only. */
};

struct jsonr_doc {
    struct jsonr_leaf *leaves;
    size_t count, cap;
};

struct jsonr_parser {
    const char *s;
    size_t len, pos;
    struct jsonr_doc *doc;
    char path[JSONR_PATH_MAX];
    const char *error;
};

static inline void jsonr_free(struct jsonr_doc *d)
{
    for (size_t i = 0; i < d->count; i++) {
        free(d->leaves[i].path);
        free(d->leaves[i].str);
    }
    free(d->leaves);
    memset(d, 0, sizeof(*d));
}

static inline void jsonr_ws(struct jsonr_parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r')) {
        p->pos++;
    }
}

static inline bool jsonr_fail(struct jsonr_parser *p, const char *why)
{
    if (p->error == NULL) {
        p->error = why;
    }
    return false;
}

static inline bool jsonr_add(struct jsonr_parser *p, enum jsonr_kind kind, double num, char *str)
{
    struct jsonr_doc *d = p->doc;
    struct jsonr_leaf *l;

    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        struct jsonr_leaf *n = realloc(d->leaves, cap * sizeof(*n));

        if (n == NULL) {
            free(str);
            return jsonr_fail(p, "out of memory");
        }
        d->leaves = n;
        d->cap = cap;
    }
    l = &d->leaves[d->count];
    l->path = strdup(p->path);
    if (l->path == NULL) {
        free(str);
        return jsonr_fail(p, "out of memory");
    }
    l->kind = kind;
    l->num = num;
    l->str = str;
    d->count++;
    return true;
}

/* Parse a string at p->pos (the opening quote) into a new buffer. */
static inline char *jsonr_string(struct jsonr_parser *p)
{
    size_t start = ++p->pos, n = 0;
    char *out;

    /* Bounded: every pass consumes at least one byte of the input. */
    while (p->pos < p->len && p->s[p->pos] != '"') {
        if ((unsigned char)p->s[p->pos] < 0x20) {
            jsonr_fail(p, "control character in string");
            return NULL;
        }
        p->pos += p->s[p->pos] == '\\' ? 2 : 1;
    }
    if (p->pos >= p->len) {
        jsonr_fail(p, "unterminated string");
        return NULL;
    }
    out = malloc(p->pos - start + 1);
    if (out == NULL) {
        jsonr_fail(p, "out of memory");
        return NULL;
    }
    for (size_t i = start; i < p->pos; i++) {
        char c = p->s[i];

        if (c == '\\') {
            char e = p->s[++i];

            if (e == 'u') {
                unsigned v = 0;

                for (int k = 0; k < 4; k++) {
                    if (i + 1 >= p->pos || !isxdigit((unsigned char)p->s[i + 1])) {
                        free(out);
                        jsonr_fail(p, "bad \\u escape");
                        return NULL;
                    }
                    i++;
                    v = v * 16 + (unsigned)(isdigit((unsigned char)p->s[i])
                                                ? p->s[i] - '0'
                                                : (tolower((unsigned char)p->s[i]) - 'a' + 10));
                }
                c = v < 0x80 && v >= 0x20 ? (char)v : '?';
            } else {
                const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
                const char *at = strchr(from, e);

                if (e == '\0' || at == NULL) {
                    free(out);
                    jsonr_fail(p, "bad escape");
                    return NULL;
                }
                c = to[at - from];
            }
        }
        out[n++] = c;
    }
    out[n] = '\0';
    p->pos++;
    return out;
}

static inline bool jsonr_value(struct jsonr_parser *p, int depth);

/* Append ".key" (or "key" at the top), or "[index]" when @key is NULL, to the path;
 * false if too long. */
static inline bool jsonr_push(struct jsonr_parser *p, size_t *saved, const char *key,
                              size_t index)
{
    size_t len = strlen(p->path);
    int n = key != NULL ? snprintf(p->path + len, JSONR_PATH_MAX - len, "%s%s",
                                   len ? "." : "", key)
                        : snprintf(p->path + len, JSONR_PATH_MAX - len, "[%zu]", index);

    *saved = len;
    if (n < 0 || (size_t)n >= JSONR_PATH_MAX - len) {
        p->path[len] = '\0';
        return jsonr_fail(p, "path too long");
    }
    return true;
}

static inline bool jsonr_object(struct jsonr_parser *p, int depth)
{
    size_t saved;

    p->pos++;
    jsonr_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return true;
    }
    for (;;) {
        char *key;
        bool ok;

        jsonr_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"') {
            return jsonr_fail(p, "expected a key");
        }
        key = jsonr_string(p);
        if (key == NULL) {
            return false;
        }
        ok = jsonr_push(p, &saved, key, 0);
        free(key);
        jsonr_ws(p);
        if (!ok || p->pos >= p->len || p->s[p->pos++] != ':') {
            return jsonr_fail(p, "expected ':'");
        }
        if (!jsonr_value(p, depth + 1)) {
            return false;
        }
        p->path[saved] = '\0';
        jsonr_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            return true;
        }
        return jsonr_fail(p, "expected ',' or '}'");
    }
}

static inline bool jsonr_array(struct jsonr_parser *p, int depth)
{
    size_t saved, i = 0;

    p->pos++;
    jsonr_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return true;
    }
    for (;; i++) {
        if (!jsonr_push(p, &saved, NULL, i) || !jsonr_value(p, depth + 1)) {
            return false;
        }
        p->path[saved] = '\0';
        jsonr_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == ']') {
            p->pos++;
            return true;
        }
        return jsonr_fail(p, "expected ',' or ']'");
    }
}

static inline bool jsonr_number(struct jsonr_parser *p)
{
    char buf[64];
    size_t n = 0;
    char *end;
    double v;

    while (p->pos < p->len && n + 1 < sizeof(buf) && strchr("+-0123456789.eE", p->s[p->pos]) &&
           p->s[p->pos] != '\0') {
        buf[n++] = p->s[p->pos++];
    }
    buf[n] = '\0';
    if (n == 0 || !(buf[0] == '-' || isdigit((unsigned char)buf[0]))) {
        return jsonr_fail(p, "unexpected character");
    }
    v = strtod(buf, &end);
    if (*end != '\0') {
        return jsonr_fail(p, "bad number");
    }
    return jsonr_add(p, JSONR_NUMBER, v, NULL);
}

static inline bool jsonr_word(struct jsonr_parser *p, const char *w, enum jsonr_kind kind,
                              double num)
{
    size_t n = strlen(w);

    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0) {
        return jsonr_fail(p, "unexpected word");
    }
    p->pos += n;
    return jsonr_add(p, kind, num, NULL);
}

static inline bool jsonr_value(struct jsonr_parser *p, int depth)
{
    char c;

    if (depth > JSONR_DEPTH_MAX) {
        return jsonr_fail(p, "nested too deep");
    }
    jsonr_ws(p);
    if (p->pos >= p->len) {
        return jsonr_fail(p, "unexpected end");
    }
    c = p->s[p->pos];
    switch (c) {
    case '{': return jsonr_object(p, depth);
    case '[': return jsonr_array(p, depth);
    case '"': {
        char *s = jsonr_string(p);

        return s != NULL && jsonr_add(p, JSONR_STRING, 0.0, s);
    }
    case 't': return jsonr_word(p, "true", JSONR_NUMBER, 1.0);
    case 'f': return jsonr_word(p, "false", JSONR_NUMBER, 0.0);
    case 'n': return jsonr_word(p, "null", JSONR_NULL, 0.0);
    default: return jsonr_number(p);
    }
}

/* Parse @len bytes at @s into @d. 0, or -1 with a message in @err. */
static inline int jsonr_parse(const char *s, size_t len, struct jsonr_doc *d, char *err,
                              size_t cap)
{
    struct jsonr_parser p = {.s = s, .len = len, .doc = d};

    memset(d, 0, sizeof(*d));
    if (jsonr_value(&p, 0)) {
        jsonr_ws(&p);
        if (p.pos == p.len) {
            return 0;
        }
        jsonr_fail(&p, "trailing data");
    }
    snprintf(err, cap, "%s at byte %zu", p.error, p.pos);
    jsonr_free(d);
    return -1;
}

/* Read and parse the file @path. 0, or -1 with a message in @err. */
static inline int jsonr_load(const char *path, struct jsonr_doc *d, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long size;
    int rv;

    if (f == NULL) {
        snprintf(err, cap, "%s", strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || size > JSONR_FILE_MAX ||
        fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, cap, "cannot read (or larger than %ld bytes)", JSONR_FILE_MAX);
        fclose(f);
        return -1;
    }
    buf = malloc((size_t)size + 1);
    if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        snprintf(err, cap, "cannot read");
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    rv = jsonr_parse(buf, (size_t)size, d, err, cap);
    free(buf);
    return rv;
}

/* The leaf at @path, or NULL. */
static inline const struct jsonr_leaf *jsonr_get(const struct jsonr_doc *d, const char *path)
{
    for (size_t i = 0; i < d->count; i++) {
        if (strcmp(d->leaves[i].path, path) == 0) {
            return &d->leaves[i];
        }
    }
    return NULL;
}

/* The number at @path; @def when absent or not a number. */
static inline double jsonr_num(const struct jsonr_doc *d, const char *path, double def)
{
    const struct jsonr_leaf *l = jsonr_get(d, path);

    return l != NULL && l->kind == JSONR_NUMBER ? l->num : def;
}

/* The string at @path; @def when absent or not a string. */
static inline const char *jsonr_str(const struct jsonr_doc *d, const char *path,
                                    const char *def)
{
    const struct jsonr_leaf *l = jsonr_get(d, path);

    return l != NULL && l->kind == JSONR_STRING ? l->str : def;
}

#endif /* AEGIS_BENCH_JSONR_H */
