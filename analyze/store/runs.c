/* runs.c — run rows: the identity of a run, and beginning, finding, reading, listing and
 * setting the status of runs (contract in store.h). */
#include "store_internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- runs -------------------------------------------------------------------------------- */

static char *dup_text(const unsigned char *s)
{
    return s ? strdup((const char *)s) : NULL;
}

static const char *const status_names[] = {"running", "done", "failed", "interrupted"};

const char *store_status_name(rs_run_status status)
{
    return status_names[status];
}

rs_run_status store_status_from_name(const char *name)
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
        if (spec->bf16_dispatch)
            sb_field(&b, "bf16_dispatch", "1");
        if (spec->pad_last_group)
            sb_field(&b, "pad_last_group", "1");
    }
    if (spec->compute)
        sb_field(&b, "gemm", spec->compute);
    if (spec->record == RS_RECORD_TOPK)
        sb_field(&b, "record", "topk");
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
    if (spec->record != RS_RECORD_FULL && spec->record != RS_RECORD_TOPK)
        return "an unknown record form";
    if ((spec->bf16_dispatch || spec->pad_last_group) && !(spec->capacity_factor > 0))
        return "bfloat16 dispatch and a padded last group need a capacity factor";
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
        return store_db_fail(store, rc, "looking up a run", err);
    }
    sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    free(identity);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return store_db_fail(store, rc, "looking up a run", err);
    rc = rs_store_get_run(store, id, info, err);
    return rc ? rc : 1;
}

/* The model row, shared by every run of the same checkpoint: inserted once per sha256.
 * SQLite's result code. */
static int insert_model(rs_store *s, const rs_run_spec *spec)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO models (sha256, path, config, params, labels) VALUES (?, ?, ?, ?, ?)"
                                " ON CONFLICT (sha256) DO NOTHING",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, spec->model_sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, spec->model_path, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, spec->model_config, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, spec->model_params);
        sqlite3_bind_text(st, 5, spec->model_labels, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
    }
    sqlite3_finalize(st);
    return rc;
}

/* The run row of SPEC, status running with nothing done, under IDENTITY; JOB is the job's
 * identity for a shard run, NULL otherwise. SQLite's (extended) result code:
 * SQLITE_CONSTRAINT_UNIQUE when a run of that identity exists. */
static int insert_run(rs_store *s, const rs_run_spec *spec, const char *identity, const char *job)
{
    char layers[1024] = ""; /* 64 ints and commas at most */
    for (int l = 0, n = 0; l < spec->num_layers; l++)
        n += snprintf(layers + n, sizeof layers - (size_t)n, l ? ",%d" : "%d", spec->layer_blocks[l]);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        s->db,
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
        sqlite3_bind_double(st, 22, store_now());
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
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Run RUN_ID's dispatch settings and group seed, when SPEC has a capacity factor (the
 * columns stay NULL otherwise). SQLite's result code. */
static int update_dispatch(rs_store *s, const rs_run_spec *spec, int64_t run_id)
{
    if (!(spec->capacity_factor > 0))
        return SQLITE_OK;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "UPDATE runs SET capacity_factor = ?, group_images = ?, bpr = ?,"
                                       " group_seed = ? WHERE id = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_double(st, 1, spec->capacity_factor);
        sqlite3_bind_int(st, 2, spec->group_images);
        sqlite3_bind_int(st, 3, spec->bpr);
        if (spec->has_group_seed) /* unbound: NULL, data order */
            sqlite3_bind_int64(st, 4, (int64_t)spec->group_seed);
        sqlite3_bind_int64(st, 5, run_id);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Run RUN_ID's record form, when SPEC records topk (a full run's column stays NULL, as in
 * every run of an older store). SQLite's result code. */
