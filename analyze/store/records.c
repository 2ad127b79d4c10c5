/* records.c — the per-image records: the batch writer, the BLOB codec, and the cursors that read
 * routing and attacks back (contract in store.h).
 *
 * Measured with `RS_STORE_BENCH_IMAGES=20000 build/tests/test_store` (test_benchmark: shape
 * T=50 tokens, R=2, E=8, L=2 MoE layers, V=2 views, 49 patches, ~150-byte view parameters,
 * batches of 100 images; release build, 2 cores shared with other work, ext4 on a virtual
 * disk), runs with the machine lightly loaded and at load ~3.5:
 *   write  4.9-6.0 M token-records/s light load, 3.0-3.6 M at load 3.5 (15-30 k images/s; WAL
 *          auto-checkpoints included, no fsync per commit)
 *   read   23-33 M token-records/s through the cursor (probs widened to float)
 *   size   30.4 bytes per token-record (121,475,072 bytes for 4.0 M records, file closed)
 * A token-record is one token at one layer of one view. Its routing payload is R + 4R + 2E =
 * 26 bytes; the rest is row and page overhead plus samples/predictions (per image/view).
 * At ImageNet scale with E=32 the payload is 74 bytes per token-record. A run recorded with
 * --record topk writes an empty probs BLOB: R + 4R bytes (10 here; docs/store.md measures
 * both forms on a real run).
 *
 * Layout choices, and why:
 * - routing is an ordinary rowid table with a UNIQUE (run, image, view, layer) key, not a
 *   WITHOUT ROWID table: its rows are T*(R+4R+2E) bytes (1.3 kB here, 3.7 kB for E=32), far
 *   above the ~1/20 page that WITHOUT ROWID b-trees are built for; in an index b-tree such
 *   a row spills to an overflow page and wastes most of it. Measured on the shape above:
 *   WITHOUT ROWID takes 96.3 bytes per token-record and half the write speed (32.5 bytes
 *   with 16 kB pages, still 25 % slower). The small tables (views, samples, predictions) are
 *   WITHOUT ROWID on their composite keys.
 * - Blobs rather than one row per token: a row per token would cost ~20 bytes of key and
 *   header for 26 bytes of data, and 50x the b-tree work.
 * - Every statement the batch writer runs is prepared once and kept in the rs_store. */
#include "store_internal.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "rs_le.h"

struct rs_store_cursor {
    rs_store *store;
    sqlite3_stmt *stmt;
    int64_t run_id;
    int tokens, record_k, num_experts, patches;
    int match_image, match_view; /* whose match map is decoded in match */
    bool at_end;                 /* SQLite would restart a finished statement on the next step */
    int16_t *match;
    uint8_t *top_idx, *kept, *executed;
    float *top_gate, *probs;
    int top_k;
    bool topk;                   /* the run records no softmax: probs BLOBs are empty */
};

static bool grow(uint8_t **buf, size_t *size, size_t need)
{
    if (need <= *size)
        return true;
    uint8_t *p = realloc(*buf, need);
    if (!p)
        return false;
    *buf = p;
    *size = need;
    return true;
}

/* ---- batches ----------------------------------------------------------------------------- */

int store_read_run_state(rs_store *s, int64_t run_id, run_state *rs, rs_error *err)
{
    sqlite3_stmt *st;
    int rc = store_stmt(s, ST_RUN_STATE, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int *fields[] = {&rs->offset, &rs->count, &rs->done,     &rs->views,  &rs->layers,
                         &rs->tokens, &rs->record_k, &rs->experts, &rs->patches};
        for (int i = 0; i < 9; i++)
            *fields[i] = sqlite3_column_int(st, i);
        rs->topk = sqlite3_column_int(st, 9) == 1;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return rs_error_set(err, RS_EINVAL, "%s: no run %" PRId64, s->path, run_id);
    return rc == SQLITE_ROW ? 0 : store_db_fail(s, rc, "reading the run's progress", err);
}

/* The attacks row of image I, view V of B (which has an attack there), its objective encoded
 * in BUF; the caller holds the transaction. */
static int insert_attack(rs_store *s, int64_t run_id, const rs_batch *b, int i, int v, uint8_t *buf, rs_error *err)
{
    size_t iv = (size_t)i * b->num_views + v;
    int steps = b->attack_steps[v];
    if (steps < 1 || steps + 1 > b->attack_stride)
        return rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 ": view %d: attack of %d steps, stride %d", s->path,
                            run_id, v, steps, b->attack_stride);
    const float *obj = b->attack_objective + iv * (size_t)b->attack_stride;
    for (int t = 0; t <= steps; t++)
        rs_le_put_f32(buf + 4 * (size_t)t, obj[t]);
    sqlite3_stmt *st;
    int rc = store_stmt(s, ST_ATTACK, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, b->first + i);
    sqlite3_bind_int(st, 3, v);
    sqlite3_bind_double(st, 4, b->attack_linf[iv]);
    sqlite3_bind_double(st, 5, b->attack_l2[iv]);
    sqlite3_bind_int(st, 6, steps);
    sqlite3_bind_blob(st, 7, buf, 4 * (steps + 1), SQLITE_STATIC);
    return store_step_done(s, st, "writing an attack", err);
}

