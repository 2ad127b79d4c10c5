/* fuzz_store_read.c — the store's read path on damaged stores: a valid store, mutated through
 * SQL as the input says, must be refused by the run check (rs_store_check_run) wherever a
 * record is missing or malformed, and never read with fewer rows in silence.
 *
 * The base store is made once per process (base_store): two runs of the same small shapes
 * (3 images, 3 views, 2 MoE layers, 5 tokens, R = k = 2, E = 4), with every kind of row —
 * view 1 attacked (an attacks row per image), view 2 forcing layer 0 (executed masks):
 *   run 1  done, with a capacity factor (kept masks), so with its checksum
 *   run 2  interrupted after 2 of its 3 images, no capacity: no checksum, checked row by row
 *   run 3  done, no capacity, recorded with --record topk (empty probs BLOBs), with its checksum
 * Each input is a list of operations (mutate): pick a table (every table of the schema), a
 * row, a column, and delete the row, truncate, extend or overwrite the value's bytes, or set
 * it to an integer, NULL or text. Then, for each run:
 *   - the check must not crash or leak (ASan, UBSan);
 *   - runs 1 and 3: if any of its records changed while its run, model and view rows did not,
 *     the check must refuse it (its checksum covers every byte of its records);
 *   - a run the check passes holds exactly its images_done samples, images_done x V
 *     predictions and images_done x V x L routing rows (counted here in SQL, apart from the
 *     store's code), and the cursor reads that many records, each with finite probabilities
 *     summing to 1 within 2^-10 (a topk run: none, and gates in [0, 1]) and expert ids < E. */
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "store/store.h"

enum { N = 3, V = 3, L = 2, NP = 4, T = NP + 1, R = 2, K = 2, E = 4, STEPS = 2 };

/* ---- the base store ---------------------------------------------------------------------- */

static const char *const view_specs[V] = {"clean", "base:view=0+pgd:eps=1/255,steps=2,loss=router",
                                          "base:view=0+route:from=0,layers=1"};
static const int blocks[L] = {1, 3};

/* A router distribution of token T (expert 0 tiny: half subnormals) and its top R. */
static void token(int i, int v, int l, int t, float *p, int32_t *top, float *gate)
{
    float sum = 0;
    for (int e = 0; e < E; e++) {
        p[e] = (float)(1 + (i * 7 + v * 5 + l * 3 + t * 11 + e * 13) % 17) * (e == 0 ? 1e-6f : 1.0f);
        sum += p[e];
    }
    for (int e = 0; e < E; e++)
        p[e] /= sum;
    for (int r = 0; r < R; r++) {
        int best = -1;
        for (int e = 0; e < E; e++)
            if ((r == 0 || e != top[0]) && (best < 0 || p[e] > p[best]))
                best = e;
        top[r] = best;
        gate[r] = p[best];
    }
}

