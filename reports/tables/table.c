/* table.c — the table model and its md, csv, tex and json renderings (contract in table.h). */
#include "table.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum cell_kind { CELL_NA = 0, CELL_TEXT, CELL_RATE, CELL_DIFF, CELL_NUMBER, CELL_COUNT } cell_kind;

typedef struct cell {
    cell_kind kind;
    char *text;
    double value, lo, hi, wlo, whi;
    bool interval, wilson, has_n;
    bool mark;      /* rs_table_set_mark: "*" after the value in md/tex, "mark" in json */
    int decimals;
    int64_t n;
} cell;

typedef struct row {
    char *view, *layer, *metric, *run; /* run: NULL = the table's */
    cell *cells;
} row;

struct rs_table {
    char *title, *run, *note;
    int ncols, nrows, cap;
    char **keys, **headers;
    row *rows;
    bool oom; /* an allocation in a setter failed: rs_table_write reports it */
};

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

int rs_table_parse_format(const char *name, rs_table_format *out)
{
    static const char *const names[] = {"md", "csv", "tex", "json"};
    for (int i = 0; i < 4; i++) {
        if (!strcmp(name, names[i])) {
            *out = (rs_table_format)i;
            return 0;
        }
    }
    return RS_EINVAL;
}

rs_table *rs_table_create(const char *title, const char *run, int ncols, const char *const *keys,
                          const char *const *headers)
{
    rs_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->title = dup_or_null(title ? title : "", &t->oom);
    t->run = dup_or_null(run ? run : "", &t->oom);
    t->keys = calloc((size_t)ncols, sizeof *t->keys);
    t->headers = calloc((size_t)ncols, sizeof *t->headers);
    if (!t->keys || !t->headers)
        t->oom = true;
    for (int c = 0; c < ncols && !t->oom; c++) {
        t->keys[c] = dup_or_null(keys[c], &t->oom);
        t->headers[c] = dup_or_null(headers[c], &t->oom);
    }
    if (t->oom) {
        rs_table_free(t);
        return NULL;
    }
    return t;
}

void rs_table_free(rs_table *t)
{
    if (!t)
        return;
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++)
            free(t->rows[r].cells[c].text);
        free(t->rows[r].cells);
        free(t->rows[r].view);
        free(t->rows[r].layer);
        free(t->rows[r].metric);
        free(t->rows[r].run);
    }
    free(t->rows);
    for (int c = 0; c < t->ncols && t->keys && t->headers; c++) {
        free(t->keys[c]);
        free(t->headers[c]);
    }
    free(t->keys);
    free(t->headers);
    free(t->title);
    free(t->run);
    free(t->note);
    free(t);
}

void rs_table_set_note(rs_table *t, const char *note)
{
    free(t->note);
    t->note = dup_or_null(note, &t->oom);
}

int rs_table_add_row(rs_table *t, const char *view, const char *layer, const char *metric)
{
    if (t->oom)
        return -1;
    if (t->nrows == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        row *p = realloc(t->rows, sizeof *p * (size_t)cap);
        if (!p) {
            t->oom = true;
            return -1;
        }
        t->rows = p;
        t->cap = cap;
    }
    row *r = &t->rows[t->nrows];
    memset(r, 0, sizeof *r);
    if (!(r->cells = calloc((size_t)t->ncols, sizeof *r->cells))) {
        t->oom = true;
        return -1;
    }
    r->view = dup_or_null(view, &t->oom);
    r->layer = dup_or_null(layer, &t->oom);
    r->metric = dup_or_null(metric, &t->oom);
    return t->nrows++;
}

void rs_table_set_row_run(rs_table *t, int r, const char *run)
{
    if (r < 0 || r >= t->nrows)
        return;
    free(t->rows[r].run);
    t->rows[r].run = dup_or_null(run, &t->oom);
}

