/* Store tests: create, reopen and refuse what is not ours (other schema versions, files that
 * are not SQLite, read-only and locked databases) with one line naming the file; record
 * runs and find them by identity; write batches and read every value back through the
 * cursor; refuse batches at the wrong position; roll a failing batch back completely;
 * the run check (check.c): a whole run passes, every missing or malformed record and every
 * changed byte of a finished run is refused in one line, the checksum is XXH64.
 * test_benchmark measures write and read speed and bytes per token-record at a realistic
 * shape (set RS_STORE_BENCH_IMAGES for a longer run). */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "half.h"
#include "store/store.h"
#include "testutil.h"

/* Test hook in analyze/store/db.c: a shorter busy timeout so the locked case fails quickly. */
int rs_store_set_busy_timeout(rs_store *store, int ms);
/* analyze/store/check.c's XXH64 (an external symbol of the store library, not its API). */

static char tmpdir[] = "/tmp/rs_test_store_XXXXXX";

static const char *scratch(const char *name)
{
    static char path[4][1100];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", tmpdir, name);
    return p;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The message is one line that starts with the file name and contains FRAGMENT. */
static void expect_message(const rs_error *err, const char *path, const char *fragment)
{
    print_message("  %s\n", err->msg);
    assert_true(strncmp(err->msg, path, strlen(path)) == 0);
    assert_non_null(strstr(err->msg, fragment));
    assert_null(strchr(err->msg, '\n'));
}

/* One integer from SQL run on a connection of our own, outside the store. */
static int64_t sql_int(const char *db_path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void sql_exec(const char *db_path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* ---- a small run and its deterministic content ----------------------------------------- */

static const char *const views2[] = {"clean", "noise:severity=3"};
static const int blocks2[] = {1, 3};

static rs_run_spec small_spec(void)
{
    return (rs_run_spec){
        .model_path = "models/tiny.safetensors",
        .model_sha256 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        .model_config = "{\"depth\":4,\"num_experts\":4}",
        .model_labels = "[\"zero\",\"one\",\"two\",\"three\",\"four\",\"five\",\"six\",\"seven\",\"eight\",\"nine\"]",
        .model_params = 123456,
        .data = "fashion-mnist:test",
        .offset = 10,
        .count = 9,
        .protocol = "noise",
        .num_views = 2,
        .view_specs = views2,
        .seed = UINT64_MAX - 5, /* above INT64_MAX: must survive the int64 column */
        .num_layers = 2,
        .layer_blocks = blocks2,
        .tokens = 5,
        .patches = 4,
        .grid_h = 2,
        .grid_w = 2,
        .record_k = 2,
        .top_k = 1,
        .channels = 3,
        .image_h = 8,
        .image_w = 6,
        .num_experts = 4,
        .num_classes = 10,
        .has_cls = true,
        .command = "routerscope replay models/tiny.safetensors --data fashion-mnist:test",
        .version = "0.1.0 (abc1234)",
    };
}

static uint32_t mix(uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    uint32_t h = 2166136261u;
    uint32_t in[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        h = (h ^ in[i]) * 16777619u;
        h ^= h >> 15;
        h *= 0x2c1b3c6du;
        h ^= h >> 12;
    }
    return h;
}

static float unit(uint32_t h)
{
    return (float)(h >> 8) * 0x1p-24f;
}

static int exp_label(int image) { return image % 7 == 3 ? -1 : image % 10; }
static int exp_pred(int image, int v) { return (image * 3 + v) % 10; }
static float exp_prob(int image, int v) { return unit(mix((uint32_t)image, (uint32_t)v, 0, 99)); }
static int exp_match(int image, int v, int p, int np)
{
    return v == 0 ? p : (int)(mix((uint32_t)image, (uint32_t)v, (uint32_t)p, 7) % (uint32_t)(np + 1)) - 1;
}
static void exp_params(int image, int v, char *buf, size_t size)
{
    snprintf(buf, size,
             "{\"ops\":[{\"op\":\"crop\",\"x\":%d,\"y\":3,\"w\":20,\"h\":20},{\"op\":\"flip\",\"on\":%s}],"
             "\"affine\":[1.4,0,%d.25,0,1.4,-3.5]}",
             image % 8, v ? "true" : "false", image);
}
/* Token T's record at (image, v, l), as the router makes one: a distribution P over E experts
 * (expert 0's value tiny, to exercise half subnormals), normalised to sum 1; its top R ids by
 * decreasing probability (ties to the lower index) and their gates, the very probabilities.
 * So the stored record passes the store's check (record_check.h). E <= 16. */
static void exp_token(int image, int v, int l, int t, int E, int R, float *p, int *top, float *gate)
{
    float sum = 0;
    for (int e = 0; e < E; e++) {
        float u = unit(mix((uint32_t)image, (uint32_t)v, (uint32_t)(l * 1000 + t), (uint32_t)e));
        p[e] = e == 0 ? u * 1e-6f : u;
        sum += p[e];
    }
    for (int e = 0; e < E; e++)
        p[e] /= sum;
    for (int k = 0; k < R; k++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            bool taken = false;
            for (int q = 0; q < k; q++)
                taken |= top[q] == e;
            if (!taken && (best < 0 || p[e] > p[best]))
                best = e;
        }
        top[k] = best;
        gate[k] = p[best];
    }
}

typedef struct tbatch {
    rs_batch b;
    int16_t *match;
    int32_t *labels, *predicted, *top_idx;
    float *pred_prob, *top_gate, *probs;
    char **params;
} tbatch;

static tbatch make_batch(const rs_run_spec *spec, int first, int count)
{
    const int V = spec->num_views, L = spec->num_layers, T = spec->tokens, R = spec->record_k,
              E = spec->num_experts, Np = spec->patches;
    tbatch t = {0};
    t.labels = malloc(sizeof *t.labels * (size_t)count);
    t.predicted = malloc(sizeof *t.predicted * (size_t)count * V);
    t.pred_prob = malloc(sizeof *t.pred_prob * (size_t)count * V);
    t.params = calloc((size_t)count * V, sizeof *t.params);
    t.match = malloc(sizeof *t.match * (size_t)count * V * Np);
    t.top_idx = malloc(sizeof *t.top_idx * (size_t)count * V * L * T * R);
    t.top_gate = malloc(sizeof *t.top_gate * (size_t)count * V * L * T * R);
    t.probs = malloc(sizeof *t.probs * (size_t)count * V * L * T * E);
    for (int i = 0; i < count; i++) {
        int image = first + i;
        t.labels[i] = exp_label(image);
        for (int v = 0; v < V; v++) {
            size_t iv = (size_t)i * V + v;
            t.predicted[iv] = exp_pred(image, v);
            t.pred_prob[iv] = exp_prob(image, v);
            t.params[iv] = malloc(256);
            exp_params(image, v, t.params[iv], 256);
            for (int p = 0; p < Np; p++)
                t.match[iv * Np + p] = (int16_t)exp_match(image, v, p, Np);
            for (int l = 0; l < L; l++)
                for (int tok = 0; tok < T; tok++) {
                    size_t row = (iv * L + l) * T + tok;
                    int top[16];
                    exp_token(image, v, l, tok, E, R, t.probs + row * E, top, t.top_gate + row * R);
                    for (int k = 0; k < R; k++)
                        t.top_idx[row * R + k] = top[k];
                }
        }
    }
    t.b = (rs_batch){
        .first = first, .count = count, .num_views = V, .num_layers = L, .tokens = T, .record_k = R,
        .num_experts = E, .patches = Np, .labels = t.labels, .predicted = t.predicted,
        .pred_prob = t.pred_prob, .view_params = (const char *const *)t.params, .match = t.match,
        .top_idx = t.top_idx, .top_gate = t.top_gate, .probs = t.probs,
    };
    return t;
}

static void free_batch(tbatch *t, int count, int views)
{
    for (int i = 0; i < count * views; i++)
        free(t->params[i]);
    free(t->params);
    free(t->labels);
    free(t->predicted);
    free(t->pred_prob);
    free(t->match);
    free(t->top_idx);
    free(t->top_gate);
    free(t->probs);
}

static void write_ok(rs_store *s, int64_t run, const rs_run_spec *spec, int first, int count)
{
    tbatch t = make_batch(spec, first, count);
    rs_error err = {0};
    int rc = rs_store_write_batch(s, run, &t.b, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    free_batch(&t, count, spec->num_views);
}

/* Reads run RUN through the cursor and checks every value of images FIRST .. FIRST+COUNT-1. */
static void check_all(rs_store *s, int64_t run, const rs_run_spec *spec, int first, int count)
{
    const int V = spec->num_views, L = spec->num_layers, T = spec->tokens, R = spec->record_k,
              E = spec->num_experts, Np = spec->patches;
    rs_store_cursor *c;
    rs_error err = {0};
    assert_int_equal(rs_store_cursor_open(s, run, &c, &err), 0);
    rs_routing_record rec;
    int n = 0;
    for (int i = 0; i < count; i++)
        for (int v = 0; v < V; v++)
            for (int l = 0; l < L; l++, n++) {
                int image = first + i;
                assert_int_equal(rs_store_cursor_next(c, &rec, &err), 1);
                assert_int_equal(rec.image, image);
                assert_int_equal(rec.view, v);
                assert_int_equal(rec.layer, l);
                assert_int_equal(rec.label, exp_label(image));
                assert_int_equal(rec.predicted, exp_pred(image, v));
                assert_true(rec.pred_prob == exp_prob(image, v)); /* a REAL holds a float exactly */
                for (int p = 0; p < Np; p++)
                    assert_int_equal(rec.match[p], exp_match(image, v, p, Np));
                for (int tok = 0; tok < T; tok++) {
                    float p[16], gate[16];
                    int top[16];
                    exp_token(image, v, l, tok, E, R, p, top, gate);
                    for (int k = 0; k < R; k++) {
                        assert_int_equal(rec.top_idx[tok * R + k], top[k]);
                        float want = gate[k], got = rec.top_gate[tok * R + k];
                        assert_memory_equal(&got, &want, sizeof got); /* bit-exact */
                    }
                    if (spec->record == RS_RECORD_TOPK) { /* no softmax recorded */
                        assert_null(rec.probs);
                        continue;
                    }
                    for (int e = 0; e < E; e++) {
                        float x = p[e], got = rec.probs[tok * E + e];
                        assert_true(got == rs_half_to_float(rs_float_to_half(x)));
                        assert_true(fabsf(got - x) <= 0x1p-11f * x + 0x1p-25f);
                    }
                }
            }
    assert_int_equal(rs_store_cursor_next(c, &rec, &err), 0);
    assert_int_equal(rs_store_cursor_next(c, &rec, &err), 0); /* stays at the end */
    assert_int_equal(n, count * V * L);
    rs_store_cursor_close(c);
}

static int64_t begin_ok(rs_store *s, const rs_run_spec *spec)
{
    rs_error err = {0};
    int64_t id = -1;
    int rc = rs_store_begin_run(s, spec, &id, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(id > 0);
    return id;
}

static rs_store *open_ok(const char *path, bool read_only)
{
    rs_store *s = NULL;
    rs_error err = {0};
    int rc = rs_store_open(path, read_only, &s, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_create_reopen(void **state)
{
    (void)state;
    const char *path = scratch("create.db");
    rs_store *s = open_ok(path, false);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), RS_STORE_SCHEMA);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"), 7); /* with attacks (schema 4) */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* Reopening for writing and for reading finds the schema in place. */
    s = open_ok(path, false);
    rs_run_spec spec = small_spec();
    int64_t run = begin_ok(s, &spec);
    write_ok(s, run, &spec, 10, 2);
    rs_store_close(s);
    s = open_ok(path, true);
    check_all(s, run, &spec, 10, 2);
    rs_run_info info = {0};
    rs_error err = {0};
    assert_int_equal(rs_store_get_run(s, run, &info, &err), 0);
    assert_int_equal(info.top_k, 1);
    assert_int_equal(info.channels, 3);
    assert_int_equal(info.image_h, 8);
    assert_int_equal(info.image_w, 6);
    assert_int_equal(info.num_class_names, 10);
    assert_string_equal(info.class_names[3], "three");
    rs_run_info_clear(&info);
    rs_store_close(s);
    rs_store_close(NULL);
}

static void test_schema_version(void **state)
{
    (void)state;
    const char *path = scratch("future.db");
    rs_store_close(open_ok(path, false));
    sql_exec(path, "PRAGMA user_version = 99");
    for (int ro = 0; ro < 2; ro++) {
        rs_store *s = (rs_store *)0x1;
        rs_error err = {0};
        assert_int_equal(rs_store_open(path, ro, &s, &err), RS_EFORMAT);
        assert_null(s);
        expect_message(&err, path, "schema version 99, this routerscope reads 8");
    }
    /* A negative version (found by fuzzing: it indexed the migration steps backwards). */
    sql_exec(path, "PRAGMA user_version = -5");
    for (int ro = 0; ro < 2; ro++) {
        rs_store *s = (rs_store *)0x1;
        rs_error err = {0};
        assert_int_equal(rs_store_open(path, ro, &s, &err), RS_EFORMAT);
        assert_null(s);
        expect_message(&err, path, "schema version -5, this routerscope reads 8");
    }

    /* A database of another program: version 0, but tables we do not know. */
    const char *other = scratch("other.db");
    sql_exec(other, "CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(other, false, &s, &err), RS_EFORMAT);
    expect_message(&err, other, "schema version 0, this routerscope reads 8");
    assert_int_equal(sql_int(other, "SELECT count(*) FROM t"), 1); /* untouched, */
    assert_int_equal(sql_int(other, "SELECT journal_mode = 'delete' FROM pragma_journal_mode"), 1); /* not WAL */
}

/* A scratch copy NAME of the golden file GOLDEN (the test may write it). */
static const char *scratch_golden(const char *golden, const char *name)
{
    const char *path = scratch(name);
    char from[4096];
    snprintf(from, sizeof from, "%s/%s", tu_dir("RS_GOLDEN_DIR", "tests/golden"), golden);
    size_t size;
    unsigned char *bytes = tu_read_file(from, &size);
    assert_non_null(bytes);
    assert_int_equal(tu_write_file(path, bytes, size), 0);
    free(bytes);
    return path;
}

/* A store written by routerscope before schema 2 (tests/golden/store-v1.db: the tiny k = 2
 * model's pair run on 3 images, then fmnist-prc-k1's noise run on 2): readers take it in
 * place, with k, input shape and class names from the stored config; a writer upgrades it. */
static void test_schema1_store(void **state)
{
    (void)state;
    const char *path = scratch_golden("store-v1.db", "v1.db");
    for (int pass = 0; pass < 2; pass++) {
        rs_store *s = open_ok(path, pass == 0);
        assert_int_equal(sql_int(path, "PRAGMA user_version"), pass == 0 ? 1 : RS_STORE_SCHEMA);
        rs_run_info info = {0};
        rs_error err = {0};
        assert_int_equal(rs_store_get_run(s, 1, &info, &err), 0);
        assert_int_equal(info.top_k, 2);
        assert_int_equal(info.channels, 1);
        assert_int_equal(info.image_h, 28);
        assert_int_equal(info.image_w, 28);
        assert_int_equal(info.num_class_names, 10);
        assert_string_equal(info.class_names[0], "T-shirt/top");
        assert_string_equal(info.class_names[9], "Ankle boot");
        assert_int_equal(rs_store_get_run(s, 2, &info, &err), 0);
        assert_int_equal(info.top_k, 1); /* record_k is 2: only the config tells */
        assert_int_equal(info.record_k, 2);
        assert_int_equal(info.shard_count, 0); /* older stores hold no shard runs */
        assert_null(info.job_identity);
        /* ... and no dispatch: every record reads as kept by a run without capacity. */
        assert_true(info.capacity_factor == 0 && info.group_images == 0 && !info.bpr);
        rs_store_cursor *cur;
        rs_routing_record rec;
        assert_int_equal(rs_store_cursor_open(s, 1, &cur, &err), 0);
        assert_int_equal(rs_store_cursor_next(cur, &rec, &err), 1);
        assert_null(rec.kept);
        rs_store_cursor_close(cur);
        rs_run_info_clear(&info);
        /* Nor attacks: read in place, the missing table is no rows. */
        rs_store_attack_cursor *ac;
        rs_attack_row row;
        assert_int_equal(rs_store_attack_cursor_open(s, 1, INT_MIN, INT_MAX, &ac, &err), 0);
        assert_int_equal(rs_store_attack_cursor_next(ac, &row, &err), 0);
        rs_store_attack_cursor_close(ac);
        rs_store_close(s);
    }
    /* The upgrade wrote the columns themselves. */
    assert_int_equal(sql_int(path, "SELECT top_k FROM runs WHERE id = 2"), 1);
    assert_int_equal(sql_int(path, "SELECT image_w FROM runs WHERE id = 1"), 28);
    assert_int_equal(sql_int(path, "SELECT json_array_length(labels) FROM models WHERE id = 1"), 10);
}

/* A store written at schema 4, before routing interventions (tests/golden/store-v4.db: the
 * tiny k = 2 model, run 1 without capacity, run 2 with a capacity factor): readers take it
 * in place, every record reading as not forced (what ran is the router's top-k); a writer
 * upgrades it to schema 5 and leaves every record as it was. */
static void test_schema4_store(void **state)
{
    (void)state;
    const char *path = scratch_golden("store-v4.db", "v4.db");
    int64_t records[2] = {0}, kept[2] = {0};
    for (int pass = 0; pass < 2; pass++) {
        rs_store *s = open_ok(path, pass == 0);
        assert_int_equal(sql_int(path, "PRAGMA user_version"), pass == 0 ? 4 : RS_STORE_SCHEMA);
        rs_error err = {0};
        for (int64_t run = 1; run <= 2; run++) {
            rs_store_cursor *cur;
            rs_routing_record rec;
            assert_int_equal(rs_store_cursor_open(s, run, &cur, &err), 0);
            int rc;
            int64_t n = 0, k = 0;
            while ((rc = rs_store_cursor_next(cur, &rec, &err)) == 1) {
                assert_false(rec.forced);
                assert_ptr_equal(rec.executed, rec.top_idx);
                assert_true((rec.kept != NULL) == (run == 2));
                for (int q = 0; rec.kept && q < 50 * 2; q++)
                    k += rec.kept[q];
                n++;
            }
            assert_int_equal(rc, 0);
            rs_store_cursor_close(cur);
            if (pass == 0)
                records[run - 1] = n, kept[run - 1] = k;
            assert_int_equal(n, records[run - 1]);
            assert_int_equal(k, kept[run - 1]);
        }
        rs_store_close(s);
    }
    assert_int_equal(records[0], 3 * 3 * 2);
    assert_int_equal(records[1], 4 * 2 * 2);
    assert_true(kept[1] > 0 && kept[1] < 4 * 2 * 2 * 50 * 2);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM routing WHERE executed IS NULL"), 3 * 3 * 2 + 4 * 2 * 2);
}

static void test_not_a_database(void **state)
{
    (void)state;
    const char *path = scratch("text.db");
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = "not a database, just text\n"[i % 26];
    assert_int_equal(tu_write_file(path, junk, sizeof junk), 0);
    for (int ro = 0; ro < 2; ro++) {
        rs_store *s;
        rs_error err = {0};
        assert_int_equal(rs_store_open(path, ro, &s, &err), RS_EFORMAT);
        expect_message(&err, path, "not an SQLite database");
    }
    /* Reading a database that does not exist creates nothing. */
    const char *missing = scratch("missing.db");
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(missing, true, &s, &err), RS_EIO);
    expect_message(&err, missing, "cannot open");
    assert_int_equal(access(missing, F_OK), -1);
}

static void test_read_only(void **state)
{
    (void)state;
    const char *path = scratch("readonly.db");
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    write_ok(s, run, &spec, 10, 3);
    rs_store_close(s);

    rs_error err = {0};
    if (geteuid() != 0) {
        assert_int_equal(chmod(path, 0444), 0);
        assert_int_equal(rs_store_open(path, false, &s, &err), RS_EIO);
        expect_message(&err, path, "read-only");
        assert_int_equal(chmod(path, 0644), 0);
    } else {
        print_message("  running as root: chmod 0444 does not stop root writing, so the read-only "
                      "file case is checked as a read-only open only\n");
    }

    /* Opened for reading: every writing function refuses, reading works. */
    s = open_ok(path, true);
    int64_t id;
    assert_int_equal(rs_store_begin_run(s, &spec, &id, &err), RS_EINVAL);
    expect_message(&err, path, "read-only");
    tbatch t = make_batch(&spec, 13, 2);
    assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), RS_EINVAL);
    expect_message(&err, path, "read-only");
    free_batch(&t, 2, spec.num_views);
    assert_int_equal(rs_store_set_status(s, run, RS_RUN_DONE, NULL, &err), RS_EINVAL);
    expect_message(&err, path, "read-only");
    rs_run_info info = {0};
    assert_int_equal(rs_store_get_run(s, run, &info, &err), 0);
    assert_int_equal(info.images_done, 3);
    assert_int_equal(info.status, RS_RUN_RUNNING);
    rs_run_info_clear(&info);
    check_all(s, run, &spec, 10, 3);
    rs_store_close(s);
}

static void test_locked(void **state)
{
    (void)state;
    const char *path = scratch("locked.db");
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    assert_int_equal(rs_store_set_busy_timeout(s, 200), 0);

    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);

    /* Opening still works while another process writes (WAL readers never wait)... */
    double t0 = seconds();
    rs_store *reader = open_ok(path, false);
    rs_store_close(reader);
    assert_true(seconds() - t0 < 2.0);

    /* ...but writing waits for the busy timeout, then fails with one clear line. */
    tbatch t = make_batch(&spec, 10, 2);
    rs_error err = {0};
    t0 = seconds();
    assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), RS_EIO);
    double waited = seconds() - t0;
    expect_message(&err, path, "locked");
    print_message("  gave up after %.2f s\n", waited);
    assert_true(waited >= 0.15 && waited < 3.0);
    int64_t id;
    assert_int_equal(rs_store_begin_run(s, &spec, &id, &err), RS_EIO);
    expect_message(&err, path, "locked");

    /* Once the other writer is gone, the same batch goes in. */
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), 0);
    free_batch(&t, 2, spec.num_views);
    check_all(s, run, &spec, 10, 2);
    rs_store_close(s);
}

