#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int rs_cli_fail(const rs_error *err)
{
    fprintf(stderr, "routerscope: %s\n", err->msg);
    return RS_EXIT_FAIL;
}

int rs_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "routerscope %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'routerscope %s --help')\n", cmd);
    return RS_EXIT_USAGE;
}

int rs_cli_next_option(const char *cmd, int argc, char **argv, const char *optstring,
                       const struct option *opts)
{
    opterr = 0;
    int c = getopt_long(argc, argv, optstring, opts, NULL);
    if (c == '?') {
        if (optopt)
            rs_cli_usage_error(cmd, "unknown option '-%c'", optopt);
        else
            rs_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
    } else if (c == ':') {
        rs_cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        c = '?';
    }
    return c;
}

bool rs_cli_parse_int(const char *cmd, const char *name, const char *text, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        rs_cli_usage_error(cmd, "%s wants an integer in [%d, %d], got '%s'", name, lo, hi, text);
        return false;
    }
    *out = (int)v;
    return true;
}

int rs_cli_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

bool rs_cli_show_progress(void)
{
    return isatty(STDERR_FILENO);
}

double rs_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
