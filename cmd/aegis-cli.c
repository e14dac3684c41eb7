/* SPDX-License-Identifier: MIT */
/* aegis-cli: the admin side of an Aegis cluster (redis-cli serves for data commands).
 *
 *   aegis-cli [--host H --port P | --nodes H:P,H:P,...] status
 *   aegis-cli --host H --port P add ID HOST:PORT     (any node: a follower forwards it)
 *   aegis-cli --host H --port P remove ID
 *   aegis-cli --host H --port P transfer ID
 *   aegis-cli --host H --port P snapshot
 *   aegis-cli --host H --port P info [section]
 *   aegis-cli hash-password NAME ROLE   (password on stdin: prints a --users file line)
 *   --password PW (-a PW), or the environment variable AEGISCLI_AUTH (not visible in
 *   /proc/PID/cmdline, unlike -a): AUTH first; --user NAME: AUTH as that user
 *
 * status asks every node given (INFO replication over RESP2) and prints one table row per
 * node: id, client address, role, term, commit and applied index, lag behind the
 * highest commit index seen. A node that does not answer is shown as down. status exits 1
 * when no node answers or none of those answering knows a leader (no quorum), 0 otherwise.
 * Every command: 2 for bad usage, 1 when the cluster does not answer or answers an error;
 * --version prints the version and exits 0. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <aegis/aegis.h>

#include "net/resp.h"
#include "pipeline/args.h"
#include "pipeline/version.h"
#include "pipeline/users.h"

#define CLI_TARGETS_MAX 16
#define CLI_TIMEOUT_MS 3000

struct target {
    char host[256];
    char port[16];
};

static int dial(const struct target *t)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    int fd = -1;

    if (getaddrinfo(t->host, t->port, &hints, &res) != 0) {
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        if (fd >= 0) {
            close(fd);
        }
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* --password: every connection sends AUTH first (pipelined with the command). */
static const char *cli_password;
static const char *cli_user; /* --user: AUTH NAME PASSWORD; NULL: the default user. */

/* Send one command and read its whole reply into a malloc'd buffer (*out, *len_out).
 * With --password an AUTH goes first; its +OK is skipped, and an error to it is the reply.
 * Returns 0, or -1 when the node could not be reached or answered garbage. */
