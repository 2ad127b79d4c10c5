/* rs_sqlite.c — a loadable SQLite extension that reads a routerscope store's routing BLOBs
 * as rows, because SQLite itself cannot decode float32 or float16 BLOBs.
 *
 * Contract (docs/export.md):
 *   SELECT * FROM rs_routing(RUN)  one row per (image, view, layer, token, rank): the same
 *                                  columns, values and order as `routerscope export`
 *   SELECT * FROM rs_probs(RUN)    one row per (image, view, layer, token, expert): as
 *                                  `routerscope export --probs`
 * Both are eponymous-only table-valued functions of the connection's "main" database; RUN
 * is the hidden column run_id. `WHERE image = N` is answered from the routing index
 * without a scan. Load with `.load routerscope_sqlite` (sqlite3 CLI) or
 * sqlite3_load_extension / Python's conn.load_extension(path); the entry point is the
 * default one SQLite derives from the file name, sqlite3_routerscopesqlite_init.
 *
 * Reads only the tables runs (tokens, patches, grid_h, grid_w, record_k, num_experts,
 * num_layers, layers, has_cls), routing, predictions and samples, which every store schema
 * version has, and where the store has them runs.top_k (schema 2; before it the model
 * config's top_k), routing.kept (schema 4; before it no run had a capacity) and
 * routing.executed (schema 5; before it no view forced its routing) and runs.record (schema 7;
 * before it every run recorded the full softmax). rs_probs of a run recorded with --record
 * topk is an SQL error saying so; rs_routing reads such a run as any other.
 *
 * Nothing malformed or missing is passed: every routing row is checked by the store's own row
 * rules (analyze/store/record_check.h: BLOB sizes, expert ids < E, float16 probabilities
 * finite and summing to 1 within 2^-10, gates equal to their experts' probabilities, kept and
 * executed masks), the match map's targets against their range, the kept mask's presence
 * against the run's capacity factor, and the rows against the sequence the run must hold
 * (every image of its images_done, every view and layer, in order; a missing samples or
 * predictions row drops its routing rows from the join and shows as missing). A fault ends
 * the query with an SQL error naming the run, image, view and layer, never a crash or fewer
 * rows. What needs the whole run at once is left to `routerscope` (rs_store_check_run): the
 * attacks table, executed masks across images, and the checksum of a finished run. A missing
 * run is an error that lists the runs there are.
 *
 * Uses only the sqlite3ext.h API (the host's SQLite, whatever links it) and the header-only
 * base/half.h, base/rs_le.h and analyze/store/record_check.h (the store's byte order and row
 * rules, shared with analyze/store/); it must not link libsqlite3 or the analyze library. No
 * global mutable state: the modules are constant, everything else lives in the vtab and
 * cursor objects. */
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <stdint.h>
#include <string.h>

#include "half.h"
#include "record_check.h"
#include "rs_le.h"

#define EXPORT_VERSION 3 /* analyze/store/export.h's RS_EXPORT_VERSION: the columns are the same */

enum {
    COL_EXPORT_V, COL_RUN, COL_IMAGE, COL_VIEW, COL_LAYER, COL_BLOCK, COL_TOKEN, COL_IS_CLS, COL_PATCH,
    COL_ROW, COL_COL, COL_MATCH, COL_A, COL_B, COL_C, COL_LABEL, COL_PREDICTED, COL_PRED_PROB, COL_KEPT,
    COL_EXECUTED, COL_RUN_ID
};

static const char routing_schema[] =
    "CREATE TABLE x(export_v INTEGER, run INTEGER, image INTEGER, view INTEGER, layer INTEGER, block INTEGER,"
    " token INTEGER, is_cls INTEGER, patch INTEGER, row INTEGER, col INTEGER, match INTEGER,"
    " rank INTEGER, expert INTEGER, gate REAL,"
    " label INTEGER, predicted INTEGER, pred_prob REAL, kept INTEGER, executed INTEGER, run_id HIDDEN)";
