/* shards.c — merging shard stores: attaching a shard's file, creating the merged run from
 * its rows, and copying its images byte for byte (contract in store.h; analyze/store/merge.h
 * drives these). */
#include "store_internal.h"

#include <inttypes.h>
#include <stdlib.h>

/* ---- merging shards ---------------------------------------------------------------------- */

/* Attaches the store file PATH as schema "shard" (the merge only reads it). */
static int attach_shard(rs_store *s, const char *path, rs_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "ATTACH DATABASE ? AS shard", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK)
        return rs_error_set(err, RS_EIO, "%s: cannot attach it to merge into %s: %s", path, s->path,
                            sqlite3_errmsg(s->db));
    return 0;
}

static void detach_shard(rs_store *s)
{
    sqlite3_exec(s->db, "DETACH DATABASE shard", NULL, NULL, NULL);
}

/* Runs SQL (no result rows) with ?1 .. ?4 bound to A .. D as far as it has parameters;
 * SQLITE_OK or the error code. */
static int exec_ids(rs_store *s, const char *sql, int64_t a, int64_t b, int64_t c, int64_t d)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    int64_t values[] = {a, b, c, d};
    for (int i = 0; i < sqlite3_bind_parameter_count(st) && i < 4; i++)
        sqlite3_bind_int64(st, i + 1, values[i]);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The merged run's row: the shard's columns with the job's slice, identity and no shard. */
static const char merge_run_sql[] =
    "INSERT INTO runs (model_id, identity, model_path, data, first_image, image_count, protocol, num_views,"
    " seed, num_layers, layers, tokens, patches, grid_h, grid_w, record_k, num_experts, num_classes, has_cls,"
    " command, version, status, images_total, images_done, started, top_k, channels, image_h, image_w,"
    " capacity_factor, group_images, bpr)"
    " SELECT (SELECT id FROM main.models WHERE sha256 = m.sha256), r.job_identity, r.model_path, r.data,"
    " r.job_first, r.job_count, r.protocol, r.num_views, r.seed, r.num_layers, r.layers, r.tokens, r.patches,"
    " r.grid_h, r.grid_w, r.record_k, r.num_experts, r.num_classes, r.has_cls, ?2, ?3, 'running', r.job_count,"
    " 0, ?4, r.top_k, r.channels, r.image_h, r.image_w, r.capacity_factor, r.group_images, r.bpr"
    " FROM shard.runs r JOIN shard.models m ON m.id = r.model_id WHERE r.id = ?1";

/* Run SHARD_RUN's group seed (schema 5) and record form (schema 7) into the merged run
 * RUN_ID. Older shards have no such columns: they ran in data order and recorded the full
 * softmax, which the merged run's NULLs already say. */
static int merge_group_seed(rs_store *s, int64_t run_id, int64_t shard_run)
{
    sqlite3_stmt *st;
    int64_t version = 0;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA shard.user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        version = sqlite3_column_int64(st, 0);
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK || version < 5)
        return rc;
    rc = exec_ids(s, "UPDATE main.runs SET group_seed = (SELECT group_seed FROM shard.runs WHERE id = ?2)"
                     " WHERE id = ?1",
                  run_id, shard_run, 0, 0);
    if (rc != SQLITE_OK || version < 7)
        return rc;
    return exec_ids(s, "UPDATE main.runs SET record = (SELECT record FROM shard.runs WHERE id = ?2) WHERE id = ?1",
                    run_id, shard_run, 0, 0);
}

