/* rs_error.h — how every routerscope library function reports failure.
 *
 * Contract (after sqlite3.h): a function returns 0 on success or a negative RS_E* code,
 * and fills the caller's rs_error with one line of context (file, tensor, key, line).
 * Library code never prints and never exits; only cli/ prints and picks the exit status.
 * An rs_error pointer may be NULL when the caller does not want the message. */
#ifndef RS_ERROR_H
#define RS_ERROR_H

enum {
    RS_OK = 0,
    RS_EIO = -1,      /* a file could not be opened, read, mapped or written */
    RS_EFORMAT = -2,  /* the bytes do not follow the format (header, JSON, shapes, ...) */
    RS_ENOMEM = -3,   /* an allocation failed */
    RS_EINVAL = -4,   /* a caller passed an argument outside the contract */
};

typedef struct rs_error {
    int code;
    char msg[256];
} rs_error;

/* A message names its context first (a path, a quoted spec, "run 3") and its reason last.
 * One longer than msg's 255 bytes keeps its first 64 bytes and its end, joined by "…"
 * (cut between UTF-8 characters): the cut falls in the quoted context, never in the reason
 * ("view 'flip:p=0.5+flip:p=0.5+…+flip:p=0.5': empty or longer than 255 characters").
 * Only when memory runs out is a long message cut at its end instead. */

/* Formats msg, stores code, and returns code so that callers can write
 * `return rs_error_set(err, RS_EFORMAT, "%s: ...", path);`. */
int rs_error_set(rs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (used to add the file name to an error
 * raised by a lower layer that did not know it); a long prefix is cut as above. Returns
 * err->code. */
int rs_error_prefix(rs_error *err, const char *prefix);

#endif