/* Row ROW (image, view, layer) of B's executed experts as T*k bytes into OUT. */
static int encode_executed(const rs_store *s, int64_t run_id, const rs_batch *b, size_t row, uint8_t *out,
                           rs_error *err)
{
    size_t n = (size_t)b->tokens * b->top_k;
    const int32_t *ids = b->executed + row * n;
    for (size_t q = 0; q < n; q++) {
        if (ids[q] < 0 || ids[q] >= b->num_experts)
            return rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 ": batch row %zu: executed expert id %d, the "
                                "model has %d", s->path, run_id, row, (int)ids[q], b->num_experts);
        out[q] = (uint8_t)ids[q];
    }
    return 0;
}

/* Inserts the rows of BATCH; the caller holds the transaction. TOPK: the run records ids and
 * gates only, its probs BLOBs empty. */
static int insert_batch(rs_store *s, int64_t run_id, const rs_batch *b, bool topk, rs_error *err)
{
    const int V = b->num_views, L = b->num_layers, T = b->tokens, R = b->record_k, E = b->num_experts,
              Np = b->patches;
    size_t n_idx = (size_t)T * R, n_gate = (size_t)T * R * 4, n_probs = topk ? 0 : (size_t)T * E * 2,
           n_match = (size_t)Np * 2;
    size_t n_exec = b->executed ? (size_t)T * b->top_k : 0;
    size_t need = n_idx + n_gate + n_probs + n_exec, n_objective = 4 * (size_t)(b->attack_steps ? b->attack_stride : 0);
    if (need < n_match)
        need = n_match;
    if (need < n_objective)
        need = n_objective;
    if (!grow(&s->buf, &s->buf_size, need))
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", s->path);
    uint8_t *idx = s->buf, *gate = idx + n_idx, *probs = gate + n_gate, *exec_ids = probs + n_probs, *match = s->buf;

    sqlite3_stmt *sample, *pred, *routing;
    int rc;
    if ((rc = store_stmt(s, ST_SAMPLE, &sample, err)) || (rc = store_stmt(s, ST_PREDICTION, &pred, err)) ||
        (rc = store_stmt(s, ST_ROUTING, &routing, err)))
        return rc;
    sqlite3_bind_int64(sample, 1, run_id);
    sqlite3_bind_int64(pred, 1, run_id);
    sqlite3_bind_int64(routing, 1, run_id);

    for (int i = 0; i < b->count; i++) {
        int image = b->first + i;
        sqlite3_bind_int(sample, 2, image);
        if (b->labels && b->labels[i] >= 0)
            sqlite3_bind_int(sample, 3, b->labels[i]);
        else
            sqlite3_bind_null(sample, 3);
        if ((rc = store_step_done(s, sample, "writing a sample", err)))
            return rc;

        sqlite3_bind_int(pred, 2, image);
        sqlite3_bind_int(routing, 2, image);
        for (int v = 0; v < V; v++) {
            size_t iv = (size_t)i * V + v;
            if (!b->view_params[iv])
                return rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 ": image %d view %d has no view parameters",
                                    s->path, run_id, image, v);
            for (int p = 0; p < Np; p++) {
                int16_t m = b->match[iv * Np + p];
                if (m < -1 || m >= Np)
                    return rs_error_set(err, RS_EINVAL,
                                        "%s: run %" PRId64 ": image %d view %d: patch %d matches patch %d of %d",
                                        s->path, run_id, image, v, p, m, Np);
                rs_le_put_u16(match + 2 * (size_t)p, (uint16_t)m);
            }
            sqlite3_bind_int(pred, 3, v);
            sqlite3_bind_int(pred, 4, b->predicted[iv]);
            sqlite3_bind_double(pred, 5, b->pred_prob[iv]);
            sqlite3_bind_text(pred, 6, b->view_params[iv], -1, SQLITE_STATIC);
            sqlite3_bind_blob(pred, 7, match, (int)n_match, SQLITE_STATIC);
            if ((rc = store_step_done(s, pred, "writing a prediction", err)))
                return rc;

            sqlite3_bind_int(routing, 3, v);
            for (int l = 0; l < L; l++) {
                size_t row = iv * L + l;
                const int32_t *ti = b->top_idx + row * n_idx;
                const float *tg = b->top_gate + row * n_idx;
                const float *pr = topk ? NULL : b->probs + row * (size_t)T * E;
                for (size_t k = 0; k < n_idx; k++) {
                    if (ti[k] < 0 || ti[k] >= E)
                        return rs_error_set(err, RS_EINVAL,
                                            "%s: run %" PRId64 ": image %d view %d layer %d: expert id %d, "
                                            "the model has %d",
                                            s->path, run_id, image, v, l, (int)ti[k], E);
                    idx[k] = (uint8_t)ti[k];
                    rs_le_put_f32(gate + 4 * k, tg[k]);
                }
                for (size_t k = 0; pr && k < (size_t)T * E; k++)
                    rs_le_put_u16(probs + 2 * k, rs_float_to_half(pr[k]));
                sqlite3_bind_int(routing, 4, l);
                sqlite3_bind_blob(routing, 5, idx, (int)n_idx, SQLITE_STATIC);
                sqlite3_bind_blob(routing, 6, gate, (int)n_gate, SQLITE_STATIC);
                if (topk) /* an empty BLOB: the column is NOT NULL since schema 1 */
                    sqlite3_bind_zeroblob(routing, 7, 0);
                else
                    sqlite3_bind_blob(routing, 7, probs, (int)n_probs, SQLITE_STATIC);
                if (b->kept) /* 0/1 bytes as they are; NULL: the run has no capacity */
                    sqlite3_bind_blob(routing, 8, b->kept + row * n_idx, (int)n_idx, SQLITE_STATIC);
                else
                    sqlite3_bind_null(routing, 8);
                sqlite3_bind_null(routing, 9);
                if (b->executed && b->forced[(size_t)v * L + l]) {
                    if ((rc = encode_executed(s, run_id, b, row, exec_ids, err)))
                        return rc;
                    sqlite3_bind_blob(routing, 9, exec_ids, (int)n_exec, SQLITE_STATIC);
                }
                if ((rc = store_step_done(s, routing, "writing routing", err)))
                    return rc;
            }
            if (b->attack_steps && b->attack_steps[v] && (rc = insert_attack(s, run_id, b, i, v, s->buf, err)))
                return rc;
        }
    }
    return 0;
}