/* The cell to fill, emptied; NULL when the row or column is out of range (a failed add). */
static cell *slot(rs_table *t, int r, int c)
{
    if (r < 0 || r >= t->nrows || c < 0 || c >= t->ncols)
        return NULL;
    cell *x = &t->rows[r].cells[c];
    free(x->text);
    memset(x, 0, sizeof *x);
    return x;
}

void rs_table_set_text(rs_table *t, int r, int c, const char *text)
{
    cell *x = slot(t, r, c);
    if (x && text) {
        x->kind = CELL_TEXT;
        x->text = dup_or_null(text, &t->oom);
    }
}

void rs_table_set_rate(rs_table *t, int r, int c, double value, bool interval, double lo, double hi,
                       bool wilson, double wilson_lo, double wilson_hi, int64_t n)
{
    cell *x = slot(t, r, c);
    if (!x || !isfinite(value))
        return;
    x->kind = CELL_RATE;
    x->value = value;
    x->interval = interval && isfinite(lo) && isfinite(hi);
    x->lo = lo;
    x->hi = hi;
    x->wilson = wilson && isfinite(wilson_lo) && isfinite(wilson_hi);
    x->wlo = wilson_lo;
    x->whi = wilson_hi;
    x->has_n = true;
    x->n = n;
}

void rs_table_set_diff(rs_table *t, int r, int c, double value, bool interval, double lo, double hi)
{
    cell *x = slot(t, r, c);
    if (!x || !isfinite(value))
        return;
    x->kind = CELL_DIFF;
    x->value = value;
    x->interval = interval && isfinite(lo) && isfinite(hi);
    x->lo = lo;
    x->hi = hi;
}

void rs_table_set_number(rs_table *t, int r, int c, double value, int decimals, int64_t n)
{
    cell *x = slot(t, r, c);
    if (!x || !isfinite(value))
        return;
    x->kind = CELL_NUMBER;
    x->value = value;
    x->decimals = decimals;
    x->has_n = n >= 0;
    x->n = n;
}

void rs_table_set_count(rs_table *t, int r, int c, int64_t value)
{
    cell *x = slot(t, r, c);
    if (!x)
        return;
    x->kind = CELL_COUNT;
    x->value = (double)value;
    x->n = value;
}

void rs_table_set_mark(rs_table *t, int r, int c)
{
    if (r >= 0 && r < t->nrows && c >= 0 && c < t->ncols)
        t->rows[r].cells[c].mark = true;
}

void rs_table_set_na(rs_table *t, int r, int c)
{
    slot(t, r, c);
}

/* ---- formatting ------------------------------------------------------------------------- */

/* Percent of a rate with two decimals; "-0.00" reads oddly, so tiny negatives print as 0. */
static double pct(double v)
{
    double p = 100.0 * v;
    return fabs(p) < 0.005 ? 0.0 : p;
}

/* The value of X as md/tex show it (no interval) into BUF. */
static void format_value(const cell *x, char *buf, size_t size)
{
    switch (x->kind) {
    case CELL_NA: snprintf(buf, size, "n/a"); break;
    case CELL_TEXT: snprintf(buf, size, "%s", x->text); break;
    case CELL_RATE: snprintf(buf, size, "%.2f", pct(x->value)); break;
    case CELL_DIFF: snprintf(buf, size, "%+.2f", pct(x->value)); break;
    case CELL_NUMBER:
        if (x->decimals < 0)
            snprintf(buf, size, "%.3g", x->value);
        else
            snprintf(buf, size, "%.*f", x->decimals, x->value);
        break;
    case CELL_COUNT: snprintf(buf, size, "%" PRId64, x->n); break;
    }
    size_t len = strlen(buf);
    if (x->mark && x->kind != CELL_NA && len + 1 < size)
        snprintf(buf + len, size - len, "*");
}

static bool has_interval(const cell *x)
{
    return (x->kind == CELL_RATE || x->kind == CELL_DIFF) && x->interval;
}

