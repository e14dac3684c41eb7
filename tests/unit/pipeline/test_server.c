/* SPDX-License-Identifier: MIT */
/* The client port's dispatch (pipeline/server.c), driven without a cluster: the command
 * table's lookup, arity and access checks, and the reply of every command answered on
 * the net thread, read back from the connection's output buffer. The file is included
 * (its functions are static); the node is a zeroed struct with no loop, which is all the
 * local commands touch. Commands that go through the node (GET, SET, ...) are covered by
 * tests/cluster. */
#include "pipeline/server.c"

#include "lib/test.h"

#define SALT "0123456789abcdef0123456789abcdef"

struct fix {
    struct aegis_node *n;
    struct aegis_server *s;
    struct srv_conn *c;
    char out[1024];
};

/* A server over a zeroed node, with one connection of role @role (users configured when
 * it is below admin). */
static bool fix_open(struct fix *f, enum aegis_access role)
{
    struct aegis_server_config cfg = {.host = "127.0.0.1", .port = 6379, .clients_max = 8,
                                      .value_bytes_max = 1u << 20, .pipeline_max = 16,
                                      .idle_ms = 30000};

    if (role < AEGIS_ACCESS_ADMIN &&
        aegis__users_add(&cfg.users, "default", AEGIS_ACCESS_READ, "pw", 2, SALT, 32) != 0) {
        return false;
    }
    f->n = calloc(1, sizeof(*f->n));
    f->s = f->n != NULL ? server_new(f->n, &cfg) : NULL;
    f->c = f->s != NULL ? conn_new(f->s, 1) : NULL;
    if (f->c == NULL) {
        return false;
    }
    f->c->role = (uint8_t)role;
    return true;
}

static void fix_close(struct fix *f)
{
    conn_free(f->c);
    aegis__server_destroy(f->s);
    free(f->n);
}

/* Run the inline command @line (no CRLF) and return the bytes it put in the output (as
 * a string; the output is emptied). */
static const char *run(struct fix *f, const char *line)
{
    char buf[512];
    struct aegis_resp_cmd cmd;
    size_t len = (size_t)snprintf(buf, sizeof(buf), "%s\r\n", line);
    size_t n;

    if (aegis__resp_parse(&f->c->parser, buf, len, &cmd) != 1 || cmd.argc == 0) {
        return "(parse failed)";
    }
    if (!dispatch(f->c, &cmd)) {
        return "(pushed back)";
    }
    n = f->c->out.len < sizeof(f->out) - 1 ? f->c->out.len : sizeof(f->out) - 1;
    if (n > 0) { /* A parked reply writes nothing, and the buffer may not exist yet. */
        memcpy(f->out, f->c->out.data, n);
    }
    f->out[n] = '\0';
    f->c->out.len = 0;
    f->c->sent_seq = f->c->ready_seq;
    return f->out;
}

