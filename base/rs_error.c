#include "rs_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int rs_error_set(rs_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int rs_error_prefix(rs_error *err, const char *prefix)
{
    if (!err)
        return RS_EINVAL;
    char joined[2 * sizeof err->msg];
    snprintf(joined, sizeof joined, "%s: %s", prefix, err->msg);
    /* Cut to the message buffer; a long path may eat the tail, never overflow it. */
    size_t n = strnlen(joined, sizeof err->msg - 1);
    memcpy(err->msg, joined, n);
    err->msg[n] = '\0';
    return err->code;
}