static const char probs_schema[] =
    "CREATE TABLE x(export_v INTEGER, run INTEGER, image INTEGER, view INTEGER, layer INTEGER, block INTEGER,"
    " token INTEGER, is_cls INTEGER, patch INTEGER, row INTEGER, col INTEGER, match INTEGER,"
    " expert INTEGER, prob REAL, rank INTEGER,"
    " label INTEGER, predicted INTEGER, pred_prob REAL, kept INTEGER, executed INTEGER, run_id HIDDEN)";

/* idxNum bits: which constraints xFilter receives, in this order. */
enum { HAVE_RUN = 1, HAVE_IMAGE = 2 };

typedef struct rs_vtab {
    sqlite3_vtab base;
    sqlite3 *db;
    int probs;          /* rs_probs rather than rs_routing */
    const char *name;
} rs_vtab;

/* The run's shapes, from its runs row. */
typedef struct run_shape {
    sqlite3_int64 id;
    int tokens, patches, grid_h, grid_w, R, E, cls, L;
    int k;              /* the model's top_k */
    int kept_column;    /* the store has routing.kept (schema 4) */
    int executed_column; /* the store has routing.executed (schema 5) */
    int has_capacity;   /* the run has a capacity factor: every row has a kept mask */
    int topk;           /* runs.record is 'topk' (schema 7): empty probs BLOBs, no softmax */
    int first, done, V; /* its first image, images done, views */
    int blocks[64];
} run_shape;

typedef struct rs_cursor {
    sqlite3_vtab_cursor base;
    sqlite3_stmt *stmt;         /* routing rows of the run in (image, view, layer) order */
    run_shape run;
    int eof;
    int t, j;                   /* token, and rank (rs_routing) or expert (rs_probs) */
    sqlite3_int64 rowid;
    /* The record the run must hold next, (image, view, layer), until image reaches end. */
    sqlite3_int64 want_image, want_end;
    int want_view, want_layer;
    /* The current record; the BLOB pointers belong to stmt and live until its next step. */
    int image, view, layer, predicted, has_label, label;
    double pred_prob;
    const unsigned char *match, *idx, *gate, *probs;
    const unsigned char *kept;  /* NULL: the run has no capacity */
    const unsigned char *executed; /* (T, k) what ran, or NULL: the view did not force this layer */
} rs_cursor;

static int vtab_error(sqlite3_vtab *vt, int rc, char *msg)
{
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = msg;
    return msg ? rc : SQLITE_NOMEM;
}

static int rs_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out, char **errmsg)
{
    (void)argc, (void)argv, (void)errmsg;
    int probs = aux != NULL;
    int rc = sqlite3_declare_vtab(db, probs ? probs_schema : routing_schema);
    if (rc != SQLITE_OK)
        return rc;
    rs_vtab *vt = sqlite3_malloc(sizeof *vt);
    if (!vt)
        return SQLITE_NOMEM;
    memset(vt, 0, sizeof *vt);
    vt->db = db;
    vt->probs = probs;
    vt->name = probs ? "rs_probs" : "rs_routing";
    *out = &vt->base;
    return SQLITE_OK;
}

static int rs_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

/* run_id = ? is required (an unusable one makes SQLite try another plan); image = ? is used
 * when there is one. */
static int rs_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    (void)vt;
    int run = -1, image = -1, run_unusable = 0;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (c->op != SQLITE_INDEX_CONSTRAINT_EQ)
            continue;
        if (c->iColumn == COL_RUN_ID && !c->usable)
            run_unusable = 1;
        else if (c->iColumn == COL_RUN_ID)
            run = i;
        else if (c->iColumn == COL_IMAGE && c->usable)
            image = i;
    }
    if (run < 0 && run_unusable)
        return SQLITE_CONSTRAINT;
    info->idxNum = 0;
    if (run >= 0) {
        info->idxNum |= HAVE_RUN;
        info->aConstraintUsage[run].argvIndex = 1;
        info->aConstraintUsage[run].omit = 1;
    }
    if (run >= 0 && image >= 0) {
        info->idxNum |= HAVE_IMAGE;
        info->aConstraintUsage[image].argvIndex = 2;
        info->aConstraintUsage[image].omit = 1;
    }
    info->estimatedCost = run < 0 ? 1e12 : image < 0 ? 1e6 : 1e3;
    return SQLITE_OK;
}

