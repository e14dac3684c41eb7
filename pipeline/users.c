/* SPDX-License-Identifier: MIT */
/* Users, password hashes and the command role table; see users.h. */
#include "pipeline/users.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <aegis/error.h>

static void err_set(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || cap == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

int aegis__role_parse(const char *s, size_t len)
{
    if (len == 4 && strncmp(s, "read", 4) == 0) {
        return AEGIS_ACCESS_READ;
    }
    if (len == 5 && strncmp(s, "write", 5) == 0) {
        return AEGIS_ACCESS_WRITE;
    }
    if (len == 5 && strncmp(s, "admin", 5) == 0) {
        return AEGIS_ACCESS_ADMIN;
    }
    return -1;
}

const char *aegis__role_name(enum aegis_access r)
{
    switch (r) {
    case AEGIS_ACCESS_READ:
        return "read";
    case AEGIS_ACCESS_WRITE:
        return "write";
    case AEGIS_ACCESS_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > AEGIS_USER_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '@' || c == '-')) {
            return false;
        }
    }
    return true;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

static bool hex_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (hex_val(s[i]) < 0) {
            return false;
        }
    }
    return true;
}

static bool salt_ok(const char *s, size_t len)
{
    return len >= AEGIS_SALT_HEX_MIN && len <= AEGIS_SALT_HEX_MAX && hex_ok(s, len);
}

static void hash_pw(const char *salt, size_t salt_len, const char *pw, size_t pw_len,
                    uint8_t out[AEGIS_SHA256_BYTES])
{
    struct aegis_sha256 s;

    aegis__sha256_init(&s);
    aegis__sha256_update(&s, salt, salt_len);
    aegis__sha256_update(&s, pw, pw_len);
    aegis__sha256_final(&s, out);
}

static const struct aegis_user *find(const struct aegis_users *u, const char *name, size_t len)
{
    for (uint32_t i = 0; i < u->count; i++) {
        if (strlen(u->v[i].name) == len && memcmp(u->v[i].name, name, len) == 0) {
            return &u->v[i];
        }
    }
    return NULL;
}

/* Append the users of @add to @u (all or nothing). */
static int users_append(struct aegis_users *u, const struct aegis_user *add, uint32_t n)
{
    struct aegis_user *v;

    if (u->count + n > AEGIS_USERS_MAX) {
        return AEGIS_EINVAL;
    }
    v = realloc(u->v, (size_t)(u->count + n) * sizeof(*v) + 1);
    if (v == NULL) {
        return AEGIS_ENOMEM;
    }
    memcpy(v + u->count, add, (size_t)n * sizeof(*v));
    u->v = v;
    u->count += n;
    return 0;
}

int aegis__users_add(struct aegis_users *u, const char *name, enum aegis_access role,
                     const char *pw, size_t pw_len, const char *salt, size_t salt_len)
{
    struct aegis_user one = {.role = (uint8_t)role};
    size_t name_len = strlen(name);
    int rv;

    if (!name_ok(name, name_len) || role < AEGIS_ACCESS_READ || role > AEGIS_ACCESS_ADMIN ||
        pw_len > AEGIS_PASSWORD_MAX || !salt_ok(salt, salt_len) ||
        find(u, name, name_len) != NULL) {
        return AEGIS_EINVAL;
    }
    memcpy(one.name, name, name_len);
    memcpy(one.salt, salt, salt_len);
    one.salt_len = (uint8_t)salt_len;
    hash_pw(salt, salt_len, pw, pw_len, one.hash);
    rv = users_append(u, &one, 1);
    memset(&one, 0, sizeof(one));
    return rv;
}

/* Split the next field of [*p, end) on spaces and tabs. */
static bool next_field(const char **p, const char *end, const char **f, size_t *len)
{
    const char *s = *p;

    while (s < end && (*s == ' ' || *s == '\t')) {
        s++;
    }
    *f = s;
    while (s < end && *s != ' ' && *s != '\t') {
        s++;
    }
    *len = (size_t)(s - *f);
    *p = s;
    return *len > 0;
}

