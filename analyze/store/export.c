/* export.c — routing rows as CSV / JSON Lines (contract in export.h).
 *
 * The columns that stay the same over a record (run .. block, label .. pred_prob) and over
 * a token (token .. match) are formatted once into strings; a row then costs one fprintf
 * of its own two or three fields. Measured (docs/export.md): ~1.1 M CSV rows/s per CPU
 * second, 12 MB resident whatever the run. */
#include "export.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

static const char *const routing_columns[] = {"export_v", "run", "image", "view", "layer", "block",
                                              "token", "is_cls", "patch", "row", "col", "match",
                                              "rank", "expert", "gate", "label", "predicted", "pred_prob",
                                              "kept", "executed"};
static const char *const probs_columns[] = {"export_v", "run", "image", "view", "layer", "block",
                                            "token", "is_cls", "patch", "row", "col", "match",
                                            "expert", "prob", "rank", "label", "predicted", "pred_prob", "kept",
                                            "executed"};
enum { NUM_COLUMNS = sizeof routing_columns / sizeof *routing_columns };
_Static_assert(sizeof probs_columns / sizeof *probs_columns == NUM_COLUMNS, "both row kinds have 20 columns");

/* Per-record and per-token text, and what a row needs to name its columns. */
typedef struct exporter {
    const rs_export_options *opt;
    const rs_run_info *run;
    FILE *out;
    const char *const *names;   /* the column names of this row kind */
    char head[192];             /* export_v .. block, with the separator after it */
    char token[192];            /* token .. match, with the separator after it */
    char tail[192];             /* separator, label .. pred_prob, separator (kept, executed and
                                 * the end of the row follow per row) */
    int rank_of[256];           /* probs rows: expert -> rank in the top-R, -1 */
    int64_t rows;
} exporter;

/* A float as shortest-safe text: DIGITS significant digits; "" in CSV and null in JSON when
 * not finite (neither format has a portable spelling for NaN or infinity). */
static void put_float(char *buf, size_t size, double x, int digits, bool json)
{
    if (isfinite(x))
        snprintf(buf, size, "%.*g", digits, x);
    else
        snprintf(buf, size, "%s", json ? "null" : "");
}

/* An integer column that may be unknown (-1 label): "" in CSV, null in JSON. */
static void put_optional(char *buf, size_t size, int v, bool json)
{
    if (v >= 0)
        snprintf(buf, size, "%d", v);
    else
        snprintf(buf, size, "%s", json ? "null" : "");
}

/* Column I's value VALUE: "value," in CSV, "\"name\":value," in JSON (no separator after the
 * last column). Appends to BUF at *LEN. */
static void put_column(const exporter *x, char *buf, size_t size, size_t *len, int i, const char *value)
{
    bool json = x->opt->format == RS_EXPORT_JSONL, last = i == NUM_COLUMNS - 1;
    int n = json ? snprintf(buf + *len, size - *len, "%s\"%s\":%s%s", i == 0 ? "{" : "", x->names[i], value,
                            last ? "}\n" : ",")
                 : snprintf(buf + *len, size - *len, "%s%s", value, last ? "\n" : ",");
    if (n > 0)
        *len += (size_t)n < size - *len ? (size_t)n : size - *len - 1;
}

static void format_record(exporter *x, const rs_routing_record *rec)
{
    bool json = x->opt->format == RS_EXPORT_JSONL;
    char v[6][32];
    snprintf(v[0], sizeof v[0], "%d", RS_EXPORT_VERSION);
    snprintf(v[1], sizeof v[1], "%" PRId64, x->run->id);
    snprintf(v[2], sizeof v[2], "%d", rec->image);
    snprintf(v[3], sizeof v[3], "%d", rec->view);
    snprintf(v[4], sizeof v[4], "%d", rec->layer);
    snprintf(v[5], sizeof v[5], "%d", x->run->layer_blocks[rec->layer]);
    size_t len = 0;
    for (int i = 0; i < 6; i++)
        put_column(x, x->head, sizeof x->head, &len, i, v[i]);
    put_optional(v[0], sizeof v[0], rec->label, json);
    snprintf(v[1], sizeof v[1], "%d", rec->predicted);
    put_float(v[2], sizeof v[2], rec->pred_prob, 9, json);
    x->tail[0] = ',';
    len = 1;
    for (int i = 15; i < NUM_COLUMNS - 2; i++)
        put_column(x, x->tail, sizeof x->tail, &len, i, v[i - 15]);
}