static int rs_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    rs_cursor *c = sqlite3_malloc(sizeof *c);
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    c->eof = 1;
    *out = &c->base;
    return SQLITE_OK;
}

static int rs_close(sqlite3_vtab_cursor *cur)
{
    rs_cursor *c = (rs_cursor *)cur;
    sqlite3_finalize(c->stmt);
    sqlite3_free(c);
    return SQLITE_OK;
}

/* "no run 9 (runs here: 1, 2)" as an SQL error of VT. */
static int missing_run(rs_vtab *vt, sqlite3_int64 run)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(vt->db, "SELECT group_concat(id, ', ') FROM (SELECT id FROM main.runs ORDER BY id)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return vtab_error(&vt->base, rc, sqlite3_mprintf("%s: %s", vt->name, sqlite3_errmsg(vt->db)));
    const char *ids = sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    char *msg = sqlite3_mprintf("%s: no run %lld (%s%s)", vt->name, run, ids ? "runs here: " : "the store holds no runs",
                                ids ? ids : "");
    sqlite3_finalize(st);
    return vtab_error(&vt->base, SQLITE_ERROR, msg);
}

/* runs.layers ("1,3") into the block index of each of the L slots; 0 when it holds L. */
static int parse_blocks(const char *text, run_shape *r)
{
    int n = 0;
    const char *p = text;
    while (p && *p && n < 64) {
        int v = 0, digits = 0;
        for (; *p >= '0' && *p <= '9' && v < 100000; p++, digits++)
            v = 10 * v + (*p - '0');
        if (!digits || (*p && *p != ','))
            return -1;
        r->blocks[n++] = v;
        p += *p == ',';
    }
    return p && !*p && n == r->L ? 0 : -1;
}

/* 1 when table TABLE of main has column COLUMN, 0 when not, negative on an SQLite error. */
static int has_column(sqlite3 *db, const char *table, const char *column)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM pragma_table_info(?1, 'main') WHERE name = ?2", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) > 0 : -1;
    sqlite3_finalize(st);
    return found;
}

/* The run's record form: runs.record (schema 7), 'topk' or NULL (full, as every run before
 * it); any other text is an error, as the store reads it. */
