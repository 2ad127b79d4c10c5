/* check.c — the one check of a stored run: every record present, every record sound, and the
 * content checksum that a run gets when it finishes (contract in store.h; the row rules in
 * record_check.h; docs/store.md, "Checking a run").
 *
 * One pass over the run's four record tables in key order (samples, predictions, routing,
 * attacks), each walked against the sequence of keys the run must hold: images offset ..
 * offset + images_done - 1, views 0 .. V-1, layers 0 .. L-1. A row missing from the
 * sequence, a row outside it, or a malformed row stops the pass with one line naming the
 * database, the run and the image, view and layer. The same pass folds every row into an
 * XXH64 checksum; a finished run's stored checksum (schema 6) must equal it.
 *
 * Measured (docs/store.md): the pass reads about as fast as the cursor; on a 10,000-image
 * Fashion-MNIST run it costs a few percent of `export`. */
#include "store_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "record_check.h"

/* ---- the pass ---------------------------------------------------------------------------- */

typedef struct checker {
    rs_store *s;
    const rs_run_info *run;
    rs_error *err;
    bool check, hashing;        /* check the rows; fold them into the checksum */
    uint64_t hash;              /* the checksum so far */
    int8_t *forced;             /* (V, L): whether the first image's row has executed */
    int *attack_steps;          /* (V): the first image's attack steps, 0 without one */
    rs_record_row row;          /* the run's shapes; the BLOBs of the row at hand */
    char why[160];              /* what is wrong with the row at hand */
} checker;

/* The key walk: the next (image, view, layer) the run must hold. */
typedef struct walk {
    int64_t image, view, layer;
    int views, layers;          /* how many of each per image */
    const int *only;            /* NULL, or (views): skip the views where it is 0 */
    bool done;                  /* past the last image */
} walk;

static void walk_skip(const checker *c, walk *w);

static walk walk_start(const checker *c, int views, int layers, const int *only)
{
    walk w = {.image = c->run->offset, .views = views, .layers = layers, .only = only,
              .done = c->run->images_done < 1};
    walk_skip(c, &w);
    return w;
}

static void walk_step(const checker *c, walk *w)
{
    if (++w->layer < w->layers)
        return;
    w->layer = 0;
    if (++w->view < w->views)
        return;
    w->view = 0;
    w->done = ++w->image >= (int64_t)c->run->offset + c->run->images_done;
}

static void walk_skip(const checker *c, walk *w)
{
    while (w->only && !w->done && !w->only[w->view])
        walk_step(c, w);
}

static void walk_next(const checker *c, walk *w)
{
    walk_step(c, w);
    walk_skip(c, w);
}

/* Folds N <= 64 integers (little-endian, 8 bytes each) into the checksum. */
static void hash_ints(checker *c, const int64_t *v, int n)
{
    uint8_t buf[8 * 64];
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 8; b++)
            buf[8 * i + b] = (uint8_t)((uint64_t)v[i] >> (8 * b));
    c->hash = XXH64(buf, 8 * (size_t)n, c->hash);
}

/* Folds the result row of ST into the checksum, every column as SQLite holds it: first, per
 * column, its type and its value (an integer, a float's bits, or the size of a text or BLOB;
 * 0 for NULL), then the bytes of each text and BLOB in column order. */
static void hash_row(checker *c, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st) < 16 ? sqlite3_column_count(st) : 16; /* the queries have at most 8 */
    int64_t v[2 * 16] = {0};
    for (int i = 0; i < n; i++) {
        int type = sqlite3_column_type(st, i);
        double x = type == SQLITE_FLOAT ? sqlite3_column_double(st, i) : 0;
        v[2 * i] = type;
        if (type == SQLITE_INTEGER)
            v[2 * i + 1] = sqlite3_column_int64(st, i);
        else if (type == SQLITE_FLOAT)
            memcpy(&v[2 * i + 1], &x, sizeof x);
        else if (type != SQLITE_NULL)
            v[2 * i + 1] = sqlite3_column_bytes(st, i);
    }
    hash_ints(c, v, 2 * n);
    for (int i = 0; i < n; i++) {
        int type = sqlite3_column_type(st, i);
        if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
            const void *p = sqlite3_column_blob(st, i);
            c->hash = XXH64(p ? p : "", (size_t)sqlite3_column_bytes(st, i), c->hash);
        }
    }
}

/* One line: "DB: run R image I[ view V[ layer L]]: WHAT". LEVEL: how many of the key's
 * parts name the place (1 image, 2 + view, 3 + layer). */