static int call(const struct target *t, uint32_t argc, const char *const *argv, char **out,
                size_t *len_out)
{
    struct aegis_resp_wbuf w;
    size_t lens[16], cap = 4096, len = 0, bytes = 0, vals = 0, skip = 0;
    char *buf = malloc(cap);
    int fd = dial(t), rv = -1;
    bool authed = cli_password == NULL;

    for (uint32_t i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    aegis__resp_wbuf_init(&w, NULL, 0);
    if (!authed) {
        const char *auth[] = {"AUTH", cli_user != NULL ? cli_user : cli_password,
                              cli_password};
        size_t auth_lens[] = {4, strlen(auth[1]), strlen(cli_password)};

        aegis__resp_add_command(&w, cli_user != NULL ? 3 : 2, auth, auth_lens);
    }
    aegis__resp_add_command(&w, argc, argv, lens);
    if (fd < 0 || buf == NULL || write(fd, w.data, w.len) != (ssize_t)w.len) {
        goto out;
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;
        int prv = aegis__resp_reply_parse(buf + skip, len - skip, NULL, 0, &vals, &bytes);

        if (prv == 1 && !authed && buf[0] != '-') {
            authed = true;
            skip = bytes; /* AUTH's +OK; the command's reply follows. */
            continue;
        }
        if (prv == 1) {
            memmove(buf, buf + skip, bytes);
            rv = 0;
            break;
        }
        if (prv < 0 || poll(&pfd, 1, CLI_TIMEOUT_MS) <= 0) {
            break;
        }
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);

            if (nb == NULL) {
                break;
            }
            buf = nb;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
out:
    aegis__resp_wbuf_close(&w);
    if (fd >= 0) {
        close(fd);
    }
    if (rv != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len_out = bytes;
    return 0;
}

/* Print a reply the way redis-cli does for simple types. Returns 0 unless it is an error. */
static int print_reply(const char *buf, size_t len)
{
    struct aegis_resp_value v[64];
    size_t count = 0, bytes = 0;

    if (aegis__resp_reply_parse(buf, len, v, 64, &count, &bytes) != 1 || count == 0) {
        fprintf(stderr, "aegis-cli: malformed reply\n");
        return 1;
    }
    switch (v[0].type) {
    case AEGIS_RESP_ERROR:
        fprintf(stderr, "(error) %.*s\n", (int)v[0].len, v[0].str);
        return 1;
    case AEGIS_RESP_INT:
        printf("(integer) %lld\n", (long long)v[0].integer);
        return 0;
    case AEGIS_RESP_BULK:
        if (v[0].null) {
            printf("(nil)\n");
        } else {
            fwrite(v[0].str, 1, v[0].len, stdout);
            putchar('\n');
        }
        return 0;
    default:
        printf("%.*s\n", (int)v[0].len, v[0].str);
        return 0;
    }
}

/* Find "key:" in an INFO text and copy its value (to the line end). */
static void info_field(const char *text, size_t len, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = text, *end = text + len;

    snprintf(out, cap, "-");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t line = (size_t)((nl != NULL ? nl : end) - p);

        if (line > klen && memcmp(p, key, klen) == 0 && p[klen] == ':') {
            size_t vlen = line - klen - 1;

            if (vlen > 0 && p[klen + vlen] == '\r') {
                vlen--;
            }
            snprintf(out, cap, "%.*s", (int)vlen, p + klen + 1);
            return;
        }
        p += line + 1;
    }
}

static int cmd_status(const struct target *targets, int count)
{
    char fields[CLI_TARGETS_MAX][6][64];
    bool up[CLI_TARGETS_MAX];
    unsigned long long max_commit = 0;
    int answering = 0, with_leader = 0;
    static const char *const keys[] = {"node_id", "role", "term", "commit_index",
                                       "last_applied", "leader_id"};
    const char *argv[] = {"INFO", "replication"};

    for (int i = 0; i < count; i++) {
        struct aegis_resp_value v[4];
        size_t vals = 0, bytes = 0, len = 0;
        char *buf = NULL;

        up[i] = call(&targets[i], 2, argv, &buf, &len) == 0 &&
                aegis__resp_reply_parse(buf, len, v, 4, &vals, &bytes) == 1 &&
                v[0].type == AEGIS_RESP_BULK && !v[0].null;
        for (int k = 0; k < 6; k++) {
            if (up[i]) {
                info_field(v[0].str, v[0].len, keys[k], fields[i][k], sizeof(fields[i][k]));
            } else {
                snprintf(fields[i][k], sizeof(fields[i][k]), "-");
            }
        }
        answering += up[i] ? 1 : 0;
        with_leader += up[i] && strtoull(fields[i][5], NULL, 10) != 0 ? 1 : 0;
        if (up[i] && strtoull(fields[i][3], NULL, 10) > max_commit) {
            max_commit = strtoull(fields[i][3], NULL, 10);
        }
        free(buf);
    }
    printf("%-4s %-22s %-10s %-6s %-8s %-12s %-12s %-8s\n", "id", "address", "role", "term",
           "leader", "commit", "applied", "lag");
    for (int i = 0; i < count; i++) {
        char addr[300];
        unsigned long long applied = strtoull(fields[i][4], NULL, 10);

        snprintf(addr, sizeof(addr), strchr(targets[i].host, ':') != NULL ? "[%.255s]:%.15s"
                                                                           : "%.255s:%.15s",
                 targets[i].host, targets[i].port);
        if (!up[i]) {
            printf("%-4s %-22s %-10s\n", "?", addr, "down");
            continue;
        }
        printf("%-4s %-22s %-10s %-6s %-8s %-12s %-12s %-8llu\n", fields[i][0], addr,
               fields[i][1], fields[i][2], fields[i][5], fields[i][3], fields[i][4],
               max_commit > applied ? max_commit - applied : 0);
    }
    if (answering == 0 || with_leader == 0) {
        fprintf(stderr, "aegis-cli: status: %s (no quorum)\n",
                answering == 0 ? "no node answers" : "no node knows a leader");
        return 1;
    }
    return 0;
}

/* Parse --nodes H:P,H:P,... (each as pipeline/args.c reads HOST:PORT, brackets around an
 * IPv6 address) into @t; prints the reason and returns -1 when malformed. */
static int parse_targets(const char *s, struct target *t, int *count)
{
    char err[AEGIS_ARGS_ERR_BYTES];
    const char *p = s;

    *count = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma == NULL ? strlen(p) : (size_t)(comma - p);
        char item[AEGIS_ARGS_HOSTPORT_BYTES + 1], host[AEGIS_HOST_MAX];
        uint16_t port = 0;

        if (*count == CLI_TARGETS_MAX || len == 0 || len >= sizeof(item)) {
            fprintf(stderr, "aegis-cli: --nodes: expected 1 to %d HOST:PORT entries, got '%s'\n",
                    CLI_TARGETS_MAX, s);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (aegis__args_hostport("--nodes", item, host, sizeof(host), &port, err,
                                 sizeof(err)) != 0) {
            fprintf(stderr, "aegis-cli: %s\n", err);
            return -1;
        }
        snprintf(t[*count].host, sizeof(t[*count].host), "%s", host);
        snprintf(t[*count].port, sizeof(t[*count].port), "%u", (unsigned)port);
        (*count)++;
        if (comma == NULL) {
            return 0;
        }
        p = comma + 1;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: aegis-cli [--host H] [--port P] [--nodes H:P,...] [--user NAME]\n"
               "                 [--password PW]   (or AEGISCLI_AUTH=PW in the environment)\n"
               "                 status | add ID HOST:PORT | remove ID | transfer ID |\n"
               "                 snapshot | info [SECTION]\n"
               "       aegis-cli hash-password NAME read|write|admin   (password on stdin)\n"
               "       aegis-cli --version\n"
               "exit status: 0 ok; 1 no answer, an error reply, or (status) no quorum;\n"
               "             2 bad usage\n");
}

/* Read a password (one line) from stdin and print the users-file line for it, with a
 * fresh random salt: aegis-cli hash-password alice admin < pwfile >> users. */
static int cmd_hash_password(const char *name, const char *role_text)
{
    char pw[AEGIS_PASSWORD_MAX + 3], salt[33], line[512];
    int role = aegis__role_parse(role_text, strlen(role_text)), n;
    uint8_t raw[16];
    size_t len;

    if (role < 0) {
        fprintf(stderr, "aegis-cli: hash-password: the role is read, write or admin\n");
        return 2;
    }
    len = fread(pw, 1, sizeof(pw), stdin);
    if (len > 0 && pw[len - 1] == '\n') {
        len--;
        if (len > 0 && pw[len - 1] == '\r') {
            len--;
        }
    }
    if (len == 0 || len > AEGIS_PASSWORD_MAX || memchr(pw, '\n', len) != NULL) {
        fprintf(stderr, "aegis-cli: hash-password: expected one line of 1 to %u bytes on "
                        "stdin\n", AEGIS_PASSWORD_MAX);
        return 2;
    }
    if (getentropy(raw, sizeof(raw)) != 0) {
        fprintf(stderr, "aegis-cli: getentropy: %s\n", strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(salt + 2 * i, 3, "%02x", raw[i]);
    }
    n = aegis__users_format_line(line, sizeof(line), name, (enum aegis_access)role, pw, len,
                                 salt, 32);
    explicit_bzero(pw, sizeof(pw));
    if (n < 0) {
        fprintf(stderr, "aegis-cli: hash-password: bad user name (1..64 of A-Z a-z 0-9 _ . @ "
                        "-)\n");
        return 2;
    }
    printf("%s\n", line);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'h'},  {"port", required_argument, NULL, 'p'},
        {"nodes", required_argument, NULL, 'n'}, {"help", no_argument, NULL, 'H'},
        {"password", required_argument, NULL, 'a'}, {"user", required_argument, NULL, 'u'},
        {"version", no_argument, NULL, 'V'},     {NULL, 0, NULL, 0},
    };
    struct target targets[CLI_TARGETS_MAX] = {{"127.0.0.1", "6379"}};
    char err[AEGIS_ARGS_ERR_BYTES];
    int count = 0, opt;
    uint64_t port;
    const char *cmd;
    char *reply = NULL;
    size_t len = 0;
    int rv;

    cli_password = getenv("AEGISCLI_AUTH");
    while ((opt = getopt_long(argc, argv, "h:p:n:a:u:", opts, NULL)) != -1) {
        switch (opt) {
        case 'a':
            cli_password = optarg;
            break;
        case 'u':
            cli_user = optarg;
            break;
        case 'h':
            snprintf(targets[0].host, sizeof(targets[0].host), "%s", optarg);
            count = count == 0 ? 1 : count;
            break;
        case 'p':
            if (aegis__args_u64("--port", optarg, 1, 65535, &port, err, sizeof(err)) != 0) {
                fprintf(stderr, "aegis-cli: %s\n", err);
                return 2;
            }
            snprintf(targets[0].port, sizeof(targets[0].port), "%u", (unsigned)port);
            count = count == 0 ? 1 : count;
            break;
        case 'n':
            count = 0;
            if (parse_targets(optarg, targets, &count) != 0) {
                return 2;
            }
            break;
        case 'H':
            usage(stdout);
            return 0;
        case 'V':
            aegis__version_print("aegis-cli");
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    count = count == 0 ? 1 : count;
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = argv[optind];
    if (strcmp(cmd, "hash-password") == 0 && argc - optind == 3) {
        return cmd_hash_password(argv[optind + 1], argv[optind + 2]);
    }
    if (cli_user != NULL && cli_password == NULL) {
        fprintf(stderr, "aegis-cli: --user needs a password (--password or AEGISCLI_AUTH)\n");
        return 2;
    }
    if (strcmp(cmd, "status") == 0) {
        return cmd_status(targets, count);
    }
    if (strcmp(cmd, "add") == 0 && argc - optind == 3) {
        const char *a[] = {"AEGIS.ADD", argv[optind + 1], argv[optind + 2]};

        rv = call(&targets[0], 3, a, &reply, &len);
    } else if ((strcmp(cmd, "remove") == 0 || strcmp(cmd, "transfer") == 0) &&
               argc - optind == 2) {
        const char *a[] = {strcmp(cmd, "remove") == 0 ? "AEGIS.REMOVE" : "AEGIS.TRANSFER",
                           argv[optind + 1]};

        rv = call(&targets[0], 2, a, &reply, &len);
    } else if (strcmp(cmd, "snapshot") == 0 && argc - optind == 1) {
        const char *a[] = {"AEGIS.SNAPSHOT"};

        rv = call(&targets[0], 1, a, &reply, &len);
    } else if (strcmp(cmd, "info") == 0 && argc - optind <= 2) {
        const char *a[] = {"INFO", argc - optind == 2 ? argv[optind + 1] : "all"};

        rv = call(&targets[0], 2, a, &reply, &len);
    } else {
        usage(stderr);
        return 2;
    }
    if (rv != 0) {
        fprintf(stderr, "aegis-cli: no answer from %s:%s\n", targets[0].host, targets[0].port);
        return 1;
    }
    rv = print_reply(reply, len);
    free(reply);
    return rv;
}
