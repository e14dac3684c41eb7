/* SPDX-License-Identifier: MIT */
/* Tests of the client port's users (pipeline/users.h): SHA-256 against the FIPS 180-2
 * vectors, the constant-time compare, the users-file parser (good files and every kind
 * of bad line), password checks, and the command role table. */
#include <aegis/error.h>
#include <stdlib.h>

#include "lib/test.h"
#include "pipeline/users.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    }
}

TEST(users, sha256_vectors)
{
    static const struct {
        const char *in;
        const char *want;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklm"
         "nopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    uint8_t h[AEGIS_SHA256_BYTES];
    char got[65];
    struct aegis_sha256 s;
    char a[1000];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        aegis__sha256(v[i].in, strlen(v[i].in), h);
        hex(h, sizeof(h), got);
        ASSERT_STR_EQ(got, v[i].want);
    }
    /* One million 'a', fed in uneven pieces (the block boundary logic). */
    memset(a, 'a', sizeof(a));
    aegis__sha256_init(&s);
    for (size_t done = 0, step = 1; done < 1000000; done += step, step = step % 997 + 1) {
        if (done + step > 1000000) {
            step = 1000000 - done;
        }
        aegis__sha256_update(&s, a, step);
    }
    aegis__sha256_final(&s, h);
    hex(h, sizeof(h), got);
    ASSERT_STR_EQ(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    return TEST_PASS;
}

TEST(users, ct_equal)
{
    uint8_t a[64], b[64];

    for (size_t i = 0; i < sizeof(a); i++) {
        a[i] = b[i] = (uint8_t)(i * 7);
    }
    ASSERT_TRUE(aegis__ct_equal(a, b, sizeof(a)));
    ASSERT_TRUE(aegis__ct_equal(a, b, 0));
    for (size_t i = 0; i < sizeof(a); i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            ASSERT_FALSE(aegis__ct_equal(a, b, sizeof(a)));
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    return TEST_PASS;
}

#define SALT "0123456789abcdef0123456789abcdef"

TEST(users, parse_and_check)
{
    struct aegis_users u = {0};
    char line[512], text[2048], err[160];
    int n;

    /* The line aegis-cli hash-password prints, and the openssl one-liner's hash:
     * printf '%s%s' 0123456789abcdef0123456789abcdef s3cret | openssl dgst -sha256 */
    n = aegis__users_format_line(line, sizeof(line), "alice", AEGIS_ACCESS_ADMIN, "s3cret", 6,
                                 SALT, 32);
    ASSERT_TRUE(n > 0);
    ASSERT_STR_EQ(line, "alice admin "
                        "b07ce31e799df4166d684c95aa3f28dc20d8fb63211162e33b1aae1f674b18f6 " SALT);
    snprintf(text, sizeof(text),
             "# users of the test\n\n%s\r\n  bob\twrite %s\n"
             "default read %s\n",
             line, line + 12, line + 12);
    ASSERT_OK(aegis__users_parse(&u, text, strlen(text), err, sizeof(err)));
    ASSERT_EQ_U64(u.count, 3);
    ASSERT_EQ_U64(aegis__users_check(&u, "alice", 5, "s3cret", 6), AEGIS_ACCESS_ADMIN);
    ASSERT_EQ_U64(aegis__users_check(&u, "bob", 3, "s3cret", 6), AEGIS_ACCESS_WRITE);
    ASSERT_EQ_U64(aegis__users_check(&u, NULL, 0, "s3cret", 6), AEGIS_ACCESS_READ);
    ASSERT_EQ_U64(aegis__users_check(&u, "alice", 5, "s3creT", 6), AEGIS_ACCESS_NONE);
    ASSERT_EQ_U64(aegis__users_check(&u, "alice", 5, "s3cre", 5), AEGIS_ACCESS_NONE);
    ASSERT_EQ_U64(aegis__users_check(&u, "alice", 5, "s3cret\0", 7), AEGIS_ACCESS_NONE);
    ASSERT_EQ_U64(aegis__users_check(&u, "carol", 5, "s3cret", 6), AEGIS_ACCESS_NONE);
    ASSERT_EQ_U64(aegis__users_check(&u, "ALICE", 5, "s3cret", 6), AEGIS_ACCESS_NONE);
    /* A second file may not redefine a user. */
    ASSERT_EQ_I64(aegis__users_parse(&u, line, strlen(line), err, sizeof(err)), AEGIS_EINVAL);
    ASSERT_TRUE(strstr(err, "already defined") != NULL);
    ASSERT_EQ_U64(u.count, 3);
    aegis__users_free(&u);
    return TEST_PASS;
}

TEST(users, parse_errors)
{
    static const struct {
        const char *text;
        const char *err;
    } bad[] = {
        {"alice admin", "expected 4 fields"},
        {"alice admin 00 " SALT " extra", "expected 4 fields"},
        {"al!ce admin 0000000000000000000000000000000000000000000000000000000000000000 " SALT,
         "bad user name"},
        {"alice root 0000000000000000000000000000000000000000000000000000000000000000 " SALT,
         "unknown role 'root'"},
        {"alice admin 000000000000000000000000000000000000000000000000000000000000000 " SALT,
         "64 lowercase hex"},
        {"alice admin 000000000000000000000000000000000000000000000000000000000000000G " SALT,
         "64 lowercase hex"},
        {"alice admin 0000000000000000000000000000000000000000000000000000000000000000 abc",
         "salt must be"},
        {"alice admin 0000000000000000000000000000000000000000000000000000000000000000 " SALT
         "\n# ok\nalice read 0000000000000000000000000000000000000000000000000000000000000000 "
         SALT,
         "line 3: user 'alice' appears twice"},
    };
    struct aegis_users u = {0};
    char err[160];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ASSERT_EQ_I64(aegis__users_parse(&u, bad[i].text, strlen(bad[i].text), err,
                                         sizeof(err)),
                      AEGIS_EINVAL);
        if (strstr(err, bad[i].err) == NULL) {
            FAIL("case %zu: error '%s' lacks '%s'", i, err, bad[i].err);
        }
        ASSERT_EQ_U64(u.count, 0);
    }
    ASSERT_EQ_I64(aegis__users_parse(&u, "a\0b", 3, err, sizeof(err)), AEGIS_EINVAL);
    return TEST_PASS;
}

TEST(users, add_limits)
{
    struct aegis_users u = {0};
    char *pw = malloc(AEGIS_PASSWORD_MAX + 1);

    ASSERT_TRUE(pw != NULL);
    memset(pw, 'p', AEGIS_PASSWORD_MAX + 1);
    /* Exactly the maximum is kept whole (no silent cut: one byte more or less fails). */
    ASSERT_OK(aegis__users_add(&u, "default", AEGIS_ACCESS_ADMIN, pw, AEGIS_PASSWORD_MAX, SALT,
                               32));
    ASSERT_EQ_U64(aegis__users_check(&u, NULL, 0, pw, AEGIS_PASSWORD_MAX), AEGIS_ACCESS_ADMIN);
    ASSERT_EQ_U64(aegis__users_check(&u, NULL, 0, pw, AEGIS_PASSWORD_MAX - 1), AEGIS_ACCESS_NONE);
    ASSERT_EQ_U64(aegis__users_check(&u, NULL, 0, pw, 255), AEGIS_ACCESS_NONE);
    ASSERT_EQ_U64(aegis__users_check(&u, NULL, 0, pw, AEGIS_PASSWORD_MAX + 1),
                  AEGIS_ACCESS_NONE);
    ASSERT_EQ_I64(aegis__users_add(&u, "x", AEGIS_ACCESS_ADMIN, pw, AEGIS_PASSWORD_MAX + 1, SALT,
                                   32),
                  AEGIS_EINVAL);
    ASSERT_EQ_I64(aegis__users_add(&u, "default", AEGIS_ACCESS_READ, "a", 1, SALT, 32),
                  AEGIS_EINVAL);
    ASSERT_EQ_I64(aegis__users_add(&u, "y", AEGIS_ACCESS_NONE, "a", 1, SALT, 32), AEGIS_EINVAL);
    aegis__users_free(&u);
    free(pw);
    return TEST_PASS;
}

static enum aegis_access role_of(const char *cmd, const char *sub)
{
    return aegis__command_role(cmd, strlen(cmd), sub, sub != NULL ? strlen(sub) : 0);
}

TEST(users, role_table)
{
    static const char *const admin[][2] = {
        {"AEGIS.ADD", NULL},       {"aegis.remove", NULL}, {"Aegis.Transfer", NULL},
        {"aegis.snapshot", NULL},  {"config", "resetstat"}, {"CONFIG", "SET"},
        {"config", NULL},          {"aegis.whatever", NULL}, {"flushall", NULL},
        {"shutdown", NULL},
    };
    static const char *const writes[] = {"set", "INCR", "decr", "incrby", "decrby",
                                         "cas", "del",  "MSET"};
    static const char *const reads[] = {"get",    "MGET",   "exists",        "ping",
                                        "echo",   "info",   "command",       "select",
                                        "client", "aegis.members", "AEGIS.STATUS", "DBSIZE"};

    for (size_t i = 0; i < sizeof(admin) / sizeof(admin[0]); i++) {
        enum aegis_access need = role_of(admin[i][0], admin[i][1]);

        /* Refused for read and write users, taken from admins. */
        ASSERT_EQ_U64(need, AEGIS_ACCESS_ADMIN);
        ASSERT_TRUE(AEGIS_ACCESS_READ < need && AEGIS_ACCESS_WRITE < need);
    }
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        ASSERT_EQ_U64(role_of(writes[i], NULL), AEGIS_ACCESS_WRITE);
    }
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
        ASSERT_EQ_U64(role_of(reads[i], NULL), AEGIS_ACCESS_READ);
    }
    ASSERT_EQ_U64(role_of("config", "get"), AEGIS_ACCESS_READ);
    ASSERT_EQ_U64(role_of("AUTH", NULL), AEGIS_ACCESS_NONE);
    ASSERT_EQ_U64(role_of("quit", NULL), AEGIS_ACCESS_NONE);
    ASSERT_EQ_U64(role_of("hello", NULL), AEGIS_ACCESS_NONE);
    ASSERT_EQ_I64(aegis__role_parse("admin", 5), AEGIS_ACCESS_ADMIN);
    ASSERT_EQ_I64(aegis__role_parse("Admin", 5), -1);
    ASSERT_EQ_I64(aegis__role_parse("adm", 3), -1);
    return TEST_PASS;
}