static void test_runs(void **state)
{
    (void)state;
    const char *path = scratch("runs.db");
    rs_store *s = open_ok(path, false);
    rs_run_spec a = small_spec(), b = small_spec();
    b.seed = 7;
    rs_run_info info = {0};
    rs_error err = {0};
    assert_int_equal(rs_store_find_run(s, &a, &info, &err), 0);
    int64_t ra = begin_ok(s, &a), rb = begin_ok(s, &b);
    assert_true(rb > ra);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM models"), 1); /* one checkpoint, two runs */

    /* The same identity is found, and not begun twice. */
    assert_int_equal(rs_store_find_run(s, &a, &info, &err), 1);
    assert_int_equal(info.id, ra);
    assert_int_equal(rs_store_find_run(s, &b, &info, &err), 1);
    assert_int_equal(info.id, rb);
    int64_t id;
    assert_int_equal(rs_store_begin_run(s, &a, &id, &err), RS_EINVAL);
    expect_message(&err, path, "identical run");
    /* Fields outside the identity do not make a new run... */
    rs_run_spec c = a;
    c.command = "another command line";
    c.model_path = "/elsewhere/tiny.safetensors";
    assert_int_equal(rs_store_find_run(s, &c, &info, &err), 1);
    assert_int_equal(info.id, ra);
    /* ...each field inside it does, and view specs are not confused by where they split. */
    static const char *const joined[] = {"clean;noise:severity=3"};
    static const char *const split3[] = {"clean", "noise:severity=3", ""};
    rs_run_spec d[8];
    for (int i = 0; i < 8; i++)
        d[i] = a;
    d[6].fit_version = 2; /* images fitted another way: another run */
    d[7].fit_version = 1; /* version 1 is the identity's default */
    d[0].num_views = 1, d[0].view_specs = joined;
    d[1].num_views = 3, d[1].view_specs = split3;
    d[2].offset = 11;
    d[3].count = 8;
    d[4].protocol = "custom";
    d[5].model_sha256 = "ff1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    for (int i = 0; i < 7; i++)
        assert_int_equal(rs_store_find_run(s, &d[i], &info, &err), 0);
    assert_int_equal(rs_store_find_run(s, &d[7], &info, &err), 1);

    /* Everything comes back as given. */
    assert_int_equal(rs_store_get_run(s, ra, &info, &err), 0);
    assert_int_equal(info.id, ra);
    assert_int_equal(info.status, RS_RUN_RUNNING);
    assert_int_equal(info.images_total, 9);
    assert_int_equal(info.images_done, 0);
    assert_string_equal(info.model_path, a.model_path);
    assert_string_equal(info.model_sha256, a.model_sha256);
    assert_string_equal(info.data, a.data);
    assert_string_equal(info.protocol, a.protocol);
    assert_string_equal(info.command, a.command);
    assert_string_equal(info.version, a.version);
    assert_null(info.error);
    assert_int_equal(info.num_views, 2);
    assert_string_equal(info.view_specs[0], "clean");
    assert_string_equal(info.view_specs[1], "noise:severity=3");
    assert_int_equal(info.offset, 10);
    assert_int_equal(info.count, 9);
    assert_int_equal(info.num_layers, 2);
    assert_int_equal(info.layer_blocks[0], 1);
    assert_int_equal(info.layer_blocks[1], 3);
    assert_int_equal(info.tokens, 5);
    assert_int_equal(info.patches, 4);
    assert_int_equal(info.grid_h, 2);
    assert_int_equal(info.grid_w, 2);
    assert_int_equal(info.record_k, 2);
    assert_int_equal(info.num_experts, 4);
    assert_int_equal(info.num_classes, 10);
    assert_true(info.has_cls);
    assert_true(info.seed == UINT64_MAX - 5);
    assert_true(info.started > 1.6e9);
    assert_true(info.finished == 0);
    rs_run_info_clear(&info);
    assert_int_equal(rs_store_get_run(s, 999, &info, &err), RS_EINVAL);
    expect_message(&err, path, "no run 999");

    /* Status changes. Done wants every image (and passes the run check). */
    assert_int_equal(rs_store_set_status(s, ra, RS_RUN_DONE, NULL, &err), RS_EINVAL);
    expect_message(&err, path, "run 1 holds 0 of its 9 images: not done");
    write_ok(s, ra, &a, 10, 9);
    assert_int_equal(rs_store_set_status(s, ra, RS_RUN_DONE, NULL, &err), 0);
    assert_int_equal(rs_store_set_status(s, rb, RS_RUN_FAILED, "x.png: truncated PNG", &err), 0);
    assert_int_equal(rs_store_set_status(s, 999, RS_RUN_DONE, NULL, &err), RS_EINVAL);
    rs_run_info *list;
    int n;
    assert_int_equal(rs_store_list_runs(s, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, ra);
    assert_int_equal(list[0].status, RS_RUN_DONE);
    assert_true(list[0].finished >= list[0].started);
    assert_null(list[0].error);
    assert_int_equal(list[1].id, rb);
    assert_int_equal(list[1].status, RS_RUN_FAILED);
    assert_string_equal(list[1].error, "x.png: truncated PNG");
    assert_true(list[1].seed == 7);
    for (int i = 0; i < n; i++)
        rs_run_info_clear(&list[i]);
    free(list);
    /* Resuming clears the finish time and the old error. */
    assert_int_equal(rs_store_set_status(s, rb, RS_RUN_RUNNING, NULL, &err), 0);
    assert_int_equal(rs_store_get_run(s, rb, &info, &err), 0);
    assert_int_equal(info.status, RS_RUN_RUNNING);
    assert_null(info.error);
    assert_true(info.finished == 0);
    /* Filling a filled struct frees what it held (ASan checks there is no leak). */
    assert_int_equal(rs_store_find_run(s, &a, &info, &err), 1);
    rs_run_info_clear(&info);

    /* A bad spec is refused before anything is written. */
    rs_run_spec bad = a;
    bad.num_experts = 300;
    bad.seed = 1;
    assert_int_equal(rs_store_begin_run(s, &bad, &id, &err), RS_EINVAL);
    expect_message(&err, path, "256 experts");
    rs_store_close(s);

    /* An empty store lists nothing. */
    s = open_ok(scratch("empty.db"), false);
    assert_int_equal(rs_store_list_runs(s, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    free(list);
    rs_store_close(s);
}

static void test_write_read(void **state)
{
    (void)state;
    const char *path = scratch("write.db");
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    check_all(s, run, &spec, 10, 0); /* nothing yet */
    write_ok(s, run, &spec, 10, 3);
    write_ok(s, run, &spec, 13, 4);
    check_all(s, run, &spec, 10, 7);
    write_ok(s, run, &spec, 17, 2);
    rs_run_info info = {0};
    rs_error err = {0};
    assert_int_equal(rs_store_get_run(s, run, &info, &err), 0);
    assert_int_equal(info.images_done, 9);
    rs_run_info_clear(&info);
    rs_store_close(s);

    /* A second run in the same file does not mix with the first. */
    s = open_ok(path, false);
    rs_run_spec other = spec;
    other.seed = 42;
    other.offset = 0;
    other.count = 3;
    int64_t run2 = begin_ok(s, &other);
    write_ok(s, run2, &other, 0, 3);
    check_all(s, run, &spec, 10, 9);
    check_all(s, run2, &other, 0, 3);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM routing"), (9 + 3) * 2 * 2);

    /* Deleting a run removes everything it recorded. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 1", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM routing"), 3 * 2 * 2);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM predictions"), 3 * 2);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM samples"), 3);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM views"), 2);
}

/* A run with dispatch: its settings are part of the identity and come back; the kept masks
 * come back byte for byte; a run without capacity stores NULL. */
static void test_dispatch_run(void **state)
{
    (void)state;
    const char *path = scratch("dispatch.db");
    rs_run_spec plain = small_spec(), spec = small_spec();
    spec.capacity_factor = 1.05;
    spec.group_images = 8;
    spec.bpr = true;
    rs_store *s = open_ok(path, false);
    int64_t run0 = begin_ok(s, &plain), run = begin_ok(s, &spec); /* a different identity */
    assert_true(run != run0);
    rs_run_spec other = spec;
    other.bpr = false;
    assert_true(begin_ok(s, &other) != run);
    rs_run_info info = {0};
    rs_error err = {0};
    assert_int_equal(rs_store_find_run(s, &spec, &info, &err), 1);
    assert_int_equal(info.id, run);
    assert_true(info.capacity_factor == 1.05 && info.group_images == 8 && info.bpr);
    assert_int_equal(rs_store_get_run(s, run0, &info, &err), 0);
    assert_true(info.capacity_factor == 0 && info.group_images == 0 && !info.bpr);
    rs_run_info_clear(&info);

    tbatch t = make_batch(&spec, 10, 2);
    size_t n = (size_t)2 * spec.num_views * spec.num_layers * spec.tokens * spec.record_k;
    uint8_t *kept = malloc(n);
    for (size_t i = 0; i < n; i++)
        kept[i] = (i * 7 + i / 3) % 3 != 0;
    t.b.kept = kept;
    assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), 0);
    t.b.kept = NULL;
    assert_int_equal(rs_store_write_batch(s, run0, &t.b, &err), 0);
    free_batch(&t, 2, spec.num_views);
    rs_store_cursor *c;
    rs_routing_record rec;
    assert_int_equal(rs_store_cursor_open(s, run, &c, &err), 0);
    size_t tr = (size_t)spec.tokens * spec.record_k;
    for (size_t row = 0; row < n / tr; row++) {
        assert_int_equal(rs_store_cursor_next(c, &rec, &err), 1);
        assert_non_null(rec.kept);
        assert_memory_equal(rec.kept, kept + row * tr, tr);
    }
    rs_store_cursor_close(c);
    assert_int_equal(rs_store_cursor_open(s, run0, &c, &err), 0);
    assert_int_equal(rs_store_cursor_next(c, &rec, &err), 1);
    assert_null(rec.kept);
    rs_store_cursor_close(c);
    free(kept);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM runs WHERE capacity_factor IS NULL"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM routing WHERE kept IS NULL"),
                     2 * spec.num_views * spec.num_layers);
}

