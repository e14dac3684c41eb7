/* SPDX-License-Identifier: MIT */
/* Tests of the file layer's fault twin: injected errors and short writes, the dead
 * machine after crash_after, and the power cut undoing exactly what was not synced. */
#include <aegis/error.h>
#include <fcntl.h>
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
