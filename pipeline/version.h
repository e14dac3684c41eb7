/* SPDX-License-Identifier: MIT */
/* The build's version and git commit for the programs' --version and INFO (the public
 * aegis_version() is in include/aegis/aegis.h). Both strings are static. */
#ifndef AEGIS_PIPELINE_VERSION_H
#define AEGIS_PIPELINE_VERSION_H

/* The git commit the library was configured from (7 hex digits), or "unknown". Internal
 * (the programs link the static library); not exported from libaegis.so. */
const char *aegis__version_commit(void);

/* Print "@prog VERSION (commit C)" and a newline to stdout: every program's --version. */
void aegis__version_print(const char *prog);

#endif
