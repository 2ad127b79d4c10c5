/* store.c — the SQLite routing store (contract in store.h).
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
 * At ImageNet scale with E=32 the payload is 74 bytes per token-record.
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
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "half.h"

/* "RTSC": marks the file as a routerscope store for `file` and for our own open check. */
#define RS_STORE_APP_ID 0x52545343

/* Schema version 1. Every child table reaches runs through ON DELETE CASCADE, so deleting a
 * run row removes all it recorded. */
static const char schema_v1[] =
    "CREATE TABLE models ("
    "  id INTEGER PRIMARY KEY,"
    "  sha256 TEXT NOT NULL UNIQUE,"
    "  path TEXT NOT NULL,"          /* where it was first seen; runs keep their own path */
    "  config TEXT,"                 /* the checkpoint's config JSON */
    "  params INTEGER NOT NULL);"
    "CREATE TABLE runs ("
    "  id INTEGER PRIMARY KEY,"
    "  model_id INTEGER NOT NULL REFERENCES models(id),"
    "  identity TEXT NOT NULL UNIQUE," /* canonical text of what makes two runs the same */
    "  model_path TEXT NOT NULL,"
    "  data TEXT NOT NULL,"
    "  first_image INTEGER NOT NULL,"  /* the slice: offset .. offset + image_count - 1 */
    "  image_count INTEGER NOT NULL,"
    "  protocol TEXT NOT NULL,"
    "  num_views INTEGER NOT NULL,"
    "  seed INTEGER NOT NULL,"          /* uint64 stored as its int64 bit pattern */
    "  num_layers INTEGER NOT NULL,"
    "  layers TEXT NOT NULL,"           /* block index of each MoE slot, e.g. 1,3,5 */
    "  tokens INTEGER NOT NULL, patches INTEGER NOT NULL,"
    "  grid_h INTEGER NOT NULL, grid_w INTEGER NOT NULL,"
    "  record_k INTEGER NOT NULL, num_experts INTEGER NOT NULL, num_classes INTEGER NOT NULL,"
    "  has_cls INTEGER NOT NULL,"
    "  command TEXT, version TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted')),"
    "  images_total INTEGER NOT NULL,"
    "  images_done INTEGER NOT NULL CHECK (images_done BETWEEN 0 AND images_total),"
    "  started REAL NOT NULL,"          /* Unix seconds */
    "  finished REAL,"
    "  error TEXT);"
    "CREATE INDEX runs_model ON runs(model_id);"
    "CREATE TABLE views ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  view INTEGER NOT NULL,"
    "  spec TEXT NOT NULL,"
    "  PRIMARY KEY (run_id, view)) WITHOUT ROWID;"
    "CREATE TABLE samples ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  image INTEGER NOT NULL,"
    "  label INTEGER,"                  /* NULL when the source has none */
    "  PRIMARY KEY (run_id, image)) WITHOUT ROWID;"
    "CREATE TABLE predictions ("
    "  run_id INTEGER NOT NULL,"
    "  image INTEGER NOT NULL,"
    "  view INTEGER NOT NULL,"
    "  predicted INTEGER NOT NULL,"
    "  prob REAL NOT NULL,"
    "  params TEXT NOT NULL,"           /* the view's drawn parameters and affine map (JSON) */
    "  match BLOB NOT NULL,"            /* patches int16 LE: matched reference patch or -1 */
    "  PRIMARY KEY (run_id, image, view),"
    "  FOREIGN KEY (run_id, image) REFERENCES samples(run_id, image) ON DELETE CASCADE"
    ") WITHOUT ROWID;"
    "CREATE TABLE routing ("
    "  run_id INTEGER NOT NULL,"
    "  image INTEGER NOT NULL,"
    "  view INTEGER NOT NULL,"
    "  layer INTEGER NOT NULL,"
    "  top_idx BLOB NOT NULL,"          /* T*R uint8 */
    "  top_gate BLOB NOT NULL,"         /* T*R float32 LE */
    "  probs BLOB NOT NULL,"            /* T*E float16 LE */
    "  UNIQUE (run_id, image, view, layer),"
    "  FOREIGN KEY (run_id, image, view) REFERENCES predictions(run_id, image, view)"
    "    ON DELETE CASCADE);";

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

/* Schema version 2: the model's k and input shape become run columns and its class names a
 * model column, so that readers need neither the config JSON nor the checkpoint. */
static const char schema_v2[] =
    "ALTER TABLE runs ADD COLUMN top_k INTEGER;"      /* the model's k (record_k is max(2, k)) */
    "ALTER TABLE runs ADD COLUMN channels INTEGER;"   /* the model's input: channels, H, W */
    "ALTER TABLE runs ADD COLUMN image_h INTEGER;"
    "ALTER TABLE runs ADD COLUMN image_w INTEGER;"
    "ALTER TABLE models ADD COLUMN labels TEXT;"      /* JSON array of class names, or NULL */
    "UPDATE runs AS r SET top_k = " V1_TOP_K ", channels = " V1_CONFIG_INT("$.channels", "0")
    ", image_h = " V1_CONFIG_INT("$.image_size[0]", "0") ", image_w = " V1_CONFIG_INT("$.image_size[1]", "0")
    " FROM models AS m WHERE m.id = r.model_id;"
    "UPDATE models AS m SET labels = " V1_LABELS ";";

/* Schema version 3: shard runs (`replay --shard I/N`) record which shard they are and the
 * job they belong to, so that `merge` can check that its shards make up one job. NULL in
 * ordinary runs, which is also what readers of older stores see. */
static const char schema_v3[] =
    "ALTER TABLE runs ADD COLUMN shard_index INTEGER;"
    "ALTER TABLE runs ADD COLUMN shard_count INTEGER;"
    "ALTER TABLE runs ADD COLUMN job_first INTEGER;"  /* the job's slice */
    "ALTER TABLE runs ADD COLUMN job_count INTEGER;"
    "ALTER TABLE runs ADD COLUMN job_identity TEXT;"; /* the identity the merged run takes */
#define V3_SHARD_COLUMNS "r.shard_index, r.shard_count, r.job_first, r.job_count, r.job_identity"
#define V2_SHARD_COLUMNS "NULL, NULL, NULL, NULL, NULL"

/* migrations[n] turns schema version n into n + 1; version 0 is an empty database. From
 * version 4 on, a step is a function (migrate_v4, migrate_v5 below) so that several
 * features can each add their part to one version. */
static const char *const migrations[] = {schema_v1, schema_v2, schema_v3};
_Static_assert(sizeof migrations / sizeof *migrations + 2 == RS_STORE_SCHEMA,
               "one migration step per schema version: three texts, then migrate_v4 and migrate_v5");

/* Schema version 4, attacks: per image and attacked view (a view with a pgd: operation,
 * analyze/replay/attack.h) the perturbation's norms and the objective at every iterate. Stores of
 * schema 1-3 hold no attacked views; read in place they have no such table, which readers
 * take as no rows. */