/* token, is_cls, patch, row, col, match of token T. */
static void format_token(exporter *x, const rs_routing_record *rec, int t)
{
    const rs_run_info *r = x->run;
    int cls = r->has_cls ? 1 : 0, p = t - cls;
    bool is_cls = p < 0;
    int vals[6] = {t, is_cls, is_cls ? -1 : p, is_cls ? -1 : p / r->grid_w, is_cls ? -1 : p % r->grid_w,
                   is_cls ? -1 : rec->match[p]};
    size_t len = 0;
    for (int i = 0; i < 6; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", vals[i]);
        put_column(x, x->token, sizeof x->token, &len, 6 + i, v);
    }
}

/* The three row-specific columns (12..14) of one row, then the whole row ending in KEPT and
 * EXECUTED. */
static void write_row(exporter *x, int a, int b, double f, int f_digits, bool float_middle, int kept, int executed)
{
    bool json = x->opt->format == RS_EXPORT_JSONL;
    char fv[32];
    put_float(fv, sizeof fv, f, f_digits, json);
    const char *const *n = x->names;
    if (json && float_middle)
        fprintf(x->out, "%s%s\"%s\":%d,\"%s\":%s,\"%s\":%d%s\"%s\":%d,\"%s\":%d}\n", x->head, x->token, n[12], a,
                n[13], fv, n[14], b, x->tail, n[18], kept, n[19], executed);
    else if (json)
        fprintf(x->out, "%s%s\"%s\":%d,\"%s\":%d,\"%s\":%s%s\"%s\":%d,\"%s\":%d}\n", x->head, x->token, n[12], a,
                n[13], b, n[14], fv, x->tail, n[18], kept, n[19], executed);
    else if (float_middle)
        fprintf(x->out, "%s%s%d,%s,%d%s%d,%d\n", x->head, x->token, a, fv, b, x->tail, kept, executed);
    else
        fprintf(x->out, "%s%s%d,%d,%s%s%d,%d\n", x->head, x->token, a, b, fv, x->tail, kept, executed);
    x->rows++;
}

/* Whether the choice at rank K of token T ran (the expert of that rank in rec->executed): a
 * rank below top_k, kept by dispatch when the run has a capacity factor. */
static int kept_at(const exporter *x, const rs_routing_record *rec, int t, int k)
{
    if (k < 0 || k >= x->run->top_k)
        return 0;
    return rec->kept ? rec->kept[(size_t)t * x->run->record_k + k] : 1;
}

/* The rank at which token T ran expert E (rec->executed), -1 when it did not run it there. */
static int executed_rank(const exporter *x, const rs_routing_record *rec, int t, int e)
{
    const uint8_t *ran = rec->executed + (size_t)t * x->run->record_k;
    for (int k = 0; k < x->run->top_k; k++)
        if (ran[k] == e)
            return k;
    return -1;
}

static void write_record(exporter *x, const rs_routing_record *rec)
{
    const rs_run_info *r = x->run;
    const int T = r->tokens, R = r->record_k, E = r->num_experts;
    format_record(x, rec);
    for (int t = 0; t < T; t++) {
        format_token(x, rec, t);
        const uint8_t *idx = rec->top_idx + (size_t)t * R, *ran = rec->executed + (size_t)t * R;
        if (!x->opt->probs) {
            for (int k = 0; k < R; k++)
                write_row(x, k, idx[k], rec->top_gate[(size_t)t * R + k], 9, false, kept_at(x, rec, t, k),
                          k < r->top_k ? ran[k] : -1);
            continue;
        }
        for (int e = 0; e < E; e++)
            x->rank_of[e] = -1;
        for (int k = R - 1; k >= 0; k--)
            x->rank_of[idx[k]] = k;
        /* Half floats need 5 significant digits to round-trip; 6 leaves no doubt. */
        for (int e = 0; e < E; e++) {
            int ran_at = executed_rank(x, rec, t, e);
            write_row(x, e, x->rank_of[e], rec->probs[(size_t)t * E + e], 6, true, kept_at(x, rec, t, ran_at), ran_at);
        }
    }
}