int rs_store_write_batch(rs_store *store, int64_t run_id, const rs_batch *batch, rs_error *err)
{
    if (store->read_only)
        return store_read_only_fail(store, err);
    const rs_batch *b = batch;
    if (b->count < 0 || !b->predicted || !b->pred_prob || !b->view_params || !b->match || !b->top_idx ||
        !b->top_gate ||
        (b->executed && (!b->forced || b->top_k < 1 || b->top_k > b->record_k)) ||
        (b->attack_steps && (!b->attack_linf || !b->attack_l2 || !b->attack_objective)))
        return rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 ": incomplete batch", store->path, run_id);

    /* Under the write lock, so the position checked is the position written after. */
    int rc = store_run_cached(store, ST_BEGIN, "starting a batch", err);
    if (rc)
        return rc;
    run_state rs;
    if ((rc = store_read_run_state(store, run_id, &rs, err)))
        goto fail;
    if (b->num_views != rs.views || b->num_layers != rs.layers || b->tokens != rs.tokens ||
        b->record_k != rs.record_k || b->num_experts != rs.experts || b->patches != rs.patches) {
        rc = rs_error_set(err, RS_EINVAL,
                          "%s: run %" PRId64 ": batch shape V=%d L=%d T=%d R=%d E=%d Np=%d, the run has "
                          "V=%d L=%d T=%d R=%d E=%d Np=%d",
                          store->path, run_id, b->num_views, b->num_layers, b->tokens, b->record_k,
                          b->num_experts, b->patches, rs.views, rs.layers, rs.tokens, rs.record_k, rs.experts,
                          rs.patches);
        goto fail;
    }
    if (b->first != rs.offset + rs.done || b->count > rs.count - rs.done) {
        rc = rs_error_set(err, RS_EINVAL,
                          "%s: run %" PRId64 ": batch of images %d..%d, the run stands at image %d of %d..%d",
                          store->path, run_id, b->first, b->first + b->count - 1, rs.offset + rs.done, rs.offset,
                          rs.offset + rs.count - 1);
        goto fail;
    }
    if (!rs.topk && !b->probs) {
        rc = rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 ": incomplete batch (no softmax for a full run)",
                          store->path, run_id);
        goto fail;
    }
    if ((rc = insert_batch(store, run_id, b, rs.topk, err)))
        goto fail;
    sqlite3_stmt *st;
    if ((rc = store_stmt(store, ST_PROGRESS, &st, err)))
        goto fail;
    sqlite3_bind_int(st, 1, rs.done + b->count);
    sqlite3_bind_int64(st, 2, run_id);
    if ((rc = store_step_done(store, st, "recording progress", err)) ||
        (rc = store_run_cached(store, ST_COMMIT, "committing a batch", err)))
        goto fail;
    return 0;