/* Parse one non-blank, non-comment line into @out. */
static int parse_line(const char *line, const char *end, uint32_t lineno,
                      const struct aegis_users *have, const struct aegis_user *batch,
                      uint32_t batch_n, struct aegis_user *out, char *err, size_t cap)
{
    const char *f[5];
    size_t len[5];
    const char *p = line;
    int role, nf = 0;

    while (nf < 5 && next_field(&p, end, &f[nf], &len[nf])) {
        nf++;
    }
    if (nf != 4) {
        err_set(err, cap, "line %u: expected 4 fields 'NAME ROLE SHA256HEX SALT', got %d",
                lineno, nf);
        return AEGIS_EINVAL;
    }
    if (!name_ok(f[0], len[0])) {
        err_set(err, cap, "line %u: bad user name (1..64 of A-Z a-z 0-9 _ . @ -)", lineno);
        return AEGIS_EINVAL;
    }
    role = aegis__role_parse(f[1], len[1]);
    if (role < 0) {
        err_set(err, cap, "line %u: unknown role '%.*s' (expected read, write or admin)",
                lineno, (int)(len[1] < 16 ? len[1] : 16), f[1]);
        return AEGIS_EINVAL;
    }
    if (len[2] != 2 * AEGIS_SHA256_BYTES || !hex_ok(f[2], len[2])) {
        err_set(err, cap, "line %u: the hash must be 64 lowercase hex digits", lineno);
        return AEGIS_EINVAL;
    }
    if (!salt_ok(f[3], len[3])) {
        err_set(err, cap, "line %u: the salt must be %u..%u lowercase hex digits", lineno,
                AEGIS_SALT_HEX_MIN, AEGIS_SALT_HEX_MAX);
        return AEGIS_EINVAL;
    }
    *out = (struct aegis_user){.role = (uint8_t)role, .salt_len = (uint8_t)len[3]};
    memcpy(out->name, f[0], len[0]);
    memcpy(out->salt, f[3], len[3]);
    for (uint32_t i = 0; i < AEGIS_SHA256_BYTES; i++) {
        out->hash[i] = (uint8_t)(hex_val(f[2][2 * i]) << 4 | hex_val(f[2][2 * i + 1]));
    }
    for (uint32_t i = 0; i < batch_n; i++) {
        if (strcmp(batch[i].name, out->name) == 0) {
            err_set(err, cap, "line %u: user '%s' appears twice", lineno, out->name);
            return AEGIS_EINVAL;
        }
    }
    if (find(have, out->name, len[0]) != NULL) {
        err_set(err, cap, "line %u: user '%s' is already defined", lineno, out->name);
        return AEGIS_EINVAL;
    }
    return 0;
}

int aegis__users_parse(struct aegis_users *u, const char *text, size_t len, char *err,
                       size_t err_cap)
{
    struct aegis_user *batch = NULL;
    uint32_t n = 0, lineno = 0;
    const char *p = text, *end = text + len;
    int rv = 0;

    if (len > AEGIS_USERS_FILE_MAX) {
        err_set(err, err_cap, "file larger than %u bytes", AEGIS_USERS_FILE_MAX);
        return AEGIS_EINVAL;
    }
    /* Bounded by @len: every round consumes one line. */
    while (p < end && rv == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t line_len = (size_t)((nl != NULL ? nl : end) - p);
        const char *s = p, *le;

        lineno++;
        p = nl != NULL ? nl + 1 : end;
        if (line_len > 0 && s[line_len - 1] == '\r') {
            line_len--;
        }
        le = s + line_len;
        if (memchr(s, '\0', line_len) != NULL) {
            err_set(err, err_cap, "line %u: NUL byte", lineno);
            rv = AEGIS_EINVAL;
            break;
        }
        while (s < le && (*s == ' ' || *s == '\t')) {
            s++;
        }
        if (s == le || *s == '#') {
            continue;
        }
        if (n == AEGIS_USERS_MAX || u->count + n >= AEGIS_USERS_MAX) {
            err_set(err, err_cap, "line %u: more than %u users", lineno, AEGIS_USERS_MAX);
            rv = AEGIS_EINVAL;
            break;
        }
        if ((n & (n - 1)) == 0) {
            struct aegis_user *b = realloc(batch, (size_t)(n == 0 ? 1 : 2 * n) * sizeof(*b));

            if (b == NULL) {
                rv = AEGIS_ENOMEM;
                break;
            }
            batch = b;
        }
        rv = parse_line(s, le, lineno, u, batch, n, &batch[n], err, err_cap);
        if (rv == 0) {
            n++;
        }
    }
    if (rv == 0 && n > 0) {
        rv = users_append(u, batch, n);
    }
    free(batch);
    return rv;
}