static void write_run(rs_store *s, rs_run_spec *spec, int images, bool capacity)
{
    static int32_t labels[N], pred[N * V], top[N * V * L * T * R], executed[N * V * L * T * K];
    static float pprob[N * V], gate[N * V * L * T * R], probs[N * V * L * T * E], linf[N * V], l2[N * V],
        objective[N * V * (STEPS + 1)];
    static int16_t match[N * V * NP];
    static uint8_t kept[N * V * L * T * R];
    static const char *params[N * V];
    static const uint8_t forced[V * L] = {0, 0, 0, 0, 1, 0};
    static const int attack_steps[V] = {0, STEPS, 0};
    for (int i = 0; i < N; i++) {
        labels[i] = i % K;
        for (int v = 0; v < V; v++) {
            int iv = i * V + v;
            pred[iv] = (i + v) % K, pprob[iv] = 0.75f, params[iv] = "{}";
            linf[iv] = 1.0f / 255, l2[iv] = 0.01f;
            for (int q = 0; q <= STEPS; q++)
                objective[iv * (STEPS + 1) + q] = 0.5f + (float)q;
            for (int j = 0; j < NP; j++)
                match[iv * NP + j] = (int16_t)(v == 0 ? j : (j + i) % (NP + 1) - 1);
            for (int l = 0; l < L; l++)
                for (int t = 0; t < T; t++) {
                    size_t row = ((size_t)iv * L + l) * T + t;
                    token(i, v, l, t, probs + row * E, top + row * R, gate + row * R);
                    for (int r = 0; r < R; r++) {
                        kept[row * R + r] = (uint8_t)((t + r) % 3 != 0);
                        executed[row * K + r] = top[row * R + (R - 1 - r)];
                    }
                }
        }
    }
    if (capacity)
        spec->capacity_factor = 1.0, spec->group_images = 1;
    int64_t run;
    rs_error err;
    rs_batch b = {.first = 0, .count = images, .num_views = V, .num_layers = L, .tokens = T, .record_k = R,
                  .num_experts = E, .patches = NP, .labels = labels, .predicted = pred, .pred_prob = pprob,
                  .view_params = params, .match = match, .top_idx = top, .top_gate = gate, .probs = probs,
                  .kept = capacity ? kept : NULL, .top_k = K, .forced = forced, .executed = executed,
                  .attack_steps = attack_steps, .attack_stride = STEPS + 1, .attack_linf = linf, .attack_l2 = l2,
                  .attack_objective = objective};
    if (rs_store_begin_run(s, spec, &run, &err) || rs_store_write_batch(s, run, &b, &err) ||
        rs_store_set_status(s, run, images == N ? RS_RUN_DONE : RS_RUN_INTERRUPTED, "stopped", &err)) {
        fprintf(stderr, "fuzz_store_read: cannot make the base store: %s\n", err.msg);
        abort();
    }
}

/* The base store's bytes, made once (harness state, never the library's). */
static uint8_t *base;
static size_t base_size;

static void base_store(void)
{
    char path[256];
    fz_write("base.db", NULL, 0, path, sizeof path);
    rs_store *s;
    rs_error err;
    if (rs_store_open(path, false, &s, &err))
        abort();
    rs_run_spec spec = {
        .model_path = "m.safetensors", .model_sha256 = "ab", .model_config = "{}", .model_params = 1,
        .data = "fashion-mnist:test", .offset = 0, .count = N, .protocol = "custom", .num_views = V,
        .view_specs = view_specs, .seed = 1, .num_layers = L, .layer_blocks = blocks, .tokens = T, .patches = NP,
        .grid_h = 2, .grid_w = 2, .record_k = R, .num_experts = E, .num_classes = K, .top_k = K, .channels = 1,
        .image_h = 8, .image_w = 8, .has_cls = true};
    write_run(s, &spec, N, true);
    spec.seed = 2, spec.capacity_factor = 0, spec.group_images = 0;
    write_run(s, &spec, N - 1, false);
    spec.seed = 3, spec.record = RS_RECORD_TOPK;
    write_run(s, &spec, N, false);
    rs_store_close(s);
    if (rs_store_checkpoint_file(path, &err))
        abort();
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) || (base_size = (size_t)ftell(f)) == 0 || fseek(f, 0, SEEK_SET) ||
        !(base = malloc(base_size)) || fread(base, 1, base_size, f) != base_size)
        abort();
    fclose(f);
}

/* ---- mutations --------------------------------------------------------------------------- */

typedef struct table {
    const char *name, *keys;    /* keys: the columns that name a row, in order */
    const char *const *columns; /* the columns a mutation may change */
    int ncolumns;
} table;

static const char *const c_models[] = {"id", "sha256", "config", "params", "labels"};
static const char *const c_runs[] = {"id",        "model_id",    "first_image", "image_count", "num_views",
                                     "num_layers", "tokens",      "patches",     "grid_h",      "grid_w",
                                     "record_k",   "num_experts", "num_classes", "has_cls",     "status",
                                     "images_total", "images_done", "top_k",     "capacity_factor", "checksum",
                                     "layers",     "record"};
static const char *const c_views[] = {"run_id", "view", "spec"};
static const char *const c_samples[] = {"run_id", "image", "label"};
static const char *const c_predictions[] = {"run_id", "image", "view", "predicted", "prob", "params", "match"};
static const char *const c_routing[] = {"run_id", "image", "view", "layer", "top_idx", "top_gate",
                                        "probs",  "kept",  "executed"};