TEST(server, unknown_commands_and_arity_errors_use_redis_wording)
{
    struct fix f;

    ASSERT_TRUE(fix_open(&f, AEGIS_ACCESS_ADMIN));
    ASSERT_STR_EQ(run(&f, "NOSUCHCMD x"), "-ERR unknown command 'NOSUCHCMD'\r\n");
    ASSERT_STR_EQ(run(&f, "aegis.nosuch"), "-ERR unknown command 'aegis.nosuch'\r\n");
    /* Exact arity (GET 2), minimum arity (DEL -2, SET -3), and the extra checks. */
    ASSERT_STR_EQ(run(&f, "GET"), "-ERR wrong number of arguments for 'get' command\r\n");
    ASSERT_STR_EQ(run(&f, "GeT a b"), "-ERR wrong number of arguments for 'get' command\r\n");
    ASSERT_STR_EQ(run(&f, "DEL"), "-ERR wrong number of arguments for 'del' command\r\n");
    ASSERT_STR_EQ(run(&f, "SET k"), "-ERR wrong number of arguments for 'set' command\r\n");
    ASSERT_STR_EQ(run(&f, "MSET a b c"), "-ERR wrong number of arguments for 'mset' command\r\n");
    ASSERT_STR_EQ(run(&f, "PING a b"), "-ERR wrong number of arguments for 'ping' command\r\n");
    ASSERT_STR_EQ(run(&f, "ECHO"), "-ERR wrong number of arguments for 'echo' command\r\n");
    ASSERT_STR_EQ(run(&f, "DBSIZE x"), "-ERR wrong number of arguments for 'dbsize' command\r\n");
    ASSERT_STR_EQ(run(&f, "AEGIS.REMOVE x"),
                  "-ERR wrong number of arguments for 'aegis.remove' command\r\n");
    ASSERT_STR_EQ(run(&f, "aegis.add 0 h:1"),
                  "-ERR wrong number of arguments for 'aegis.add' command\r\n");
    /* Arguments checked before anything reaches the node. */
    ASSERT_STR_EQ(run(&f, "INCRBY k x"), "-ERR value is not an integer or out of range\r\n");
    ASSERT_STR_EQ(run(&f, "DECRBY k -9223372036854775808"), "-ERR decrement would overflow\r\n");
    ASSERT_STR_EQ(run(&f, "SET k v EX 10"), "-ERR syntax error\r\n");
    ASSERT_STR_EQ(run(&f, "SET k v XX"), "-ERR SET XX is not supported\r\n");
    ASSERT_STR_EQ(run(&f, "AEGIS.ADD 2 nohostport"), "-ERR expected host:port\r\n");
    /* Every reply took one sequence number and none is parked. */
    ASSERT_EQ_U64(f.c->next_seq, 17);
    ASSERT_EQ_U64(f.c->ready_seq, 17);
    fix_close(&f);
    return TEST_PASS;
}

TEST(server, names_are_case_insensitive_and_local_replies_have_their_shapes)
{
    struct fix f;

    ASSERT_TRUE(fix_open(&f, AEGIS_ACCESS_ADMIN));
    ASSERT_STR_EQ(run(&f, "PING"), "+PONG\r\n");
    ASSERT_STR_EQ(run(&f, "pInG"), "+PONG\r\n");
    ASSERT_STR_EQ(run(&f, "ping hello"), "$5\r\nhello\r\n");
    ASSERT_STR_EQ(run(&f, "Echo \"a b\""), "$3\r\na b\r\n");
    ASSERT_STR_EQ(run(&f, "COMMAND DOCS"), "*0\r\n");
    ASSERT_STR_EQ(run(&f, "select 0"), "+OK\r\n");
    ASSERT_STR_EQ(run(&f, "CLIENT SETNAME x"), "+OK\r\n");
    ASSERT_STR_EQ(run(&f, "AUTH pw"),
                  "-ERR AUTH <password> called without any password configured for the "
                  "default user. Are you sure your configuration is correct?\r\n");
    ASSERT_STR_EQ(run(&f, "CONFIG SET save x"),
                  "-ERR CONFIG SET is not supported; restart with flags\r\n");
    ASSERT_STR_EQ(run(&f, "CONFIG"), "-ERR wrong number of arguments for 'config' command\r\n");
    ASSERT_TRUE(strncmp(run(&f, "CONFIG FOO"), "-ERR unknown CONFIG subcommand", 30) == 0);
    ASSERT_FALSE(f.c->close_after_flush);
    ASSERT_STR_EQ(run(&f, "QUIT"), "+OK\r\n");
    ASSERT_TRUE(f.c->close_after_flush);
    fix_close(&f);
    return TEST_PASS;
}

