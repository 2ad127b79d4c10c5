#include <stdint.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dispatch.h"
#include "rs_number.h"
#include "store/run.h"

/* vmoe's configs dispatch groups of 8 images' tokens (vmoe_paper/common.py). */
#define RS_CLI_DEFAULT_GROUP_IMAGES 8

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
    long long v;
    if (rs_parse_integer(text, lo, hi, &v)) {
        rs_cli_usage_error(cmd, "%s wants an integer in [%d, %d], got '%s'", name, lo, hi, text);
        return false;
    }
    *out = (int)v;
    return true;
}

bool rs_cli_parse_u64(const char *cmd, const char *name, const char *text, uint64_t *out)
{
    if (rs_parse_u64(text, out)) {
        rs_cli_usage_error(cmd, "%s wants an unsigned integer, got '%s'", name, text);
        return false;
    }
    return true;
}

bool rs_cli_dispatch_option(const char *cmd, int c, const char *text, rs_cli_dispatch *d)
{
    switch (c) {
    case RS_OPT_CAPACITY:
        if (rs_parse_number(text, &d->capacity_factor) ||
            !(d->capacity_factor > 0 && d->capacity_factor <= RS_DISPATCH_MAX_FACTOR)) {
            rs_cli_usage_error(cmd, "--capacity-factor wants a number in (0, %g], got '%s'", RS_DISPATCH_MAX_FACTOR,
                               text);
            return false;
        }
        return true;
    case RS_OPT_GROUP_IMAGES:
        return rs_cli_parse_int(cmd, "--group-images", text, 1, RS_DISPATCH_MAX_GROUP_IMAGES, &d->group_images);
    case RS_OPT_GROUP_SIZE:
        return rs_cli_parse_int(cmd, "--group-size", text, 1, INT_MAX, &d->group_tokens);
    case RS_OPT_GROUP_SEED:
        d->has_group_seed = true;
        return rs_cli_parse_u64(cmd, "--group-seed", text, &d->group_seed);
    case RS_OPT_BPR:
        d->bpr = true;
        return true;
    case RS_OPT_BF16:
        d->bf16 = true;
        return true;
    case RS_OPT_PAD_LAST:
        d->pad_last = true;
        return true;
    default: /* RS_OPT_DISPATCH */
        if (strcmp(text, "model")) {
            rs_cli_usage_error(cmd, "--dispatch wants 'model', got '%s'", text);
            return false;
        }
        d->from_model = true;
        return true;
    }
}

bool rs_cli_dispatch_check(const char *cmd, rs_cli_dispatch *d)
{
    bool extra = d->group_images || d->group_tokens || d->bpr || d->bf16 || d->pad_last;
    if (d->from_model && (d->capacity_factor > 0 || extra)) {
        rs_cli_usage_error(cmd, "--dispatch model takes the model's own settings: leave out --capacity-factor, "
                                "--group-images, --group-size, --bpr, --bf16-dispatch and --pad-last-group");
        return false;
    }
    if (d->capacity_factor == 0 && extra) {
        rs_cli_usage_error(cmd, "--group-images, --group-size, --bpr, --bf16-dispatch and --pad-last-group belong "
                                "to --capacity-factor");
        return false;
    }
    if (d->capacity_factor == 0 && !d->from_model && d->has_group_seed) {
        rs_cli_usage_error(cmd, "--group-seed shuffles dispatch groups, and without --capacity-factor (or "
                                "--dispatch model) there are none");
        return false;
    }
    if (d->group_images && d->group_tokens) {
        rs_cli_usage_error(cmd, "--group-images and --group-size both set the group: give one");
        return false;
    }
    if (d->capacity_factor > 0 && !d->group_images && !d->group_tokens)
        d->group_images = RS_CLI_DEFAULT_GROUP_IMAGES;
    return true;
}

bool rs_cli_compute_option(const char *cmd, int c, const char *text, rs_cli_compute *o)
{
    rs_error err;
    int rc = c == RS_OPT_GEMM ? rs_gemm_backend_parse(text, &o->gemm, &err)
                              : rs_precision_parse(text, &o->precision, &err);
    if (rc)
        rs_cli_usage_error(cmd, "%s", err.msg);
    return rc == 0;
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

char *rs_cli_command_line(int argc, char **argv)
{
    /* Worst case every character is a quote, which becomes four: '\'' */
    size_t len = sizeof "routerscope";
    for (int i = 0; i < argc; i++)
        len += 4 * strlen(argv[i]) + 3;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "routerscope");
    for (int i = 0; i < argc; i++) {
        bool quote = !*argv[i] || strpbrk(argv[i], " \t'\"\\$;&|<>*?()") != NULL;
        *p++ = ' ';
        if (!quote) {
            p += sprintf(p, "%s", argv[i]);
            continue;
        }
        *p++ = '\'';
        for (const char *c = argv[i]; *c; c++) {
            if (*c == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *c;
            }
        }
        *p++ = '\'';
    }
    *p = 0;
    return s;
}