static const char *const c_attacks[] = {"run_id", "image", "view", "linf", "l2", "steps", "objective"};
static const table tables[] = {
    {"models", "id", c_models, 5},
    {"runs", "id", c_runs, 22},
    {"views", "run_id, view", c_views, 3},
    {"samples", "run_id, image", c_samples, 3},
    {"predictions", "run_id, image, view", c_predictions, 7},
    {"routing", "run_id, image, view, layer", c_routing, 9},
    {"attacks", "run_id, image, view", c_attacks, 7},
};
enum { NTABLES = sizeof tables / sizeof *tables };

/* The input, read a byte at a time (zeros past its end). */
typedef struct input {
    const uint8_t *p;
    size_t n, at;
} input;

static unsigned next(input *in)
{
    return in->at < in->n ? in->p[in->at++] : 0;
}

/* Binds to ST, from parameter FIRST on, the key of row ROW (in key order) of table T; false
 * when the table has fewer rows. */
static bool bind_row(sqlite3 *db, const table *t, unsigned row, sqlite3_stmt *st, int first)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT %s FROM %s ORDER BY %s LIMIT 1 OFFSET %u", t->keys, t->name, t->keys, row);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return false;
    bool found = sqlite3_step(q) == SQLITE_ROW;
    for (int i = 0; found && i < sqlite3_column_count(q); i++)
        sqlite3_bind_value(st, first + i, sqlite3_column_value(q, i));
    sqlite3_finalize(q);
    return found;
}

