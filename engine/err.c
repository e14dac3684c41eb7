/* SPDX-License-Identifier: MIT */
/* aegis_strerror() and aegis_err_name(), generated from AEGIS_ERRNO_MAP. */
#include <aegis/error.h>

const char *aegis_strerror(int err)
{
    switch (err) {
#define XX(name, value, text)                                                              \
    case (value):                                                                          \
        return (text);
        AEGIS_ERRNO_MAP(XX)
#undef XX
    case 0:
        return "success";
    default:
        return "unknown error";
    }
}

const char *aegis_err_name(int err)
{
    switch (err) {
#define XX(name, value, text)                                                              \
    case (value):                                                                          \
        return "AEGIS_" #name;
        AEGIS_ERRNO_MAP(XX)
#undef XX
    case 0:
        return "AEGIS_OK";
    default:
        return "AEGIS_EUNKNOWN";
    }
}
