/* SPDX-License-Identifier: MIT */
/* USDT probes (provider "aegis") at the stage boundaries of a write, so perf and bpftrace
 * can follow one request through the threads.
 *
 * With <sys/sdt.h> (Debian: systemtap-sdt-dev), CMake defines AEGIS_HAVE_SDT and each
 * AEGIS_PROBEn(name, ...) is a STAP_PROBEn: a single nop in the code plus a note in the
 * ELF section .note.stapsdt naming the probe and where its arguments live; it costs
 * nothing until a tracer puts a breakpoint on it. Without the header the macros compile
 * to nothing (the arguments are not even evaluated).
 *
 * The probes and their arguments (all 64-bit integers). A request is known by its
 * request id "req" (aegisd: the address of the server's per-command record) until the
 * raft thread gives it a log index; from then on the index identifies it, and the reply
 * carries the request id again:
 *
 *   aegis:request_received (req, client)        net    command parsed, write submitted
 *   aegis:request_proposed (req, index)         raft   appended to the leader's log
 *   aegis:log_write        (first, last, bytes) log    a batch goes to disk (before writev)
 *   aegis:log_synced       (last, entries, ns)  log    its fdatasync returned
 *   aegis:log_durable      (index)              raft   the raft thread learns it
 *   aegis:committed        (index)              raft   commit index advanced to index
 *   aegis:applied          (index, req)         apply  applied; req 0 if not ours
 *   aegis:reply_sent       (req, client)        net    reply handed to the socket
 *   aegis:append_sent      (to, prev, count)    raft   AppendEntries leaves (leader)
 *   aegis:append_received  (from, prev, count)  raft   AppendEntries taken (follower)
 *   aegis:append_acked     (to, index)          raft   success response leaves (follower)
 *
 * docs/profiling.md shows how to list and use them (perf probe, perf record -e
 * sdt_aegis:*, bpftrace). */
#ifndef AEGIS_PIPELINE_PROBES_H
#define AEGIS_PIPELINE_PROBES_H

#if defined(AEGIS_HAVE_SDT)
#include <sys/sdt.h>
#define AEGIS_PROBE1(name, a) STAP_PROBE1(aegis, name, (uint64_t)(a))
#define AEGIS_PROBE2(name, a, b) STAP_PROBE2(aegis, name, (uint64_t)(a), (uint64_t)(b))
#define AEGIS_PROBE3(name, a, b, c)                                                        \
    STAP_PROBE3(aegis, name, (uint64_t)(a), (uint64_t)(b), (uint64_t)(c))
#define AEGIS_PROBES_ENABLED 1
#else
/* sizeof marks the arguments used without evaluating them. */
#define AEGIS_PROBE1(name, a) ((void)sizeof(a))
#define AEGIS_PROBE2(name, a, b) ((void)sizeof(a), (void)sizeof(b))
#define AEGIS_PROBE3(name, a, b, c) ((void)sizeof(a), (void)sizeof(b), (void)sizeof(c))
#define AEGIS_PROBES_ENABLED 0
#endif

#endif /* AEGIS_PIPELINE_PROBES_H */