static int load_record_form(rs_vtab *vt, run_shape *r)
{
    int column = has_column(vt->db, "runs", "record");
    if (column < 0)
        return vtab_error(&vt->base, SQLITE_ERROR, sqlite3_mprintf("%s: %s", vt->name, sqlite3_errmsg(vt->db)));
    r->topk = 0;
    if (!column)
        return SQLITE_OK;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(vt->db, "SELECT record IS NULL, record = 'topk' FROM main.runs WHERE id = ?", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return vtab_error(&vt->base, rc, sqlite3_mprintf("%s: %s", vt->name, sqlite3_errmsg(vt->db)));
    sqlite3_bind_int64(st, 1, r->id);
    int known = sqlite3_step(st) == SQLITE_ROW && (sqlite3_column_int(st, 0) || sqlite3_column_int(st, 1));
    r->topk = known && sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    return known ? SQLITE_OK
                 : vtab_error(&vt->base, SQLITE_CORRUPT, sqlite3_mprintf("%s: run %lld has an unknown record form "
                                                                         "(runs.record is neither NULL nor 'topk')",
                                                                         vt->name, r->id));
}

/* The run's top_k: runs.top_k, or before schema 2 the model config's, else R (as the store
 * reads it). */
static int load_top_k(rs_vtab *vt, run_shape *r)
{
    int column = has_column(vt->db, "runs", "top_k");
    r->kept_column = has_column(vt->db, "routing", "kept");
    r->executed_column = has_column(vt->db, "routing", "executed");
    if (column < 0 || r->kept_column < 0 || r->executed_column < 0)
        return vtab_error(&vt->base, SQLITE_ERROR, sqlite3_mprintf("%s: %s", vt->name, sqlite3_errmsg(vt->db)));
    sqlite3_stmt *st;
    const char *sql = column && r->kept_column ? "SELECT top_k, capacity_factor > 0 FROM main.runs WHERE id = ?"
                      : column                 ? "SELECT top_k, 0 FROM main.runs WHERE id = ?"
                                               : "SELECT CASE WHEN json_valid(m.config) THEN json_extract(m.config,"
                                                 " '$.top_k') END, 0 FROM main.runs r LEFT JOIN main.models m"
                                                 " ON m.id = r.model_id WHERE r.id = ?";
    int rc = sqlite3_prepare_v2(vt->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return vtab_error(&vt->base, rc, sqlite3_mprintf("%s: %s", vt->name, sqlite3_errmsg(vt->db)));
    sqlite3_bind_int64(st, 1, r->id);
    rc = sqlite3_step(st);
    r->k = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    r->has_capacity = rc == SQLITE_ROW && sqlite3_column_int(st, 1) != 0;
    sqlite3_finalize(st);
    if (r->k < 1 || r->k > r->R)
        r->k = r->R;
    return load_record_form(vt, r);
}

/* Reads run RUN's shapes into C->run and checks that they fit together. */
static int load_run(rs_vtab *vt, rs_cursor *c, sqlite3_int64 run)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(vt->db,
                                "SELECT tokens, patches, grid_h, grid_w, record_k, num_experts, has_cls, num_layers,"
                                " layers, first_image, images_done, num_views FROM main.runs WHERE id = ?", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return vtab_error(&vt->base, rc, sqlite3_mprintf("%s: %s", vt->name, sqlite3_errmsg(vt->db)));
    sqlite3_bind_int64(st, 1, run);
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? missing_run(vt, run)
                                 : vtab_error(&vt->base, rc, sqlite3_mprintf("%s: %s", vt->name, sqlite3_errmsg(vt->db)));
    }
    run_shape *r = &c->run;
    memset(r, 0, sizeof *r);
    r->id = run;
    r->tokens = sqlite3_column_int(st, 0), r->patches = sqlite3_column_int(st, 1);
    r->grid_h = sqlite3_column_int(st, 2), r->grid_w = sqlite3_column_int(st, 3);
    r->R = sqlite3_column_int(st, 4), r->E = sqlite3_column_int(st, 5);
    r->cls = sqlite3_column_int(st, 6) != 0, r->L = sqlite3_column_int(st, 7);
    r->first = sqlite3_column_int(st, 9), r->done = sqlite3_column_int(st, 10), r->V = sqlite3_column_int(st, 11);
    int bad = r->L < 1 || r->L > 64 || r->R < 1 || r->R > r->E || r->E < 1 || r->E > 256 || r->grid_h < 1 ||
              r->V < 1 || r->first < 0 || r->done < 0 ||
              r->grid_w < 1 || r->grid_h > 4096 || r->grid_w > 4096 || r->patches != r->grid_h * r->grid_w ||
              r->tokens != r->patches + r->cls || parse_blocks((const char *)sqlite3_column_text(st, 8), r);
    sqlite3_finalize(st);
    if (bad)
        return vtab_error(&vt->base, SQLITE_CORRUPT,
                          sqlite3_mprintf("%s: run %lld has inconsistent shapes (%d tokens, %d patches on %dx%d, "
                                          "%d layers, R %d, E %d)", vt->name, run, r->tokens, r->patches, r->grid_h,
                                          r->grid_w, r->L, r->R, r->E));
    return load_top_k(vt, r);
}

/* An SQL error naming the place: "rs_routing: run R image I view V layer L: WHAT". */
static int record_error(rs_vtab *vt, const rs_cursor *c, sqlite3_int64 image, int view, int layer, const char *what)
{
    return vtab_error(&vt->base, SQLITE_CORRUPT, sqlite3_mprintf("%s: run %lld image %lld view %d layer %d: %s",
                                                                 vt->name, c->run.id, image, view, layer, what));
}

/* Whether the cursor has passed the last record the run must hold. */
static int want_done(const rs_cursor *c)
{
    return c->want_image >= c->want_end;
}

/* The record after the one wanted now, in (image, view, layer) order. */
static void want_next(rs_cursor *c)
{
    if (++c->want_layer < c->run.L)
        return;
    c->want_layer = 0;
    if (++c->want_view < c->run.V)
        return;
    c->want_view = 0;
    c->want_image++;
}

/* The current row's key against the record the run must hold next: SQLITE_OK when it is that
 * record, else the error for the one missing or the row the run does not have. */
static int check_sequence(rs_vtab *vt, rs_cursor *c)
{
    if (!want_done(c) && c->image == c->want_image && c->view == c->want_view && c->layer == c->want_layer) {
        want_next(c);
        return SQLITE_OK;
    }
    int later = !want_done(c) && (c->image > c->want_image || (c->image == c->want_image &&
                                  (c->view > c->want_view || (c->view == c->want_view && c->layer > c->want_layer))));
    if (later)
        return record_error(vt, c, c->want_image, c->want_view, c->want_layer,
                            "no routing record (a routing, predictions or samples row is missing: the store is "
                            "incomplete)");
    return record_error(vt, c, c->image, c->view, c->layer, "a routing row the run does not have");
}

/* Takes the statement's current row as the record, after checking it against the run: its
 * place in the sequence, the store's row rules (record_check.h) and the match map. */
static int load_record(rs_vtab *vt, rs_cursor *c)
{
    sqlite3_stmt *st = c->stmt;
    const run_shape *r = &c->run;
    c->image = sqlite3_column_int(st, 0), c->view = sqlite3_column_int(st, 1), c->layer = sqlite3_column_int(st, 2);
    c->has_label = sqlite3_column_type(st, 3) != SQLITE_NULL, c->label = sqlite3_column_int(st, 3);
    c->predicted = sqlite3_column_int(st, 4), c->pred_prob = sqlite3_column_double(st, 5);
    c->match = sqlite3_column_blob(st, 6);
    rs_record_row row = {.tokens = r->tokens, .record_k = r->R, .top_k = r->k, .experts = r->E, .topk = r->topk,
                         .top_idx = sqlite3_column_blob(st, 7), .top_gate = sqlite3_column_blob(st, 8),
                         .probs = sqlite3_column_blob(st, 9),
                         .has_kept = sqlite3_column_type(st, 10) != SQLITE_NULL,
                         .has_executed = sqlite3_column_type(st, 11) != SQLITE_NULL};
    row.n_idx = (size_t)sqlite3_column_bytes(st, 7);
    row.n_gate = (size_t)sqlite3_column_bytes(st, 8);
    row.n_probs = (size_t)sqlite3_column_bytes(st, 9);
    row.kept = row.has_kept ? sqlite3_column_blob(st, 10) : NULL;
    row.n_kept = row.has_kept ? (size_t)sqlite3_column_bytes(st, 10) : 0;
    row.executed = row.has_executed ? sqlite3_column_blob(st, 11) : NULL;
    row.n_executed = row.has_executed ? (size_t)sqlite3_column_bytes(st, 11) : 0;
    c->idx = row.top_idx, c->gate = row.top_gate, c->probs = row.probs, c->kept = row.kept;
    c->executed = row.executed;
    int rc = check_sequence(vt, c);
    if (rc != SQLITE_OK)
        return rc;
    char why[160];
    if (!rs_record_check(&row, why, sizeof why))
        return record_error(vt, c, c->image, c->view, c->layer, why);
    if (row.has_kept != r->has_capacity)
        return record_error(vt, c, c->image, c->view, c->layer,
                            row.has_kept ? "a kept mask in a run without a capacity factor"
                                         : "no kept mask in a run with a capacity factor");
    int bad = (size_t)sqlite3_column_bytes(st, 6) != 2 * (size_t)r->patches || !c->match;
    for (int p = 0; !bad && p < r->patches; p++) {
        int m = (int16_t)rs_le_get_u16(c->match + 2 * (size_t)p);
        bad = m < -1 || m >= r->patches;
    }
    return bad ? record_error(vt, c, c->image, c->view, c->layer, "a malformed patch match map") : SQLITE_OK;
}

/* Steps to the next routing row: SQLITE_OK with the record loaded, or at the end. */
static int next_record(rs_vtab *vt, rs_cursor *c)
{
    int rc = sqlite3_step(c->stmt);
    c->t = c->j = 0;
    if (rc == SQLITE_DONE) {
        c->eof = 1;
        return want_done(c) ? SQLITE_OK
                            : record_error(vt, c, c->want_image, c->want_view, c->want_layer,
                                           "no routing record (a routing, predictions or samples row is missing: "
                                           "the store is incomplete)");
    }
    if (rc != SQLITE_ROW)
        return vtab_error(&vt->base, rc, sqlite3_mprintf("%s: %s", vt->name, sqlite3_errmsg(vt->db)));
    return load_record(vt, c);
}

static int rs_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc, sqlite3_value **argv)
{
    (void)idx_str;
    rs_cursor *c = (rs_cursor *)cur;
    rs_vtab *vt = (rs_vtab *)cur->pVtab;
    sqlite3_finalize(c->stmt);
    c->stmt = NULL;
    c->eof = 1;
    c->rowid = 0;
    if (!(idx_num & HAVE_RUN) || argc < 1)
        return vtab_error(&vt->base, SQLITE_ERROR,
                          sqlite3_mprintf("%s: which run? write SELECT * FROM %s(RUN)", vt->name, vt->name));
    int rc = load_run(vt, c, sqlite3_value_int64(argv[0]));
    if (rc != SQLITE_OK)
        return rc;
    if (vt->probs && c->run.topk) /* the words of store.h's rs_run_lacks_softmax */
        return vtab_error(&vt->base, SQLITE_ERROR, sqlite3_mprintf("%s: run %lld was recorded with --record topk: "
                                                                   "no softmax for rs_probs", vt->name, c->run.id));
    /* The routing table's UNIQUE (run_id, image, view, layer) index gives this order
     * without a sort, as the store's own cursor reads it. */
    int by_image = (idx_num & HAVE_IMAGE) && argc >= 2;
    char *sql = sqlite3_mprintf("SELECT r.image, r.view, r.layer, s.label, p.predicted, p.prob, p.match,"
                                " r.top_idx, r.top_gate, r.probs, %s, %s FROM main.routing r"
                                " JOIN main.predictions p ON p.run_id = r.run_id AND p.image = r.image"
                                "  AND p.view = r.view"
                                " JOIN main.samples s ON s.run_id = r.run_id AND s.image = r.image"
                                " WHERE r.run_id = ?1%s ORDER BY r.image, r.view, r.layer",
                                c->run.kept_column ? "r.kept" : "NULL", c->run.executed_column ? "r.executed" : "NULL",
                                by_image ? " AND r.image = ?2" : "");
    if (!sql)
        return SQLITE_NOMEM;
    rc = sqlite3_prepare_v2(vt->db, sql, -1, &c->stmt, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return vtab_error(&vt->base, rc, sqlite3_mprintf("%s: %s", vt->name, sqlite3_errmsg(vt->db)));
    sqlite3_bind_int64(c->stmt, 1, c->run.id);
    if (by_image)
        sqlite3_bind_value(c->stmt, 2, argv[1]);
    /* The records the run must hold: every image it has done, or the one asked for (none when
     * the run does not hold it). */
    c->want_image = c->run.first, c->want_end = (sqlite3_int64)c->run.first + c->run.done;
    c->want_view = c->want_layer = 0;
    if (by_image) {
        sqlite3_int64 image = sqlite3_value_int64(argv[1]);
        int type = sqlite3_value_numeric_type(argv[1]);
        int held = (type == SQLITE_INTEGER || type == SQLITE_FLOAT) && sqlite3_value_double(argv[1]) == (double)image &&
                   image >= c->want_image && image < c->want_end;
        c->want_image = held ? image : 0, c->want_end = held ? image + 1 : 0;
    }
    c->eof = 0;
    return next_record(vt, c);
}

static int rs_next(sqlite3_vtab_cursor *cur)
{
    rs_cursor *c = (rs_cursor *)cur;
    rs_vtab *vt = (rs_vtab *)cur->pVtab;
    c->rowid++;
    if (++c->j < (vt->probs ? c->run.E : c->run.R))
        return SQLITE_OK;
    c->j = 0;
    if (++c->t < c->run.tokens)
        return SQLITE_OK;
    return next_record(vt, c);
}

static int rs_eof(sqlite3_vtab_cursor *cur)
{
    return ((rs_cursor *)cur)->eof;
}

static int rs_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
    *rowid = ((rs_cursor *)cur)->rowid;
    return SQLITE_OK;
}