/* What the cursor does not check and the rows rely on: slot, expert ids, match targets. */
static int check_record(const exporter *x, const rs_routing_record *rec, const char *db, rs_error *err)
{
    const rs_run_info *r = x->run;
    if (rec->layer < 0 || rec->layer >= r->num_layers || rec->view < 0 || rec->view >= r->num_views)
        return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d: view %d layer %d outside %d views, %d layers",
                            db, r->id, rec->image, rec->view, rec->layer, r->num_views, r->num_layers);
    for (size_t q = 0; q < (size_t)r->tokens * r->record_k; q++)
        if (rec->top_idx[q] >= r->num_experts)
            return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d view %d layer %d: expert id %d >= %d",
                                db, r->id, rec->image, rec->view, rec->layer, rec->top_idx[q], r->num_experts);
    for (int p = 0; p < r->patches; p++)
        if (rec->match[p] < -1 || rec->match[p] >= r->patches)
            return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d view %d: patch %d matches %d, outside -1..%d",
                                db, r->id, rec->image, rec->view, p, rec->match[p], r->patches - 1);
    return 0;
}

static int check_run(const rs_run_info *r, const char *db, rs_error *err)
{
    int cls = r->has_cls ? 1 : 0;
    if (r->num_layers < 1 || r->num_layers > 64 || r->record_k < 1 || r->num_experts < 1 || r->num_experts > 256 ||
        r->grid_w < 1 || r->grid_h * r->grid_w != r->patches || r->tokens != r->patches + cls)
        return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " has inconsistent shapes (%d tokens, %d patches "
                            "on %dx%d, %d layers, R %d, E %d)", db, r->id, r->tokens, r->patches, r->grid_h, r->grid_w,
                            r->num_layers, r->record_k, r->num_experts);
    return 0;
}

static void write_header(const exporter *x)
{
    if (x->opt->format != RS_EXPORT_CSV)
        return;
    for (int i = 0; i < NUM_COLUMNS; i++)
        fprintf(x->out, "%s%s", x->names[i], i == NUM_COLUMNS - 1 ? "\n" : ",");
}

int rs_export_run(rs_store *store, int64_t run_id, const rs_export_options *opt, FILE *out, int64_t *rows,
                  rs_error *err)
{
    if (rows)
        *rows = 0;
    const char *db = opt->store_name ? opt->store_name : "store";
    const char *out_name = opt->out_name ? opt->out_name : "output";
    rs_run_info info = {0};
    rs_store_cursor *cur = NULL;
    exporter x = {.opt = opt, .run = &info, .out = out, .names = opt->probs ? probs_columns : routing_columns};
    int rc = rs_store_get_run(store, run_id, &info, err);
    char why[160];
    if (!rc && opt->probs && rs_run_lacks_softmax(&info, "export --probs", why, sizeof why))
        rc = rs_error_set(err, RS_EINVAL, "%s", why);
    if (!rc && !(rc = check_run(&info, db, err)) && !(rc = rs_store_cursor_open(store, run_id, &cur, err))) {
        write_header(&x);
        rs_routing_record rec;
        while ((rc = rs_store_cursor_next(cur, &rec, err)) == 1 && !(rc = check_record(&x, &rec, db, err))) {
            write_record(&x, &rec);
            if (ferror(out)) {
                rc = rs_error_set(err, RS_EIO, "%s: write failed", out_name);
                break;
            }
        }
        if (!rc && fflush(out))
            rc = rs_error_set(err, RS_EIO, "%s: write failed", out_name);
    }
    if (rows)
        *rows = x.rows;
    rs_store_cursor_close(cur);
    rs_run_info_clear(&info);
    return rc;
}
