/* db.c — the store's database: opening and closing, the writer's lock, the schema and its
 * migrations, the WAL checkpoint, and the helpers the other parts share (contract in
 * store.h; the shared internals in store_internal.h). */
#include "store_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* migrations[n] turns schema version n into n + 1; version 0 is an empty database. From
 * version 4 on, a step is a function (migrate_v4, migrate_v5, migrate_v6 below) so that
 * several features can each add their part to one version. */
static const char *const migrations[] = {schema_v1, schema_v2, schema_v3};
_Static_assert(sizeof migrations / sizeof *migrations + 4 == RS_STORE_SCHEMA,
               "one migration step per schema version: three texts, then migrate_v4, _v5, _v6 and _v7");

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

/* The statements kept prepared for the life of the store (ids in store_internal.h). */
static const char *const statement_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_RUN_STATE] = "SELECT first_image, image_count, images_done, num_views, num_layers, tokens,"
                     " record_k, num_experts, patches, record = 'topk' FROM runs WHERE id = ?",
    [ST_SAMPLE] = "INSERT INTO samples (run_id, image, label) VALUES (?, ?, ?)",
    [ST_PREDICTION] = "INSERT INTO predictions (run_id, image, view, predicted, prob, params, match)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?)",
    [ST_ROUTING] = "INSERT INTO routing (run_id, image, view, layer, top_idx, top_gate, probs, kept, executed)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_PROGRESS] = "UPDATE runs SET images_done = ? WHERE id = ?",
    [ST_ATTACK] = "INSERT INTO attacks (run_id, image, view, linf, l2, steps, objective) VALUES (?, ?, ?, ?, ?, ?, ?)",
};

/* ---- errors ---------------------------------------------------------------------------- */

/* Turns SQLite result RC into one line naming the file; WHAT says what we were doing. */
int store_db_fail(const rs_store *s, int rc, const char *what, rs_error *err)
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

int store_read_only_fail(const rs_store *s, rs_error *err)
{
    return rs_error_set(err, RS_EINVAL, "%s: opened read-only, cannot write", s->path);
}

/* ---- small helpers --------------------------------------------------------------------- */

double store_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int store_exec(rs_store *s, const char *sql, const char *what, rs_error *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_db_fail(s, rc, what, err);
}

/* The first column of the one-row result of SQL, an integer. */
int store_query_int(rs_store *s, const char *sql, const char *what, int64_t *out, rs_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(s, rc, what, err);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : store_db_fail(s, rc, what, err);
}

/* Statement ID, prepared on first use and kept for the life of the store. */
int store_stmt(rs_store *s, int id, sqlite3_stmt **out, rs_error *err)
{
    *out = NULL;
    if (!s->st[id]) {
        int rc = sqlite3_prepare_v3(s->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->st[id], NULL);
        if (rc != SQLITE_OK)
            return store_db_fail(s, rc, "preparing a statement", err);
    }
    *out = s->st[id];
    return 0;
}

/* Runs a cached statement that returns no rows, and resets it so it holds no lock. */
int store_step_done(rs_store *s, sqlite3_stmt *st, const char *what, rs_error *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_db_fail(s, rc, what, err);
}

int store_run_cached(rs_store *s, int id, const char *what, rs_error *err)
{
    sqlite3_stmt *st;
    int rc = store_stmt(s, id, &st, err);
    return rc ? rc : store_step_done(s, st, what, err);
}

/* Ends a failed transaction. SQLite rolls some errors (I/O, disk full) back by itself, after
 * which an explicit ROLLBACK would fail; the error already reported is the one that counts. */
void store_rollback(rs_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        store_run_cached(s, ST_ROLLBACK, "rolling back", NULL);
}

/* ---- open / close ---------------------------------------------------------------------- */

/* Schema 4, dispatch: whether each recorded choice was kept (routing.kept, NULL for runs
 * without capacity) and the run's dispatch settings (NULL when it has none). Older runs read
 * as runs without capacity, which is what they were. */
static int migrate_v4_dispatch(rs_store *s, rs_error *err)
{
    return store_exec(s,
                "ALTER TABLE routing ADD COLUMN kept BLOB;"            /* T*R uint8 0/1 */
                "ALTER TABLE runs ADD COLUMN capacity_factor REAL;"
                "ALTER TABLE runs ADD COLUMN group_images INTEGER;"
                "ALTER TABLE runs ADD COLUMN bpr INTEGER;",
                "upgrading the schema to version 4 (dispatch)", err);
}

