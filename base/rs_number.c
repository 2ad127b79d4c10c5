/* rs_number.c — the strict decimal grammar (see rs_number.h). The grammar is checked here
 * and the value is left to strtod/strtoll, which read more than the grammar allows (hex,
 * blanks, inf) and so only ever see text that passed it. */
#include "rs_number.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t digits(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

size_t rs_number_span(const char *text)
{
    size_t i = text[0] == '-';
    size_t whole = digits(text + i);
    i += whole;
    size_t frac = 0;
    if (text[i] == '.') {
        frac = digits(text + i + 1);
        if (whole || frac)
            i += 1 + frac;
    }
    if (!whole && !frac)
        return 0;
    if (text[i] == 'e' || text[i] == 'E') {
        size_t j = i + 1 + (text[i + 1] == '+' || text[i + 1] == '-');
        size_t exp = digits(text + j);
        if (exp)
            i = j + exp;
    }
    return i;
}

int rs_parse_number(const char *text, double *out)
{
    size_t n = rs_number_span(text);
    if (!n || text[n])
        return RS_EINVAL;
    errno = 0;
    double v = strtod(text, NULL);
    if (errno || !isfinite(v))
        return RS_EINVAL;
    *out = v;
    return 0;
}

int rs_parse_fraction(const char *text, double *out)
{
    size_t n = rs_number_span(text);
    if (!n || (text[n] && text[n] != '/'))
        return RS_EINVAL;
    double num, den = 1;
    errno = 0;
    num = strtod(text, NULL);
    if (errno || !isfinite(num) || (text[n] && (rs_parse_number(text + n + 1, &den) || !(den > 0))))
        return RS_EINVAL;
    double v = num / den;
    if (!isfinite(v))
        return RS_EINVAL;
    *out = v;
    return 0;
}

int rs_parse_integer(const char *text, long long lo, long long hi, long long *out)
{
    size_t n = (text[0] == '-') + digits(text + (text[0] == '-'));
    if (n == (size_t)(text[0] == '-') || text[n])
        return RS_EINVAL;
    errno = 0;
    long long v = strtoll(text, NULL, 10);
    if (errno || v < lo || v > hi)
        return RS_EINVAL;
    *out = v;
    return 0;
}

int rs_parse_u64(const char *text, uint64_t *out)
{
    size_t n = digits(text);
    if (!n || text[n])
        return RS_EINVAL;
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno)
        return RS_EINVAL;
    *out = (uint64_t)v;
    return 0;
}