int aegis__users_format_line(char *out, size_t cap, const char *name, enum aegis_access role,
                             const char *pw, size_t pw_len, const char *salt, size_t salt_len)
{
    uint8_t h[AEGIS_SHA256_BYTES];
    char hex[2 * AEGIS_SHA256_BYTES + 1];
    int n;

    if (!name_ok(name, strlen(name)) || role < AEGIS_ACCESS_READ || role > AEGIS_ACCESS_ADMIN ||
        pw_len > AEGIS_PASSWORD_MAX || !salt_ok(salt, salt_len)) {
        return AEGIS_EINVAL;
    }
    hash_pw(salt, salt_len, pw, pw_len, h);
    for (uint32_t i = 0; i < AEGIS_SHA256_BYTES; i++) {
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    }
    n = snprintf(out, cap, "%s %s %s %.*s", name, aegis__role_name(role), hex, (int)salt_len,
                 salt);
    if (n < 0 || (size_t)n >= cap) {
        return AEGIS_ETOOBIG;
    }
    return n;
}

enum aegis_access aegis__users_check(const struct aegis_users *u, const char *name,
                                   size_t name_len, const char *pw, size_t pw_len)
{
    static const struct aegis_user dummy = {.salt = "0000000000000000", .salt_len = 16};
    const struct aegis_user *user;
    uint8_t h[AEGIS_SHA256_BYTES];
    bool ok;

    if (name == NULL || name_len == 0) {
        name = "default";
        name_len = 7;
    }
    if (pw_len > AEGIS_PASSWORD_MAX) {
        /* Longer than any stored password: refused without hashing (a megabyte of
         * password per AUTH would otherwise cost the net thread milliseconds). */
        return AEGIS_ACCESS_NONE;
    }
    user = find(u, name, name_len);
    /* Same work for an unknown user: hash against a dummy entry, then refuse. */
    hash_pw(user != NULL ? user->salt : dummy.salt, user != NULL ? user->salt_len : 16, pw,
            pw_len, h);
    ok = aegis__ct_equal(h, user != NULL ? user->hash : dummy.hash, AEGIS_SHA256_BYTES);
    memset(h, 0, sizeof(h));
    if (user == NULL || !ok) {
        return AEGIS_ACCESS_NONE;
    }
    return (enum aegis_access)user->role;
}

void aegis__users_free(struct aegis_users *u)
{
    if (u->v != NULL) {
        memset(u->v, 0, (size_t)u->count * sizeof(*u->v));
    }
    free(u->v);
    u->v = NULL;
    u->count = 0;
}

static bool is(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

enum aegis_access aegis__command_role(const char *name, size_t len, const char *sub,
                                    size_t sub_len)
{
    static const char *const none[] = {"auth", "hello", "quit"};
    static const char *const read[] = {"get",    "mget",   "exists",        "ping",
                                       "echo",   "info",   "command",       "select",
                                       "client", "aegis.members", "aegis.status", "dbsize"};
    static const char *const write[] = {"set",    "incr", "decr", "incrby",
                                        "decrby", "cas",  "del",  "mset"};

    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        if (is(name, len, none[i])) {
            return AEGIS_ACCESS_NONE;
        }
    }
    for (size_t i = 0; i < sizeof(read) / sizeof(read[0]); i++) {
        if (is(name, len, read[i])) {
            return AEGIS_ACCESS_READ;
        }
    }
    for (size_t i = 0; i < sizeof(write) / sizeof(write[0]); i++) {
        if (is(name, len, write[i])) {
            return AEGIS_ACCESS_WRITE;
        }
    }
    if (is(name, len, "config") && sub != NULL && is(sub, sub_len, "get")) {
        return AEGIS_ACCESS_READ;
    }
    return AEGIS_ACCESS_ADMIN;
}