static const char schema_v4_attack[] =
    "CREATE TABLE attacks ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  image INTEGER NOT NULL,"
    "  view INTEGER NOT NULL,"
    "  linf REAL NOT NULL,"             /* max |x - x0| on [0,1] pixels */
    "  l2 REAL NOT NULL,"               /* ||x - x0||_2 */
    "  steps INTEGER NOT NULL,"
    "  objective BLOB NOT NULL,"        /* (steps+1) float32 LE: the objective at each iterate */
    "  PRIMARY KEY (run_id, image, view),"
    "  FOREIGN KEY (run_id, image, view) REFERENCES predictions(run_id, image, view) ON DELETE CASCADE"
    ") WITHOUT ROWID;";

/* The statements kept prepared for the life of the store. */
enum {
    ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_RUN_STATE, ST_SAMPLE, ST_PREDICTION, ST_ROUTING,
    ST_PROGRESS, ST_ATTACK, ST_COUNT
};
static const char *const statement_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_RUN_STATE] = "SELECT first_image, image_count, images_done, num_views, num_layers, tokens,"
                     " record_k, num_experts, patches FROM runs WHERE id = ?",
    [ST_SAMPLE] = "INSERT INTO samples (run_id, image, label) VALUES (?, ?, ?)",
    [ST_PREDICTION] = "INSERT INTO predictions (run_id, image, view, predicted, prob, params, match)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?)",
    [ST_ROUTING] = "INSERT INTO routing (run_id, image, view, layer, top_idx, top_gate, probs, kept, executed)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_PROGRESS] = "UPDATE runs SET images_done = ? WHERE id = ?",
    [ST_ATTACK] = "INSERT INTO attacks (run_id, image, view, linf, l2, steps, objective) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
};

/* ---- errors ---------------------------------------------------------------------------- */

/* Turns SQLite result RC into one line naming the file; WHAT says what we were doing. */
static int db_fail(const rs_store *s, int rc, const char *what, rs_error *err)
{
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return rs_error_set(err, RS_EIO, "%s: database is locked by another connection (%s; gave up after %.1f s)",
                            s->path, what, s->busy_ms / 1000.0);
    case SQLITE_READONLY:
        return rs_error_set(err, RS_EIO, "%s: cannot write, the database is read-only (%s: %s)", s->path, what,
                            msg);
    case SQLITE_NOTADB:
        return rs_error_set(err, RS_EFORMAT, "%s: not an SQLite database", s->path);
    case SQLITE_CORRUPT:
        return rs_error_set(err, RS_EFORMAT, "%s: database is corrupt (%s: %s)", s->path, what, msg);
    case SQLITE_NOMEM:
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory (%s)", s->path, what);
    case SQLITE_CONSTRAINT:
        return rs_error_set(err, RS_EINVAL, "%s: %s: %s", s->path, what, msg);
    case SQLITE_CANTOPEN: {
        int e = s->db ? sqlite3_system_errno(s->db) : 0;
        return rs_error_set(err, RS_EIO, "%s: cannot open database (%s)", s->path, e ? strerror(e) : msg);
    }
    default:
        return rs_error_set(err, RS_EIO, "%s: %s: %s", s->path, what, msg);
    }
}

static int read_only_fail(const rs_store *s, rs_error *err)
{
    return rs_error_set(err, RS_EINVAL, "%s: opened read-only, cannot write", s->path);
}

/* ---- small helpers --------------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *dup_text(const unsigned char *s)
{
    return s ? strdup((const char *)s) : NULL;
}

static int exec(rs_store *s, const char *sql, const char *what, rs_error *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : db_fail(s, rc, what, err);
}

/* The first column of the one-row result of SQL, an integer. */
static int query_int(rs_store *s, const char *sql, const char *what, int64_t *out, rs_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, what, err);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_fail(s, rc, what, err);
}

/* Statement ID, prepared on first use and kept for the life of the store. */
static int stmt(rs_store *s, int id, sqlite3_stmt **out, rs_error *err)
{
    *out = NULL;
    if (!s->st[id]) {
        int rc = sqlite3_prepare_v3(s->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->st[id], NULL);
        if (rc != SQLITE_OK)
            return db_fail(s, rc, "preparing a statement", err);
    }
    *out = s->st[id];
    return 0;
}

/* Runs a cached statement that returns no rows, and resets it so it holds no lock. */
static int step_done(rs_store *s, sqlite3_stmt *st, const char *what, rs_error *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_fail(s, rc, what, err);
}

static int run_cached(rs_store *s, int id, const char *what, rs_error *err)
{
    sqlite3_stmt *st;
    int rc = stmt(s, id, &st, err);
    return rc ? rc : step_done(s, st, what, err);
}

/* Ends a failed transaction. SQLite rolls some errors (I/O, disk full) back by itself, after
 * which an explicit ROLLBACK would fail; the error already reported is the one that counts. */
static void rollback(rs_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        run_cached(s, ST_ROLLBACK, "rolling back", NULL);
}

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

/* ---- open / close ---------------------------------------------------------------------- */

/* Schema 4, dispatch: whether each recorded choice was kept (routing.kept, NULL for runs
 * without capacity) and the run's dispatch settings (NULL when it has none). Older runs read
 * as runs without capacity, which is what they were. */
static int migrate_v4_dispatch(rs_store *s, rs_error *err)
{
    return exec(s,
                "ALTER TABLE routing ADD COLUMN kept BLOB;"            /* T*R uint8 0/1 */
                "ALTER TABLE runs ADD COLUMN capacity_factor REAL;"
                "ALTER TABLE runs ADD COLUMN group_images INTEGER;"
                "ALTER TABLE runs ADD COLUMN bpr INTEGER;",
                "upgrading the schema to version 4 (dispatch)", err);
}

static int migrate_v4_attack(rs_store *s, rs_error *err)
{
    return exec(s, schema_v4_attack, "upgrading the schema to version 4 (attacks)", err);
}

/* Version 3 -> 4: each feature's part of the step. */
static int migrate_v4(rs_store *s, rs_error *err)
{
    int rc = migrate_v4_dispatch(s, err);
    return rc ? rc : migrate_v4_attack(s, err);
}

/* Schema 5, group seed: the seed of a run's shuffled group composition (group_order.h);
 * NULL for data order, which is what every older run had. */
static int migrate_v5_group_seed(rs_store *s, rs_error *err)
{
    return exec(s, "ALTER TABLE runs ADD COLUMN group_seed INTEGER;", "upgrading the schema to version 5 (group seed)",
                err);
}

/* Schema 5, routing interventions: the experts each token ran (routing.executed, T*k uint8
 * by rank) where its view forced that layer (a route: view), NULL elsewhere, where the
 * router's own top-k ran. Older stores hold no forced views and read as all NULL. */
static int migrate_v5_route(rs_store *s, rs_error *err)
{
    return exec(s, "ALTER TABLE routing ADD COLUMN executed BLOB;",
                "upgrading the schema to version 5 (routing interventions)", err);
}

/* Version 4 -> 5: each feature's part of the step. */
static int migrate_v5(rs_store *s, rs_error *err)
{
    int rc = migrate_v5_group_seed(s, err);
    return rc ? rc : migrate_v5_route(s, err);
}

/* Brings a database of an older schema version up to date in one transaction. The version is read again under the write lock: another process may have
 * migrated the file since we looked. */