/* Capacity with bf16 dispatch, a gemm backend and --record topk together: one identity of
 * its own, found again with all four, and each setting dropped alone names another run (so
 * no two of them share a field of the identity text). */
static void test_combined_identity(void **state)
{
    (void)state;
    const char *path = scratch("combined.db");
    rs_run_spec all = small_spec();
    all.capacity_factor = 1.25, all.group_images = 4, all.bpr = true;
    all.bf16_dispatch = true;
    all.compute = "onednn bf16";
    all.record = RS_RECORD_TOPK;
    rs_run_spec drop[4] = {all, all, all, all};
    drop[0].bf16_dispatch = false;
    drop[1].compute = NULL;
    drop[2].record = RS_RECORD_FULL;
    drop[3].compute = "onednn"; /* another backend setting, the rest kept */
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &all), ids[4];
    for (int i = 0; i < 4; i++) {
        ids[i] = begin_ok(s, &drop[i]);
        assert_true(ids[i] != run);
        for (int j = 0; j < i; j++)
            assert_true(ids[i] != ids[j]);
    }
    rs_run_info info = {0};
    rs_error err = {0};
    assert_int_equal(rs_store_find_run(s, &all, &info, &err), 1);
    assert_int_equal(info.id, run);
    assert_true(info.bf16_dispatch);
    assert_int_equal(info.record, RS_RECORD_TOPK);
    assert_string_equal(info.compute, "onednn bf16");
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rs_store_find_run(s, &drop[i], &info, &err), 1);
        assert_int_equal(info.id, ids[i]);
    }
    rs_run_info_clear(&info);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(DISTINCT identity) FROM runs"), 5);
}

