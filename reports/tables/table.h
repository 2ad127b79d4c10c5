/* table.h — a small table model and its four renderings: md, csv, tex, json.
 *
 * A table has a title, an optional note (printed under it: caveats such as McNemar's
 * independence assumption belong next to the numbers), and columns, each with a key (the
 * metric's machine name in csv/json, e.g. "top1") and a header (what a reader sees, e.g.
 * "Top-1"). Every row carries where its figures belong — view, layer and an optional
 * metric prefix — for csv and json, and cells for the columns:
 *   text    shown as is in md/tex (row labels); not a figure, so absent from csv
 *   rate    a proportion in [0,1] (or a difference of two), shown in percent with two
 *           decimals and optionally its 95 % interval and a second interval (Wilson) that
 *           only json carries; n = the count it is a rate of
 *   number  a real shown with DECIMALS decimals (< 0: %.3g), optional n
 *   count   an integer
 *   n/a     nothing to show ("n/a"; empty value in csv, null in json)
 * A cell never set is n/a. Non-finite values are stored as n/a, so no rendering prints NaN.
 *
 * Renderings of a list of tables (rs_table_write):
 *   md    each table as an aligned Markdown pipe table under "### title", notes above
 *   csv   one header row "run,view,layer,metric,value,lo,hi,n", then one row per figure
 *         (metric = "PREFIX_KEY" when the row has a metric prefix, else KEY)
 *   tex   one booktabs tabular per table (\toprule, \midrule, \bottomrule), percentages
 *         with intervals in brackets, notes as % comments
 *   json  {"notes": [...], "tables": [{"title", "run", "note", "columns", "rows":
 *         [{"view", "layer", "metric", "cells": {KEY: {"value", "lo", "hi", "n",
 *         "wilson_lo", "wilson_hi", "mark"} | "text" | null}}]}]}
 *
 * Ownership: rs_table_create allocates, rs_table_free releases (NULL allowed); strings are
 * copied. Setters never fail loudly: an allocation failure inside them is remembered and
 * reported by rs_table_write as RS_ENOMEM, which keeps the code that fills a table flat.
 * Errors: rs_table_write returns 0, RS_ENOMEM, or RS_EIO when the stream fails. */
#ifndef RS_TABLE_H
#define RS_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rs_error.h"

typedef enum rs_table_format { RS_TABLE_MD, RS_TABLE_CSV, RS_TABLE_TEX, RS_TABLE_JSON } rs_table_format;

typedef struct rs_table rs_table;

/* "md", "csv", "tex" or "json": 0 and *OUT, else RS_EINVAL. */
int rs_table_parse_format(const char *name, rs_table_format *out);

/* A table of NCOLS columns with KEYS and HEADERS (NCOLS strings each); RUN names the
 * run(s) in csv/json. NULL when out of memory. */
rs_table *rs_table_create(const char *title, const char *run, int ncols, const char *const *keys,
                          const char *const *headers);
void rs_table_free(rs_table *t);
void rs_table_set_note(rs_table *t, const char *note);

/* Appends a row; returns its index (or -1 after an allocation failure, which the setters
 * then ignore). VIEW, LAYER and METRIC may be NULL. */
int rs_table_add_row(rs_table *t, const char *view, const char *layer, const char *metric);
/* The run ROW's figures belong to, where it is not the table's (tables of several runs):
 * csv's run field and json's row "run" (absent when unset). */
void rs_table_set_row_run(rs_table *t, int row, const char *run);

void rs_table_set_text(rs_table *t, int row, int col, const char *text);
/* INTERVAL false: no interval. WILSON false: no second interval. */
void rs_table_set_rate(rs_table *t, int row, int col, double value, bool interval, double lo, double hi,
                       bool wilson, double wilson_lo, double wilson_hi, int64_t n);
/* A difference of two rates: like a rate, shown with its sign. */
void rs_table_set_diff(rs_table *t, int row, int col, double value, bool interval, double lo, double hi);
void rs_table_set_number(rs_table *t, int row, int col, double value, int decimals, int64_t n);
void rs_table_set_count(rs_table *t, int row, int col, int64_t value);
void rs_table_set_na(rs_table *t, int row, int col);
/* Marks a figure cell set before (a difference that holds after a correction, say; the
 * table's note says what the mark means): md and tex show "*" right after the value, json
 * adds "mark": true; csv has no room for it. A later setter of the cell clears the mark. */
void rs_table_set_mark(rs_table *t, int row, int col);

/* Writes the NTABLES tables to OUT in FORMAT, preceded by NNOTES note lines (provenance)
 * where the format has room for them (not csv). */
int rs_table_write(FILE *out, rs_table *const *tables, int ntables, const char *const *notes, int nnotes,
                   rs_table_format format, rs_error *err);

#endif