static int migrate(rs_store *s, rs_error *err)
{
    int rc = exec(s, "BEGIN IMMEDIATE", "creating the schema", err);
    if (rc)
        return rc;
    int64_t version;
    if ((rc = query_int(s, "PRAGMA user_version", "reading the schema version", &version, err)))
        goto fail;
    for (int64_t v = version; v < RS_STORE_SCHEMA; v++) {
        char what[64];
        snprintf(what, sizeof what, "upgrading the schema to version %d", (int)v + 1);
        if ((rc = v < 3 ? exec(s, migrations[v], what, err) : v == 3 ? migrate_v4(s, err) : migrate_v5(s, err)))
            goto fail;
    }
    if (version < RS_STORE_SCHEMA) {
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d", RS_STORE_SCHEMA,
                 RS_STORE_APP_ID);
        if ((rc = exec(s, sql, "setting the schema version", err)))
            goto fail;
    }
    if ((rc = exec(s, "COMMIT", "creating the schema", err)))
        goto fail;
    return 0;
fail:
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int check_schema(rs_store *s, rs_error *err)
{
    /* One read transaction, so that the three values come from the same snapshot even while
     * another process creates the schema. */
    int64_t version = 0, tables = 0, app_id = 0;
    int rc = exec(s, "BEGIN", "reading the schema", err);
    if (!rc && !(rc = query_int(s, "PRAGMA user_version", "reading the schema version", &version, err)) &&
        !(rc = query_int(s, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                         "reading the schema", &tables, err)))
        rc = query_int(s, "PRAGMA application_id", "reading the schema", &app_id, err);
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc)
        return rc;
    /* user_version is any 32-bit integer another program may have set; a negative one must
     * not reach migrations[]. */
    if (version > RS_STORE_SCHEMA || version < 0)
        return rs_error_set(err, RS_EFORMAT, "%s: schema version %" PRId64 ", this routerscope reads %d",
                            s->path, version, RS_STORE_SCHEMA);
    if (version == 0 && tables > 0)
        return rs_error_set(err, RS_EFORMAT,
                            "%s: schema version 0, this routerscope reads %d (the file holds tables of "
                            "another program)",
                            s->path, RS_STORE_SCHEMA);
    if (version > 0 && app_id != RS_STORE_APP_ID)
        return rs_error_set(err, RS_EFORMAT, "%s: not a routerscope store (application id 0x%08" PRIx64 ")",
                            s->path, (uint64_t)(uint32_t)app_id);
    s->schema = (int)version;
    if (version < RS_STORE_SCHEMA) {
        /* Readers take older schemas in place (get_run fills what they lack); writers upgrade. */
        if (s->read_only)
            return version == 0
                       ? rs_error_set(err, RS_EFORMAT, "%s: empty database, no routerscope runs to read", s->path)
                       : 0;
        s->schema = RS_STORE_SCHEMA;
        return migrate(s, err);
    }
    return 0;
}

/* A reader in a folder it cannot write cannot create the WAL index (-shm) that a WAL
 * database wants, so SQLite refuses even to read. Such a file is opened "immutable" (no
 * locks, no -shm) — but only when no WAL content is pending, which immutable mode would
 * silently skip. */
typedef enum read_mode { READ_NORMAL, READ_IMMUTABLE, READ_BLOCKED_BY_WAL } read_mode;

static read_mode reader_mode(const char *path)
{
    char *wal = malloc(strlen(path) + 5), *dir = strdup(path);
    read_mode mode = READ_NORMAL;
    if (wal && dir) {
        struct stat st;
        sprintf(wal, "%s-wal", path);
        bool wal_empty = stat(wal, &st) != 0 ? errno == ENOENT : st.st_size == 0;
        char *slash = strrchr(dir, '/');
        const char *folder = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
        if (access(folder, W_OK) != 0)
            mode = wal_empty ? READ_IMMUTABLE : READ_BLOCKED_BY_WAL;
    }
    free(wal);
    free(dir);
    return mode;
}

/* "file:PATH?immutable=1" with PATH percent-encoded. Caller frees; NULL when out of memory. */
static char *immutable_uri(const char *path)
{
    char *uri = malloc(strlen(path) * 3 + 32), *p = uri;
    if (!uri)
        return NULL;
    p += sprintf(p, "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        p += isalnum(*c) || strchr("/-._~", *c) ? sprintf(p, "%c", *c) : sprintf(p, "%%%02X", *c);
    sprintf(p, "?immutable=1");
    return uri;
}

int rs_store_open(const char *path, bool read_only, rs_store **out, rs_error *err)
{
    *out = NULL;
    rs_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);
    }
    s->read_only = read_only;
    s->busy_ms = 5000;
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    read_mode mode = read_only ? reader_mode(path) : READ_NORMAL;
    char *uri = mode == READ_IMMUTABLE ? immutable_uri(path) : NULL;
    int rc = sqlite3_open_v2(uri ? uri : path, &s->db, flags | (uri ? SQLITE_OPEN_URI : 0), NULL);
    free(uri);
    if (rc == SQLITE_OK && mode == READ_BLOCKED_BY_WAL && sqlite3_exec(s->db, "PRAGMA user_version", NULL, NULL,
                                                                       NULL) != SQLITE_OK) {
        rc = rs_error_set(err, RS_EIO,
                          "%s: cannot read: its folder is not writable and %s-wal holds pages not yet in the "
                          "database (open it once where it can be written)",
                          path, path);
        goto fail;
    }
    if (rc != SQLITE_OK) {
        rc = db_fail(s, rc, "opening", err);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, s->busy_ms);
    /* sqlite3_open_v2 quietly falls back to reading when the OS forbids writing; say so now
     * rather than at the first batch. */
    if (!read_only && sqlite3_db_readonly(s->db, "main") == 1) {
        rc = rs_error_set(err, RS_EIO, "%s: cannot write, the file is read-only", path);
        goto fail;
    }
    /* The schema check is the first read of the file (a file that is not SQLite fails there)
     * and comes before the switch to WAL, which would change a file we then refuse. */
    if ((rc = exec(s, "PRAGMA foreign_keys = ON", "enabling foreign keys", err)) || (rc = check_schema(s, err)))
        goto fail;
    if (!read_only) {
        /* WAL: readers (stats, reports) never block the writer, and a commit appends to one
         * file. synchronous=NORMAL skips the fsync per commit: with WAL a committed batch
         * still survives the process being killed (the durability the replay promises); only
         * an OS crash or power loss may lose the last batches, never corrupt the file, and
         * a resumed run then redoes them. */
        if ((rc = exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL", "switching to WAL", err)))
            goto fail;
    }
    *out = s;
    return 0;
fail:
    rs_store_close(s);
    return rc;
}

int rs_store_checkpoint_file(const char *path, rs_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL);
    }
    int busy = rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
    int fail = busy ? rs_error_set(err, RS_EIO, "%s: cannot checkpoint its WAL: the store is busy", path)
               : rc != SQLITE_OK ? rs_error_set(err, RS_EIO, "%s: cannot checkpoint its WAL: %s", path,
                                                db ? sqlite3_errmsg(db) : "out of memory")
                                 : 0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return fail;
}

