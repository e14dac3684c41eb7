/* SPDX-License-Identifier: MIT */
/* RESP2, the Redis protocol, for the client port: redis-cli, redis-benchmark and Redis
 * client libraries talk to aegisd unchanged.
 *
 * Three parts:
 *   - a request parser (server side): multibulk commands ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
 *     and inline commands ("PING\r\n", as telnet or nc send them), parsed incrementally
 *     from a connection's input buffer into argc/argv views that point into that buffer.
 *     Nothing is copied and nothing is allocated for the claimed sizes: a "$999999999"
 *     above the configured maximum is refused from its header alone, and argv grows
 *     only as arguments actually arrive. Errors carry Redis' own wording
 *     ("ERR Protocol error: invalid bulk length"); the server replies with it and closes.
 *   - reply writers (server side) appending to a bounded, growable output buffer;
 *   - a reply parser (client side: aegis-bench and tests) for +, -, :, $ and * replies,
 *     and a command writer to build multibulk requests.
 *
 * Incremental parsing contract: the caller passes the unconsumed input, always starting
 * at the first byte of the command being parsed. When a command is incomplete the parser
 * remembers how far it got (as offsets, so the caller may move or grow its buffer between
 * calls) and resumes there. When it completes, argv points into the buffer passed to that
 * last call; the views stay valid until the caller drops cmd.bytes from the front of its
 * buffer or changes those bytes. Inline commands with quotes are unescaped in place,
 * which is why the parser takes a mutable buffer.
 *
 * Thread-safety: a parser and a write buffer belong to one connection and one thread. */
#ifndef AEGIS_NET_RESP_H
#define AEGIS_NET_RESP_H

#include "engine/alloc.h"

/* Defaults follow Redis: proto-max-bulk-len 512 MiB, PROTO_INLINE_MAX_SIZE 64 KiB. Redis
 * allows 1M arguments per command; we default to 64K, which bounds argv memory per
 * connection at 1 MiB and is far above what any command here takes (MSET with 32K
 * pairs). */
#define AEGIS_RESP_ARGS_MAX_DEFAULT 65536u
#define AEGIS_RESP_BULK_BYTES_MAX_DEFAULT ((uint64_t)512u << 20)
#define AEGIS_RESP_INLINE_BYTES_MAX_DEFAULT 65536u

struct aegis_resp_limits {
    uint32_t args_max;         /* Arguments per command (multibulk count or inline words). */
    uint64_t bulk_bytes_max;   /* Bytes of one bulk string (aegisd: its max value size). */
    uint32_t inline_bytes_max; /* Bytes of an inline command line or of a "*N"/"$N" line. */
};

/* The default limits above. */
struct aegis_resp_limits aegis__resp_limits_default(void);

/* One argument: a view into the caller's input buffer. */
struct aegis_resp_arg {
    union {
        const char *ptr; /* Valid once aegis__resp_parse() returned 1. */
        size_t off;      /* Internal: offset from the command start while parsing. */
    };
    size_t len;
};

/* A complete command. argc == 0 is an empty command (an empty inline line, "*0\r\n" or
 * "*-1\r\n"), which Redis ignores silently: drop its bytes and parse on. */
struct aegis_resp_cmd {
    uint32_t argc;
    struct aegis_resp_arg *argv; /* Owned by the parser; valid as described above. */
    size_t bytes;                /* Length of the command in the input buffer. */
};

struct aegis_resp_parser {
    struct aegis_resp_limits limits;
    const struct aegis_allocator *alloc;
    struct aegis_resp_arg *argv; /* Grows with the arguments seen, up to args_max. */
    uint32_t argv_cap;
    /* Resume state, relative to the start of the command being parsed. */
    bool multibulk;    /* The "*N" line has been parsed. */
    uint32_t argc;     /* N of the "*N" line. */
    uint32_t argi;     /* Arguments complete. */
    size_t pos;        /* Bytes parsed so far. */
    int64_t bulk_len;  /* Length from the "$N" line being waited on, or -1. */
    size_t need;       /* After a 0 return: the command needs at least this many bytes. */
    char err[96];      /* After an error: "ERR Protocol error: ..." (no '-', no CRLF). */
};

/* Initialise @p with @limits (NULL: the defaults) and @a for argv (NULL: the heap). */
void aegis__resp_parser_init(struct aegis_resp_parser *p, const struct aegis_resp_limits *limits,
                             const struct aegis_allocator *a);

/* Free argv. */
void aegis__resp_parser_close(struct aegis_resp_parser *p);

/* Parse the command at the start of @buf (@len bytes of unconsumed input). Returns:
 *   1  a command is complete: *cmd_out describes it (see struct aegis_resp_cmd);
 *   0  need more input; p->need is a lower bound of the command's total size (use it to
 *      size the read buffer; it never exceeds what the limits allow);
 *   AEGIS_ECORRUPT  malformed input; AEGIS_ETOOBIG  a limit was exceeded (both leave the
 *      reply text in p->err: send "-" p->err "\r\n" and close the connection);
 *   AEGIS_ENOMEM  argv could not grow.
 * After 1 or an error the parser is ready for the next command. Redis' texts: "invalid
 * multibulk length", "invalid bulk length", "expected '$', got 'x'", "too big inline
 * request", "too big mbulk count string", "too big bulk count string", "unbalanced
 * quotes in request"; ours: "expected CRLF after bulk" (Redis skips two bytes blindly),
 * "too many arguments in inline request". */