static int update_record(rs_store *s, const rs_run_spec *spec, int64_t run_id)
{
    if (spec->record != RS_RECORD_TOPK)
        return SQLITE_OK;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "UPDATE runs SET record = 'topk' WHERE id = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, run_id);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Run RUN_ID's view specs. SQLite's result code. */
static int insert_views(rs_store *s, const rs_run_spec *spec, int64_t run_id)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "INSERT INTO views (run_id, view, spec) VALUES (?, ?, ?)", -1, &st, NULL);
    for (int v = 0; rc == SQLITE_OK && v < spec->num_views; v++) {
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int(st, 2, v);
        sqlite3_bind_text(st, 3, spec->view_specs[v], -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(s->db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

/* The rows of a new run, inside the caller's transaction: model, run row, dispatch, views.
 * SQLite's result code; *WHAT names the step it stopped at, *RUN_ID is the new run. */
static int insert_run_rows(rs_store *s, const rs_run_spec *spec, const char *identity, const char *job,
                           int64_t *run_id, const char **what)
{
    *what = "recording the model";
    int rc = insert_model(s, spec);
    if (rc != SQLITE_OK)
        return rc;
    *what = "recording the run";
    if ((rc = insert_run(s, spec, identity, job)) != SQLITE_OK)
        return rc;
    *run_id = sqlite3_last_insert_rowid(s->db);
    *what = "recording the run's dispatch";
    if ((rc = update_dispatch(s, spec, *run_id)) != SQLITE_OK)
        return rc;
    *what = "recording the run's record form";
    if ((rc = update_record(s, spec, *run_id)) != SQLITE_OK)
        return rc;
    *what = "recording the views";
    return insert_views(s, spec, *run_id);
}

int rs_store_begin_run(rs_store *store, const rs_run_spec *spec, int64_t *run_id, rs_error *err)
{
    if (store->read_only)
        return store_read_only_fail(store, err);
    int rc = check_spec(store, spec, true, err);
    if (rc)
        return rc;
    char *identity = run_identity(spec, false), *job = spec->shard_count > 0 ? run_identity(spec, true) : NULL;
    if (!identity || (spec->shard_count > 0 && !job)) {
        free(identity);
        free(job);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
    }
    if ((rc = store_run_cached(store, ST_BEGIN, "starting a run", err))) {
        free(identity);
        free(job);
        return rc;
    }
    int64_t id = 0;
    const char *what;
    rc = insert_run_rows(store, spec, identity, job, &id, &what);
    free(identity);
    free(job);
    if (rc == SQLITE_CONSTRAINT_UNIQUE) { /* the run's identity; nothing else is UNIQUE without a fallback */
        store_rollback(store);
        return rs_error_set(err, RS_EINVAL, "%s: an identical run is recorded already (find it with rs_store_find_run)",
                            store->path);
    }
    if (rc != SQLITE_OK) {
        rc = store_db_fail(store, rc, what, err); /* before the rollback, which replaces SQLite's message */
        store_rollback(store);
        return rc;
    }
    if ((rc = store_run_cached(store, ST_COMMIT, "committing the new run", err))) {
        store_rollback(store);
        return rc;
    }
    *run_id = id;
    return 0;
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
                                s->schema < 5 ? "SELECT capacity_factor, group_images, bpr, NULL, identity FROM runs"
                                                " WHERE id = ?"
                                              : "SELECT capacity_factor, group_images, bpr, group_seed, identity FROM"
                                                " runs WHERE id = ?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(s, rc, "reading a run's dispatch", err);
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        info->capacity_factor = sqlite3_column_double(st, 0);
        info->group_images = sqlite3_column_int(st, 1);
        info->bpr = sqlite3_column_int(st, 2) != 0;
        info->has_group_seed = sqlite3_column_type(st, 3) != SQLITE_NULL;
        info->group_seed = (uint64_t)sqlite3_column_int64(st, 3);
        const char *identity = (const char *)sqlite3_column_text(st, 4);
        /* Whole lines of run_identity's text: a field's value never holds a newline
         * followed by one of these (view specs are one line). */
        info->bf16_dispatch = identity && strstr(identity, "\nbf16_dispatch=1:1\n");
        info->pad_last_group = identity && strstr(identity, "\npad_last_group=1:1\n");
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_db_fail(s, rc, "reading a run's dispatch", err);
}

/* The "gemm" field of the run's identity text (run_identity) into INFO->compute, "" when the
 * identity has none (OpenBLAS float32): walks the length-prefixed fields, so no view spec
 * can fake it. */
static int read_compute(rs_store *s, int64_t run_id, rs_run_info *info, rs_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT identity FROM runs WHERE id = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(s, rc, "reading a run's identity", err);
    sqlite3_bind_int64(st, 1, run_id);
    info->compute[0] = 0;
    rc = sqlite3_step(st);
    const char *p = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    const char *nl = p ? strchr(p, '\n') : NULL; /* past the "routerscope-run/1" line */
    for (p = nl ? nl + 1 : NULL; p && *p;) {
        const char *eq = strchr(p, '=');
        char *colon;
        unsigned long long len = eq ? strtoull(eq + 1, &colon, 10) : 0;
        if (!eq || *colon != ':' || len > strlen(colon + 1))
            break;
        const char *value = colon + 1;
        if (eq - p == 4 && !strncmp(p, "gemm", 4) && len < sizeof info->compute) {
            memcpy(info->compute, value, len);
            info->compute[len] = 0;
        }
        p = value + len + (value[len] == '\n');
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_db_fail(s, rc, "reading a run's identity", err);
}

/* The run's record form (schema 7; older stores hold full runs only). Any text other than
 * 'topk' or NULL is refused: a reader must not take empty BLOBs for a softmax, nor the reverse. */
static int read_record(rs_store *s, int64_t run_id, rs_run_info *info, rs_error *err)
{
    info->record = RS_RECORD_FULL;
    if (s->schema < 7)
        return 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT record IS NULL, record = 'topk' FROM runs WHERE id = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(s, rc, "reading a run's record form", err);
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    bool known = rc != SQLITE_ROW || sqlite3_column_int(st, 0) || sqlite3_column_int(st, 1);
    if (rc == SQLITE_ROW && sqlite3_column_int(st, 1))
        info->record = RS_RECORD_TOPK;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return store_db_fail(s, rc, "reading a run's record form", err);
    return known ? 0 : rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " has an unknown record form (runs.record "
                                    "is neither NULL nor 'topk'): the store is damaged", s->path, run_id);
}

#define RUN_COMMON_COLUMNS                                                                                 \
    "SELECT r.status, r.images_total, r.images_done, r.model_path, m.sha256, r.data, r.protocol, r.error,"    \
    " r.command, r.version, r.num_views, r.first_image, r.image_count, r.num_layers, r.layers, r.tokens,"    \
    " r.patches, r.grid_h, r.grid_w, r.record_k, r.num_experts, r.num_classes, r.has_cls, r.seed,"            \
    " r.started, r.finished, "
/* A LEFT JOIN, so that a run whose model row is gone is told apart from no run at all. */
#define RUN_FROM " FROM runs r LEFT JOIN models m ON m.id = r.model_id WHERE r.id = ?"
#define RUN_MODEL_COLUMNS ", m.id IS NULL, r.model_id"
/* Provenance inside the stored config (every schema): no schema change needed. */
#define RUN_PROVENANCE_COLUMNS                                                                             \
    ", (CASE WHEN json_valid(m.config) AND json_type(m.config, '$.method') = 'text'"                        \
    " AND length(json_extract(m.config, '$.method')) BETWEEN 1 AND 31"                                      \
    " THEN json_extract(m.config, '$.method') END)"                                                        \
    ", (CASE WHEN json_valid(m.config) AND json_type(m.config, '$.train_seed') = 'integer'"                 \
    " AND json_extract(m.config, '$.train_seed') >= 0 THEN json_extract(m.config, '$.train_seed') ELSE -1 END)"

/* The SELECT of one run row (bound: its id) for a store of schema SCHEMA: fill_run reads
 * its columns. Older schemas read in place, their missing columns computed or NULL. */
static const char *run_select(int schema)
{
    static const char *const select[3] = {
        RUN_COMMON_COLUMNS V1_RUN_COLUMNS ", " V2_SHARD_COLUMNS RUN_PROVENANCE_COLUMNS RUN_MODEL_COLUMNS RUN_FROM,
        RUN_COMMON_COLUMNS V2_RUN_COLUMNS ", " V2_SHARD_COLUMNS RUN_PROVENANCE_COLUMNS RUN_MODEL_COLUMNS RUN_FROM,
        RUN_COMMON_COLUMNS V2_RUN_COLUMNS ", " V3_SHARD_COLUMNS RUN_PROVENANCE_COLUMNS RUN_MODEL_COLUMNS RUN_FROM};
    _Static_assert(RS_STORE_SCHEMA == 8, "get_run reads schemas 1, 2 and 3 or later (schemas 4 and 5 add only "
                                         "what read_dispatch reads and routing.executed, schema 6 the checksum "
                                         "that check.c reads, schema 7 what read_record reads, schema 8 no "
                                         "column)");
    return select[(schema < 1 ? 1 : schema > 3 ? 3 : schema) - 1];
}

/* The current row of ST (run_select) into INFO, all but its views and dispatch; *NUM_VIEWS
 * its number of views. false when out of memory (INFO holds what was copied). */
static bool fill_run(sqlite3_stmt *st, rs_run_info *info, int *num_views)
{
    info->status = store_status_from_name((const char *)sqlite3_column_text(st, 0));
    info->images_total = sqlite3_column_int(st, 1);
    info->images_done = sqlite3_column_int(st, 2);
    info->model_path = dup_text(sqlite3_column_text(st, 3));
    info->model_sha256 = dup_text(sqlite3_column_text(st, 4));
    info->data = dup_text(sqlite3_column_text(st, 5));
    info->protocol = dup_text(sqlite3_column_text(st, 6));
    info->error = dup_text(sqlite3_column_text(st, 7));
    info->command = dup_text(sqlite3_column_text(st, 8));
    info->version = dup_text(sqlite3_column_text(st, 9));
    *num_views = sqlite3_column_int(st, 10);
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
    bool oom = parse_labels((const char *)sqlite3_column_text(st, 30), info) != 0 || !info->model_path ||
               !info->model_sha256 || !info->data || !info->protocol ||
               (sqlite3_column_type(st, 7) != SQLITE_NULL && !info->error) ||
               (sqlite3_column_type(st, 8) != SQLITE_NULL && !info->command) ||
               (sqlite3_column_type(st, 9) != SQLITE_NULL && !info->version) ||
               (sqlite3_column_type(st, 35) != SQLITE_NULL && !info->job_identity) ||
               (sqlite3_column_type(st, 36) != SQLITE_NULL && !info->method);
    return !oom;
}

/* The run row of RUN_ID into INFO (fill_run). */
static int read_run_row(rs_store *store, int64_t run_id, rs_run_info *info, int *num_views, rs_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(store->db, run_select(store->schema), -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(store, rc, "reading a run", err);
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE)
            return rs_error_set(err, RS_EINVAL, "%s: no run %" PRId64, store->path, run_id);
        return store_db_fail(store, rc, "reading a run", err);
    }
    if (sqlite3_column_int(st, 38)) {
        int64_t model = sqlite3_column_int64(st, 39);
        sqlite3_finalize(st);
        return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " exists, but its model (row %" PRId64 " of table "
                            "models) is missing: the store is damaged", store->path, run_id, model);
    }
    info->id = run_id;
    bool ok = fill_run(st, info, num_views);
    sqlite3_finalize(st);
    return ok ? 0 : rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
}

/* The view specs of run RUN_ID into INFO->view_specs (INFO->num_views entries, allocated). */
static int read_views(rs_store *store, int64_t run_id, rs_run_info *info, rs_error *err)
{
    const int num_views = info->num_views;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(store->db, "SELECT view, spec FROM views WHERE run_id = ? ORDER BY view", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(store, rc, "reading a run's views", err);
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
    if (rc != SQLITE_DONE)
        return store_db_fail(store, rc, "reading a run's views", err);
    if (found != num_views)
        return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " has %d of its %d view specs", store->path,
                            run_id, found, num_views);
    return 0;
}

int rs_store_get_run(rs_store *store, int64_t run_id, rs_run_info *info, rs_error *err)
{
    rs_run_info_clear(info);
    int num_views = 0;
    int rc = read_run_row(store, run_id, info, &num_views, err);
    if (!rc && !(info->view_specs = calloc((size_t)(num_views > 0 ? num_views : 1), sizeof *info->view_specs)))
        rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", store->path);
    if (!rc) {
        info->num_views = num_views;
        if (!(rc = read_dispatch(store, run_id, info, err)) && !(rc = read_compute(store, run_id, info, err)) &&
            !(rc = read_record(store, run_id, info, err)))
            rc = read_views(store, run_id, info, err);
    }
    if (rc)
        rs_run_info_clear(info);
    return rc;
}

int rs_store_list_runs(rs_store *store, rs_run_info **runs, int *count, rs_error *err)
{
    *runs = NULL;
    *count = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(store->db, "SELECT id FROM runs ORDER BY id", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(store, rc, "listing runs", err);
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
        return store_db_fail(store, rc, "listing runs", err);
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