/* A group seed is part of the identity (none, 0 and 7 are three runs) and comes back; a
 * store of schema 4 reads in place as data order, and a writer adds the column. */
static void test_group_seed_run(void **state)
{
    (void)state;
    const char *path = scratch("group_seed.db");
    rs_run_spec data_order = small_spec();
    data_order.capacity_factor = 0.5;
    data_order.group_images = 4;
    rs_run_spec seed0 = data_order, seed7 = data_order;
    seed0.has_group_seed = true;
    seed7.has_group_seed = true;
    seed7.group_seed = 7;
    rs_store *s = open_ok(path, false);
    int64_t r0 = begin_ok(s, &data_order), r1 = begin_ok(s, &seed0), r2 = begin_ok(s, &seed7);
    assert_true(r0 != r1 && r1 != r2 && r0 != r2);
    rs_run_info info = {0};
    rs_error err = {0};
    assert_int_equal(rs_store_find_run(s, &seed7, &info, &err), 1);
    assert_int_equal(info.id, r2);
    assert_true(info.has_group_seed && info.group_seed == 7 && info.capacity_factor == 0.5);
    assert_int_equal(rs_store_find_run(s, &seed0, &info, &err), 1);
    assert_true(info.id == r1 && info.has_group_seed && info.group_seed == 0);
    assert_int_equal(rs_store_get_run(s, r0, &info, &err), 0);
    assert_false(info.has_group_seed);
    rs_run_spec no_capacity = small_spec();
    no_capacity.has_group_seed = true;
    int64_t id;
    assert_int_equal(rs_store_begin_run(s, &no_capacity, &id, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "a group seed needs a capacity factor"));
    rs_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM runs WHERE group_seed IS NULL"), 1);

    /* Schema 4: no group_seed column. Read in place, then upgraded by a writer. */
    sql_exec(path, "ALTER TABLE runs DROP COLUMN group_seed; ALTER TABLE routing DROP COLUMN executed; "
                   "ALTER TABLE runs DROP COLUMN checksum; ALTER TABLE runs DROP COLUMN record; PRAGMA user_version = 4");
    s = open_ok(path, true);
    assert_int_equal(rs_store_get_run(s, r2, &info, &err), 0);
    assert_true(!info.has_group_seed && info.capacity_factor == 0.5);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), 4);
    s = open_ok(path, false);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), RS_STORE_SCHEMA);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM runs WHERE group_seed IS NULL"), 3);
    rs_run_info_clear(&info);
}