static int fail_at(const checker *c, int level, const int64_t *key, const char *what)
{
    char where[96];
    int n = snprintf(where, sizeof where, "image %" PRId64, key[0]);
    if (level >= 2)
        n += snprintf(where + n, sizeof where - (size_t)n, " view %" PRId64, key[1]);
    if (level >= 3)
        snprintf(where + n, sizeof where - (size_t)n, " layer %" PRId64, key[2]);
    return rs_error_set(c->err, RS_EFORMAT, "%s: run %" PRId64 " %s: %s", c->s->path, c->run->id, where, what);
}

/* One record table: its name, its key's parts (the query's first columns) and what a row
 * must hold. */
typedef struct table_pass {
    const char *name;
    int level;                  /* key columns: image, view, layer */
    /* NULL when the row at KEY is sound, else what is wrong (may point into c->why). */
    const char *(*check)(checker *c, sqlite3_stmt *st, const int64_t *key);
} table_pass;

/* Compares row key K (LEVEL parts) with the walk: 0 when they are equal, else the error for
 * the record missing (the row comes later, or there is none: K NULL) or the row that should
 * not be. */
static int key_matches(const checker *c, const walk *w, const int64_t *k, const table_pass *t)
{
    int64_t want[3] = {w->image, w->view, w->layer};
    int cmp = !k ? 1 : w->done ? -1 : 0;
    for (int i = 0; i < t->level && cmp == 0; i++)
        cmp = k[i] < want[i] ? -1 : k[i] > want[i];
    if (cmp == 0)
        return 0;
    char what[128];
    if (cmp > 0) {
        snprintf(what, sizeof what, "no %s row (the store is incomplete)", t->name);
        return fail_at(c, t->level, want, what);
    }
    snprintf(what, sizeof what, "a %s row the run does not have (%d images done from %d, %d views, %d layers)",
             t->name, c->run->images_done, c->run->offset, c->run->num_views, c->run->num_layers);
    return fail_at(c, t->level, k, what);
}

/* Checks one row against the walk and T's rules, and moves the walk on. */
static int check_row(checker *c, sqlite3_stmt *st, walk *w, const table_pass *t)
{
    int64_t k[3] = {0, 0, 0};
    for (int i = 0; i < t->level; i++) {
        if (sqlite3_column_type(st, i) != SQLITE_INTEGER) {
            int64_t at[3] = {w->image, w->view, w->layer};
            return fail_at(c, 1, at, "a record key that is not an integer");
        }
        k[i] = sqlite3_column_int64(st, i);
    }
    int rc = key_matches(c, w, k, t);
    const char *bad = rc ? NULL : t->check(c, st, k);
    if (bad)
        return fail_at(c, t->level, k, bad);
    walk_next(c, w);
    return rc;
}

/* Runs T's query over the run: every row checked against the walk (c->check) and hashed
 * (c->hashing); the walk must end with the rows. */
static int table_run(checker *c, const char *sql, walk *w, const table_pass *t)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(c->s, rc, "checking a run", c->err);
    sqlite3_bind_int64(st, 1, c->run->id);
    int bad = 0;
    while (!bad && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (c->check)
            bad = check_row(c, st, w, t);
        if (!bad && c->hashing)
            hash_row(c, st);
    }
    sqlite3_finalize(st);
    if (bad)
        return bad;
    if (rc != SQLITE_DONE)
        return store_db_fail(c->s, rc, "checking a run", c->err);
    return !c->check || w->done ? 0 : key_matches(c, w, NULL, t);
}

/* ---- samples, predictions, routing, attacks ---------------------------------------------- */

static const char *sample_check(checker *c, sqlite3_stmt *st, const int64_t *key)
{
    (void)c, (void)key;
    int type = sqlite3_column_type(st, 1);
    return type != SQLITE_INTEGER && type != SQLITE_NULL ? "a label that is not an integer" : NULL;
}

/* The match map of a predictions row (column 5): Np int16 in -1 .. Np-1. */
static bool match_ok(const checker *c, sqlite3_stmt *st)
{
    int Np = c->run->patches;
    const uint8_t *m = sqlite3_column_blob(st, 5);
    if (sqlite3_column_type(st, 5) != SQLITE_BLOB || sqlite3_column_bytes(st, 5) != 2 * Np || !m)
        return false;
    for (int p = 0; p < Np; p++) {
        int16_t v = (int16_t)rs_le_get_u16(m + 2 * (size_t)p);
        if (v < -1 || v >= Np)
            return false;
    }
    return true;
}