/* Test hook (not in store.h): the tests shorten the busy timeout to see a locked database
 * fail quickly. */
int rs_store_set_busy_timeout(rs_store *store, int ms);
int rs_store_set_busy_timeout(rs_store *store, int ms)
{
    store->busy_ms = ms;
    return sqlite3_busy_timeout(store->db, ms) == SQLITE_OK ? 0 : RS_EINVAL;
}

void rs_store_close(rs_store *store)
{
    if (!store)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(store->st[i]);
    /* close_v2: a cursor still open keeps the connection alive until it is closed. */
    sqlite3_close_v2(store->db);
    free(store->buf);
    free(store->path);
    free(store);
}

/* ---- runs -------------------------------------------------------------------------------- */

static const char *const status_names[] = {"running", "done", "failed", "interrupted"};

static rs_run_status status_from_name(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && !strcmp(name, status_names[i]))
            return (rs_run_status)i;
    return RS_RUN_FAILED;
}

/* A growable string for the identity text. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_add(strbuf *b, const char *data, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* "name=LEN:bytes\n": the length prefix makes the text unambiguous whatever bytes a field
 * holds (separators, newlines, invalid UTF-8), so two specs share an identity only when
 * every field is equal. */
static void sb_field(strbuf *b, const char *name, const char *value)
{
    char head[64];
    size_t n = value ? strlen(value) : 0;
    int len = snprintf(head, sizeof head, "%s=%zu:", name, n);
    sb_add(b, head, (size_t)len);
    sb_add(b, value ? value : "", n);
    sb_add(b, "\n", 1);
}

static void sb_number(strbuf *b, const char *name, uint64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRIu64, value);
    sb_field(b, name, text);
}

/* The canonical identity of SPEC (README: model sha256 + data source + slice + protocol +
 * view specs + seed). A shard's is its job's (the whole slice) followed by the shard, so
 * that the job's text is a prefix every shard shares; with JOB_ONLY, just the job's.
 * Caller frees; NULL when out of memory. */