TEST(server, config_get_answers_running_values_for_several_patterns)
{
    struct fix f;

    ASSERT_TRUE(fix_open(&f, AEGIS_ACCESS_ADMIN));
    ASSERT_STR_EQ(run(&f, "CONFIG GET save"), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    /* redis-benchmark (Redis 7) asks for both at once. */
    ASSERT_STR_EQ(run(&f, "config get save appendonly"),
                  "*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    ASSERT_STR_EQ(run(&f, "CONFIG GET MAXCLIENTS"), "*2\r\n$10\r\nmaxclients\r\n$1\r\n8\r\n");
    ASSERT_STR_EQ(run(&f, "CONFIG GET timeout proto-max-bulk-len"),
                  "*4\r\n$7\r\ntimeout\r\n$2\r\n30\r\n"
                  "$18\r\nproto-max-bulk-len\r\n$7\r\n1048576\r\n");
    /* A name matched by two patterns is answered once; no match is an empty array. */
    ASSERT_STR_EQ(run(&f, "CONFIG GET port po*"), "*2\r\n$4\r\nport\r\n$4\r\n6379\r\n");
    ASSERT_STR_EQ(run(&f, "CONFIG GET nosuch"), "*0\r\n");
    fix_close(&f);
    return TEST_PASS;
}

TEST(server, access_is_checked_before_arity_from_the_table)
{
    struct fix f;

    ASSERT_TRUE(fix_open(&f, AEGIS_ACCESS_NONE));
    ASSERT_STR_EQ(run(&f, "GET k"), "-NOAUTH Authentication required.\r\n");
    ASSERT_STR_EQ(run(&f, "GET"), "-NOAUTH Authentication required.\r\n");
    ASSERT_STR_EQ(run(&f, "NOSUCH"), "-NOAUTH Authentication required.\r\n");
    f.c->role = AEGIS_ACCESS_READ;
    ASSERT_STR_EQ(run(&f, "PING"), "+PONG\r\n");
    ASSERT_STR_EQ(run(&f, "set k v"),
                  "-NOPERM this user has no permissions to run the 'set' command\r\n");
    ASSERT_STR_EQ(run(&f, "CONFIG RESETSTAT"),
                  "-NOPERM this user has no permissions to run the 'config' command\r\n");
    ASSERT_STR_EQ(run(&f, "AEGIS.SNAPSHOT"),
                  "-NOPERM this user has no permissions to run the 'aegis.snapshot' command\r\n");
    ASSERT_STR_EQ(run(&f, "NOSUCH"),
                  "-NOPERM this user has no permissions to run the 'nosuch' command\r\n");
    ASSERT_STR_EQ(run(&f, "CONFIG GET appendonly"),
                  "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    /* The table agrees with the roles pipeline/users.h documents. */
    for (size_t i = 0; i < SRV_COMMANDS_COUNT; i++) {
        const struct srv_command *sc = &srv_commands[i];
        struct aegis_resp_arg argv[1] = {{.ptr = sc->name, .len = strlen(sc->name)}};
        struct aegis_resp_cmd cmd = {.argc = 1, .argv = argv};

        ASSERT_EQ_U64(command_access(sc, &cmd),
                      aegis__command_role(sc->name, strlen(sc->name), NULL, 0));
        ASSERT_TRUE(command_find(&argv[0]) == sc);
    }
    fix_close(&f);
    return TEST_PASS;
}

TEST(server, a_reply_ready_early_waits_for_the_replies_before_it)
{
    struct fix f;
    struct srv_op *op;

    ASSERT_TRUE(fix_open(&f, AEGIS_ACCESS_ADMIN));
    /* Sequence 0 is in flight (as a GET would be): the PING behind it is parked. */
    f.c->next_seq = 1;
    ASSERT_STR_EQ(run(&f, "PING"), "");
    ASSERT_STR_EQ(run(&f, "ECHO x"), "");
    ASSERT_EQ_U64(f.c->ready_seq, 0);
    ASSERT_EQ_U64(f.c->next_seq, 3);
    /* Sequence 0 completes: all three come out, in order. */
    op = op_new(f.c, OP_INT, false, 0, 0);
    ASSERT_TRUE(op != NULL);
    op->integer = 7;
    f.c->slots[0] = op;
    conn_collect(f.c);
    ASSERT_EQ_U64(f.c->ready_seq, 3);
    ASSERT_EQ_U64(f.c->out.len, strlen(":7\r\n+PONG\r\n$1\r\nx\r\n"));
    ASSERT_MEM_EQ(f.c->out.data, ":7\r\n+PONG\r\n$1\r\nx\r\n", f.c->out.len);
    /* With nothing outstanding, a reply goes straight to the output again. */
    f.c->out.len = 0;
    ASSERT_STR_EQ(run(&f, "PING"), "+PONG\r\n");
    fix_close(&f);
    return TEST_PASS;
}