static const char *prediction_check(checker *c, sqlite3_stmt *st, const int64_t *key)
{
    (void)key;
    int64_t predicted = sqlite3_column_int64(st, 2);
    double prob = sqlite3_column_double(st, 3);
    int prob_type = sqlite3_column_type(st, 3);
    if (sqlite3_column_type(st, 2) != SQLITE_INTEGER || predicted < 0 || predicted >= c->run->num_classes)
        return "a predicted class outside the model's classes";
    if ((prob_type != SQLITE_FLOAT && prob_type != SQLITE_INTEGER) || !(prob >= 0 && prob <= 1))
        return "a predicted probability outside [0, 1]";
    if (sqlite3_column_type(st, 4) != SQLITE_TEXT)
        return "view parameters that are not text";
    return match_ok(c, st) ? NULL : "a malformed patch match map";
}

/* Column COL of ST as a BLOB of the row: *HAS false for NULL; false when it is neither NULL
 * nor a BLOB. */
static bool optional_blob(sqlite3_stmt *st, int col, bool *has, const uint8_t **p, size_t *n)
{
    int type = sqlite3_column_type(st, col);
    *has = type != SQLITE_NULL;
    *p = *has ? sqlite3_column_blob(st, col) : NULL;
    *n = *has ? (size_t)sqlite3_column_bytes(st, col) : 0;
    return type == SQLITE_NULL || type == SQLITE_BLOB;
}

/* Whether the row's kept and executed are where the run has them: kept in every row of a run
 * with a capacity factor and in no other; executed in a (view, layer) for every image or for
 * none (the first image sets which). NULL when so. */
static const char *placement_problem(checker *c, const int64_t *k)
{
    if (c->row.has_kept != (c->run->capacity_factor > 0))
        return c->row.has_kept ? "a kept mask in a run without a capacity factor"
                               : "no kept mask in a run with a capacity factor";
    int8_t *forced = &c->forced[k[1] * c->run->num_layers + k[2]];
    if (k[0] == c->run->offset)
        *forced = c->row.has_executed;
    else if (*forced != c->row.has_executed)
        return c->row.has_executed ? "executed experts where the run's first image has none"
                                   : "no executed experts where the run's first image has them";
    return NULL;
}

static const char *routing_check(checker *c, sqlite3_stmt *st, const int64_t *key)
{
    rs_record_row *r = &c->row;
    bool present[3];
    bool types_ok = optional_blob(st, 3, &present[0], &r->top_idx, &r->n_idx) &&
                    optional_blob(st, 4, &present[1], &r->top_gate, &r->n_gate) &&
                    optional_blob(st, 5, &present[2], &r->probs, &r->n_probs) && present[0] && present[1] &&
                    present[2] && optional_blob(st, 6, &r->has_kept, &r->kept, &r->n_kept) &&
                    optional_blob(st, 7, &r->has_executed, &r->executed, &r->n_executed);
    if (!types_ok)
        return "a routing column that is not a BLOB";
    if (!rs_record_check(r, c->why, sizeof c->why))
        return c->why;
    return placement_problem(c, key);
}

static const char *attack_check(checker *c, sqlite3_stmt *st, const int64_t *key)
{
    double linf = sqlite3_column_double(st, 2), l2 = sqlite3_column_double(st, 3);
    int64_t steps = sqlite3_column_int64(st, 4);
    const uint8_t *obj = sqlite3_column_blob(st, 5);
    size_t n = (size_t)sqlite3_column_bytes(st, 5);
    if (steps != c->attack_steps[key[1]])
        return "an attack whose steps differ from the first image's";
    if (!(linf >= 0 && linf <= 1) || !(l2 >= 0 && isfinite(l2)))
        return "attack norms out of range";
    if (sqlite3_column_type(st, 5) != SQLITE_BLOB || n != 4 * ((size_t)steps + 1) || !obj)
        return "an objective BLOB of the wrong size";
    for (size_t t = 0; 4 * t < n; t++)
        if (!isfinite(rs_le_get_f32(obj + 4 * t)))
            return "an objective value that is not finite";
    return NULL;
}

/* The attacked views and their steps, from the run's first image: every image has an attack
 * row for exactly these views. Rows of views outside the run or of no steps set nothing; the
 * walk then refuses them. */
static int attacked_views(checker *c)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->s->db, "SELECT view, steps FROM attacks WHERE run_id = ?1 AND image = ?2", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(c->s, rc, "checking a run", c->err);
    sqlite3_bind_int64(st, 1, c->run->id);
    sqlite3_bind_int(st, 2, c->run->offset);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t v = sqlite3_column_int64(st, 0), steps = sqlite3_column_int64(st, 1);
        if (sqlite3_column_type(st, 0) == SQLITE_INTEGER && v >= 0 && v < c->run->num_views && steps > 0 &&
            steps <= 1000000)
            c->attack_steps[v] = (int)steps;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store_db_fail(c->s, rc, "checking a run", c->err);
}