/* Whether the choice at rank RANK of the current token ran: below top_k, and kept by
 * dispatch when the run has a capacity (export.h's `kept`). */
static int kept_rank(const rs_cursor *c, int rank)
{
    if (rank < 0 || rank >= c->run.k)
        return 0;
    return c->kept ? c->kept[(size_t)c->t * c->run.R + (size_t)rank] != 0 : 1;
}

/* The expert the current token ran at rank RANK (< k): its forced one, else its router's. */
static int executed_at(const rs_cursor *c, int rank)
{
    if (c->executed)
        return c->executed[(size_t)c->t * c->run.k + (size_t)rank];
    return c->idx[(size_t)c->t * c->run.R + (size_t)rank];
}

/* The rank at which the current token ran expert J, -1 when it did not (export.h's probs
 * rows' `executed`). */
static int executed_rank(const rs_cursor *c, int j)
{
    for (int k = 0; k < c->run.k; k++)
        if (executed_at(c, k) == j)
            return k;
    return -1;
}

/* The rank of expert J among the current token's recorded ids, -1 when absent. */
static int rank_of(const rs_cursor *c, int j)
{
    const unsigned char *idx = c->idx + (size_t)c->t * c->run.R;
    for (int k = 0; k < c->run.R; k++)
        if (idx[k] == j)
            return k;
    return -1;
}