/* Forced routing: view 1 forces layer 0 (top_k 1): its rows carry what ran, every other
 * record reads what ran as its router's ids. */
static void test_forced_run(void **state)
{
    (void)state;
    const char *path = scratch("forced.db");
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    const int V = spec.num_views, L = spec.num_layers, T = spec.tokens, R = spec.record_k, k = spec.top_k;
    tbatch t = make_batch(&spec, 10, 2);
    uint8_t forced[4] = {0, 0, 1, 0}; /* (V, L) */
    size_t n = (size_t)2 * V * L * T * k;
    int32_t *executed = malloc(sizeof *executed * n);
    for (size_t i = 0; i < n; i++)
        executed[i] = (int32_t)((i * 5 + 1) % (size_t)spec.num_experts);
    t.b.top_k = k;
    t.b.forced = forced;
    t.b.executed = executed;
    rs_error err = {0};
    executed[0] = spec.num_experts; /* image 10, view 0, layer 0: not forced, never read */
    assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), 0);
    rs_store_close(s);
    s = open_ok(path, true);
    rs_store_cursor *c;
    rs_routing_record rec;
    assert_int_equal(rs_store_cursor_open(s, run, &c, &err), 0);
    for (int row = 0; row < 2 * V * L; row++) {
        assert_int_equal(rs_store_cursor_next(c, &rec, &err), 1);
        bool want = forced[(size_t)rec.view * L + rec.layer];
        assert_int_equal(rec.forced, want);
        if (!want) {
            assert_ptr_equal(rec.executed, rec.top_idx);
            continue;
        }
        for (int tok = 0; tok < T; tok++) {
            assert_int_equal(rec.executed[tok * R], executed[(size_t)row * T * k + tok]);
            assert_int_equal(rec.executed[tok * R + 1], rec.top_idx[tok * R + 1]); /* beyond k: the router's */
        }
    }
    assert_int_equal(rs_store_cursor_next(c, &rec, &err), 0);
    rs_store_cursor_close(c);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM routing WHERE executed IS NOT NULL"), 2);
    assert_int_equal(sql_int(path, "SELECT max(length(executed)) FROM routing"), T * k);

    /* An executed id out of range is refused, naming it; the batch leaves nothing behind. */
    s = open_ok(path, false);
    rs_run_spec spec2 = spec;
    spec2.seed = 1;
    int64_t run2 = begin_ok(s, &spec2);
    executed[(size_t)(1 * L + 0) * T * k + 2] = spec.num_experts; /* image 10, view 1, layer 0, token 2 */
    assert_int_equal(rs_store_write_batch(s, run2, &t.b, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "executed expert id 4, the model has 4"));
    rs_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM routing WHERE run_id = 2"), 0);
    free(executed);
    free_batch(&t, 2, V);
}

/* Attacks: view 1 of small_spec attacked with 3 steps; the values are a function of
 * (image, view, step) so that a mix-up shows. */
static float exp_objective(int image, int t) { return unit(mix((uint32_t)image, 1, (uint32_t)t, 7)) - 0.5f; }