/* The run row's shapes, which every record is read by. */
static int check_shapes(const checker *c)
{
    const rs_run_info *r = c->run;
    int cls = r->has_cls ? 1 : 0;
    if (r->num_views < 1 || r->num_layers < 1 || r->num_layers > 64 || r->num_experts < 1 || r->num_experts > 256 ||
        r->record_k < 1 || r->record_k > r->num_experts || r->top_k < 1 || r->top_k > r->record_k ||
        r->grid_h < 1 || r->grid_w < 1 || r->patches != r->grid_h * r->grid_w || r->tokens != r->patches + cls ||
        r->num_classes < 1 || r->offset < 0)
        return rs_error_set(c->err, RS_EFORMAT,
                            "%s: run %" PRId64 " has inconsistent shapes (%d views, %d tokens, %d patches on %dx%d, "
                            "%d layers, R %d, k %d, E %d)",
                            c->s->path, r->id, r->num_views, r->tokens, r->patches, r->grid_h, r->grid_w,
                            r->num_layers, r->record_k, r->top_k, r->num_experts);
    if (r->images_done < 0 || r->images_done > r->count || (r->status == RS_RUN_DONE && r->images_done != r->count))
        return rs_error_set(c->err, RS_EFORMAT, "%s: run %" PRId64 " is %s with %d of %d images", c->s->path, r->id,
                            r->status == RS_RUN_DONE ? "done" : "recorded", r->images_done, r->count);
    return 0;
}

static const table_pass samples_pass = {"samples", 1, sample_check};
static const table_pass predictions_pass = {"predictions", 2, prediction_check};
static const table_pass routing_pass = {"routing", 3, routing_check};
static const table_pass attacks_pass = {"attacks", 2, attack_check};

/* The four tables in key order, each folded into c->hash in turn (docs/store.md gives the
 * checksum's definition). */
static int check_records(checker *c)
{
    const rs_run_info *r = c->run;
    const int V = r->num_views, L = r->num_layers;
    walk w = walk_start(c, 1, 1, NULL);
    int rc = table_run(c, "SELECT image, label FROM samples WHERE run_id = ?1 ORDER BY image", &w, &samples_pass);
    if (!rc) {
        w = walk_start(c, V, 1, NULL);
        rc = table_run(c, "SELECT image, view, predicted, prob, params, match FROM predictions WHERE run_id = ?1"
                          " ORDER BY image, view", &w, &predictions_pass);
    }
    if (!rc) {
        w = walk_start(c, V, L, NULL);
        rc = table_run(c, c->s->schema >= 5   ? "SELECT image, view, layer, top_idx, top_gate, probs, kept, executed"
                                                  " FROM routing WHERE run_id = ?1 ORDER BY image, view, layer"
                          : c->s->schema >= 4 ? "SELECT image, view, layer, top_idx, top_gate, probs, kept, NULL"
                                                  " FROM routing WHERE run_id = ?1 ORDER BY image, view, layer"
                                              : "SELECT image, view, layer, top_idx, top_gate, probs, NULL, NULL"
                                                  " FROM routing WHERE run_id = ?1 ORDER BY image, view, layer",
                       &w, &routing_pass);
    }
    if (!rc && c->s->schema >= 4 && !(rc = c->check ? attacked_views(c) : 0)) {
        w = walk_start(c, V, 1, c->attack_steps);
        rc = table_run(c, "SELECT image, view, linf, l2, steps, objective FROM attacks WHERE run_id = ?1"
                          " ORDER BY image, view", &w, &attacks_pass);
    }
    return rc;
}

/* RUN_ID's stored checksum into BUF ("" when it has none: a store before schema 6, or a run
 * not finished). */
static int stored_checksum(rs_store *s, int64_t run_id, char *buf, size_t size, rs_error *err)
{
    buf[0] = '\0';
    if (s->schema < 6)
        return 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT checksum FROM runs WHERE id = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(s, rc, "reading a run's checksum", err);
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_db_fail(s, rc, "reading a run's checksum", err);
}

/* Folds what the records are read by into the checksum first: the slice, the shapes, the
 * model's k, classes and class token, whether the run has a capacity, a topk run's record
 * form (1; a full run adds nothing, so checksums of full runs are what they were before
 * schema 7), and the block of each MoE layer. A record's bytes mean nothing apart from them. */
