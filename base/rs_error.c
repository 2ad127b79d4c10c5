#include "rs_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes kept from the start of a message too long for rs_error.msg; the rest of the room
 * goes to its end. 64 bytes still say which file or spec the message is about. */
#define RS_ERROR_HEAD 64

static const char cut_mark[] = "\u2026"; /* "…", 3 bytes of UTF-8 */

static int utf8_continuation(char c)
{
    return ((unsigned char)c & 0xc0) == 0x80;
}

/* Copies TEXT (N bytes) into MSG: whole when it fits, else its first RS_ERROR_HEAD bytes,
 * the cut mark and its last bytes, cut between UTF-8 characters. */
static void fit(char msg[static 256], const char *text, size_t n)
{
    const size_t room = sizeof ((rs_error *)0)->msg - 1;
    if (n <= room) {
        memmove(msg, text, n);
        msg[n] = '\0';
        return;
    }
    size_t head = RS_ERROR_HEAD;
    while (head > 0 && utf8_continuation(text[head]))
        head--;
    size_t from = n - (room - head - (sizeof cut_mark - 1));
    while (from < n && utf8_continuation(text[from]))
        from++;
    memmove(msg, text, head);
    memcpy(msg + head, cut_mark, sizeof cut_mark - 1);
    memmove(msg + head + sizeof cut_mark - 1, text + from, n - from);
    msg[head + sizeof cut_mark - 1 + n - from] = '\0';
}

int rs_error_set(rs_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof err->msg) {
        /* Too long: format it whole once more, then keep its reason (see rs_error.h). */
        char *whole = malloc((size_t)n + 1);
        if (whole) {
            vsnprintf(whole, (size_t)n + 1, fmt, again);
            fit(err->msg, whole, (size_t)n);
            free(whole);
        }
    }
    va_end(again);
    err->code = code;
    return code;
}

int rs_error_prefix(rs_error *err, const char *prefix)
{
    if (!err)
        return RS_EINVAL;
    size_t p = strlen(prefix), m = strlen(err->msg);
    char *joined = malloc(p + 2 + m + 1);
    if (joined) {
        memcpy(joined, prefix, p);
        memcpy(joined + p, ": ", 2);
        memcpy(joined + p + 2, err->msg, m + 1);
        fit(err->msg, joined, p + 2 + m);
        free(joined);
    }
    return err->code;
}
