/* export.h — a stored run's routing as plain rows (CSV or JSON Lines), streamed to a FILE*.
 *
 * Two row kinds (docs/export.md lists every column):
 *   routing rows  one per (image, view, layer, token, rank): the expert at that rank of the
 *                 token's recorded top-R and its gate;
 *   probs rows    (--probs) one per (image, view, layer, token, expert): the router's
 *                 probability of that expert (float16 as stored, widened exactly) and the
 *                 expert's rank in the top-R, -1 when it is not among them.
 * Both carry the run, image (source index), view, MoE slot `layer` and its `block` index,
 * the token (sequence index), is_cls, patch / row / col (-1 for the class token), `match`
 * (the view-0 patch this patch matches, -1 when none or for the class token), the image's
 * label (empty / null when unknown), the view's predicted class and its probability,
 * (version 2) `kept`: 1 when that choice / expert ran for the token — a rank below top_k,
 * kept by dispatch when the run has a capacity factor — else 0, and (version 3)
 * `executed`: in routing rows the expert the token ran at that rank (the router's own
 * unless the view forced the layer, route:; -1 for a rank beyond top_k), in probs rows the
 * rank at which the token ran that expert (-1: it did not). `kept` refers to what ran.
 * Rows come in (image, view, layer, token, rank|expert) order.
 *
 * Versioning: the first column, `export_v`, holds RS_EXPORT_VERSION in every row, so a plain
 * CSV reader (pandas read_csv, R read.csv) needs no options and a JSON line is
 * self-describing. A version adds columns at the end or bumps the number; it never
 * changes the meaning of an existing column under the same number.
 *
 * Memory is bounded by one record (T tokens of one image, view and layer) whatever the run
 * size: rows are read through rs_store_cursor and written as they come.
 * Errors: a missing run is RS_EINVAL ("no run N"), and so are probs rows of a run recorded
 * with --record topk (rs_run_lacks_softmax's line, before any row); a corrupt record RS_EFORMAT, a write
 * failure RS_EIO naming OUT_NAME. Rows already written stay written. Nothing is printed
 * except the rows to OUT. */
#ifndef RS_EXPORT_H
#define RS_EXPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rs_error.h"
#include "store.h"

#define RS_EXPORT_VERSION 3

typedef enum rs_export_format { RS_EXPORT_CSV, RS_EXPORT_JSONL } rs_export_format;

typedef struct rs_export_options {
    rs_export_format format;
    bool probs;             /* probs rows instead of routing rows */
    const char *store_name; /* names the store in errors (its path) */
    const char *out_name;   /* names OUT in write errors, e.g. "stdout" or the file path */
} rs_export_options;

/* Writes run RUN_ID of STORE to OUT (a CSV header row first; none for JSON Lines) and
 * stores the number of data rows in *ROWS (may be NULL). OUT is not closed. */
int rs_export_run(rs_store *store, int64_t run_id, const rs_export_options *opt, FILE *out, int64_t *rows,
                  rs_error *err);

#endif
