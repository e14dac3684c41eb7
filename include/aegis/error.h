/* SPDX-License-Identifier: MIT */
/* The one table of Aegis error codes.
 *
 * Every function that can fail returns int: 0 on success, or a negative AEGIS_E* code.
 * Operating-system codes keep libuv's mapping (AEGIS_EIO == -EIO) so that an io_uring
 * cqe->res converts by identity. Domain codes live in a private range below -4000 so
 * they can never collide with an errno. */
#ifndef AEGIS_ERROR_H
#define AEGIS_ERROR_H

#include <errno.h>

#include <aegis/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AEGIS_ERRNO_MAP(XX)                                                               \
    XX(EPERM, -EPERM, "operation not permitted")                                          \
    XX(ENOENT, -ENOENT, "no such file or directory")                                      \
    XX(EINTR, -EINTR, "interrupted system call")                                          \
    XX(EIO, -EIO, "i/o error")                                                            \
    XX(EBADF, -EBADF, "bad file descriptor")                                              \
    XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                               \
    XX(ENOMEM, -ENOMEM, "out of memory")                                                  \
    XX(EACCES, -EACCES, "permission denied")                                              \
    XX(EEXIST, -EEXIST, "file already exists")                                            \
    XX(ENOTDIR, -ENOTDIR, "not a directory")                                              \
    XX(EINVAL, -EINVAL, "invalid argument")                                               \
    XX(EMFILE, -EMFILE, "too many open files")                                            \
    XX(EFBIG, -EFBIG, "file too large")                                                   \
    XX(ENOSPC, -ENOSPC, "no space left on device")                                        \
    XX(EROFS, -EROFS, "read-only file system")                                            \
    XX(EPIPE, -EPIPE, "broken pipe")                                                      \
    XX(ERANGE, -ERANGE, "result out of range")                                            \
    XX(ENOSYS, -ENOSYS, "function not implemented")                                       \
    XX(ENOTSUP, -ENOTSUP, "operation not supported")                                      \
    XX(EADDRINUSE, -EADDRINUSE, "address already in use")                                 \
    XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                               \
    XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                 \
    XX(ENOTCONN, -ENOTCONN, "not connected")                                              \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                \
    XX(ECANCELED, -ECANCELED, "operation canceled")                                       \
    XX(ENOTLEADER, -4001, "not the leader")                                               \
    XX(ECORRUPT, -4002, "malformed or corrupt data")                                      \
    XX(ESHUTDOWN, -4003, "shutting down")                                                 \
    XX(ETOOBIG, -4004, "too big")                                                         \
    XX(EFULL, -4005, "queue full (backpressure)")                                         \
    XX(ENOTFOUND, -4006, "key not found")                                                 \
    XX(ETYPE, -4007, "value is not an integer or out of range")                           \
    XX(EOVERFLOW, -4008, "increment or decrement would overflow")                         \
    XX(EORDER, -4009, "entry applied out of order or twice")                              \
    XX(ENOHANDLER, -4010, "no custom command handler registered")                         \
    XX(ECOMPACTED, -4011, "entry compacted away")                                         \
    XX(EUNAVAIL, -4012, "entry not in the log")                                           \
    XX(EBUSY, -4013, "a conflicting operation is in progress")                            \
    XX(ENOQUORUM, -4014, "no quorum")                                                     \
    XX(ELEADERLOST, -4015, "leadership lost; outcome unknown")                            \
    XX(EUNKNOWNNODE, -4016, "unknown node")                                               \
    XX(EVERSION, -4017, "unsupported version")                                            \
    XX(ECLUSTER, -4018, "peer belongs to another cluster")                                \
    XX(ECONFIG, -4019, "invalid configuration")                                           \
    XX(ESTALE, -4020, "stale term or request")                                            \
    XX(ECASMISMATCH, -4021, "compare-and-swap mismatch")                                  \
    XX(EINTERNAL, -4022, "internal error")                                                \
    XX(ETLS, -4030, "TLS handshake or record failed")                                     \
    XX(ESTORAGE, -4040, "storage failed; the node is stopping")                           \
    XX(EIDENTITY, -4041, "data directory belongs to another node or cluster")             \
    XX(EAMNESIA, -4050, "data directory empty but the cluster exists: add with --join")   \
    XX(ECATCHUP, -4051, "the new member never caught up; it was not made a voter")

enum aegis_errno {
#define XX(name, value, text) AEGIS_##name = (value),
    AEGIS_ERRNO_MAP(XX)
#undef XX
};

/** Return a static, human-readable description of @err (a negative AEGIS_E* code or a
 * negative errno). Never returns NULL; unknown codes give "unknown error". Any thread. */
AEGIS_API const char *aegis_strerror(int err);

/** Return the symbolic name of @err ("AEGIS_ENOSPC"), or "AEGIS_EUNKNOWN". Any thread. */
AEGIS_API const char *aegis_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* AEGIS_ERROR_H */
