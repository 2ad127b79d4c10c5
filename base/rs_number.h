/* rs_number.h — the one reader of the numbers users type: option values (--eps,
 * --threads, --capacity-factor, run ids) and view-spec parameters (sigma=, eps=, layers=).
 *
 * A number is decimal and read whole: an optional '-', digits with an optional fraction
 * ("0.5", ".5", "5."), an optional exponent ("1e-3", "2E+1"). Refused: blanks before or
 * after, a leading '+', hexadecimal ("0x10", which strtod reads as 16), "inf", "nan" and
 * values beyond a double's range. Where a fraction is allowed (eps, alpha) "A/B", two such
 * numbers with B > 0, is one too. An integer is an optional '-' and digits.
 *
 * The functions return 0 or RS_EINVAL and write no message: the caller knows the flag or
 * key and words it ("--threads wants an integer in [1, 256], got ' 2'"). Nothing is
 * allocated; the decimal point is '.' (no library here sets a locale). */
#ifndef RS_NUMBER_H
#define RS_NUMBER_H

#include <stddef.h>
#include <stdint.h>

#include "rs_error.h"

/* Bytes of the decimal number that TEXT starts with (0: none), for text that goes on after
 * it, such as a range "0.05-1" (the '-' of an exponent, "1e-3", stays in the number). */
size_t rs_number_span(const char *text);

/* TEXT, a whole decimal number, into *OUT (finite). */
int rs_parse_number(const char *text, double *out);

/* TEXT, a whole decimal number or a fraction "A/B" (B > 0), into *OUT. */
int rs_parse_fraction(const char *text, double *out);

/* TEXT, a whole decimal integer in [LO, HI], into *OUT. */
int rs_parse_integer(const char *text, long long lo, long long hi, long long *out);

/* TEXT, a whole unsigned decimal integer below 2^64 (digits only), into *OUT. */
int rs_parse_u64(const char *text, uint64_t *out);

#endif