static void write_attacked(rs_store *s, int64_t run, const rs_run_spec *spec, int first, int count)
{
    enum { STEPS = 3, STRIDE = 5 };
    tbatch t = make_batch(spec, first, count);
    int steps[2] = {0, STEPS};
    float linf[64], l2[64], objective[64 * STRIDE];
    assert_true(count * spec->num_views <= 64);
    for (int i = 0; i < count; i++)
        for (int v = 0; v < spec->num_views; v++) {
            size_t iv = (size_t)i * spec->num_views + v;
            linf[iv] = v ? (first + i) / 255.0f : -1; /* view 0 has none: never read */
            l2[iv] = v ? (first + i) / 25.0f : -1;
            for (int k = 0; k < STRIDE; k++)
                objective[iv * STRIDE + k] = v && k <= STEPS ? exp_objective(first + i, k) : NAN;
        }
    t.b.attack_steps = steps;
    t.b.attack_stride = STRIDE;
    t.b.attack_linf = linf;
    t.b.attack_l2 = l2;
    t.b.attack_objective = objective;
    rs_error err = {0};
    int rc = rs_store_write_batch(s, run, &t.b, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    free_batch(&t, count, spec->num_views);
}

static void check_attacks(rs_store *s, int64_t run, int first, int last, int want_rows)
{
    rs_store_attack_cursor *c;
    rs_error err = {0};
    assert_int_equal(rs_store_attack_cursor_open(s, run, first, last, &c, &err), 0);
    rs_attack_row row;
    int n = 0, previous = INT_MIN;
    while (rs_store_attack_cursor_next(c, &row, &err) == 1) {
        assert_true(row.image >= first && row.image <= last && row.image > previous);
        previous = row.image;
        assert_int_equal(row.view, 1);
        assert_int_equal(row.steps, 3);
        assert_true(row.linf == row.image / 255.0f);
        assert_true(row.l2 == row.image / 25.0f);
        for (int t = 0; t <= 3; t++)
            assert_true(row.objective[t] == exp_objective(row.image, t));
        n++;
    }
    assert_int_equal(rs_store_attack_cursor_next(c, &row, &err), 0);
    assert_int_equal(n, want_rows);
    rs_store_attack_cursor_close(c);
}

static void test_attacks(void **state)
{
    (void)state;
    const char *path = scratch("attacks.db");
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    write_attacked(s, run, &spec, 10, 3);
    write_ok(s, run, &spec, 13, 2); /* a batch without attack arrays writes no rows */
    write_attacked(s, run, &spec, 15, 2);
    check_all(s, run, &spec, 10, 7);
    rs_store_close(s);
    s = open_ok(path, true);
    check_attacks(s, run, 10, 12, 3);
    check_attacks(s, run, 15, 16, 2);
    check_attacks(s, run, 10, 16, 5); /* images 13 and 14 have none */
    check_attacks(s, run, INT_MIN, INT_MAX, 5);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM attacks"), 5);
    assert_int_equal(sql_int(path, "SELECT length(objective) FROM attacks WHERE image = 11"), 16);

    /* A malformed row is an error naming the file, not a crash. */
    sql_exec(path, "UPDATE attacks SET steps = 9 WHERE image = 16");
    s = open_ok(path, true);
    rs_store_attack_cursor *c;
    rs_error err = {0};
    rs_attack_row row;
    assert_int_equal(rs_store_attack_cursor_open(s, run, 16, 16, &c, &err), 0);
    assert_int_equal(rs_store_attack_cursor_next(c, &row, &err), RS_EFORMAT);
    expect_message(&err, path, "attack of 9 steps with an objective of 16 bytes");
    rs_store_attack_cursor_close(c);
    rs_store_close(s);

    /* Deleting the run removes its attacks. */
    sql_exec(path, "PRAGMA foreign_keys = ON; DELETE FROM runs WHERE id = 1");
    assert_int_equal(sql_int(path, "SELECT count(*) FROM attacks"), 0);
}

/* ---- the run check (check.c) ------------------------------------------------------------ */

/* The check of run 1 of a copy of GOOD damaged by SQL (run on a plain connection, foreign
 * keys off as in the sqlite3 shell): its result, and its message in ERR. */
static int check_damaged(const char *good, const char *sql, rs_error *err)
{
    const char *path = scratch("damaged.db");
    char side[1200];
    for (int i = 0; i < 2; i++) { /* the last copy's WAL would be read into this one */
        snprintf(side, sizeof side, "%s%s", path, i ? "-shm" : "-wal");
        remove(side);
    }
    size_t size;
    unsigned char *bytes = tu_read_file(good, &size);
    assert_non_null(bytes);
    assert_int_equal(tu_write_file(path, bytes, size), 0);
    free(bytes);
    sql_exec(path, sql);
    rs_store *s = open_ok(path, true);
    int rc = rs_store_check_run(s, 1, err);
    rs_store_close(s);
    if (rc)
        expect_message(err, path, "run 1");
    return rc;
}

/* A whole run of 9 images, done (so with its checksum), in one file without a WAL. */
static const char *checked_store(const char *name)
{
    const char *path = scratch(name);
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    write_ok(s, run, &spec, 10, 9);
    rs_error err = {0};
    assert_int_equal(rs_store_set_status(s, run, RS_RUN_DONE, NULL, &err), 0);
    rs_store_close(s);
    assert_int_equal(rs_store_checkpoint_file(path, &err), 0);
    return path;
}

/* The run checksum is libxxhash's XXH64 (docs/store.md): its published values on inputs that
 * take each of its paths (empty, under 4, under 32 and over 32 bytes, with and without a
 * seed), so that a store checked by one build verifies on another. */
static void test_checksum_reference(void **state)
{
    (void)state;
    static const struct { const char *text; uint64_t seed, want; } cases[] = {
        {"", 0, 0xef46db3751d8e999ULL},
        {"abc", 0, 0x44bc2cf5ad770999ULL},
        {"a", 40282050, 0x194e8227232c4d40ULL},
        {"Nobody inspects the spammish repetition", 0, 0xfbcea83c8a378bf1ULL},
        {"Nobody inspects the spammish repetition", 40282050, 0x8f1793fc273e0e93ULL},
        {"0123456789abcdef0123456789abcdef0123456789abcdefXYZ12", 40282050, 0x342ed790e5db494bULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_true(XXH64(cases[i].text, strlen(cases[i].text), cases[i].seed) == cases[i].want);
}

/* A whole run passes and has its checksum; every missing or malformed record is refused with
 * one line naming the run, image, view and layer (issue 26, items 1, 6 and 2's flipped bytes). */
static void test_check_run(void **state)
{
    (void)state;
    char good[1100]; /* scratch() reuses its buffers */
    snprintf(good, sizeof good, "%s", checked_store("checked.db"));
    rs_store *s = open_ok(good, true);
    rs_error err = {0};
    assert_int_equal(rs_store_check_run(s, 1, &err), 0);
    assert_int_equal(rs_store_check_run(s, 2, &err), RS_EINVAL);
    rs_store_close(s);
    assert_int_equal(sql_int(good, "SELECT length(checksum) = 22 AND checksum LIKE 'xxh64:%' FROM runs"), 1);

    static const struct { const char *sql, *fragment; } cases[] = {
        {"DELETE FROM routing WHERE image = 12 AND view = 1 AND layer = 0",
         "run 1 image 12 view 1 layer 0: no routing row (the store is incomplete)"},
        {"DELETE FROM routing WHERE image = 18", "run 1 image 18 view 0 layer 0: no routing row"},
        {"DELETE FROM predictions WHERE image = 13 AND view = 1", "run 1 image 13 view 1: no predictions row"},
        {"DELETE FROM samples WHERE image = 14", "run 1 image 14: no samples row"},
        {"PRAGMA foreign_keys = ON; DELETE FROM samples WHERE image = 14", "run 1 image 14: no samples row"},
        {"UPDATE routing SET probs = CAST(x'007c' || substr(probs, 3) AS BLOB) WHERE image = 11 AND view = 0 AND layer = 1",
         "run 1 image 11 view 0 layer 1: token 0: float16 probability of expert 0 is infinite"},
        {"UPDATE routing SET probs = CAST(substr(probs, 1, 4) || x'007e' || substr(probs, 7) AS BLOB) WHERE image = 11"
         " AND view = 1 AND layer = 0", "run 1 image 11 view 1 layer 0: token 0: float16 probability of expert 2 is NaN"},
        {"UPDATE routing SET probs = zeroblob(length(probs)) WHERE image = 15 AND view = 0 AND layer = 0",
         "run 1 image 15 view 0 layer 0: token 0: float16 probabilities sum to 0.000000, not 1 within 2^-10"},
        {"UPDATE routing SET probs = substr(probs, 3) WHERE image = 15 AND view = 0 AND layer = 0",
         "image 15 view 0 layer 0: probs BLOB of 38 bytes, expected 40"},
        {"UPDATE routing SET top_idx = CAST(x'09' || substr(top_idx, 2) AS BLOB) WHERE image = 16 AND view = 1"
         " AND layer = 1", "image 16 view 1 layer 1: token 0 rank 0: expert id 9 >= 4 experts"},
        {"UPDATE routing SET top_gate = zeroblob(40) WHERE image = 16 AND view = 1 AND layer = 1",
         "image 16 view 1 layer 1: token 0 rank 0: gate 0 does not round to its expert's probability"},
        {"UPDATE predictions SET match = zeroblob(6) WHERE image = 10 AND view = 1",
         "run 1 image 10 view 1: a malformed patch match map"},
        {"UPDATE predictions SET predicted = 10 WHERE image = 10 AND view = 1",
         "run 1 image 10 view 1: a predicted class outside the model's classes"},
        {"INSERT INTO samples VALUES (1, 19, 3)", "run 1 image 19: a samples row the run does not have"},
        {"UPDATE runs SET images_done = 8", "run 1 is done with 8 of 9 images"},
        {"UPDATE runs SET tokens = 6", "run 1 has inconsistent shapes"},
        /* A byte of a gate's mantissa that float16 rounding hides: only the checksum sees it. */
        {"UPDATE routing SET top_gate = CAST(x'01' || substr(top_gate, 2) AS BLOB) WHERE image = 17 AND view = 0"
         " AND layer = 0", "run 1: its records or shapes differ from the checksum written when it finished"},
        {"UPDATE samples SET label = 4 WHERE image = 17", "differ from the checksum"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        print_message("  %s\n", cases[i].sql);
        assert_int_equal(check_damaged(good, cases[i].sql, &err), RS_EFORMAT);
        assert_non_null(strstr(err.msg, cases[i].fragment));
    }
    /* Without a checksum (a run not done, a store before schema 6) the check reads every row:
     * a missing one is still found; the hidden gate byte is not. */
    assert_int_equal(check_damaged(good, "UPDATE runs SET status = 'interrupted', checksum = NULL;"
                                         " DELETE FROM routing WHERE image = 12 AND view = 1 AND layer = 0", &err),
                     RS_EFORMAT);
    assert_non_null(strstr(err.msg, "run 1 image 12 view 1 layer 0: no routing row"));
    assert_int_equal(check_damaged(good, "UPDATE runs SET checksum = NULL; UPDATE routing SET top_gate ="
                                         " CAST(x'01' || substr(top_gate, 2) AS BLOB) WHERE image = 17", &err), 0);
    /* A run cut short consistently (a killed run) is whole as far as it goes. */
    assert_int_equal(check_damaged(good, "PRAGMA foreign_keys = ON; DELETE FROM samples WHERE image >= 15;"
                                         " UPDATE runs SET images_done = 5, status = 'running', checksum = NULL",
                                   &err), 0);
}

/* A run recorded with --record topk (issue 28): its identity differs from the full run's, its
 * form comes back, its records read with no softmax and empty probs BLOBs (a third of the
 * routing bytes of this shape), it passes the check and gets its own checksum; a damaged gate
 * is refused by the topk rules, a softmax in a topk run or none in a full run by the sizes,
 * and an unknown record form by every reader. */
static void test_topk_run(void **state)
{
    (void)state;
    char path[1100]; /* scratch() reuses its buffers */
    snprintf(path, sizeof path, "%s", scratch("topk.db"));
    rs_run_spec full = small_spec(), topk = small_spec();
    topk.record = RS_RECORD_TOPK;
    rs_store *s = open_ok(path, false);
    int64_t a = begin_ok(s, &full), b = begin_ok(s, &topk);
    assert_true(a != b);
    write_ok(s, a, &full, 10, 9);
    write_ok(s, b, &topk, 10, 9);
    rs_error err = {0};
    assert_int_equal(rs_store_set_status(s, a, RS_RUN_DONE, NULL, &err), 0);
    assert_int_equal(rs_store_set_status(s, b, RS_RUN_DONE, NULL, &err), 0);
    rs_run_info info = {0};
    assert_int_equal(rs_store_find_run(s, &topk, &info, &err), 1);
    assert_int_equal(info.id, b);
    assert_int_equal(info.record, RS_RECORD_TOPK);
    char line[160];
    assert_true(rs_run_lacks_softmax(&info, "JSD", line, sizeof line));
    assert_string_equal(line, "run 2 was recorded with --record topk: no softmax for JSD");
    assert_int_equal(rs_store_get_run(s, a, &info, &err), 0);
    assert_int_equal(info.record, RS_RECORD_FULL);
    assert_false(rs_run_lacks_softmax(&info, "JSD", line, sizeof line));
    rs_run_info_clear(&info);
    check_all(s, b, &topk, 10, 9);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM routing WHERE run_id = 2 AND typeof(probs) = 'blob'"
                                   " AND length(probs) = 0"), 9 * 2 * 2);
    assert_int_equal(sql_int(path, "SELECT sum(run_id = 1) - sum(run_id = 2) FROM runs r JOIN routing ON run_id = r.id"
                                   " WHERE record IS NULL OR record = 'topk'"), 0);
    assert_int_equal(sql_int(path, "SELECT (SELECT checksum FROM runs WHERE id = 1) <> (SELECT checksum FROM runs"
                                   " WHERE id = 2)"), 1);
    assert_int_equal(rs_record_form_parse("topk", &topk.record, &err), 0);
    assert_int_equal(rs_record_form_parse("half", &topk.record, &err), RS_EINVAL);
    assert_string_equal(rs_record_form_name(RS_RECORD_TOPK), "topk");

    static const struct { int run; const char *sql, *fragment; } cases[] = {
        {2, "UPDATE routing SET top_gate = CAST(x'0000c07f' || substr(top_gate, 5) AS BLOB) WHERE run_id = 2"
            " AND image = 12 AND view = 1 AND layer = 0", "run 2 image 12 view 1 layer 0: token 0 rank 0: gate nan is "
            "not a probability"},
        {2, "UPDATE routing SET top_gate = CAST(x'0000803f0000803f' || substr(top_gate, 9) AS BLOB) WHERE run_id = 2"
            " AND image = 13 AND view = 0 AND layer = 1", "run 2 image 13 view 0 layer 1: token 0: gates sum to 2.000000"},
        {2, "UPDATE routing SET top_idx = CAST(x'0101' || substr(top_idx, 3) AS BLOB) WHERE run_id = 2 AND image = 14",
         "run 2 image 14 view 0 layer 0: token 0: expert 1 at ranks 0 and 1"},
        {2, "UPDATE routing SET probs = (SELECT probs FROM routing f WHERE f.run_id = 1 AND f.image = routing.image AND"
            " f.view = routing.view AND f.layer = routing.layer) WHERE run_id = 2 AND image = 15",
         "run 2 image 15 view 0 layer 0: probs BLOB of 40 bytes, expected 0"},
        {1, "UPDATE routing SET probs = x'' WHERE run_id = 1 AND image = 16 AND view = 1",
         "run 1 image 16 view 1 layer 0: probs BLOB of 0 bytes, expected 40"},
        {2, "UPDATE runs SET record = 'full' WHERE id = 2", "run 2 has an unknown record form"},
        /* Passing as topk, a full run would lose its softmax unseen: the form is hashed. */
        {1, "UPDATE runs SET record = 'topk' WHERE id = 1", "run 1 image 10 view 0 layer 0: probs BLOB of 40 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        print_message("  %s\n", cases[i].sql);
        const char *copy = scratch("topk-damaged.db");
        size_t size;
        unsigned char *bytes = tu_read_file(path, &size);
        assert_non_null(bytes);
        char side[1200];
        for (int w = 0; w < 2; w++) {
            snprintf(side, sizeof side, "%s%s", copy, w ? "-shm" : "-wal");
            remove(side);
        }
        assert_int_equal(tu_write_file(copy, bytes, size), 0);
        free(bytes);
        sql_exec(copy, cases[i].sql);
        s = open_ok(copy, true);
        assert_int_equal(rs_store_check_run(s, cases[i].run, &err), RS_EFORMAT);
        rs_store_close(s);
        print_message("    %s\n", err.msg);
        assert_non_null(strstr(err.msg, cases[i].fragment));
    }
}

/* Schema 8's encoding of an identity match map (issue 28): view 0's maps are written as 0
 * bytes and read back as the identity (check_all), the run passes the check and gets its
 * checksum, in a file of 16 KiB pages. The checksum covers the bytes stored: the same map
 * spelled out (the schema-7 encoding) or a moved map emptied is refused by it, and both read
 * fine where a run is checked row by row; an empty BLOB is the only short map accepted. */
static void test_identity_match(void **state)
{
    (void)state;
    char good[1100]; /* scratch() reuses its buffers */
    snprintf(good, sizeof good, "%s", checked_store("identity.db"));
    assert_int_equal(sql_int(good, "PRAGMA page_size"), 16384);
    assert_int_equal(sql_int(good, "SELECT count(*) FROM predictions WHERE view = 0 AND typeof(match) = 'blob'"
                                   " AND length(match) = 0"), 9);
    assert_int_equal(sql_int(good, "SELECT count(*) FROM predictions WHERE view = 1 AND length(match) = 8"), 9);
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(good, true);
    rs_error err = {0};
    assert_int_equal(rs_store_check_run(s, 1, &err), 0);
    check_all(s, 1, &spec, 10, 9);
    rs_store_close(s);

    static const char spelled[] = "UPDATE predictions SET match = x'0000010002000300' WHERE image = 12 AND view = 0";
    static const char emptied[] = "UPDATE predictions SET match = x'' WHERE image = 13 AND view = 1";
    assert_int_equal(check_damaged(good, spelled, &err), RS_EFORMAT);
    assert_non_null(strstr(err.msg, "differ from the checksum"));
    assert_int_equal(check_damaged(good, emptied, &err), RS_EFORMAT);
    assert_non_null(strstr(err.msg, "differ from the checksum"));
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE runs SET checksum = NULL; %s", spelled);
    assert_int_equal(check_damaged(good, sql, &err), 0);
    snprintf(sql, sizeof sql, "UPDATE runs SET checksum = NULL; %s", emptied);
    assert_int_equal(check_damaged(good, sql, &err), 0);
    assert_int_equal(check_damaged(good, "UPDATE runs SET checksum = NULL; UPDATE predictions SET match = x'0000'"
                                         " WHERE image = 14 AND view = 0", &err), RS_EFORMAT);
    assert_non_null(strstr(err.msg, "run 1 image 14 view 0: a malformed patch match map"));
}

/* set_status(done) runs the check first: a damaged run stays as it was. An unfinished run
 * says so (rs_run_unfinished); a run without its model row says that, not "no run" (item 8). */
static void test_check_status(void **state)
{
    (void)state;
    const char *path = scratch("status.db");
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    write_ok(s, run, &spec, 10, 9);
    rs_store_close(s);
    sql_exec(path, "DELETE FROM routing WHERE image = 13 AND view = 0 AND layer = 1");
    s = open_ok(path, false);
    rs_error err = {0};
    assert_int_equal(rs_store_set_status(s, run, RS_RUN_DONE, NULL, &err), RS_EFORMAT);
    expect_message(&err, path, "run 1 image 13 view 0 layer 1: no routing row");
    rs_run_info info = {0};
    assert_int_equal(rs_store_get_run(s, run, &info, &err), 0);
    assert_int_equal(info.status, RS_RUN_RUNNING);
    char note[128];
    assert_true(rs_run_unfinished(&info, note, sizeof note));
    assert_string_equal(note, "run 1 is not finished (running or killed, 9 of 9 images done)");
    assert_int_equal(sql_int(path, "SELECT checksum IS NULL FROM runs"), 1);
    rs_store_close(s);

    sql_exec(path, "DELETE FROM models");
    s = open_ok(path, true);
    assert_int_equal(rs_store_get_run(s, run, &info, &err), RS_EFORMAT);
    expect_message(&err, path, "run 1 exists, but its model (row 1 of table models) is missing");
    rs_store_close(s);
    rs_run_info_clear(&info);
}

/* A store of schema 5 (no checksums) is checked row by row, read in place; a writer upgrades
 * it to schema 6 with its done runs' checksums NULL. */
static void test_check_schema5(void **state)
{
    (void)state;
    const char *path = checked_store("schema5.db");
    sql_exec(path, "ALTER TABLE runs DROP COLUMN checksum; ALTER TABLE runs DROP COLUMN record; PRAGMA user_version = 5");
    rs_store *s = open_ok(path, true);
    rs_error err = {0};
    assert_int_equal(rs_store_check_run(s, 1, &err), 0);
    rs_store_close(s);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), 5);
    sql_exec(path, "DELETE FROM routing WHERE image = 18 AND view = 1 AND layer = 1");
    s = open_ok(path, true);
    assert_int_equal(rs_store_check_run(s, 1, &err), RS_EFORMAT);
    expect_message(&err, path, "run 1 image 18 view 1 layer 1: no routing row");
    rs_store_close(s);
    rs_store_close(open_ok(path, false));
    assert_int_equal(sql_int(path, "SELECT (SELECT user_version FROM pragma_user_version) = 8 AND checksum IS NULL"
                                   " FROM runs"), 1);
}

static void test_wrong_position(void **state)
{
    (void)state;
    const char *path = scratch("position.db");
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    write_ok(s, run, &spec, 10, 3);
    rs_error err = {0};
    struct { int first, count; } bad[] = {{10, 3}, {12, 2}, {14, 1}, {13, 7}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tbatch t = make_batch(&spec, bad[i].first, bad[i].count);
        assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), RS_EINVAL);
        expect_message(&err, path, "the run stands at image 13");
        free_batch(&t, bad[i].count, spec.num_views);
    }
    /* A batch of another shape. */
    tbatch t = make_batch(&spec, 13, 1);
    t.b.num_experts = 5;
    assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), RS_EINVAL);
    expect_message(&err, path, "batch shape");
    free_batch(&t, 1, spec.num_views);
    /* A run that does not exist. */
    t = make_batch(&spec, 13, 1);
    assert_int_equal(rs_store_write_batch(s, 77, &t.b, &err), RS_EINVAL);
    expect_message(&err, path, "no run 77");
    free_batch(&t, 1, spec.num_views);

    check_all(s, run, &spec, 10, 3);
    write_ok(s, run, &spec, 13, 6);
    check_all(s, run, &spec, 10, 9);
    rs_store_close(s);
}