bool rs_cli_parse_runs(const char *cmd, const char *flag, const char *text, int64_t **ids, int *n)
{
    *n = 0;
    *ids = NULL;
    size_t len = strlen(text);
    int64_t *out = malloc(sizeof *out * (len / 2 + 1));
    char *item = malloc(len + 1);
    if (!out || !item) {
        free(out);
        free(item);
        fprintf(stderr, "routerscope: out of memory\n");
        return false;
    }
    /* Items between commas; a trailing comma leaves an empty item. */
    const char *p = text;
    bool bad = !len || text[len - 1] == ',';
    while (!bad && *p) {
        size_t k = strcspn(p, ",");
        memcpy(item, p, k);
        item[k] = '\0';
        long long v = 0;
        if (!(bad = rs_parse_integer(item, 1, INT64_MAX, &v) != 0))
            out[(*n)++] = v;
        p += k + (p[k] == ',');
    }
    free(item);
    if (bad) {
        rs_cli_usage_error(cmd, "%s wants run ids separated by commas, got '%s'", flag, text);
        free(out);
        *n = 0;
        return false;
    }
    *ids = out;
    return true;
}

bool rs_cli_check_run(const char *cmd, const char *flag, const char *text)
{
    if (rs_run_selector_ok(text))
        return true;
    rs_cli_usage_error(cmd, "%s wants a run id, 'last' or MODEL/PROTOCOL, got '%s'", flag, text);
    return false;
}

/* Calls FN on each comma-separated item of TEXT (a copy, cut at the commas) until it
 * returns nonzero; returns that value, or 1 when TEXT is empty or ends in a comma. */
static int each_item(const char *text, int (*fn)(const char *item, void *ctx), void *ctx)
{
    size_t len = strlen(text);
    if (!len || text[len - 1] == ',')
        return 1;
    char *copy = strdup(text);
    if (!copy)
        return RS_ENOMEM;
    int rc = 0;
    for (char *item = copy, *next; item && !rc; item = next) {
        next = strchr(item, ',');
        if (next)
            *next++ = '\0';
        rc = fn(item, ctx);
    }
    free(copy);
    return rc;
}

static int check_item(const char *item, void *ctx)
{
    (void)ctx;
    return rs_run_selector_ok(item) ? 0 : 1;
}

bool rs_cli_check_runs(const char *cmd, const char *flag, const char *text)
{
    int rc = each_item(text, check_item, NULL);
    if (rc == RS_ENOMEM)
        fprintf(stderr, "routerscope: out of memory\n");
    else if (rc)
        rs_cli_usage_error(cmd, "%s wants run ids separated by commas, got '%s'", flag, text);
    return rc == 0;
}

/* What select_item fills: the ids found so far, and where it reads them. */
typedef struct select_ctx {
    rs_store *store;
    const char *db;
    int64_t *ids;
    int n;
    rs_error *err;
} select_ctx;

static int select_item(const char *item, void *ctx)
{
    select_ctx *s = ctx;
    return rs_run_select(s->store, s->db, item, &s->ids[s->n++], s->err);
}

int rs_cli_select_runs(rs_store *store, const char *db, const char *text, int64_t **ids, int *n, rs_error *err)
{
    *ids = NULL;
    *n = 0;
    select_ctx s = {.store = store, .db = db, .ids = malloc(sizeof *s.ids * (strlen(text) / 2 + 1)), .err = err};
    int rc = !s.ids ? RS_ENOMEM : each_item(text, select_item, &s);
    if (rc == RS_ENOMEM)
        rs_error_set(err, RS_ENOMEM, "out of memory");
    else if (rc == 1)
        rc = rs_error_set(err, RS_EINVAL, "'%s' is not a list of runs", text);
    if (rc) {
        free(s.ids);
        return rc;
    }
    *ids = s.ids;
    *n = s.n;
    return 0;
}