fail:
    store_rollback(store);
    return rc;
}

/* ---- reading ----------------------------------------------------------------------------- */

int rs_store_cursor_open(rs_store *store, int64_t run_id, rs_store_cursor **out, rs_error *err)
{
    return rs_store_cursor_open_images(store, run_id, INT_MIN, INT_MAX, out, err);
}

int rs_store_cursor_open_images(rs_store *store, int64_t run_id, int first, int last, rs_store_cursor **out,
                                rs_error *err)
{
    *out = NULL;
    rs_run_info info = {0};
    int rc = rs_store_get_run(store, run_id, &info, err);
    if (rc)
        return rc;
    rs_store_cursor *c = calloc(1, sizeof *c);
    if (!c) {
        rs_run_info_clear(&info);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
    }
    c->store = store;
    c->run_id = run_id;
    c->tokens = info.tokens;
    c->record_k = info.record_k;
    c->num_experts = info.num_experts;
    c->patches = info.patches;
    c->top_k = info.top_k;
    c->topk = info.record == RS_RECORD_TOPK;
    c->match_image = c->match_view = -1;
    rs_run_info_clear(&info);
    size_t tr = (size_t)c->tokens * c->record_k;
    c->match = malloc(sizeof *c->match * (size_t)c->patches);
    c->top_idx = malloc(tr);
    c->kept = malloc(tr);
    c->executed = malloc(tr);
    c->top_gate = malloc(sizeof *c->top_gate * tr);
    c->probs = c->topk ? NULL : malloc(sizeof *c->probs * (size_t)c->tokens * c->num_experts);
    if (!c->match || !c->top_idx || !c->kept || !c->executed || !c->top_gate || (!c->topk && !c->probs)) {
        rs_store_cursor_close(c);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
    }
    /* One pass over routing in key order (the UNIQUE index): no sort, no temporary table,
     * whatever the size of the run. */
#define CURSOR_SQL(kept, executed)                                                                         \
    "SELECT r.image, r.view, r.layer, s.label, p.predicted, p.prob, p.match, r.top_idx, r.top_gate, r.probs, " \
    kept ", " executed                                                                                       \
    " FROM routing r"                                                                                      \
    " JOIN predictions p ON p.run_id = r.run_id AND p.image = r.image AND p.view = r.view"                 \
    " JOIN samples s ON s.run_id = r.run_id AND s.image = r.image"                                         \
    " WHERE r.run_id = ? AND r.image BETWEEN ? AND ? ORDER BY r.image, r.view, r.layer"
    /* Stores before schema 4 have no kept column (their runs had no capacity), before schema 5
     * no executed column (they forced nothing). */
    const char *sql = store->schema >= 5   ? CURSOR_SQL("r.kept", "r.executed")
                      : store->schema >= 4 ? CURSOR_SQL("r.kept", "NULL")
                                           : CURSOR_SQL("NULL", "NULL");
    rc = sqlite3_prepare_v2(store->db, sql, -1, &c->stmt, NULL);
    if (rc != SQLITE_OK) {
        rs_store_cursor_close(c);
        return store_db_fail(store, rc, "reading routing", err);
    }
    sqlite3_bind_int64(c->stmt, 1, run_id);
    sqlite3_bind_int(c->stmt, 2, first);
    sqlite3_bind_int(c->stmt, 3, last);
    *out = c;
    return 0;
}