static char *run_identity(const rs_run_spec *spec, bool job_only)
{
    bool shard = spec->shard_count > 0;
    strbuf b = {0};
    sb_add(&b, "routerscope-run/1\n", 18);
    sb_field(&b, "model_sha256", spec->model_sha256);
    sb_field(&b, "data", spec->data);
    sb_number(&b, "offset", (uint64_t)(shard ? spec->job_offset : spec->offset));
    sb_number(&b, "count", (uint64_t)(shard ? spec->job_count : spec->count));
    sb_field(&b, "protocol", spec->protocol);
    sb_number(&b, "views", (uint64_t)spec->num_views);
    for (int v = 0; v < spec->num_views; v++)
        sb_field(&b, "view", spec->view_specs[v]);
    sb_number(&b, "seed", spec->seed);
    if (spec->fit_version > 1)
        sb_number(&b, "fit", (uint64_t)spec->fit_version);
    if (spec->capacity_factor > 0) {
        char text[32]; /* %.17g: the double's exact value, so equal factors give equal text */
        snprintf(text, sizeof text, "%.17g", spec->capacity_factor);
        sb_field(&b, "capacity_factor", text);
        sb_number(&b, "group_images", (uint64_t)spec->group_images);
        sb_number(&b, "bpr", spec->bpr);
        if (spec->has_group_seed)
            sb_number(&b, "group_seed", spec->group_seed);
    }
    if (shard && !job_only) {
        char text[32];
        snprintf(text, sizeof text, "%d/%d", spec->shard_index, spec->shard_count);
        sb_field(&b, "shard", text);
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* The fields that make up the identity (all that rs_store_find_run needs). */
static const char *bad_identity(const rs_run_spec *spec)
{
    if (!spec->model_sha256 || !spec->data || !spec->protocol)
        return "no model sha256, data or protocol";
    if (spec->offset < 0 || spec->count < 0)
        return "negative offset or count";
    if (spec->num_views < 1 || !spec->view_specs)
        return "no views";
    for (int v = 0; v < spec->num_views; v++)
        if (!spec->view_specs[v])
            return "a view spec is missing";
    if (spec->shard_count < 0 || (spec->shard_count > 0 &&
                                  (spec->shard_index < 0 || spec->shard_index >= spec->shard_count ||
                                   spec->offset < spec->job_offset ||
                                   spec->offset + (int64_t)spec->count > spec->job_offset + (int64_t)spec->job_count)))
        return "the shard lies outside its job";
    if (spec->capacity_factor < 0 || (spec->capacity_factor > 0 && spec->group_images < 1))
        return "a capacity factor needs a dispatch group";
    if (spec->has_group_seed && !(spec->capacity_factor > 0))
        return "a group seed needs a capacity factor";
    return NULL;
}

/* With FULL, also what rs_store_begin_run records and the batch writer relies on. */
static int check_spec(const rs_store *s, const rs_run_spec *spec, bool full, rs_error *err)
{
    const char *bad = bad_identity(spec);
    if (!bad && full) {
        if (!spec->model_path)
            bad = "no model path";
        else if (spec->num_layers < 1 || spec->num_layers > 64 || !spec->layer_blocks)
            bad = "MoE layers must number 1 to 64";
        else if (spec->num_experts < 1 || spec->num_experts > 256)
            bad = "expert ids are stored as bytes: at most 256 experts";
        else if (spec->record_k < 1 || spec->record_k > spec->num_experts)
            bad = "record_k must lie in 1 .. num_experts";
        else if (spec->patches < 1 || spec->patches != spec->grid_h * spec->grid_w ||
                 spec->tokens != spec->patches + (spec->has_cls ? 1 : 0))
            bad = "tokens, patches and grid do not agree";
        else if (spec->patches > INT16_MAX)
            bad = "patch matches are stored as int16: at most 32767 patches";
        else if (spec->num_classes < 1)
            bad = "no classes";
        else if (spec->top_k < 1 || spec->top_k > spec->record_k)
            bad = "top_k must lie in 1 .. record_k";
        else if (spec->channels < 1 || spec->image_h < 1 || spec->image_w < 1)
            bad = "no input shape";
    }
    return bad ? rs_error_set(err, RS_EINVAL, "%s: run spec: %s", s->path, bad) : 0;
}

int rs_store_find_run(rs_store *store, const rs_run_spec *spec, rs_run_info *info, rs_error *err)
{
    int rc = check_spec(store, spec, false, err);
    if (rc)
        return rc;
    char *identity = run_identity(spec, false);
    if (!identity)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
    sqlite3_stmt *st;
    rc = sqlite3_prepare_v2(store->db, "SELECT id FROM runs WHERE identity = ?", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        free(identity);
        return db_fail(store, rc, "looking up a run", err);
    }
    sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    free(identity);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return db_fail(store, rc, "looking up a run", err);
    rc = rs_store_get_run(store, id, info, err);
    return rc ? rc : 1;
}

int rs_store_begin_run(rs_store *store, const rs_run_spec *spec, int64_t *run_id, rs_error *err)
{
    if (store->read_only)
        return read_only_fail(store, err);
    int rc = check_spec(store, spec, true, err);
    if (rc)
        return rc;
    char *identity = run_identity(spec, false), *job = spec->shard_count > 0 ? run_identity(spec, true) : NULL;
    char layers[1024] = ""; /* 64 ints and commas at most */
    for (int l = 0, n = 0; l < spec->num_layers; l++)
        n += snprintf(layers + n, sizeof layers - (size_t)n, l ? ",%d" : "%d", spec->layer_blocks[l]);
    if (!identity || (spec->shard_count > 0 && !job)) {
        free(identity);
        free(job);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
    }

    sqlite3_stmt *st = NULL;
    const char *what = "starting a run";
    if ((rc = run_cached(store, ST_BEGIN, what, err))) {
        free(identity);
        free(job);
        return rc;
    }
    /* The model row is shared by every run of the same checkpoint. */
    what = "recording the model";
    rc = sqlite3_prepare_v2(store->db,
                            "INSERT INTO models (sha256, path, config, params, labels) VALUES (?, ?, ?, ?, ?)"
                            " ON CONFLICT (sha256) DO NOTHING",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, spec->model_sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, spec->model_path, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, spec->model_config, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, spec->model_params);
        sqlite3_bind_text(st, 5, spec->model_labels, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(store->db);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_OK)
        goto fail;

    what = "recording the run";
    rc = sqlite3_prepare_v2(
        store->db,
        "INSERT INTO runs (model_id, identity, model_path, data, first_image, image_count, protocol,"
        " num_views, seed, num_layers, layers, tokens, patches, grid_h, grid_w, record_k, num_experts,"
        " num_classes, has_cls, command, version, status, images_total, images_done, started, top_k, channels,"
        " image_h, image_w, shard_index, shard_count, job_first, job_count, job_identity)"
        " VALUES ((SELECT id FROM models WHERE sha256 = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
        " ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, 'running', ?6, 0, ?22, ?23, ?24, ?25, ?26,"
        " ?27, ?28, ?29, ?30, ?31)",
        -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, spec->model_sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, identity, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, spec->model_path, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, spec->data, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, spec->offset);
        sqlite3_bind_int(st, 6, spec->count);
        sqlite3_bind_text(st, 7, spec->protocol, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 8, spec->num_views);
        sqlite3_bind_int64(st, 9, (int64_t)spec->seed);
        sqlite3_bind_int(st, 10, spec->num_layers);
        sqlite3_bind_text(st, 11, layers, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 12, spec->tokens);
        sqlite3_bind_int(st, 13, spec->patches);
        sqlite3_bind_int(st, 14, spec->grid_h);
        sqlite3_bind_int(st, 15, spec->grid_w);
        sqlite3_bind_int(st, 16, spec->record_k);
        sqlite3_bind_int(st, 17, spec->num_experts);
        sqlite3_bind_int(st, 18, spec->num_classes);
        sqlite3_bind_int(st, 19, spec->has_cls);
        sqlite3_bind_text(st, 20, spec->command, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 21, spec->version, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 22, now_seconds());
        sqlite3_bind_int(st, 23, spec->top_k);
        sqlite3_bind_int(st, 24, spec->channels);
        sqlite3_bind_int(st, 25, spec->image_h);
        sqlite3_bind_int(st, 26, spec->image_w);
        if (job) { /* unbound parameters are NULL: an ordinary run */
            sqlite3_bind_int(st, 27, spec->shard_index);
            sqlite3_bind_int(st, 28, spec->shard_count);
            sqlite3_bind_int(st, 29, spec->job_offset);
            sqlite3_bind_int(st, 30, spec->job_count);
            sqlite3_bind_text(st, 31, job, -1, SQLITE_STATIC);
        }
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(store->db);
    }
    sqlite3_finalize(st);
    st = NULL;
    free(job);
    job = NULL;
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        rollback(store);
        free(identity);
        return rs_error_set(err, RS_EINVAL, "%s: an identical run is recorded already (find it with rs_store_find_run)",
                            store->path);
    }
    if (rc != SQLITE_OK)
        goto fail;
    int64_t id = sqlite3_last_insert_rowid(store->db);

    what = "recording the run's dispatch";
    if (spec->capacity_factor > 0 &&
        (rc = sqlite3_prepare_v2(store->db, "UPDATE runs SET capacity_factor = ?, group_images = ?, bpr = ?,"
                                            " group_seed = ? WHERE id = ?", -1, &st, NULL)) == SQLITE_OK) {
        sqlite3_bind_double(st, 1, spec->capacity_factor);
        sqlite3_bind_int(st, 2, spec->group_images);
        sqlite3_bind_int(st, 3, spec->bpr);
        if (spec->has_group_seed) /* unbound: NULL, data order */
            sqlite3_bind_int64(st, 4, (int64_t)spec->group_seed);
        sqlite3_bind_int64(st, 5, id);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(store->db);
        sqlite3_finalize(st);
        st = NULL;
    }
    if (rc != SQLITE_OK)
        goto fail;

    what = "recording the views";
    rc = sqlite3_prepare_v2(store->db, "INSERT INTO views (run_id, view, spec) VALUES (?, ?, ?)", -1, &st, NULL);
    for (int v = 0; rc == SQLITE_OK && v < spec->num_views; v++) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int(st, 2, v);
        sqlite3_bind_text(st, 3, spec->view_specs[v], -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(store->db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_OK)
        goto fail;
    free(identity);
    identity = NULL;
    if ((rc = run_cached(store, ST_COMMIT, "committing the new run", err))) {
        rollback(store);
        return rc;
    }
    *run_id = id;
    return 0;
fail:
    free(identity);
    free(job);
    rc = db_fail(store, rc, what, err);
    rollback(store);
    return rc;
}

void rs_run_model_label(const rs_run_info *info, char *buf, size_t size)
{
    const char *path = info && info->model_path ? info->model_path : "?";
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t len = strlen(name);
    const char *ext = ".safetensors";
    if (len > strlen(ext) && !strcmp(name + len - strlen(ext), ext))
        len -= strlen(ext);
    snprintf(buf, size, "%.*s (%.12s)", (int)len, name, info && info->model_sha256 ? info->model_sha256 : "?");
}

void rs_run_info_clear(rs_run_info *info)
{
    if (!info)
        return;
    free(info->model_path);
    free(info->model_sha256);
    free(info->data);
    free(info->protocol);
    free(info->error);
    free(info->command);
    free(info->version);
    free(info->job_identity);
    free(info->method);
    if (info->class_names)
        for (int i = 0; i < info->num_class_names; i++)
            free(info->class_names[i]);
    free(info->class_names);
    if (info->view_specs)
        for (int v = 0; v < info->num_views; v++)
            free(info->view_specs[v]);
    free(info->view_specs);
    memset(info, 0, sizeof *info);
}

/* The class names of a JSON array (models.labels) into INFO; anything else leaves none. */
static int parse_labels(const char *text, rs_run_info *info)
{
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    int rc = 0;
    if (json_is_array(root) && json_array_size(root) > 0 && json_array_size(root) <= 1000000) {
        size_t n = json_array_size(root);
        if (!(info->class_names = calloc(n, sizeof *info->class_names)))
            rc = RS_ENOMEM;
        for (size_t i = 0; i < n && !rc; i++) {
            const char *name = json_string_value(json_array_get(root, i));
            if (!(info->class_names[i] = strdup(name ? name : "")))
                rc = RS_ENOMEM;
        }
        info->num_class_names = (int)n;
    }
    json_decref(root);
    return rc;
}

/* The run's dispatch settings (schema 4; older stores have none: no capacity) and group
 * seed (schema 5; older stores: data order). */
static int read_dispatch(rs_store *s, int64_t run_id, rs_run_info *info, rs_error *err)
{
    if (s->schema < 4)
        return 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db,
                                s->schema < 5 ? "SELECT capacity_factor, group_images, bpr, NULL FROM runs WHERE id = ?"
                                              : "SELECT capacity_factor, group_images, bpr, group_seed FROM runs"
                                                " WHERE id = ?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, "reading a run's dispatch", err);
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        info->capacity_factor = sqlite3_column_double(st, 0);
        info->group_images = sqlite3_column_int(st, 1);
        info->bpr = sqlite3_column_int(st, 2) != 0;
        info->has_group_seed = sqlite3_column_type(st, 3) != SQLITE_NULL;
        info->group_seed = (uint64_t)sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_fail(s, rc, "reading a run's dispatch", err);
}

int rs_store_get_run(rs_store *store, int64_t run_id, rs_run_info *info, rs_error *err)
{
    rs_run_info_clear(info);
    sqlite3_stmt *st;
#define RUN_COMMON_COLUMNS                                                                                 \
    "SELECT r.status, r.images_total, r.images_done, r.model_path, m.sha256, r.data, r.protocol, r.error,"    \
    " r.command, r.version, r.num_views, r.first_image, r.image_count, r.num_layers, r.layers, r.tokens,"    \
    " r.patches, r.grid_h, r.grid_w, r.record_k, r.num_experts, r.num_classes, r.has_cls, r.seed,"            \
    " r.started, r.finished, "
#define RUN_FROM " FROM runs r JOIN models m ON m.id = r.model_id WHERE r.id = ?"
/* Provenance inside the stored config (every schema): no schema change needed. */
#define RUN_PROVENANCE_COLUMNS                                                                             \
    ", (CASE WHEN json_valid(m.config) AND json_type(m.config, '$.method') = 'text'"                        \
    " AND length(json_extract(m.config, '$.method')) BETWEEN 1 AND 31"                                      \
    " THEN json_extract(m.config, '$.method') END)"                                                        \
    ", (CASE WHEN json_valid(m.config) AND json_type(m.config, '$.train_seed') = 'integer'"                 \
    " AND json_extract(m.config, '$.train_seed') >= 0 THEN json_extract(m.config, '$.train_seed') ELSE -1 END)"
    static const char *const select[3] = {
        RUN_COMMON_COLUMNS V1_RUN_COLUMNS ", " V2_SHARD_COLUMNS RUN_PROVENANCE_COLUMNS RUN_FROM,
        RUN_COMMON_COLUMNS V2_RUN_COLUMNS ", " V2_SHARD_COLUMNS RUN_PROVENANCE_COLUMNS RUN_FROM,
        RUN_COMMON_COLUMNS V2_RUN_COLUMNS ", " V3_SHARD_COLUMNS RUN_PROVENANCE_COLUMNS RUN_FROM};
    _Static_assert(RS_STORE_SCHEMA == 5, "get_run reads schemas 1, 2 and 3 or later (schemas 4 and 5 add only "
                                         "what read_dispatch reads, and schema 5 routing.executed)");
    int version = store->schema < 1 ? 1 : store->schema > 3 ? 3 : store->schema;
    int rc = sqlite3_prepare_v2(store->db, select[version - 1], -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(store, rc, "reading a run", err);
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE)
            return rs_error_set(err, RS_EINVAL, "%s: no run %" PRId64, store->path, run_id);
        return db_fail(store, rc, "reading a run", err);
    }
    info->id = run_id;
    info->status = status_from_name((const char *)sqlite3_column_text(st, 0));
    info->images_total = sqlite3_column_int(st, 1);
    info->images_done = sqlite3_column_int(st, 2);
    info->model_path = dup_text(sqlite3_column_text(st, 3));
    info->model_sha256 = dup_text(sqlite3_column_text(st, 4));
    info->data = dup_text(sqlite3_column_text(st, 5));
    info->protocol = dup_text(sqlite3_column_text(st, 6));
    info->error = dup_text(sqlite3_column_text(st, 7));
    info->command = dup_text(sqlite3_column_text(st, 8));
    info->version = dup_text(sqlite3_column_text(st, 9));
    int num_views = sqlite3_column_int(st, 10);
    info->offset = sqlite3_column_int(st, 11);
    info->count = sqlite3_column_int(st, 12);
    info->num_layers = sqlite3_column_int(st, 13);
    const char *layers = (const char *)sqlite3_column_text(st, 14);
    for (int l = 0; l < info->num_layers && l < 64 && layers; l++) {
        char *end;
        info->layer_blocks[l] = (int)strtol(layers, &end, 10);
        layers = *end == ',' ? end + 1 : end;
    }
    info->tokens = sqlite3_column_int(st, 15);
    info->patches = sqlite3_column_int(st, 16);
    info->grid_h = sqlite3_column_int(st, 17);
    info->grid_w = sqlite3_column_int(st, 18);
    info->record_k = sqlite3_column_int(st, 19);
    info->num_experts = sqlite3_column_int(st, 20);
    info->num_classes = sqlite3_column_int(st, 21);
    info->has_cls = sqlite3_column_int(st, 22) != 0;
    info->seed = (uint64_t)sqlite3_column_int64(st, 23);
    info->started = sqlite3_column_double(st, 24);
    info->finished = sqlite3_column_double(st, 25); /* NULL reads as 0 */
    info->top_k = sqlite3_column_int(st, 26);
    info->channels = sqlite3_column_int(st, 27);
    info->image_h = sqlite3_column_int(st, 28);
    info->image_w = sqlite3_column_int(st, 29);
    if (info->top_k < 1 || info->top_k > info->record_k)
        info->top_k = info->record_k;
    if (sqlite3_column_type(st, 32) != SQLITE_NULL) {
        info->shard_index = sqlite3_column_int(st, 31);
        info->shard_count = sqlite3_column_int(st, 32);
        info->job_offset = sqlite3_column_int(st, 33);
        info->job_count = sqlite3_column_int(st, 34);
        info->job_identity = dup_text(sqlite3_column_text(st, 35));
    }
    info->method = dup_text(sqlite3_column_text(st, 36));
    info->train_seed = sqlite3_column_int64(st, 37);
    bool oom = parse_labels((const char *)sqlite3_column_text(st, 30), info) != 0 || !info->model_path || !info->model_sha256 || !info->data || !info->protocol ||
               (sqlite3_column_type(st, 7) != SQLITE_NULL && !info->error) ||
               (sqlite3_column_type(st, 8) != SQLITE_NULL && !info->command) ||
               (sqlite3_column_type(st, 9) != SQLITE_NULL && !info->version) ||
               (sqlite3_column_type(st, 35) != SQLITE_NULL && !info->job_identity) ||
               (sqlite3_column_type(st, 36) != SQLITE_NULL && !info->method);
    sqlite3_finalize(st);
    if (oom || !(info->view_specs = calloc((size_t)(num_views > 0 ? num_views : 1), sizeof *info->view_specs))) {
        rs_run_info_clear(info);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
    }
    info->num_views = num_views;
    if ((rc = read_dispatch(store, run_id, info, err))) {
        rs_run_info_clear(info);
        return rc;
    }

    rc = sqlite3_prepare_v2(store->db, "SELECT view, spec FROM views WHERE run_id = ? ORDER BY view", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        rs_run_info_clear(info);
        return db_fail(store, rc, "reading a run's views", err);
    }
    sqlite3_bind_int64(st, 1, run_id);
    int found = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int v = sqlite3_column_int(st, 0);
        if (v >= 0 && v < num_views && !info->view_specs[v]) {
            if (!(info->view_specs[v] = dup_text(sqlite3_column_text(st, 1)))) {
                rc = SQLITE_NOMEM;
                break;
            }
            found++;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rs_run_info_clear(info);
        return db_fail(store, rc, "reading a run's views", err);
    }
    if (found != num_views) {
        rs_run_info_clear(info);
        return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " has %d of its %d view specs", store->path,
                            run_id, found, num_views);
    }
    return 0;
}