/* "k1 = ?2 AND k2 = ?3 ..." for T's keys, parameters from 2 on. */
static void key_where(const table *t, char *buf, size_t size)
{
    char keys[128];
    snprintf(keys, sizeof keys, "%s", t->keys);
    size_t len = 0;
    int i = 2;
    for (char *k = strtok(keys, ", "); k; k = strtok(NULL, ", "), i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s = ?%d", len ? " AND " : "", k, i);
}

/* The new value of a column from its old one: bytes truncated, extended or overwritten (a
 * float16 inf, NaN or zero among the choices), an integer, NULL or text. */
static void new_value(input *in, sqlite3_stmt *st, const void *old, int old_n, int type)
{
    unsigned action = next(in) % 7;
    uint8_t buf[4096];
    size_t n = old_n > 0 && old_n <= (int)sizeof buf - 64 ? (size_t)old_n : 0;
    if (n)
        memcpy(buf, old, n);
    switch (action) {
    case 0: /* truncate */
        n = n ? next(in) % n : 0;
        break;
    case 1: /* extend */
        for (unsigned k = next(in) % 9 + 1; k > 0; k--)
            buf[n++] = (uint8_t)next(in);
        break;
    case 2: /* overwrite one byte */
        if (n)
            buf[((next(in) << 8) | next(in)) % n] ^= (uint8_t)(next(in) | 1);
        break;
    case 3: { /* a float16 special at an even offset: inf, NaN, zero, negative */
        static const uint16_t specials[] = {0x7c00, 0x7e00, 0x0000, 0xbc00, 0x3c00};
        if (n >= 2) {
            size_t at = 2 * ((((size_t)next(in) << 8) | next(in)) % (n / 2));
            uint16_t h = specials[next(in) % 5];
            buf[at] = (uint8_t)h, buf[at + 1] = (uint8_t)(h >> 8);
        }
        break;
    }
    case 4:
        sqlite3_bind_int64(st, 1, (int64_t)(int8_t)next(in));
        return;
    case 5:
        sqlite3_bind_null(st, 1);
        return;
    default:
        sqlite3_bind_text(st, 1, "x", 1, SQLITE_TRANSIENT);
        return;
    }
    if (type == SQLITE_TEXT)
        sqlite3_bind_text(st, 1, (const char *)buf, (int)n, SQLITE_TRANSIENT);
    else if (type == SQLITE_BLOB || type == SQLITE_NULL)
        sqlite3_bind_blob(st, 1, buf, (int)n, SQLITE_TRANSIENT);
    else /* a number: a new one from the bytes */
        sqlite3_bind_int64(st, 1, n ? (int64_t)buf[0] - 1 : 0);
}

/* One operation: delete a row of a table, or change one of its values. Constraint failures
 * (NOT NULL, CHECK, UNIQUE) are the database refusing the change: nothing happens. */
static void mutate(sqlite3 *db, input *in)
{
    const table *t = &tables[next(in) % NTABLES];
    unsigned row = next(in) % 64, column = next(in) % (unsigned)t->ncolumns;
    bool delete = next(in) % 4 == 0;
    char where[160], sql[512];
    key_where(t, where, sizeof where);
    if (delete) /* ?1, never bound, is NULL: the key's parameters are numbered as in an UPDATE */
        snprintf(sql, sizeof sql, "DELETE FROM %s WHERE ?1 IS NULL AND %s", t->name, where);
    else
        snprintf(sql, sizeof sql, "UPDATE %s SET %s = ?1 WHERE %s", t->name, t->columns[column], where);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        abort();
    if (bind_row(db, t, row, st, 2)) {
        if (!delete) {
            char get[320];
            snprintf(get, sizeof get, "SELECT %s FROM %s WHERE %s", t->columns[column], t->name, where);
            sqlite3_stmt *q;
            if (sqlite3_prepare_v2(db, get, -1, &q, NULL) != SQLITE_OK || !bind_row(db, t, row, q, 2))
                abort();
            if (sqlite3_step(q) == SQLITE_ROW)
                new_value(in, st, sqlite3_column_blob(q, 0), sqlite3_column_bytes(q, 0), sqlite3_column_type(q, 0));
            sqlite3_finalize(q);
        }
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
}

/* ---- the oracle -------------------------------------------------------------------------- */

/* FNV-1a over every value (type and bytes) that SQL returns: what a run's rows are, computed
 * apart from the store's own code. */
static uint64_t fingerprint(sqlite3 *db, const char *sql, int64_t run)
{
    uint64_t h = 1469598103934665603ULL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        abort();
    sqlite3_bind_int64(st, 1, run);
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            int type = sqlite3_column_type(st, i);
            const uint8_t *p = sqlite3_column_blob(st, i);
            int n = sqlite3_column_bytes(st, i);
            h = (h ^ (uint64_t)(type + 16 * n)) * 1099511628211ULL;
            for (int k = 0; k < n; k++)
                h = (h ^ p[k]) * 1099511628211ULL;
        }
    sqlite3_finalize(st);
    return h;
}

typedef struct snapshot {
    uint64_t records, owner; /* the run's record rows; its run, model and view rows */
} snapshot;

static snapshot take(sqlite3 *db, int64_t run)
{
    static const char *const records[] = {
        "SELECT * FROM samples WHERE run_id = ?1 ORDER BY image",
        "SELECT * FROM predictions WHERE run_id = ?1 ORDER BY image, view",
        "SELECT * FROM routing WHERE run_id = ?1 ORDER BY image, view, layer",
        "SELECT * FROM attacks WHERE run_id = ?1 ORDER BY image, view"};
    static const char *const owner[] = {"SELECT * FROM runs WHERE id = ?1",
                                        "SELECT m.* FROM models m JOIN runs r ON r.model_id = m.id WHERE r.id = ?1",
                                        "SELECT * FROM views WHERE run_id = ?1 ORDER BY view"};
    snapshot s = {0, 0};
    for (int i = 0; i < 4; i++)
        s.records = s.records * 31 + fingerprint(db, records[i], run);
    for (int i = 0; i < 3; i++)
        s.owner = s.owner * 31 + fingerprint(db, owner[i], run);
    return s;
}

static int64_t count(sqlite3 *db, const char *sql, int64_t run)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        abort();
    sqlite3_bind_int64(st, 1, run);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
}

/* A run the check passed: exactly the rows it must hold, in SQL, and as many sound records
 * through the cursor. */