/* Column I of the token's rank or expert J: the three columns that differ between rs_routing
 * (rank, expert, gate) and rs_probs (expert, prob, rank). */
static void row_column(const rs_cursor *c, int probs, int i, sqlite3_context *ctx)
{
    const run_shape *r = &c->run;
    const unsigned char *idx = c->idx + (size_t)c->t * r->R;
    if (!probs) {
        if (i == COL_A)
            sqlite3_result_int(ctx, c->j);
        else if (i == COL_B)
            sqlite3_result_int(ctx, idx[c->j]);
        else
            sqlite3_result_double(ctx, rs_le_get_f32(c->gate + 4 * ((size_t)c->t * r->R + (size_t)c->j)));
        return;
    }
    if (i == COL_A) {
        sqlite3_result_int(ctx, c->j);
    } else if (i == COL_B) {
        sqlite3_result_double(ctx, rs_half_to_float(rs_le_get_u16(c->probs + 2 * ((size_t)c->t * r->E + (size_t)c->j))));
    } else {
        sqlite3_result_int(ctx, rank_of(c, c->j));
    }
}

static int rs_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i)
{
    const rs_cursor *c = (const rs_cursor *)cur;
    const run_shape *r = &c->run;
    int p = c->t - r->cls, is_cls = p < 0;
    switch (i) {
    case COL_EXPORT_V: sqlite3_result_int(ctx, EXPORT_VERSION); break;
    case COL_RUN: case COL_RUN_ID: sqlite3_result_int64(ctx, r->id); break;
    case COL_IMAGE: sqlite3_result_int(ctx, c->image); break;
    case COL_VIEW: sqlite3_result_int(ctx, c->view); break;
    case COL_LAYER: sqlite3_result_int(ctx, c->layer); break;
    case COL_BLOCK: sqlite3_result_int(ctx, r->blocks[c->layer]); break;
    case COL_TOKEN: sqlite3_result_int(ctx, c->t); break;
    case COL_IS_CLS: sqlite3_result_int(ctx, is_cls); break;
    case COL_PATCH: sqlite3_result_int(ctx, is_cls ? -1 : p); break;
    case COL_ROW: sqlite3_result_int(ctx, is_cls ? -1 : p / r->grid_w); break;
    case COL_COL: sqlite3_result_int(ctx, is_cls ? -1 : p % r->grid_w); break;
    case COL_MATCH: sqlite3_result_int(ctx, is_cls ? -1 : (int16_t)rs_le_get_u16(c->match + 2 * (size_t)p)); break;
    case COL_LABEL:
        if (c->has_label && c->label >= 0)
            sqlite3_result_int(ctx, c->label);
        else
            sqlite3_result_null(ctx);
        break;
    case COL_PREDICTED: sqlite3_result_int(ctx, c->predicted); break;
    case COL_PRED_PROB: sqlite3_result_double(ctx, (float)c->pred_prob); break;
    case COL_KEPT:
        sqlite3_result_int(ctx, kept_rank(c, ((const rs_vtab *)cur->pVtab)->probs ? executed_rank(c, c->j) : c->j));
        break;
    case COL_EXECUTED:
        if (((const rs_vtab *)cur->pVtab)->probs)
            sqlite3_result_int(ctx, executed_rank(c, c->j));
        else
            sqlite3_result_int(ctx, c->j < r->k ? executed_at(c, c->j) : -1);
        break;
    default: row_column(c, ((const rs_vtab *)cur->pVtab)->probs, i, ctx); break;
    }
    return SQLITE_OK;
}

/* Eponymous-only: no xCreate, so CREATE VIRTUAL TABLE cannot make copies. */
static const sqlite3_module rs_module = {
    .iVersion = 0,
    .xConnect = rs_connect,
    .xBestIndex = rs_best_index,
    .xDisconnect = rs_disconnect,
    .xOpen = rs_open,
    .xClose = rs_close,
    .xFilter = rs_filter,
    .xNext = rs_next,
    .xEof = rs_eof,
    .xColumn = rs_column,
    .xRowid = rs_rowid,
};

/* The entry point SQLite derives from the file name routerscope_sqlite.so. */
__attribute__((visibility("default"))) int sqlite3_routerscopesqlite_init(sqlite3 *db, char **errmsg,
                                                                          const sqlite3_api_routines *api)
{
    (void)errmsg;
    SQLITE_EXTENSION_INIT2(api);
    /* The client data tells the two functions apart: NULL routing, non-NULL probs. */
    static const int probs_tag = 1;
    int rc = sqlite3_create_module(db, "rs_routing", &rs_module, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_module(db, "rs_probs", &rs_module, (void *)&probs_tag);
    return rc;
}