static void format_interval(const cell *x, char *buf, size_t size)
{
    if (x->kind == CELL_DIFF)
        snprintf(buf, size, "[%+.2f, %+.2f]", pct(x->lo), pct(x->hi));
    else
        snprintf(buf, size, "[%.2f, %.2f]", pct(x->lo), pct(x->hi));
}

/* Display width of UTF-8 text: one column per code point (headers hold ‖, −, χ²). */
static int width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static bool numeric(const cell *x)
{
    return x->kind != CELL_TEXT;
}

/* ---- md --------------------------------------------------------------------------------- */

static void md_cell(const cell *x, char *buf, size_t size)
{
    char v[96], iv[96];
    format_value(x, v, sizeof v);
    if (has_interval(x)) {
        format_interval(x, iv, sizeof iv);
        snprintf(buf, size, "%s %s", v, iv);
    } else {
        snprintf(buf, size, "%s", v);
    }
}

static int write_md(FILE *out, rs_table *const t, rs_error *err)
{
    (void)err;
    int *w = calloc((size_t)t->ncols, sizeof *w);
    bool *right = calloc((size_t)t->ncols, sizeof *right);
    if (!w || !right) {
        free(w);
        free(right);
        return RS_ENOMEM;
    }
    char buf[256];
    for (int c = 0; c < t->ncols; c++) {
        w[c] = width(t->headers[c]);
        for (int r = 0; r < t->nrows; r++) {
            const cell *x = &t->rows[r].cells[c];
            md_cell(x, buf, sizeof buf);
            if (width(buf) > w[c])
                w[c] = width(buf);
            right[c] |= numeric(x);
        }
        if (w[c] < 3)
            w[c] = 3;
    }
    fprintf(out, "### %s\n\n", t->title);
    for (int c = 0; c < t->ncols; c++)
        fprintf(out, "| %s%*s ", t->headers[c], w[c] - width(t->headers[c]), "");
    fputs("|\n", out);
    for (int c = 0; c < t->ncols; c++) {
        fputs("|", out);
        for (int i = 0; i < w[c] + 1; i++)
            fputc('-', out);
        fputc(right[c] ? ':' : '-', out);
    }
    fputs("|\n", out);
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            md_cell(&t->rows[r].cells[c], buf, sizeof buf);
            int pad = w[c] - width(buf);
            if (right[c])
                fprintf(out, "| %*s%s ", pad, "", buf);
            else
                fprintf(out, "| %s%*s ", buf, pad, "");
        }
        fputs("|\n", out);
    }
    if (t->note)
        fprintf(out, "\n%s\n", t->note);
    fputc('\n', out);
    free(w);
    free(right);
    return 0;
}

/* ---- csv -------------------------------------------------------------------------------- */

/* RFC 4180 quoting, only where needed. */
static void csv_field(FILE *out, const char *s)
{
    if (!s)
        s = "";
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Rates and differences go out as fractions with full precision: csv is for programs. */
static void write_csv_rows(FILE *out, const rs_table *t)
{
    for (int r = 0; r < t->nrows; r++) {
        const row *rw = &t->rows[r];
        for (int c = 0; c < t->ncols; c++) {
            const cell *x = &rw->cells[c];
            if (x->kind == CELL_TEXT)
                continue;
            char metric[160];
            if (rw->metric)
                snprintf(metric, sizeof metric, "%s_%s", rw->metric, t->keys[c]);
            else
                snprintf(metric, sizeof metric, "%s", t->keys[c]);
            csv_field(out, rw->run ? rw->run : t->run);
            fputc(',', out);
            csv_field(out, rw->view);
            fputc(',', out);
            csv_field(out, rw->layer);
            fputc(',', out);
            csv_field(out, metric);
            fputc(',', out);
            switch (x->kind) {
            case CELL_NA: fputs(",,,", out); break;
            case CELL_COUNT: fprintf(out, "%" PRId64 ",,,", x->n); break;
            default:
                fprintf(out, "%.10g,", x->value);
                if (has_interval(x))
                    fprintf(out, "%.10g,%.10g,", x->lo, x->hi);
                else
                    fputs(",,", out);
                if (x->has_n)
                    fprintf(out, "%" PRId64, x->n);
                break;
            }
            fputc('\n', out);
        }
    }
}

/* ---- tex -------------------------------------------------------------------------------- */

static void tex_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\': fputs("\\textbackslash{}", out); break;
        case '&': case '%': case '$': case '#': case '_': case '{': case '}':
            fputc('\\', out);
            fputc(*s, out);
            break;
        case '~': fputs("\\textasciitilde{}", out); break;
        case '\n': fputs("\n% ", out); break; /* a note's second line stays a comment */
        case '^': fputs("\\textasciicircum{}", out); break;
        default: fputc(*s, out);
        }
    }
}

