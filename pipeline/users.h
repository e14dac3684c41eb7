/* SPDX-License-Identifier: MIT */
/* Users and roles of the client port (aegisd --users FILE, --requirepass-file FILE,
 * AEGIS_REQUIREPASS): Redis 6's ACL in miniature.
 *
 * Roles are ordered: admin implies write implies read. A connection starts with no role
 * (AEGIS_ACCESS_NONE) when any user is configured, and gets the role of the user it AUTHs
 * as; with no user configured at all the port is open and every connection is admin.
 * aegis__command_role() is the one table saying which role each command needs.
 *
 * Users file: UTF-8 text, one user per line, '#' starts a comment line, blank lines skip:
 *
 *     NAME ROLE SHA256HEX SALT
 *
 * NAME is 1..64 of [A-Za-z0-9_.@-]; ROLE is read, write or admin; SALT is 16..128
 * lowercase hex digits, taken as text; SHA256HEX is 64 lowercase hex digits of
 * SHA-256(SALT || password), the salt's characters followed by the password's bytes:
 *
 *     salt=$(openssl rand -hex 16)
 *     printf '%s%s' "$salt" "$password" | openssl dgst -sha256 -r | cut -d' ' -f1
 *
 * (or `aegis-cli hash-password NAME ROLE`, which reads the password from stdin). Fields
 * are separated by spaces or tabs. The user named "default" is the one `AUTH password`
 * (one argument) selects. Names must be unique; at most AEGIS_USERS_MAX users.
 *
 * Why a salted SHA-256 and not a slow KDF: AUTH runs on the net thread, which serves
 * every client and peer; a KDF that costs milliseconds per guess would let anyone stall
 * the node with AUTH floods. Brute force is throttled per connection instead (the server
 * delays every failed AUTH's reply and closes after a few), and the file itself is
 * meant to be readable by the aegisd user only. Use long random passwords.
 *
 * Everything here is pure (no syscalls, no clock): callers read files and make salts. */
#ifndef AEGIS_PIPELINE_USERS_H
#define AEGIS_PIPELINE_USERS_H

#include <stddef.h>
#include <stdint.h>

#include <aegis/types.h>

#include "pipeline/sha256.h"

enum aegis_access {
    AEGIS_ACCESS_NONE = 0,  /* Not authenticated: AUTH, HELLO and QUIT only. */
    AEGIS_ACCESS_READ = 1,
    AEGIS_ACCESS_WRITE = 2,
    AEGIS_ACCESS_ADMIN = 3,
};

#define AEGIS_USER_NAME_MAX 64u
#define AEGIS_SALT_HEX_MIN 16u
#define AEGIS_SALT_HEX_MAX 128u
/* The longest password accepted from a file or the environment; longer is refused at
 * start (never cut). AUTH with a longer password simply fails. */
#define AEGIS_PASSWORD_MAX 512u
#define AEGIS_USERS_MAX 1024u
/* The largest users file read. */
#define AEGIS_USERS_FILE_MAX (1u << 20)

struct aegis_user {
    char name[AEGIS_USER_NAME_MAX + 1];
    uint8_t role;                           /* enum aegis_access, READ..ADMIN. */
    uint8_t salt_len;
    char salt[AEGIS_SALT_HEX_MAX];          /* Hex text, not NUL-terminated. */
    uint8_t hash[AEGIS_SHA256_BYTES];       /* SHA-256(salt || password). */
};

struct aegis_users {
    struct aegis_user *v;                   /* malloc'd, count entries. */
    uint32_t count;
};

/* Parse users-file text (@len bytes, need not be NUL-terminated) and add its users to @u.
 * Returns 0, or AEGIS_EINVAL with a line for the operator in @err ("line 3: unknown role
 * 'root' (expected read, write or admin)"), AEGIS_ENOMEM. On error @u is unchanged. */
int aegis__users_parse(struct aegis_users *u, const char *text, size_t len, char *err,
                       size_t err_cap);

/* Add one user with a password in clear (@pw_len <= AEGIS_PASSWORD_MAX) and a salt of
 * @salt_len hex characters. Returns 0, AEGIS_EINVAL (bad name, salt, length; duplicate
 * name) or AEGIS_ENOMEM. */
int aegis__users_add(struct aegis_users *u, const char *name, enum aegis_access role,
                     const char *pw, size_t pw_len, const char *salt, size_t salt_len);

/* Format a users-file line for @name, @role, @pw and @salt into @out (NUL-terminated).
 * Returns its length, or AEGIS_EINVAL / AEGIS_ETOOBIG. */
int aegis__users_format_line(char *out, size_t cap, const char *name, enum aegis_access role,
                             const char *pw, size_t pw_len, const char *salt, size_t salt_len);

/* The role of user @name (NULL or "": "default") when @pw is its password, else
 * AEGIS_ACCESS_NONE. The hash is computed and compared (in constant time) whether or not
 * the user exists, so the time does not tell a wrong name from a wrong password. A
 * password longer than AEGIS_PASSWORD_MAX is refused at once, without hashing. */
enum aegis_access aegis__users_check(const struct aegis_users *u, const char *name,
                                   size_t name_len, const char *pw, size_t pw_len);

/* Free the table. */
void aegis__users_free(struct aegis_users *u);

/* "read", "write", "admin"; -1 for anything else. */
int aegis__role_parse(const char *s, size_t len);
const char *aegis__role_name(enum aegis_access r);

/* The role command @name (with its first argument @sub, NULL when none) needs:
 *   NONE   AUTH, HELLO, QUIT;
 *   READ   GET, MGET, EXISTS, PING, ECHO, INFO, COMMAND, SELECT, CLIENT, CONFIG GET,
 *          AEGIS.MEMBERS, AEGIS.STATUS;
 *   WRITE  SET, INCR, DECR, INCRBY, DECRBY, CAS, DEL, MSET;
 *   ADMIN  AEGIS.ADD, AEGIS.REMOVE, AEGIS.TRANSFER, AEGIS.SNAPSHOT, CONFIG RESETSTAT,
 *          CONFIG SET, and every other command (unknown commands included: a command
 *          added to the server without an entry here is admin-only until it gets one).
 * Names are case-insensitive. */
enum aegis_access aegis__command_role(const char *name, size_t len, const char *sub,
                                    size_t sub_len);

#endif /* AEGIS_PIPELINE_USERS_H */