int rs_store_set_status(rs_store *store, int64_t run_id, rs_run_status status, const char *error,
                        rs_error *err)
{
    if (store->read_only)
        return read_only_fail(store, err);
    if ((int)status < 0 || status > RS_RUN_INTERRUPTED)
        return rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 ": unknown status %d", store->path, run_id,
                            (int)status);
    /* A run that stops (done, failed, interrupted) gets its finish time; one that resumes
     * loses it and any old error. The error text is kept for failed and interrupted runs. */
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(store->db, "UPDATE runs SET status = ?, finished = ?, error = ? WHERE id = ?", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(store, rc, "setting a run's status", err);
    sqlite3_bind_text(st, 1, status_names[status], -1, SQLITE_STATIC);
    if (status == RS_RUN_RUNNING)
        sqlite3_bind_null(st, 2);
    else
        sqlite3_bind_double(st, 2, now_seconds());
    if (status == RS_RUN_FAILED || status == RS_RUN_INTERRUPTED)
        sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, run_id);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_fail(store, rc, "setting a run's status", err);
    if (sqlite3_changes(store->db) == 0)
        return rs_error_set(err, RS_EINVAL, "%s: no run %" PRId64, store->path, run_id);
    return 0;
}

int rs_store_list_runs(rs_store *store, rs_run_info **runs, int *count, rs_error *err)
{
    *runs = NULL;
    *count = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(store->db, "SELECT id FROM runs ORDER BY id", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(store, rc, "listing runs", err);
    int64_t *ids = NULL;
    int n = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            int64_t *p = realloc(ids, sizeof *ids * (size_t)(cap = cap ? 2 * cap : 16));
            if (!p) {
                rc = SQLITE_NOMEM;
                break;
            }
            ids = p;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(ids);
        return db_fail(store, rc, "listing runs", err);
    }
    rs_run_info *list = calloc((size_t)(n ? n : 1), sizeof *list);
    if (!list) {
        free(ids);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
    }
    for (int i = 0; i < n; i++) {
        if ((rc = rs_store_get_run(store, ids[i], &list[i], err))) {
            for (int j = 0; j < i; j++)
                rs_run_info_clear(&list[j]);
            free(list);
            free(ids);
            return rc;
        }
    }
    free(ids);
    *runs = list;
    *count = n;
    return 0;
}

