/* spec_text.c — facts read from a view's spec text (see spec_text.h). */
#include "spec_text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Length of the operation name starting at OP (up to ':', '+' or the end). */
static size_t name_len(const char *op)
{
    return strcspn(op, ":+");
}

static bool name_is(const char *op, const char *name)
{
    size_t n = name_len(op);
    return n == strlen(name) && !strncmp(op, name, n);
}

/* The next operation after OP, or NULL. */
static const char *next_op(const char *op)
{
    const char *p = strchr(op, '+');
    return p ? p + 1 : NULL;
}

bool rs_spec_has_geometric_op(const char *spec)
{
    static const char *const geometric[] = {"crop", "flip", "rotate", "translate"};
    for (const char *op = spec; op && *op; op = next_op(op))
        for (size_t g = 0; g < sizeof geometric / sizeof *geometric; g++)
            if (name_is(op, geometric[g]))
                return true;
    return false;
}

/* A number or a fraction A/B of the N characters at S into *X; false when it is neither. */
static bool parse_fraction(const char *s, size_t n, double *x)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    double a = strtod(buf, &end), b = 1;
    if (end == buf)
        return false;
    if (*end == '/') {
        char *den = end + 1;
        b = strtod(den, &end);
        if (end == den || !(b > 0))
            return false;
    }
    if (*end)
        return false;
    *x = a / b;
    return isfinite(*x);
}

int rs_spec_attack_eps(const char *spec, double *eps, rs_error *err)
{
    *eps = 0;
    for (const char *op = spec; op && *op; op = next_op(op)) {
        if (!name_is(op, "pgd"))
            continue;
        size_t n = strcspn(op, "+");
        for (const char *k = op + name_len(op); k < op + n; k += strcspn(k, ",+") ) {
            k++; /* past ':' or ',' */
            if (strncmp(k, "eps=", 4))
                continue;
            const char *v = k + 4;
            size_t vn = strcspn(v, ",+");
            if (!parse_fraction(v, vn, eps) || *eps < 0)
                return rs_error_set(err, RS_EINVAL, "view '%s': eps '%.*s' is not a number >= 0", spec, (int)vn, v);
            return 1;
        }
        return rs_error_set(err, RS_EINVAL, "view '%s': pgd has no eps", spec);
    }
    return 0;
}