typedef struct counts {
    int64_t samples, predictions, routing, done;
} counts;

static counts count_rows(const char *path)
{
    return (counts){
        sql_int(path, "SELECT count(*) FROM samples"),
        sql_int(path, "SELECT count(*) FROM predictions"),
        sql_int(path, "SELECT count(*) FROM routing"),
        sql_int(path, "SELECT images_done FROM runs WHERE id = 1"),
    };
}

static void assert_counts(counts a, counts b)
{
    assert_int_equal(a.samples, b.samples);
    assert_int_equal(a.predictions, b.predictions);
    assert_int_equal(a.routing, b.routing);
    assert_int_equal(a.done, b.done);
}

static void test_failing_batch_rolls_back(void **state)
{
    (void)state;
    const char *path = scratch("rollback.db");
    rs_run_spec spec = small_spec();
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    assert_int_equal(run, 1);
    write_ok(s, run, &spec, 10, 2);
    counts before = count_rows(path);
    assert_int_equal(before.routing, 2 * 2 * 2);
    rs_error err = {0};

    /* Each fault sits in the last image of the batch, after rows of the first two went in. */
    for (int fault = 0; fault < 3; fault++) {
        tbatch t = make_batch(&spec, 12, 3);
        char *saved = t.params[5];
        if (fault == 0)
            t.params[5] = NULL; /* image 14, view 1 */
        else if (fault == 1)
            t.top_idx[3 * 2 * 2 * 5 * 2 - 1] = 4; /* expert 4 of 4, the last value */
        else
            t.match[2 * 2 * 4 + 3] = 4; /* patch 4 of 4 */
        assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), RS_EINVAL);
        expect_message(&err, path, "image 14");
        t.params[5] = saved;
        free_batch(&t, 3, spec.num_views);
        assert_counts(count_rows(path), before);
    }

    /* A constraint SQLite enforces: a sample row already there for image 14. */
    sql_exec(path, "INSERT INTO samples (run_id, image, label) VALUES (1, 14, 0)");
    before = count_rows(path);
    tbatch t = make_batch(&spec, 12, 3);
    assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), RS_EINVAL);
    expect_message(&err, path, "UNIQUE constraint failed");
    assert_counts(count_rows(path), before);
    sql_exec(path, "DELETE FROM samples WHERE run_id = 1 AND image = 14");

    /* The store is usable after each failure. */
    assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), 0);
    free_batch(&t, 3, spec.num_views);
    check_all(s, run, &spec, 10, 5);
    rs_store_close(s);
}