/* ---- batches ----------------------------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static float get_f32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The part of a run the batch writer checks against. */
typedef struct run_state {
    int offset, count, done, views, layers, tokens, record_k, experts, patches;
} run_state;

static int read_run_state(rs_store *s, int64_t run_id, run_state *rs, rs_error *err)
{
    sqlite3_stmt *st;
    int rc = stmt(s, ST_RUN_STATE, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int *fields[] = {&rs->offset, &rs->count, &rs->done,     &rs->views,  &rs->layers,
                         &rs->tokens, &rs->record_k, &rs->experts, &rs->patches};
        for (int i = 0; i < 9; i++)
            *fields[i] = sqlite3_column_int(st, i);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return rs_error_set(err, RS_EINVAL, "%s: no run %" PRId64, s->path, run_id);
    return rc == SQLITE_ROW ? 0 : db_fail(s, rc, "reading the run's progress", err);
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
        put_f32(buf + 4 * (size_t)t, obj[t]);
    sqlite3_stmt *st;
    int rc = stmt(s, ST_ATTACK, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, b->first + i);
    sqlite3_bind_int(st, 3, v);
    sqlite3_bind_double(st, 4, b->attack_linf[iv]);
    sqlite3_bind_double(st, 5, b->attack_l2[iv]);
    sqlite3_bind_int(st, 6, steps);
    sqlite3_bind_blob(st, 7, buf, 4 * (steps + 1), SQLITE_STATIC);
    return step_done(s, st, "writing an attack", err);
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

/* Inserts the rows of BATCH; the caller holds the transaction. */
static int insert_batch(rs_store *s, int64_t run_id, const rs_batch *b, rs_error *err)
{
    const int V = b->num_views, L = b->num_layers, T = b->tokens, R = b->record_k, E = b->num_experts,
              Np = b->patches;
    size_t n_idx = (size_t)T * R, n_gate = (size_t)T * R * 4, n_probs = (size_t)T * E * 2,
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
    if ((rc = stmt(s, ST_SAMPLE, &sample, err)) || (rc = stmt(s, ST_PREDICTION, &pred, err)) ||
        (rc = stmt(s, ST_ROUTING, &routing, err)))
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
        if ((rc = step_done(s, sample, "writing a sample", err)))
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
                put_u16(match + 2 * (size_t)p, (uint16_t)m);
            }
            sqlite3_bind_int(pred, 3, v);
            sqlite3_bind_int(pred, 4, b->predicted[iv]);
            sqlite3_bind_double(pred, 5, b->pred_prob[iv]);
            sqlite3_bind_text(pred, 6, b->view_params[iv], -1, SQLITE_STATIC);
            sqlite3_bind_blob(pred, 7, match, (int)n_match, SQLITE_STATIC);
            if ((rc = step_done(s, pred, "writing a prediction", err)))
                return rc;

            sqlite3_bind_int(routing, 3, v);
            for (int l = 0; l < L; l++) {
                size_t row = iv * L + l;
                const int32_t *ti = b->top_idx + row * n_idx;
                const float *tg = b->top_gate + row * n_idx;
                const float *pr = b->probs + row * (size_t)T * E;
                for (size_t k = 0; k < n_idx; k++) {
                    if (ti[k] < 0 || ti[k] >= E)
                        return rs_error_set(err, RS_EINVAL,
                                            "%s: run %" PRId64 ": image %d view %d layer %d: expert id %d, "
                                            "the model has %d",
                                            s->path, run_id, image, v, l, (int)ti[k], E);
                    idx[k] = (uint8_t)ti[k];
                    put_f32(gate + 4 * k, tg[k]);
                }
                for (size_t k = 0; k < (size_t)T * E; k++)
                    put_u16(probs + 2 * k, rs_float_to_half(pr[k]));
                sqlite3_bind_int(routing, 4, l);
                sqlite3_bind_blob(routing, 5, idx, (int)n_idx, SQLITE_STATIC);
                sqlite3_bind_blob(routing, 6, gate, (int)n_gate, SQLITE_STATIC);
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
                if ((rc = step_done(s, routing, "writing routing", err)))
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
        return read_only_fail(store, err);
    const rs_batch *b = batch;
    if (b->count < 0 || !b->predicted || !b->pred_prob || !b->view_params || !b->match || !b->top_idx ||
        !b->top_gate || !b->probs ||
        (b->executed && (!b->forced || b->top_k < 1 || b->top_k > b->record_k)) ||
        (b->attack_steps && (!b->attack_linf || !b->attack_l2 || !b->attack_objective)))
        return rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 ": incomplete batch", store->path, run_id);

    /* Under the write lock, so the position checked is the position written after. */
    int rc = run_cached(store, ST_BEGIN, "starting a batch", err);
    if (rc)
        return rc;
    run_state rs;
    if ((rc = read_run_state(store, run_id, &rs, err)))
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
    if ((rc = insert_batch(store, run_id, b, err)))
        goto fail;
    sqlite3_stmt *st;
    if ((rc = stmt(store, ST_PROGRESS, &st, err)))
        goto fail;
    sqlite3_bind_int(st, 1, rs.done + b->count);
    sqlite3_bind_int64(st, 2, run_id);
    if ((rc = step_done(store, st, "recording progress", err)) ||
        (rc = run_cached(store, ST_COMMIT, "committing a batch", err)))
        goto fail;
    return 0;
fail:
    rollback(store);
    return rc;
}

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

/* Run SHARD_RUN's group seed into the merged run RUN_ID. Shards older than schema 5 have
 * no such column: they ran in data order, which the merged run's NULL already says. */
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
    return exec_ids(s, "UPDATE main.runs SET group_seed = (SELECT group_seed FROM shard.runs WHERE id = ?2)"
                       " WHERE id = ?1",
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
        sqlite3_bind_double(st, 4, now_seconds());
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
                         const char *version, int64_t *run_id, rs_run_status *status, rs_error *err)
{
    if (store->read_only)
        return read_only_fail(store, err);
    int rc = attach_shard(store, shard_path, err);
    if (rc)
        return rc;
    if ((rc = run_cached(store, ST_BEGIN, "starting the merged run", err))) {
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
            *status = status_from_name((const char *)sqlite3_column_text(st, 1));
        }
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE) {
            *status = RS_RUN_RUNNING;
            rc = create_merged_run(store, shard_run, command, version, run_id);
        }
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    if (rc == SQLITE_OK)
        rc = run_cached(store, ST_COMMIT, "committing the merged run", err);
    else
        rc = db_fail(store, rc, "starting the merged run", err);
    if (rc)
        rollback(store);
    detach_shard(store);
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
    int rc = run_cached(s, ST_BEGIN, "copying a shard", err);
    if (rc)
        return rc;
    size_t n = sizeof copies / sizeof *copies - !schema->attacks;
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
        rc = exec_ids(s, copies[i], run_id, shard_run, first, last);
    if (rc == SQLITE_OK)
        return run_cached(s, ST_COMMIT, "committing a copied batch", err);
    rc = db_fail(s, rc, "copying a shard", err);
    rollback(s);
    return rc;
}