int aegis__resp_parse(struct aegis_resp_parser *p, char *buf, size_t len,
                      struct aegis_resp_cmd *cmd_out);

/* A growable output buffer for replies. Appends are all-or-nothing. */
struct aegis_resp_wbuf {
    char *data;
    size_t len;
    size_t cap;
    size_t bytes_max; /* 0: unbounded. Appends past it fail with AEGIS_ETOOBIG. */
    const struct aegis_allocator *alloc;
};

void aegis__resp_wbuf_init(struct aegis_resp_wbuf *w, const struct aegis_allocator *a,
                           size_t bytes_max);
void aegis__resp_wbuf_close(struct aegis_resp_wbuf *w);

/* Exchange the contents of two buffers (a server fills one while the other is written). */
void aegis__resp_wbuf_swap(struct aegis_resp_wbuf *a, struct aegis_resp_wbuf *b);

/* Drop the first @n bytes (sent). */
void aegis__resp_wbuf_consume(struct aegis_resp_wbuf *w, size_t n);

/* Reply writers. Each returns 0, AEGIS_ENOMEM or AEGIS_ETOOBIG (bytes_max). */
int aegis__resp_add_raw(struct aegis_resp_wbuf *w, const void *data, size_t len);
/* "+@s\r\n". @s must not contain CR or LF (assertion). */
int aegis__resp_add_simple(struct aegis_resp_wbuf *w, const char *s);
/* "-@s\r\n"; @s starts with its code ("ERR ...", "WRONGTYPE ..."). CR and LF in @s become
 * spaces, as Redis does. */
int aegis__resp_add_error(struct aegis_resp_wbuf *w, const char *s);
/* As add_error, with the text from printf format @fmt; a text over 511 bytes is cut. */
int aegis__resp_add_errorf(struct aegis_resp_wbuf *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* printf-formatted raw bytes (INFO lines); a line over 511 bytes is cut. */
int aegis__resp_add_rawf(struct aegis_resp_wbuf *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int aegis__resp_add_int(struct aegis_resp_wbuf *w, int64_t v);          /* ":v\r\n" */
int aegis__resp_add_bulk(struct aegis_resp_wbuf *w, const void *data, size_t len);
/* "$len\r\n" alone, for a caller that sends the bytes itself (vectored) then "\r\n". */
int aegis__resp_add_bulk_header(struct aegis_resp_wbuf *w, size_t len);
int aegis__resp_add_null(struct aegis_resp_wbuf *w);                    /* "$-1\r\n" */
int aegis__resp_add_array(struct aegis_resp_wbuf *w, size_t count);     /* "*count\r\n" */
int aegis__resp_add_null_array(struct aegis_resp_wbuf *w);              /* "*-1\r\n" */
/* A verbatim string of format @fmt (3 characters: "txt", "mkd"), as INFO replies. RESP3
 * (@proto 3) writes "=len+4\r\nfmt:data\r\n"; RESP2 (@proto 2, what aegisd speaks) has no
 * verbatim type and writes a plain bulk string, exactly as Redis does for RESP2 clients. */
int aegis__resp_add_verbatim(struct aegis_resp_wbuf *w, const char *fmt, const void *data,
                             size_t len, int proto);
/* A multibulk request: "*argc\r\n" then "$len\r\nbytes\r\n" per argument (clients). */
int aegis__resp_add_command(struct aegis_resp_wbuf *w, uint32_t argc, const char *const *argv,
                            const size_t *lens);

/* Reply parsing (clients). Values of one reply come out flattened in pre-order: an
 * array's value gives its element count, and its elements follow it. */
enum aegis_resp_type {
    AEGIS_RESP_SIMPLE = '+',
    AEGIS_RESP_ERROR = '-',
    AEGIS_RESP_INT = ':',
    AEGIS_RESP_BULK = '$',
    AEGIS_RESP_ARRAY = '*',
};

struct aegis_resp_value {
    char type;       /* enum aegis_resp_type. */
    bool null;       /* "$-1" or "*-1". */
    int64_t integer; /* ':' its value; '*' its element count; '$' the string's length. */
    const char *str; /* '+', '-', '$': a view into the parsed buffer (not terminated). */
    size_t len;
};

/* Nesting and size limits of the reply parser. */
#define AEGIS_RESP_REPLY_DEPTH_MAX 32u
#define AEGIS_RESP_REPLY_ELEMS_MAX ((int64_t)1 << 30)

/* Parse the one reply at the start of @buf. Returns 1 when a whole reply is there:
 * *bytes_out is its length, *vals_count_out the number of values it has (stored in
 * @vals up to @vals_cap; @vals may be NULL to only find the end of the reply). Returns 0
 * when more bytes are needed, AEGIS_ECORRUPT when the bytes are not RESP2 (or nest deeper
 * than AEGIS_RESP_REPLY_DEPTH_MAX, or announce more than AEGIS_RESP_REPLY_ELEMS_MAX
 * elements or bulk bytes above AEGIS_RESP_BULK_BYTES_MAX_DEFAULT). Stateless: the whole
 * reply is re-read on each call, which is fine for the replies clients see. */
int aegis__resp_reply_parse(const char *buf, size_t len, struct aegis_resp_value *vals,
                            size_t vals_cap, size_t *vals_count_out, size_t *bytes_out);

#endif /* AEGIS_NET_RESP_H */
