/* SPDX-License-Identifier: MIT */
/* Tests of the file layer's fault twin: injected errors and short writes, the dead
 * machine after crash_after, the power cut undoing exactly what was not synced, and an
 * io_uring fdatasync covering only the writes linked before it. */
#include <aegis/error.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>

#include "lib/test.h"
#include "pipeline/fileio.h"
#include "util.h"

static int write_str(struct aegis_fileio *io, int fd, const char *s, uint64_t off)
{
    struct iovec iov = {.iov_base = (void *)(uintptr_t)s, .iov_len = strlen(s)};

    return aegis__fileio_pwritev_all(io, fd, &iov, 1, off, NULL);
}

static bool file_is(const char *path, const char *want)
{
    uint8_t *buf;
    size_t len;
    bool ok;

    if (util_read(path, &buf, &len) != 0) {
        return want == NULL;
    }
    ok = want != NULL && len == strlen(want) && memcmp(buf, want, len) == 0;
    free(buf);
    return ok;
}

TEST(fileio, real_roundtrip)
{
    char dir[64], path[4096], buf[8];
    uint64_t size;
    int fd;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    snprintf(path, sizeof(path), "%s/a", dir);
    fd = aegis__fileio_open(NULL, path, O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(write_str(NULL, fd, "hello", 0));
    ASSERT_OK(aegis__fileio_fdatasync(NULL, fd));
    ASSERT_OK(aegis__fileio_fallocate(NULL, fd, 0, 4096));
    ASSERT_OK(aegis__fileio_size(NULL, fd, &size));
    ASSERT_EQ_U64(size, 4096);
    ASSERT_OK(aegis__fileio_pread_all(NULL, fd, buf, 5, 0));
    ASSERT_MEM_EQ(buf, "hello", 5);
    ASSERT_ERR(aegis__fileio_pread_all(NULL, fd, buf, 8, 4092), AEGIS_ECORRUPT);
    ASSERT_OK(aegis__fileio_close(NULL, fd));
    ASSERT_ERR(aegis__fileio_open(NULL, "/nonexistent/x", O_RDONLY, 0), AEGIS_ENOENT);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(fileio, inject_nth_and_short)
{
    struct aegis_fileio_fault f;
    char dir[64], path[4096];
    uint64_t written = 0;
    int fd;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    snprintf(path, sizeof(path), "%s/a", dir);
    aegis__fileio_fault_init(&f);
    fd = aegis__fileio_open(&f.base, path, O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(fd >= 0);
    f.fail_mask = AEGIS_FAULT_OP_WRITE;
    f.fail_err = AEGIS_ENOSPC;
    f.fail_at = 2;
    ASSERT_OK(write_str(&f.base, fd, "one", 0));
    ASSERT_ERR(write_str(&f.base, fd, "two", 3), AEGIS_ENOSPC);
    ASSERT_OK(write_str(&f.base, fd, "333", 3)); /* Only the 2nd. */
    f.fail_sticky = true;
    f.fail_at = 4;
    ASSERT_ERR(write_str(&f.base, fd, "x", 0), AEGIS_ENOSPC);
    ASSERT_ERR(write_str(&f.base, fd, "y", 0), AEGIS_ENOSPC);
    ASSERT_OK(aegis__fileio_fdatasync(&f.base, fd)); /* Syncs are not in the mask. */
    f.fail_sticky = false;
    f.fail_at = f.matched + 1;
    f.fail_short = true;
    {
        struct iovec iov = {.iov_base = "abcdefgh", .iov_len = 8};

        ASSERT_EQ_I64(aegis__fileio_pwritev(&f.base, fd, &iov, 1, 0), 4);
        ASSERT_OK(aegis__fileio_pwritev_all(&f.base, fd, &iov, 1, 0, &written));
        ASSERT_EQ_U64(written, 8);
    }
    ASSERT_OK(aegis__fileio_close(&f.base, fd));
    ASSERT_TRUE(file_is(path, "abcdefgh"));
    aegis__fileio_fault_close(&f);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(fileio, powerloss_drops_unsynced)
{
    struct aegis_fileio_fault f;
    char dir[64], a[4096], b[4096], c[4096], d[4096], e[4096];
    int fd;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    snprintf(e, sizeof(e), "%s/e", dir);
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(c, sizeof(c), "%s/c", dir);
    snprintf(d, sizeof(d), "%s/d", dir);
    aegis__fileio_fault_init(&f);
    /* a: synced data and name; then an unsynced overwrite and extension. */
    fd = aegis__fileio_open(&f.base, a, O_RDWR | O_CREAT, 0644);
    ASSERT_OK(write_str(&f.base, fd, "durable", 0));
    ASSERT_OK(aegis__fileio_fdatasync(&f.base, fd));
    ASSERT_OK(aegis__fileio_fsync_dir(&f.base, dir));
    ASSERT_OK(write_str(&f.base, fd, "LOST-AND-LONGER", 0));
    ASSERT_OK(aegis__fileio_close(&f.base, fd));
    /* b: created and synced (its name is synced below with c and d). */
    fd = aegis__fileio_open(&f.base, b, O_RDWR | O_CREAT, 0644);
    ASSERT_OK(write_str(&f.base, fd, "b", 0));
    ASSERT_OK(aegis__fileio_fdatasync(&f.base, fd));
    ASSERT_OK(aegis__fileio_close(&f.base, fd));
    /* c: durable, then unlinked without a directory sync; d: durable, then renamed. */
    fd = aegis__fileio_open(&f.base, c, O_RDWR | O_CREAT, 0644);
    ASSERT_OK(write_str(&f.base, fd, "c", 0));
    ASSERT_OK(aegis__fileio_fdatasync(&f.base, fd));
    ASSERT_OK(aegis__fileio_close(&f.base, fd));
    fd = aegis__fileio_open(&f.base, d, O_RDWR | O_CREAT, 0644);
    ASSERT_OK(write_str(&f.base, fd, "d", 0));
    ASSERT_OK(aegis__fileio_fdatasync(&f.base, fd));
    ASSERT_OK(aegis__fileio_close(&f.base, fd));
    ASSERT_OK(aegis__fileio_fsync_dir(&f.base, dir));
    ASSERT_OK(aegis__fileio_unlink(&f.base, c));
    ASSERT_OK(aegis__fileio_rename(&f.base, d, b));
    ASSERT_TRUE(file_is(b, "d"));
    /* e: created and synced after the last directory sync. */
    fd = aegis__fileio_open(&f.base, e, O_RDWR | O_CREAT, 0644);
    ASSERT_OK(write_str(&f.base, fd, "e", 0));
    ASSERT_OK(aegis__fileio_fdatasync(&f.base, fd));
    ASSERT_OK(aegis__fileio_close(&f.base, fd));
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, AEGIS_FAULT_DROP, 1));
    ASSERT_TRUE(file_is(a, "durable"));
    ASSERT_TRUE(file_is(b, "b")); /* The rename over it is undone. */
    ASSERT_TRUE(file_is(c, "c")); /* The unlink is undone. */
    ASSERT_TRUE(file_is(d, "d"));
    ASSERT_TRUE(file_is(e, NULL)); /* Its name never reached the disk. */
    aegis__fileio_fault_close(&f);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(fileio, dead_after_crash_point)
{
    struct aegis_fileio_fault f;
    char dir[64], a[4096];
    int fd;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    snprintf(a, sizeof(a), "%s/a", dir);
    aegis__fileio_fault_init(&f);
    f.crash_after = 2;
    fd = aegis__fileio_open(&f.base, a, O_RDWR | O_CREAT, 0644); /* op 1 */
    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(write_str(&f.base, fd, "x", 0));                   /* op 2 */
    ASSERT_ERR(aegis__fileio_fdatasync(&f.base, fd), AEGIS_EIO); /* op 3: dead */
    ASSERT_TRUE(f.dead);
    ASSERT_ERR(write_str(&f.base, fd, "y", 0), AEGIS_EIO);
    ASSERT_OK(aegis__fileio_close(&f.base, fd));
    ASSERT_TRUE(file_is(a, "x"));
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, AEGIS_FAULT_DROP, 1));
    ASSERT_TRUE(file_is(a, NULL)); /* Its creation was never made durable. */
    ASSERT_FALSE(f.dead);
    aegis__fileio_fault_close(&f);
    util_rmrf(dir);
    return TEST_PASS;
}

/* One io_uring submission through the layer: "new" written over "old" at offset 0, and an
 * fdatasync, the two linked or not; then a DROP power cut. With @fail_write the write is
 * failed with EIO by the layer. Returns the file's content after the cut in @out. */
static enum test_result uring_write_sync(bool linked, bool fail_write, char *out, size_t cap)
{
    struct aegis_fileio_fault f;
    struct io_uring_sqe *sqes[2];
    struct io_uring ring;
    char dir[64], path[4096];
    int64_t res[2];
    uint8_t *buf;
    size_t len;
    int fd;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    snprintf(path, sizeof(path), "%s/a", dir);
    if (io_uring_queue_init(4, &ring, 0) != 0) {
        util_rmrf(dir);
        SKIP("io_uring unavailable");
    }
    aegis__fileio_fault_init(&f);
    fd = aegis__fileio_open(&f.base, path, O_RDWR | O_CREAT, 0644);
    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(write_str(&f.base, fd, "old", 0));
    ASSERT_OK(aegis__fileio_fdatasync(&f.base, fd));
    ASSERT_OK(aegis__fileio_fsync_dir(&f.base, dir));
    sqes[0] = io_uring_get_sqe(&ring);
    io_uring_prep_write(sqes[0], fd, "new", 3, 0);
    sqes[1] = io_uring_get_sqe(&ring);
    io_uring_prep_fsync(sqes[1], fd, IORING_FSYNC_DATASYNC);
    for (int i = 0; i < 2; i++) {
        sqes[i]->user_data = (__u64)i;
    }
    if (linked) {
        io_uring_sqe_set_flags(sqes[0], IOSQE_IO_LINK);
    }
    if (fail_write) {
        f.fail_mask = AEGIS_FAULT_OP_WRITE;
        f.fail_at = 1;
    }
    aegis__fileio_uring_prepare(&f.base, sqes, 2);
    ASSERT_EQ_I64(io_uring_submit_and_wait(&ring, 2), 2);
    for (int got = 0; got < 2; got++) {
        struct io_uring_cqe *cqe;

        ASSERT_OK(io_uring_wait_cqe(&ring, &cqe));
        res[cqe->user_data] = aegis__fileio_uring_result(&f.base, cqe->user_data, cqe->res);
        io_uring_cqe_seen(&ring, cqe);
    }
    if (fail_write) {
        ASSERT_ERR((int)res[0], AEGIS_EIO);
        ASSERT_EQ_I64(res[1], linked ? -ECANCELED : 0); /* A failed link cancels the rest. */
    } else {
        ASSERT_EQ_I64(res[0], 3);
        ASSERT_EQ_I64(res[1], 0);
    }
    ASSERT_OK(aegis__fileio_close(&f.base, fd));
    io_uring_queue_exit(&ring);
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, AEGIS_FAULT_DROP, 1));
    aegis__fileio_fault_close(&f);
    ASSERT_OK(util_read(path, &buf, &len));
    ASSERT_TRUE(len < cap);
    memcpy(out, buf, len);
    out[len] = '\0';
    free(buf);
    util_rmrf(dir);
    return TEST_PASS;
}

/* An fdatasync covers the write linked before it; an unlinked write of the same
 * submission it does not (the kernel may run it after the sync): the power cut undoes it.
 * A write the layer fails never reaches the file and cancels its link. */
TEST(fileio, uring_fdatasync_covers_only_linked_writes)
{
    char got[16];
    enum test_result r;

    r = uring_write_sync(true, false, got, sizeof(got));
    if (r != TEST_PASS) {
        return r;
    }
    ASSERT_STR_EQ(got, "new");
    ASSERT_EQ_I64(uring_write_sync(false, false, got, sizeof(got)), TEST_PASS);
    ASSERT_STR_EQ(got, "old");
    ASSERT_EQ_I64(uring_write_sync(true, true, got, sizeof(got)), TEST_PASS);
    ASSERT_STR_EQ(got, "old");
    ASSERT_EQ_I64(uring_write_sync(false, true, got, sizeof(got)), TEST_PASS);
    ASSERT_STR_EQ(got, "old");
    return TEST_PASS;
}
