/* store_internal.h — private to analyze/store/: what the files of the store share (db.c,
 * runs.c, records.c, shards.c, check.c, status.c). Nothing outside analyze/store/ includes it; the API is
 * store.h.
 *
 * Holds the rs_store object (connection, path, schema version, the cache of prepared
 * statements, the batch writer's encoding buffer), the column expressions that read older
 * schemas in place, and the small helpers every part uses: store_db_fail turns an SQLite
 * result into one rs_error line naming the file; store_stmt / store_step_done /
 * store_run_cached run the cached statements; store_rollback ends a failed transaction.
 * The helpers are named store_*: external symbols of the rsstore library, never part of its
 * API. Same error contract as store.h: 0 or a negative RS_E* code with ERR filled; nothing
 * prints. */
#ifndef RS_STORE_INTERNAL_H
#define RS_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* What schema 2 stores as columns, computed from a schema-1 row: the model's k, input shape
 * and class names were then only inside the stored config JSON. Shared by the migration and
 * by readers of schema-1 files (which read in place, without migrating). R is the run row,
 * M its model row; json_valid guards the json_* calls, which fail on malformed text. */
#define V1_CONFIG_INT(path, fallback)                                                                      \
    "(CASE WHEN json_valid(m.config) AND json_type(m.config, '" path "') = 'integer'"                      \
    " THEN json_extract(m.config, '" path "') ELSE " fallback " END)"
#define V1_TOP_K                                                                                           \
    "(CASE WHEN json_valid(m.config) AND json_type(m.config, '$.top_k') = 'integer'"                       \
    " AND json_extract(m.config, '$.top_k') BETWEEN 1 AND r.record_k"                                      \
    " THEN json_extract(m.config, '$.top_k') ELSE r.record_k END)"
#define V1_LABELS                                                                                          \
    "(CASE WHEN json_valid(m.config) AND json_type(m.config, '$.labels') = 'array'"                        \
    " THEN json_extract(m.config, '$.labels') END)"
#define V1_RUN_COLUMNS                                                                                     \
    V1_TOP_K ", " V1_CONFIG_INT("$.channels", "0") ", " V1_CONFIG_INT("$.image_size[0]", "0") ", "          \
    V1_CONFIG_INT("$.image_size[1]", "0") ", " V1_LABELS
#define V2_RUN_COLUMNS "r.top_k, r.channels, r.image_h, r.image_w, m.labels"

/* The shard columns of a run row: schema 3 on, and what older schemas read as. */
#define V3_SHARD_COLUMNS "r.shard_index, r.shard_count, r.job_first, r.job_count, r.job_identity"
#define V2_SHARD_COLUMNS "NULL, NULL, NULL, NULL, NULL"

/* The statements kept prepared for the life of the store. */
enum {
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_RUN_STATE, ST_SAMPLE, ST_PREDICTION, ST_ROUTING,
    ST_PROGRESS, ST_ATTACK, ST_COUNT
};

struct rs_store {
    sqlite3 *db;
    char *path;
    bool read_only;
    int schema;                 /* the file's schema version (readers keep older ones as they are) */
    int busy_ms;
    sqlite3_stmt *st[ST_COUNT];
    /* Encoding buffers for one routing row, grown as needed and reused across batches. */
    uint8_t *buf;
    size_t buf_size;
};

/* The part of a run the batch writer checks against. */
typedef struct run_state {
    int offset, count, done, views, layers, tokens, record_k, experts, patches;
    bool topk;                  /* the run records ids and gates only (rs_record_form) */
} run_state;

/* ---- shared helpers (db.c unless said otherwise) ---- */

/* Turns SQLite result RC into one line naming the file; WHAT says what we were doing. */
int store_db_fail(const rs_store *s, int rc, const char *what, rs_error *err);

/* RS_EINVAL: the store was opened read-only. */
int store_read_only_fail(const rs_store *s, rs_error *err);

/* The wall clock in Unix seconds (runs.started, runs.finished). */
double store_now(void);

/* Runs SQL (any number of statements, no result rows); WHAT names the step in errors. */
int store_exec(rs_store *s, const char *sql, const char *what, rs_error *err);

/* The first column of the one-row result of SQL, an integer. */
int store_query_int(rs_store *s, const char *sql, const char *what, int64_t *out, rs_error *err);

/* Statement ID, prepared on first use and kept for the life of the store. */
int store_stmt(rs_store *s, int id, sqlite3_stmt **out, rs_error *err);

/* Runs a cached statement that returns no rows, and resets it so it holds no lock. */
int store_step_done(rs_store *s, sqlite3_stmt *st, const char *what, rs_error *err);

/* store_stmt and store_step_done for cached statement ID (BEGIN, COMMIT, ROLLBACK). */
int store_run_cached(rs_store *s, int id, const char *what, rs_error *err);

/* Ends a failed transaction. SQLite rolls some errors (I/O, disk full) back by itself, after
 * which an explicit ROLLBACK would fail; the error already reported is the one that counts. */
void store_rollback(rs_store *s);

/* runs.c: the status of a runs.status text ("failed" for an unknown one), and the text of a
 * status. */
rs_run_status store_status_from_name(const char *name);
const char *store_status_name(rs_run_status status);

/* records.c: RUN_ID's run_state; RS_EINVAL when there is no such run. */
int store_read_run_state(rs_store *s, int64_t run_id, run_state *rs, rs_error *err);

/* check.c: a run's checksum as text, "xxh64:" and 16 hex digits, with its NUL. */
#define RS_STORE_CHECKSUM_SIZE 23

/* check.c: rs_store_check_run inside the caller's transaction, and the run's checksum into
 * CHECKSUM (RS_STORE_CHECKSUM_SIZE bytes). With VERIFY, a finished run's stored checksum
 * must equal it. */
int store_check_run(rs_store *s, int64_t run_id, bool verify, char *checksum, rs_error *err);


#endif