static int migrate_v4_attack(rs_store *s, rs_error *err)
{
    return store_exec(s, schema_v4_attack, "upgrading the schema to version 4 (attacks)", err);
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
    return store_exec(s, "ALTER TABLE runs ADD COLUMN group_seed INTEGER;",
                      "upgrading the schema to version 5 (group seed)", err);
}

/* Schema 5, routing interventions: the experts each token ran (routing.executed, T*k uint8
 * by rank) where its view forced that layer (a route: view), NULL elsewhere, where the
 * router's own top-k ran. Older stores hold no forced views and read as all NULL. */
static int migrate_v5_route(rs_store *s, rs_error *err)
{
    return store_exec(s, "ALTER TABLE routing ADD COLUMN executed BLOB;",
                "upgrading the schema to version 5 (routing interventions)", err);
}

/* Version 4 -> 5: each feature's part of the step. */
static int migrate_v5(rs_store *s, rs_error *err)
{
    int rc = migrate_v5_group_seed(s, err);
    return rc ? rc : migrate_v5_route(s, err);
}

/* Schema 6, checksums: the XXH64 of a run's records ("xxh64:" and 16 hex digits, check.c),
 * written when the run is marked done, so that readers and merge find any byte changed
 * since. NULL for every run of an older store (their records are checked, not hashed) and
 * for runs not done. */
static int migrate_v6(rs_store *s, rs_error *err)
{
    return store_exec(s, "ALTER TABLE runs ADD COLUMN checksum TEXT;", "upgrading the schema to version 6 (checksums)",
                      err);
}

/* Schema 7, record forms: what a run's routing rows hold (store.h, rs_record_form): 'topk'
 * for a run recorded with `replay --record topk` (empty probs BLOBs), NULL for a full run,
 * which every run of an older store is. */
static int migrate_v7(rs_store *s, rs_error *err)
{
    return store_exec(s, "ALTER TABLE runs ADD COLUMN record TEXT;", "upgrading the schema to version 7 (record forms)",
                      err);
}

/* Migration step V -> V + 1 for V >= 3. */
static int migrate_step(rs_store *s, int64_t v, rs_error *err)
{
    return v == 3 ? migrate_v4(s, err) : v == 4 ? migrate_v5(s, err) : v == 5 ? migrate_v6(s, err) : migrate_v7(s, err);
}

/* Brings a database of an older schema version up to date in one transaction. The version is
 * read again under the write lock: another process may have migrated the file since we looked. */
static int migrate(rs_store *s, rs_error *err)
{
    int rc = store_exec(s, "BEGIN IMMEDIATE", "creating the schema", err);
    if (rc)
        return rc;
    int64_t version;
    if ((rc = store_query_int(s, "PRAGMA user_version", "reading the schema version", &version, err)))
        goto fail;
    for (int64_t v = version; v < RS_STORE_SCHEMA; v++) {
        char what[64];
        snprintf(what, sizeof what, "upgrading the schema to version %d", (int)v + 1);
        if ((rc = v < 3 ? store_exec(s, migrations[v], what, err) : migrate_step(s, v, err)))
            goto fail;
    }
    if (version < RS_STORE_SCHEMA) {
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d", RS_STORE_SCHEMA,
                 RS_STORE_APP_ID);
        if ((rc = store_exec(s, sql, "setting the schema version", err)))
            goto fail;
    }
    if ((rc = store_exec(s, "COMMIT", "creating the schema", err)))
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
    int rc = store_exec(s, "BEGIN", "reading the schema", err);
    if (!rc && !(rc = store_query_int(s, "PRAGMA user_version", "reading the schema version", &version, err)) &&
        !(rc = store_query_int(s, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                         "reading the schema", &tables, err)))
        rc = store_query_int(s, "PRAGMA application_id", "reading the schema", &app_id, err);
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
    /* NOMUTEX: one rs_store serves one thread at a time (store.h), so SQLite need not lock its
     * connection on every call (a tenth of a pass over a run went to that). */
    int flags = SQLITE_OPEN_NOMUTEX | (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
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
        rc = store_db_fail(s, rc, "opening", err);
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
    if ((rc = store_exec(s, "PRAGMA foreign_keys = ON", "enabling foreign keys", err)) || (rc = check_schema(s, err)))
        goto fail;
    if (!read_only) {
        /* WAL: readers (stats, reports) never block the writer, and a commit appends to one
         * file. synchronous=NORMAL skips the fsync per commit: with WAL a committed batch
         * still survives the process being killed (the durability the replay promises); only
         * an OS crash or power loss may lose the last batches, never corrupt the file, and
         * a resumed run then redoes them. */
        if ((rc = store_exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL", "switching to WAL", err)))
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