static void passed_run_is_whole(const char *path, rs_store *store, int64_t run)
{
    rs_run_info info = {0};
    rs_error err;
    if (rs_store_get_run(store, run, &info, &err))
        abort(); /* the check read it */
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        abort();
    int64_t n = info.images_done, lo = info.offset, hi = info.offset + n - 1;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM samples WHERE run_id = ?1 AND image BETWEEN %lld AND %lld",
             (long long)lo, (long long)hi);
    bool whole = count(db, sql, run) == n && count(db, "SELECT count(*) FROM samples WHERE run_id = ?1", run) == n &&
                 count(db, "SELECT count(*) FROM predictions WHERE run_id = ?1", run) == n * info.num_views &&
                 count(db, "SELECT count(*) FROM routing WHERE run_id = ?1", run) ==
                     n * info.num_views * info.num_layers;
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT image * 64 + view) FROM predictions WHERE run_id = ?1"
             " AND image BETWEEN %lld AND %lld AND view BETWEEN 0 AND %d", (long long)lo, (long long)hi,
             info.num_views - 1);
    whole = whole && count(db, sql, run) == n * info.num_views;
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT (image * 64 + view) * 64 + layer) FROM routing WHERE run_id = ?1"
             " AND image BETWEEN %lld AND %lld AND view BETWEEN 0 AND %d AND layer BETWEEN 0 AND %d", (long long)lo,
             (long long)hi, info.num_views - 1, info.num_layers - 1);
    whole = whole && count(db, sql, run) == n * info.num_views * info.num_layers;
    sqlite3_close(db);
    if (!whole) {
        fprintf(stderr, "fuzz_store_read: run %lld passed the check without all its rows\n", (long long)run);
        abort();
    }
    rs_store_cursor *cur;
    if (rs_store_cursor_open(store, run, &cur, &err))
        abort();
    rs_routing_record rec;
    int64_t records = 0;
    int rc;
    while ((rc = rs_store_cursor_next(cur, &rec, &err)) == 1) {
        if (info.record == RS_RECORD_TOPK && rec.probs)
            abort();
        for (int t = 0; t < info.tokens && info.record == RS_RECORD_TOPK; t++)
            for (int r = 0; r < info.record_k; r++) {
                float g = rec.top_gate[(size_t)t * info.record_k + r];
                if (!(g >= 0 && g <= 1) || rec.top_idx[(size_t)t * info.record_k + r] >= info.num_experts)
                    abort();
            }
        for (int t = 0; t < info.tokens && rec.probs; t++) {
            double sum = 0;
            for (int e = 0; e < info.num_experts; e++) {
                float p = rec.probs[(size_t)t * info.num_experts + e];
                if (!isfinite(p) || p < 0)
                    abort();
                sum += p;
            }
            if (fabs(sum - 1) > 1.0 / 1024 + 1e-6)
                abort();
            for (int r = 0; r < info.record_k; r++)
                if (rec.top_idx[(size_t)t * info.record_k + r] >= info.num_experts)
                    abort();
        }
        records++;
    }
    rs_store_cursor_close(cur);
    if (rc != 0 || records != n * info.num_views * info.num_layers) {
        fprintf(stderr, "fuzz_store_read: run %lld passed the check, the cursor read %lld records (%s)\n",
                (long long)run, (long long)records, rc ? err.msg : "no error");
        abort();
    }
    rs_run_info_clear(&info);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base)
        base_store();
    char path[256], side[300];
    fz_write("work.db", base, base_size, path, sizeof path);
    static const char *const suffixes[] = {"-wal", "-shm", "-journal"};
    for (int i = 0; i < 3; i++) {
        snprintf(side, sizeof side, "%s%s", path, suffixes[i]);
        remove(side);
    }
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        abort();
    /* As the store runs (deletes cascade); no fsync: the file lives for one input. */
    sqlite3_exec(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF", NULL, NULL, NULL);
    snapshot before[3] = {take(db, 1), take(db, 2), take(db, 3)};
    input in = {data, size, 0};
    for (int op = 0; op < 8 && in.at < in.n; op++)
        mutate(db, &in);
    snapshot after[3] = {take(db, 1), take(db, 2), take(db, 3)};
    sqlite3_close(db);

    rs_store *store;
    rs_error err;
    if (rs_store_open(path, true, &store, &err))
        return 0; /* a store that does not open is refused whole */
    for (int64_t run = 1; run <= 3; run++) {
        int rc = rs_store_check_run(store, run, &err);
        const snapshot *b = &before[run - 1], *a = &after[run - 1];
        if (run != 2 && !rc && a->owner == b->owner && a->records != b->records) {
            fprintf(stderr, "fuzz_store_read: run %lld's records changed and the check passed them\n", (long long)run);
            abort();
        }
        if (!rc)
            passed_run_is_whole(path, store, run);
        else if (strchr(err.msg, '\n'))
            abort(); /* one line */
    }
    rs_store_close(store);
    return 0;
}