/* A few symbols our headers use, in math mode: LaTeX's default encoding has no glyphs for them. */
static void tex_header(FILE *out, const char *s)
{
    static const struct { const char *utf8, *tex; } map[] = {
        {"\u2016", "$\\|$"}, {"\u2212", "$-$"}, {"\u03c7\u00b2", "$\\chi^2$"}, {"\u00d7", "$\\times$"},
    };
    while (*s) {
        bool done = false;
        for (size_t i = 0; i < sizeof map / sizeof *map && !done; i++) {
            size_t n = strlen(map[i].utf8);
            if (!strncmp(s, map[i].utf8, n)) {
                fputs(map[i].tex, out);
                s += n;
                done = true;
            }
        }
        if (!done) {
            char one[2] = {*s++, 0};
            tex_text(out, one);
        }
    }
}

static void write_tex(FILE *out, const rs_table *t)
{
    fputs("% ", out);
    tex_header(out, t->title);
    fputs("\n\\begin{tabular}{", out);
    for (int c = 0; c < t->ncols; c++) {
        bool num = false;
        for (int r = 0; r < t->nrows; r++)
            num |= numeric(&t->rows[r].cells[c]);
        fputc(num ? 'r' : 'l', out);
    }
    fputs("}\n\\toprule\n", out);
    for (int c = 0; c < t->ncols; c++) {
        if (c)
            fputs(" & ", out);
        tex_header(out, t->headers[c]);
    }
    fputs(" \\\\\n\\midrule\n", out);
    char v[96], iv[96];
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const cell *x = &t->rows[r].cells[c];
            if (c)
                fputs(" & ", out);
            format_value(x, v, sizeof v);
            if (x->kind == CELL_TEXT) {
                tex_header(out, v);
            } else if (has_interval(x)) {
                format_interval(x, iv, sizeof iv);
                fprintf(out, "%s {\\scriptsize %s}", v, iv);
            } else {
                fputs(v, out);
            }
        }
        fputs(" \\\\\n", out);
    }
    fputs("\\bottomrule\n\\end{tabular}\n", out);
    if (t->note) {
        fputs("% ", out);
        tex_header(out, t->note);
        fputc('\n', out);
    }
    fputc('\n', out);
}

/* ---- json ------------------------------------------------------------------------------- */

