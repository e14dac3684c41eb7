/* SPDX-License-Identifier: MIT */
/* Parsing of command-line values: numbers, HOST:PORT addresses and the --peers list.
 *
 * Design: pure functions over a NUL-terminated string, shared by aegisd, aegis-cli and
 * aegis-bench (and the AEGIS.ADD command), so that every program applies the same rules
 * and one fuzz target (tests/fuzz/fuzz_args.c) covers them all. They print nothing: on
 * error they return a negative AEGIS_E* code and write one line naming the flag, the
 * value and the reason into the caller's buffer (@err, @err_bytes; NULL for none); the
 * program decides where it goes. The rules, stricter than strtoull's:
 *   - a number is decimal digits only: no sign ('-', '+'), no spaces before or after, not
 *     empty, no overflow past 2^64-1, and within the flag's [min, max];
 *   - an address is HOST:PORT or [IPV6]:PORT; the brackets are not part of the host
 *     ("[::1]:7001" is host "::1", port 7001); a host with a ':' needs brackets; host
 *     characters are letters, digits, '.', '-', '_' (and ':', '%' inside brackets); the
 *     host is 1..AEGIS_HOST_MAX-1 bytes; the port is 1..65535;
 *   - a peer list is ID=HOST:PORT,... with 1..AEGIS_PEERS_MAX entries, no empty entry,
 *     ids >= 1, no id or address given twice.
 * Each accepted value formats back (aegis__args_format_*) to a string that parses to the
 * same value.
 *
 * A config file (aegisd --config FILE) is read by aegis__args_config: one flag per line,
 * "name value" (the flag's long name without "--", then spaces or tabs, then the value
 * to the end of the line, trailing spaces cut) or "name" alone for a flag that takes no
 * value. Blank lines and lines whose first non-blank byte is '#' are skipped ('#' later
 * in a line is part of the value). Refused, with "FILE:LINE: reason": a name not in the
 * program's table, "config", "help" or "version", a name given twice in the file, a value
 * missing or one given to a flag that takes none, a control byte (but tab) or NUL, a
 * line over AEGIS_ARGS_CONF_LINE_MAX bytes, more than AEGIS_ARGS_CONF_MAX lines with a
 * flag. Values are checked by the program's own flag parsers afterwards, like argv's. */
#ifndef AEGIS_PIPELINE_ARGS_H
#define AEGIS_PIPELINE_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* From <aegis/aegis.h>, declared only: aegis-demo includes engine/ headers that clash with
 * that header, and needs nothing but the number parser. */
struct aegis_peer_addr;
struct option;

/* Room for any message these functions write (longer ones are cut, still terminated). */
#define AEGIS_ARGS_ERR_BYTES 256u
/* Longest formatted HOST:PORT: brackets, a host of AEGIS_HOST_MAX - 1 (63) bytes, ':' and
 * five digits, NUL (asserted in args.c). */
#define AEGIS_ARGS_HOSTPORT_BYTES 72u

/* Parse the decimal @s into @out, in [@min, @max]. Returns 0, AEGIS_EINVAL (not a plain
 * decimal) or AEGIS_ERANGE (overflow or outside the range); @out is untouched on error. */
int aegis__args_u64(const char *flag, const char *s, uint64_t min, uint64_t max,
                    uint64_t *out, char *err, size_t err_bytes);

/* Parse a size in bytes: decimal digits, optionally followed by one unit K, M, G or T
 * (either case; 1024, 1024^2, ...): "0", "65536", "64M", "2g". The value in bytes must be
 * in [@min, @max]. Returns 0, AEGIS_EINVAL or AEGIS_ERANGE; @out is untouched on error. */
int aegis__args_bytes(const char *flag, const char *s, uint64_t min, uint64_t max,
                      uint64_t *out, char *err, size_t err_bytes);

/* Parse HOST:PORT or [IPV6]:PORT at @s: the host (without brackets) into @host
 * (@host_bytes, at most AEGIS_HOST_MAX used), the port into @port. Returns 0 or
 * AEGIS_EINVAL / AEGIS_ERANGE; the outputs are untouched on error. */
int aegis__args_hostport(const char *flag, const char *s, char *host, size_t host_bytes,
                         uint16_t *port, char *err, size_t err_bytes);

/* Parse a peer list ID=HOST:PORT,... into @peers (capacity @peers_max, at most
 * AEGIS_PEERS_MAX used) and *@count_out. Returns 0 or AEGIS_EINVAL / AEGIS_ERANGE /
 * AEGIS_EEXIST (an id or address given twice); the outputs are untouched on error. */
int aegis__args_peers(const char *flag, const char *s, struct aegis_peer_addr *peers,
                      uint32_t peers_max, uint32_t *count_out, char *err, size_t err_bytes);

/* Format @host and @port as aegis__args_hostport reads them (brackets around a host with
 * a ':'). Returns the length written into @out (terminated), or 0 if it does not fit. */
size_t aegis__args_format_hostport(const char *host, uint16_t port, char *out,
                                   size_t out_bytes);

/* Format @count peers as aegis__args_peers reads them. Returns the length, or 0 if it
 * does not fit in @out_bytes. */
size_t aegis__args_format_peers(const struct aegis_peer_addr *peers, uint32_t count, char *out,
                                size_t out_bytes);

#define AEGIS_ARGS_CONF_MAX 128u       /* Flags in one config file. */
#define AEGIS_ARGS_CONF_LINE_MAX 4096u /* Bytes in one line, newline excluded. */

/* One flag read from a config file: its entry in the option table and its value (NULL
 * for a flag without one), pointing into the caller's text. */
struct aegis_args_conf_entry {
    const struct option *opt;
    const char *value;
    uint32_t line; /* From 1. */
};

/* Parse the config file @text (@len bytes, modified in place: names and values are
 * NUL-terminated where they end; @text[@len] must be writable and is set to NUL) named
 * @path (for messages) against @opts (a getopt_long table ending with a NULL name) into
 * @out (capacity @out_max) and *@count_out. Returns 0 or AEGIS_EINVAL with the message
 * "@path:LINE: ..." in @err; @out and *@count_out are then unspecified. */
int aegis__args_config(const char *path, char *text, size_t len, const struct option *opts,
                       struct aegis_args_conf_entry *out, uint32_t out_max,
                       uint32_t *count_out, char *err, size_t err_bytes);

#endif /* AEGIS_PIPELINE_ARGS_H */