/* What the attached shard's schema holds (shard stores of an older routerscope read in place). */
static int read_shard_schema(rs_store *s, shard_schema *schema, rs_error *err)
{
    int64_t attacks = 0, executed = 0;
    int rc = query_int(s, "SELECT count(*) FROM shard.sqlite_master WHERE type = 'table' AND name = 'attacks'",
                       "reading the shard's schema", &attacks, err);
    if (!rc)
        rc = query_int(s, "SELECT count(*) FROM pragma_table_info('routing', 'shard') WHERE name = 'executed'",
                       "reading the shard's schema", &executed, err);
    *schema = (shard_schema){.attacks = attacks > 0, .executed = executed > 0};
    return rc;
}

int rs_store_copy_images(rs_store *store, int64_t run_id, const char *shard_path, int64_t shard_run, int first,
                         int last, int batch, rs_error *err)
{
    if (store->read_only)
        return read_only_fail(store, err);
    run_state rs;
    int rc = read_run_state(store, run_id, &rs, err);
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

/* ---- the writer's lock ------------------------------------------------------------------- */

int rs_store_lock_file(const char *path, bool create, int *fd_out, rs_error *err)
{
    *fd_out = -1;
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    if (fd < 0)
        return rs_error_set(err, RS_EIO, "%s: %s", path, errno == ENOENT ? "no such database" : strerror(errno));
    /* flock and SQLite's POSIX locks do not interact on Linux. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        close(fd);
        return rs_error_set(err, RS_EIO, "%s: %s", path,
                            busy ? "another routerscope replay is writing this database (or a merge)" : strerror(errno));
    }
    *fd_out = fd;
    return 0;
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
    c->match_image = c->match_view = -1;
    rs_run_info_clear(&info);
    size_t tr = (size_t)c->tokens * c->record_k;
    c->match = malloc(sizeof *c->match * (size_t)c->patches);
    c->top_idx = malloc(tr);
    c->kept = malloc(tr);
    c->executed = malloc(tr);
    c->top_gate = malloc(sizeof *c->top_gate * tr);
    c->probs = malloc(sizeof *c->probs * (size_t)c->tokens * c->num_experts);
    if (!c->match || !c->top_idx || !c->kept || !c->executed || !c->top_gate || !c->probs) {
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
        return db_fail(store, rc, "reading routing", err);
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
        return db_fail(s, rc, "reading routing", err);
    sqlite3_stmt *st = c->stmt;
    rec->image = sqlite3_column_int(st, 0);
    rec->view = sqlite3_column_int(st, 1);
    rec->layer = sqlite3_column_int(st, 2);
    rec->label = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 3);
    rec->predicted = sqlite3_column_int(st, 4);
    rec->pred_prob = (float)sqlite3_column_double(st, 5);

    size_t tr = (size_t)c->tokens * c->record_k, te = (size_t)c->tokens * c->num_experts;
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
            c->match[p] = (int16_t)get_u16(match + 2 * (size_t)p);
        c->match_image = rec->image;
        c->match_view = rec->view;
    }
    for (size_t k = 0; k < tr; k++) {
        c->top_idx[k] = idx[k];
        c->top_gate[k] = get_f32(gate + 4 * k);
    }
    for (size_t k = 0; k < te; k++)
        c->probs[k] = rs_half_to_float(get_u16(probs + 2 * k));
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
    rec->probs = c->probs;
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
            return db_fail(store, rc, "reading attacks", err);
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
        return db_fail(c->store, rc, "reading attacks", err);
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
        c->objective[t] = get_f32(blob + 4 * t);
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