/* Column 11 of the cursor's row into REC->executed: the router's ids where it is NULL, else
 * its T*k ids over the first k ranks of a copy of them. */
static int read_executed(rs_store_cursor *c, rs_routing_record *rec, rs_error *err)
{
    sqlite3_stmt *st = c->stmt;
    size_t T = (size_t)c->tokens, R = (size_t)c->record_k, k = (size_t)c->top_k;
    rec->executed = c->top_idx;
    rec->forced = sqlite3_column_type(st, 11) != SQLITE_NULL;
    if (!rec->forced)
        return 0;
    const uint8_t *ids = sqlite3_column_blob(st, 11);
    size_t n = (size_t)sqlite3_column_bytes(st, 11);
    bool ok = ids && n == T * k;
    for (size_t q = 0; ok && q < n; q++)
        ok = ids[q] < c->num_experts;
    if (!ok)
        return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d view %d layer %d: executed blob of %zu "
                            "bytes or an expert id >= %d, expected %zu ids", c->store->path, c->run_id, rec->image,
                            rec->view, rec->layer, n, c->num_experts, T * k);
    memcpy(c->executed, c->top_idx, T * R);
    for (size_t t = 0; t < T; t++)
        memcpy(c->executed + t * R, ids + t * k, k);
    rec->executed = c->executed;
    return 0;
}

int rs_store_cursor_next(rs_store_cursor *c, rs_routing_record *rec, rs_error *err)
{
    const rs_store *s = c->store;
    if (c->at_end)
        return 0;
    int rc = sqlite3_step(c->stmt);
    if (rc == SQLITE_DONE) {
        c->at_end = true;
        return 0;
    }
    if (rc != SQLITE_ROW)
        return store_db_fail(s, rc, "reading routing", err);
    sqlite3_stmt *st = c->stmt;
    rec->image = sqlite3_column_int(st, 0);
    rec->view = sqlite3_column_int(st, 1);
    rec->layer = sqlite3_column_int(st, 2);
    rec->label = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 3);
    rec->predicted = sqlite3_column_int(st, 4);
    rec->pred_prob = (float)sqlite3_column_double(st, 5);

    size_t tr = (size_t)c->tokens * c->record_k, te = c->topk ? 0 : (size_t)c->tokens * c->num_experts;
    const uint8_t *match = sqlite3_column_blob(st, 6), *idx = sqlite3_column_blob(st, 7),
                  *gate = sqlite3_column_blob(st, 8), *probs = sqlite3_column_blob(st, 9);
    size_t n_match = (size_t)sqlite3_column_bytes(st, 6), n_idx = (size_t)sqlite3_column_bytes(st, 7),
           n_gate = (size_t)sqlite3_column_bytes(st, 8), n_probs = (size_t)sqlite3_column_bytes(st, 9);
    if (n_match != 2 * (size_t)c->patches || n_idx != tr || n_gate != 4 * tr || n_probs != 2 * te ||
        (!match && n_match) || (!idx && n_idx) || (!gate && n_gate) || (!probs && n_probs))
        return rs_error_set(err, RS_EFORMAT,
                            "%s: run %" PRId64 " image %d view %d layer %d: blobs of %zu/%zu/%zu/%zu bytes, "
                            "expected %zu/%zu/%zu/%zu",
                            s->path, c->run_id, rec->image, rec->view, rec->layer, n_match, n_idx, n_gate, n_probs,
                            2 * (size_t)c->patches, tr, 4 * tr, 2 * te);
    /* The match map belongs to (image, view): decode it once for all its layers. */
    if (rec->image != c->match_image || rec->view != c->match_view) {
        for (int p = 0; p < c->patches; p++)
            c->match[p] = (int16_t)rs_le_get_u16(match + 2 * (size_t)p);
        c->match_image = rec->image;
        c->match_view = rec->view;
    }
    for (size_t k = 0; k < tr; k++) {
        c->top_idx[k] = idx[k];
        c->top_gate[k] = rs_le_get_f32(gate + 4 * k);
    }
    for (size_t k = 0; k < te; k++)
        c->probs[k] = rs_half_to_float(rs_le_get_u16(probs + 2 * k));
    rec->kept = NULL;
    if (sqlite3_column_type(st, 10) != SQLITE_NULL) {
        const uint8_t *kept = sqlite3_column_blob(st, 10);
        if ((size_t)sqlite3_column_bytes(st, 10) != tr || !kept)
            return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d view %d layer %d: kept blob of %d bytes, "
                                "expected %zu", s->path, c->run_id, rec->image, rec->view, rec->layer,
                                sqlite3_column_bytes(st, 10), tr);
        for (size_t k = 0; k < tr; k++)
            c->kept[k] = kept[k] != 0;
        rec->kept = c->kept;
    }
    if ((rc = read_executed(c, rec, err)))
        return rc;
    rec->match = c->match;
    rec->top_idx = c->top_idx;
    rec->top_gate = c->top_gate;
    rec->probs = c->probs; /* NULL in a topk run */
    return 1;
}

