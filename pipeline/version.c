/* SPDX-License-Identifier: MIT */
/* Version strings. The version is defined once, in CMakeLists.txt's project(); CMake
 * writes it and the configure-time git commit into the generated aegis_version.h, read
 * here only, so that one object carries them and nothing else is rebuilt when they change. */
#include "pipeline/version.h"

#include <aegis/aegis.h>
#include <stdio.h>

#include "aegis_version.h"

const char *aegis_version(void)
{
    return AEGIS_VERSION_STRING;
}

const char *aegis__version_commit(void)
{
    return AEGIS_GIT_COMMIT;
}

void aegis__version_print(const char *prog)
{
    printf("%s %s (commit %s)\n", prog, aegis_version(), aegis__version_commit());
}