/* json_real refuses NaN; setters keep non-finite values out, this is the last guard. */
static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *json_cell(const cell *x)
{
    switch (x->kind) {
    case CELL_NA: return json_null();
    case CELL_TEXT: return json_string(x->text);
    case CELL_COUNT: return json_pack("{s:I}", "value", (json_int_t)x->n);
    default: break;
    }
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "value", real_or_null(x->value));
    if (has_interval(x)) {
        json_object_set_new(o, "lo", real_or_null(x->lo));
        json_object_set_new(o, "hi", real_or_null(x->hi));
    }
    if (x->kind == CELL_RATE && x->wilson) {
        json_object_set_new(o, "wilson_lo", real_or_null(x->wlo));
        json_object_set_new(o, "wilson_hi", real_or_null(x->whi));
    }
    if (x->has_n)
        json_object_set_new(o, "n", json_integer((json_int_t)x->n));
    if (x->mark)
        json_object_set_new(o, "mark", json_true());
    return o;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *json_table(const rs_table *t)
{
    json_t *cols = json_array(), *rows = json_array();
    for (int c = 0; c < t->ncols; c++)
        json_array_append_new(cols, json_pack("{s:s,s:s}", "key", t->keys[c], "header", t->headers[c]));
    for (int r = 0; r < t->nrows; r++) {
        const row *rw = &t->rows[r];
        json_t *cells = json_object();
        for (int c = 0; c < t->ncols; c++)
            json_object_set_new(cells, t->keys[c], json_cell(&rw->cells[c]));
        json_t *jr = json_pack("{s:o,s:o,s:o,s:o}", "view", str_or_null(rw->view), "layer", str_or_null(rw->layer),
                               "metric", str_or_null(rw->metric), "cells", cells);
        if (rw->run)
            json_object_set_new(jr, "run", json_string(rw->run));
        json_array_append_new(rows, jr);
    }
    return json_pack("{s:s,s:s,s:o,s:o,s:o}", "title", t->title, "run", t->run, "note", str_or_null(t->note),
                     "columns", cols, "rows", rows);
}

static int write_json(FILE *out, rs_table *const *tables, int ntables, const char *const *notes, int nnotes)
{
    json_t *root = json_object(), *jn = json_array(), *jt = json_array();
    if (!root || !jn || !jt) {
        json_decref(root);
        json_decref(jn);
        json_decref(jt);
        return RS_ENOMEM;
    }
    for (int i = 0; i < nnotes; i++)
        json_array_append_new(jn, json_string(notes[i]));
    for (int i = 0; i < ntables; i++) {
        json_t *one = json_table(tables[i]);
        if (!one) {
            json_decref(root);
            json_decref(jn);
            json_decref(jt);
            return RS_ENOMEM;
        }
        json_array_append_new(jt, one);
    }
    json_object_set_new(root, "notes", jn);
    json_object_set_new(root, "tables", jt);
    /* Real numbers with 10 significant digits: enough for any rate, and stable bytes. */
    int rc = json_dumpf(root, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', out);
    json_decref(root);
    return rc ? RS_EIO : 0;
}

int rs_table_write(FILE *out, rs_table *const *tables, int ntables, const char *const *notes, int nnotes,
                   rs_table_format format, rs_error *err)
{
    for (int i = 0; i < ntables; i++) {
        if (tables[i]->oom)
            return rs_error_set(err, RS_ENOMEM, "out of memory while building table '%s'", tables[i]->title);
    }
    int rc = 0;
    switch (format) {
    case RS_TABLE_MD:
        for (int i = 0; i < nnotes; i++)
            fprintf(out, "%s\n", notes[i]);
        if (nnotes)
            fputc('\n', out);
        for (int i = 0; i < ntables && !rc; i++)
            rc = write_md(out, tables[i], err);
        break;
    case RS_TABLE_CSV:
        fputs("run,view,layer,metric,value,lo,hi,n\n", out);
        for (int i = 0; i < ntables; i++)
            write_csv_rows(out, tables[i]);
        break;
    case RS_TABLE_TEX:
        fputs("% needs \\usepackage{booktabs}; rates in percent, 95 % intervals in brackets\n", out);
        for (int i = 0; i < nnotes; i++) {
            fputs("% ", out);
            tex_header(out, notes[i]);
            fputc('\n', out);
        }
        for (int i = 0; i < ntables; i++)
            write_tex(out, tables[i]);
        break;
    case RS_TABLE_JSON: rc = write_json(out, tables, ntables, notes, nnotes); break;
    }
    if (rc == RS_ENOMEM)
        return rs_error_set(err, RS_ENOMEM, "out of memory while writing tables");
    if (rc || fflush(out) || ferror(out))
        return rs_error_set(err, RS_EIO, "cannot write the tables");
    return 0;
}