void rs_store_cursor_close(rs_store_cursor *cursor)
{
    if (!cursor)
        return;
    sqlite3_finalize(cursor->stmt);
    free(cursor->match);
    free(cursor->top_idx);
    free(cursor->kept);
    free(cursor->executed);
    free(cursor->top_gate);
    free(cursor->probs);
    free(cursor);
}

/* ---- reading attacks ---------------------------------------------------------------------- */

struct rs_store_attack_cursor {
    rs_store *store;
    sqlite3_stmt *stmt;          /* NULL: a store without the table */
    int64_t run_id;
    float *objective;
    size_t capacity;
};

int rs_store_attack_cursor_open(rs_store *store, int64_t run_id, int first, int last, rs_store_attack_cursor **out,
                                rs_error *err)
{
    *out = NULL;
    rs_store_attack_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
    c->store = store;
    c->run_id = run_id;
    if (store->schema >= 4) {
        int rc = sqlite3_prepare_v2(store->db,
                                    "SELECT image, view, linf, l2, steps, objective FROM attacks"
                                    " WHERE run_id = ? AND image BETWEEN ? AND ? ORDER BY image, view",
                                    -1, &c->stmt, NULL);
        if (rc != SQLITE_OK) {
            rs_store_attack_cursor_close(c);
            return store_db_fail(store, rc, "reading attacks", err);
        }
        sqlite3_bind_int64(c->stmt, 1, run_id);
        sqlite3_bind_int(c->stmt, 2, first);
        sqlite3_bind_int(c->stmt, 3, last);
    }
    *out = c;
    return 0;
}

int rs_store_attack_cursor_next(rs_store_attack_cursor *c, rs_attack_row *row, rs_error *err)
{
    if (!c->stmt)
        return 0;
    int rc = sqlite3_step(c->stmt);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(c->stmt);
        c->stmt = NULL;
        return 0;
    }
    if (rc != SQLITE_ROW)
        return store_db_fail(c->store, rc, "reading attacks", err);
    sqlite3_stmt *st = c->stmt;
    row->image = sqlite3_column_int(st, 0);
    row->view = sqlite3_column_int(st, 1);
    row->linf = (float)sqlite3_column_double(st, 2);
    row->l2 = (float)sqlite3_column_double(st, 3);
    row->steps = sqlite3_column_int(st, 4);
    const uint8_t *blob = sqlite3_column_blob(st, 5);
    size_t bytes = (size_t)sqlite3_column_bytes(st, 5);
    if (row->steps < 1 || row->steps > 1000000 || bytes != 4 * ((size_t)row->steps + 1) || !blob)
        return rs_error_set(err, RS_EFORMAT,
                            "%s: run %" PRId64 " image %d view %d: attack of %d steps with an objective of %zu bytes",
                            c->store->path, c->run_id, row->image, row->view, row->steps, bytes);
    size_t n = (size_t)row->steps + 1;
    if (n > c->capacity) {
        float *grown = realloc(c->objective, sizeof(float) * n);
        if (!grown)
            return rs_error_set(err, RS_ENOMEM, "%s: out of memory", c->store->path);
        c->objective = grown;
        c->capacity = n;
    }
    for (size_t t = 0; t < n; t++)
        c->objective[t] = rs_le_get_f32(blob + 4 * t);
    row->objective = c->objective;
    return 1;
}

void rs_store_attack_cursor_close(rs_store_attack_cursor *cursor)
{
    if (!cursor)
        return;
    sqlite3_finalize(cursor->stmt);
    free(cursor->objective);
    free(cursor);
}