/* Writes, then reads, a run of the shape T=50 (class token + 7x7 patches), R=2, E=8, L=2,
 * V=2 with realistic view parameters; prints token-records per second and bytes per
 * token-record of the closed file. */
static void test_benchmark(void **state)
{
    (void)state;
    const char *env = getenv("RS_STORE_BENCH_IMAGES");
    int images = env ? atoi(env) : 1000, per_batch = 100;
    if (images < per_batch)
        images = per_batch;
    images -= images % per_batch;
    rs_run_spec spec = small_spec();
    static const int blocks[] = {5, 7};
    spec.layer_blocks = blocks;
    spec.tokens = 50, spec.patches = 49, spec.grid_h = 7, spec.grid_w = 7;
    spec.num_experts = 8, spec.record_k = 2, spec.offset = 0, spec.count = images;
    const char *path = scratch("bench.db");
    rs_store *s = open_ok(path, false);
    int64_t run = begin_ok(s, &spec);
    /* One batch of content, written at successive positions: only the store is timed. */
    tbatch t = make_batch(&spec, 0, per_batch);
    rs_error err = {0};
    double t0 = seconds();
    for (int first = 0; first < images; first += per_batch) {
        t.b.first = first;
        assert_int_equal(rs_store_write_batch(s, run, &t.b, &err), 0);
    }
    double write_s = seconds() - t0;
    free_batch(&t, per_batch, spec.num_views);

    t0 = seconds();
    rs_store_cursor *c;
    rs_routing_record rec;
    assert_int_equal(rs_store_cursor_open(s, run, &c, &err), 0);
    long rows = 0;
    double sum = 0;
    while (rs_store_cursor_next(c, &rec, &err) == 1) {
        rows++;
        sum += rec.probs[0];
    }
    rs_store_cursor_close(c);
    double read_s = seconds() - t0;
    rs_store_close(s); /* checkpoints the WAL into the file */

    double records = (double)images * spec.num_views * spec.num_layers * spec.tokens;
    assert_int_equal(rows, (long)images * spec.num_views * spec.num_layers);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    print_message("  %d images, %.0f token-records: write %.3f s = %.0f records/s (%.0f images/s), "
                  "read %.3f s = %.0f records/s; file %lld bytes = %.2f bytes/record (payload %d)%s\n",
                  images, records, write_s, records / write_s, images / write_s, read_s, records / read_s,
                  (long long)st.st_size, st.st_size / records,
                  spec.record_k * 5 + spec.num_experts * 2, sum < 0 ? "" : "");
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_reopen),  cmocka_unit_test(test_schema_version),
        cmocka_unit_test(test_not_a_database), cmocka_unit_test(test_read_only),
        cmocka_unit_test(test_schema1_store),   cmocka_unit_test(test_dispatch_run),
        cmocka_unit_test(test_combined_identity),
        cmocka_unit_test(test_group_seed_run),
        cmocka_unit_test(test_schema4_store),   cmocka_unit_test(test_forced_run),
        cmocka_unit_test(test_locked),         cmocka_unit_test(test_runs),
        cmocka_unit_test(test_write_read),     cmocka_unit_test(test_attacks),
        cmocka_unit_test(test_wrong_position), cmocka_unit_test(test_checksum_reference),
        cmocka_unit_test(test_check_run),      cmocka_unit_test(test_check_status),
        cmocka_unit_test(test_check_schema5),  cmocka_unit_test(test_topk_run),
        cmocka_unit_test(test_identity_match),
        cmocka_unit_test(test_failing_batch_rolls_back), cmocka_unit_test(test_benchmark),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_remove_dir(tmpdir);
    return failed;
}