static void hash_run(checker *c)
{
    const rs_run_info *r = c->run;
    int64_t v[15] = {r->offset,  r->images_done, r->num_views,   r->num_layers,  r->tokens,
                     r->patches, r->grid_h,      r->grid_w,      r->record_k,    r->top_k,
                     r->num_experts, r->num_classes, r->has_cls, r->capacity_factor > 0,
                     r->record == RS_RECORD_TOPK};
    hash_ints(c, v, r->record == RS_RECORD_TOPK ? 15 : 14);
    int64_t b[64];
    for (int l = 0; l < r->num_layers; l++)
        b[l] = r->layer_blocks[l];
    hash_ints(c, b, r->num_layers);
}

/* One pass over C's run: checking its rows (CHECK), hashing them (HASH) or both; the
 * checksum into CHECKSUM. */
static int run_pass(checker *c, bool check, bool hash, char *checksum)
{
    c->check = check, c->hashing = hash;
    c->hash = 0;
    memset(c->forced, 0, (size_t)c->run->num_views * (size_t)c->run->num_layers);
    memset(c->attack_steps, 0, sizeof *c->attack_steps * (size_t)c->run->num_views);
    hash_run(c);
    int rc = check_records(c);
    snprintf(checksum, RS_STORE_CHECKSUM_SIZE, "xxh64:%016" PRIx64, c->hash);
    return rc;
}

/* Whether TEXT is a checksum as check.c writes it: "xxh64:" and 16 lowercase hex digits. */
static bool checksum_text(const char *text)
{
    if (strlen(text) != RS_STORE_CHECKSUM_SIZE - 1 || strncmp(text, "xxh64:", 6))
        return false;
    for (const char *p = text + 6; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* A finished run with a recorded checksum was checked whole when it finished: its records
 * are sound while they hash to the same value, which costs the reading alone. When they do
 * not, the full check says where they went wrong, if it can. */
static int verify_or_check(checker *c, char *checksum)
{
    char stored[RS_STORE_CHECKSUM_SIZE + 16] = "";
    int rc = c->run->status == RS_RUN_DONE ? stored_checksum(c->s, c->run->id, stored, sizeof stored, c->err) : 0;
    if (rc)
        return rc;
    if (c->run->status != RS_RUN_DONE || !stored[0])
        return run_pass(c, true, false, checksum); /* nothing to compare with: check every row */
    if ((rc = run_pass(c, false, true, checksum)) || !strcmp(stored, checksum))
        return rc;
    if ((rc = run_pass(c, true, true, checksum)))
        return rc;
    if (!checksum_text(stored))
        return rs_error_set(c->err, RS_EFORMAT, "%s: run %" PRId64 ": its stored checksum is malformed: the store "
                            "was changed or damaged", c->s->path, c->run->id);
    return rs_error_set(c->err, RS_EFORMAT,
                        "%s: run %" PRId64 ": its records or shapes differ from the checksum written when it "
                        "finished (%s, now %s): the store was changed or damaged",
                        c->s->path, c->run->id, stored, checksum);
}

int store_check_run(rs_store *s, int64_t run_id, bool verify, char *checksum, rs_error *err)
{
    rs_run_info info = {0};
    int rc = rs_store_get_run(s, run_id, &info, err);
    if (rc)
        return rc;
    checker c = {.s = s, .run = &info, .err = err,
                 .row = {.tokens = info.tokens, .record_k = info.record_k, .top_k = info.top_k,
                         .experts = info.num_experts, .topk = info.record == RS_RECORD_TOPK}};
    if (!(rc = check_shapes(&c))) {
        c.forced = calloc((size_t)info.num_views * (size_t)info.num_layers, 1);
        c.attack_steps = calloc((size_t)info.num_views, sizeof *c.attack_steps);
        if (!c.forced || !c.attack_steps)
            rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", s->path);
        else
            rc = verify ? verify_or_check(&c, checksum) : run_pass(&c, true, true, checksum);
    }
    free(c.forced);
    free(c.attack_steps);
    rs_run_info_clear(&info);
    return rc;
}

int rs_store_check_run(rs_store *store, int64_t run_id, rs_error *err)
{
    /* One read transaction: the run row and its records from the same snapshot, even while a
     * replay appends to the run. */
    bool own = sqlite3_get_autocommit(store->db);
    int rc = own ? store_exec(store, "BEGIN", "checking a run", err) : 0;
    char checksum[RS_STORE_CHECKSUM_SIZE];
    if (!rc)
        rc = store_check_run(store, run_id, true, checksum, err);
    if (own && !sqlite3_get_autocommit(store->db))
        sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL);
    return rc;
}