static int create_merged_run(rs_store *s, int64_t shard_run, const char *command, const char *version,
                             int64_t *run_id)
{
    int rc = exec_ids(s,
                      "INSERT INTO main.models (sha256, path, config, params, labels)"
                      " SELECT m.sha256, m.path, m.config, m.params, m.labels FROM shard.models m"
                      " JOIN shard.runs r ON r.model_id = m.id WHERE r.id = ?1 ON CONFLICT (sha256) DO NOTHING",
                      shard_run, 0, 0, 0);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK && (rc = sqlite3_prepare_v2(s->db, merge_run_sql, -1, &st, NULL)) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, shard_run);
        sqlite3_bind_text(st, 2, command, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, version, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 4, store_now());
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return rc;
    *run_id = sqlite3_last_insert_rowid(s->db);
    rc = exec_ids(s, "INSERT INTO views (run_id, view, spec) SELECT ?1, view, spec FROM shard.views"
                     " WHERE run_id = ?2 ORDER BY view",
                  *run_id, shard_run, 0, 0);
    return rc == SQLITE_OK ? merge_group_seed(s, *run_id, shard_run) : rc;
}

int rs_store_begin_merge(rs_store *store, const char *shard_path, int64_t shard_run, const char *command,
                         const char *version, int64_t *run_id, rs_run_status *status, int64_t *created,
                         rs_error *err)
{
    *created = 0;
    if (store->read_only)
        return store_read_only_fail(store, err);
    int rc = attach_shard(store, shard_path, err);
    if (rc)
        return rc;
    if ((rc = store_run_cached(store, ST_BEGIN, "starting the merged run", err))) {
        detach_shard(store);
        return rc;
    }
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(store->db,
                            "SELECT m.id, m.status FROM main.runs m JOIN shard.runs r ON m.identity = r.job_identity"
                            " WHERE r.id = ?",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, shard_run);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *run_id = sqlite3_column_int64(st, 0);
            *status = store_status_from_name((const char *)sqlite3_column_text(st, 1));
        }
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE) {
            *status = RS_RUN_RUNNING;
            rc = create_merged_run(store, shard_run, command, version, run_id);
            *created = rc == SQLITE_OK ? *run_id : 0;
        }
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    if (rc == SQLITE_OK)
        rc = store_run_cached(store, ST_COMMIT, "committing the merged run", err);
    else
        rc = store_db_fail(store, rc, "starting the merged run", err);
    if (rc) {
        store_rollback(store);
        *created = 0;
    }
    detach_shard(store);
    return rc;
}

int rs_store_undo_merge(rs_store *store, int64_t run_id, bool created, int images, rs_error *err)
{
    if (store->read_only)
        return store_read_only_fail(store, err);
    int rc = store_run_cached(store, ST_BEGIN, "taking back a merge", err);
    if (rc)
        return rc;
    /* Every child table reaches runs, and routing and attacks reach samples, through ON DELETE
     * CASCADE. */
    if (created) {
        sqlite3_stmt *st;
        int64_t model = 0;
        rc = sqlite3_prepare_v2(store->db, "SELECT model_id FROM runs WHERE id = ?", -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, run_id);
            rc = sqlite3_step(st);
            model = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
            rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
            sqlite3_finalize(st);
        }
        if (rc == SQLITE_OK)
            rc = exec_ids(store, "DELETE FROM runs WHERE id = ?1", run_id, 0, 0, 0);
        if (rc == SQLITE_OK)
            rc = exec_ids(store, "DELETE FROM models WHERE id = ?1 AND NOT EXISTS"
                                 " (SELECT 1 FROM runs WHERE model_id = ?1)", model, 0, 0, 0);
    } else {
        rc = exec_ids(store, "DELETE FROM samples WHERE run_id = ?1 AND image >= (SELECT first_image FROM runs"
                             " WHERE id = ?1) + ?2", run_id, images, 0, 0);
        if (rc == SQLITE_OK)
            rc = exec_ids(store, "UPDATE runs SET images_done = ?2 WHERE id = ?1", run_id, images, 0, 0);
    }
    if (rc == SQLITE_OK)
        return store_run_cached(store, ST_COMMIT, "taking back a merge", err);
    rc = store_db_fail(store, rc, "taking back a merge", err);
    store_rollback(store);
    return rc;
}

/* What an attached shard's schema holds beyond schema 3. */
typedef struct shard_schema {
    bool attacks;       /* the attacks table (schema 4) */
    bool executed;      /* routing.executed (schema 5) */
} shard_schema;

#define COPY_ROUTING(executed)                                                                             \
    "INSERT INTO routing (run_id, image, view, layer, top_idx, top_gate, probs, kept, executed)"              \
    " SELECT ?1, image, view, layer, top_idx, top_gate, probs, kept, " executed " FROM shard.routing"        \
    " WHERE run_id = ?2 AND image BETWEEN ?3 AND ?4 ORDER BY image, view, layer"

/* Copies images FIRST .. LAST in one transaction and advances the run to LAST. */
static int copy_image_range(rs_store *s, int64_t run_id, int64_t shard_run, int first, int last,
                            const shard_schema *schema, rs_error *err)
{
    const char *copies[] = {
        "INSERT INTO samples (run_id, image, label) SELECT ?1, image, label FROM shard.samples"
        " WHERE run_id = ?2 AND image BETWEEN ?3 AND ?4 ORDER BY image",
        "INSERT INTO predictions (run_id, image, view, predicted, prob, params, match)"
        " SELECT ?1, image, view, predicted, prob, params, match FROM shard.predictions"
        " WHERE run_id = ?2 AND image BETWEEN ?3 AND ?4 ORDER BY image, view",
        schema->executed ? COPY_ROUTING("executed") : COPY_ROUTING("NULL"),
        "UPDATE runs SET images_done = ?4 - first_image + 1 WHERE id = ?1",
        "INSERT INTO attacks (run_id, image, view, linf, l2, steps, objective)"
        " SELECT ?1, image, view, linf, l2, steps, objective FROM shard.attacks"
        " WHERE run_id = ?2 AND image BETWEEN ?3 AND ?4 ORDER BY image, view"};
    int rc = store_run_cached(s, ST_BEGIN, "copying a shard", err);
    if (rc)
        return rc;
    size_t n = sizeof copies / sizeof *copies - !schema->attacks;
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
        rc = exec_ids(s, copies[i], run_id, shard_run, first, last);
    if (rc == SQLITE_OK)
        return store_run_cached(s, ST_COMMIT, "committing a copied batch", err);
    rc = store_db_fail(s, rc, "copying a shard", err);
    store_rollback(s);
    return rc;
}

/* What the attached shard's schema holds (shard stores of an older routerscope read in place). */
static int read_shard_schema(rs_store *s, shard_schema *schema, rs_error *err)
{
    int64_t attacks = 0, executed = 0;
    int rc = store_query_int(s, "SELECT count(*) FROM shard.sqlite_master WHERE type = 'table' AND name = 'attacks'",
                       "reading the shard's schema", &attacks, err);
    if (!rc)
        rc = store_query_int(s, "SELECT count(*) FROM pragma_table_info('routing', 'shard') WHERE name = 'executed'",
                       "reading the shard's schema", &executed, err);
    *schema = (shard_schema){.attacks = attacks > 0, .executed = executed > 0};
    return rc;
}

int rs_store_copy_images(rs_store *store, int64_t run_id, const char *shard_path, int64_t shard_run, int first,
                         int last, int batch, rs_error *err)
{
    if (store->read_only)
        return store_read_only_fail(store, err);
    run_state rs;
    int rc = store_read_run_state(store, run_id, &rs, err);
    if (rc)
        return rc;
    if (first != rs.offset + rs.done || last >= rs.offset + rs.count || batch < 1)
        return rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 ": copying images %d..%d, the run stands at image %d of %d..%d",
                            store->path, run_id, first, last, rs.offset + rs.done, rs.offset, rs.offset + rs.count - 1);
    if ((rc = attach_shard(store, shard_path, err)))
        return rc;
    shard_schema schema;
    rc = read_shard_schema(store, &schema, err);
    for (int64_t from = first; from <= last && !rc; from += batch) {
        int64_t to = from + batch - 1 < last ? from + batch - 1 : last;
        rc = copy_image_range(store, run_id, shard_run, (int)from, (int)to, &schema, err);
    }
    detach_shard(store);
    return rc;
}
