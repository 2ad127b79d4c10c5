/* run.c — a stored run as one object (contract in run.h). */
#include "run.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input/source.h"
#include "input/view.h"
#include "rs_number.h"

/* "1, 2, 5" (at most the first 20 ids) into BUF. */
static void list_ids(const rs_run_info *runs, int n, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < size; i++) {
        if (i == 20) {
            snprintf(buf + len, size - len, ", ...");
            break;
        }
        len += (size_t)snprintf(buf + len, size - len, i ? ", %" PRId64 : "%" PRId64, runs[i].id);
    }
}

/* Run ID of STORE into INFO, refused (INFO cleared) when it fails the store's check: no
 * reader reads a run that fails it. */
static int get_checked(rs_store *store, int64_t id, rs_run_info *info, rs_error *err)
{
    int rc = rs_store_get_run(store, id, info, err);
    if (!rc && (rc = rs_store_check_run(store, id, err)))
        rs_run_info_clear(info);
    return rc;
}

int rs_run_load(rs_store *store, const char *name, int64_t run_id, rs_run_info *info, rs_error *err)
{
    /* A named run is read at once; the list of runs is only needed to pick the last
     * finished one or to say which runs there are. */
    if (run_id > 0) {
        int rc = get_checked(store, run_id, info, err);
        if (rc != RS_EINVAL)
            return rc;
    }
    rs_run_info *runs;
    int n;
    int rc = rs_store_list_runs(store, &runs, &n, err);
    if (rc)
        return rc;
    int pick = -1;
    for (int i = 0; i < n && run_id == 0; i++)
        if (runs[i].status == RS_RUN_DONE)
            pick = i;
    char ids[256];
    list_ids(runs, n, ids, sizeof ids);
    int64_t id = pick >= 0 ? runs[pick].id : 0;
    for (int i = 0; i < n; i++)
        rs_run_info_clear(&runs[i]);
    free(runs);
    if (pick >= 0)
        return get_checked(store, id, info, err);
    if (n == 0)
        return rs_error_set(err, RS_EINVAL, "%s: holds no runs", name);
    if (run_id > 0)
        return rs_error_set(err, RS_EINVAL, "%s: no run %" PRId64 " (runs here: %s)", name, run_id, ids);
    return rs_error_set(err, RS_EINVAL, "%s: no finished run (runs here: %s; see 'routerscope runs --db %s')", name,
                        ids, name);
}

/* TEXT as MODEL/PROTOCOL: one '/' with text on either side, no ',' (lists of runs split at
 * commas) and no blank at either end. The MODEL part's length into *MODEL_LEN. */
static bool split_selector(const char *text, size_t *model_len)
{
    const char *slash = strchr(text, '/');
    size_t len = strlen(text);
    if (!slash || slash == text || !slash[1] || strchr(slash + 1, '/') || strchr(text, ',') ||
        isspace((unsigned char)text[0]) || isspace((unsigned char)text[len - 1]))
        return false;
    *model_len = (size_t)(slash - text);
    return true;
}

bool rs_run_selector_ok(const char *text)
{
    long long id;
    size_t model_len;
    return text && (!strcmp(text, "last") || rs_parse_integer(text, 1, INT64_MAX, &id) == 0 ||
                    split_selector(text, &model_len));
}

/* True when RUN is the MODEL/PROTOCOL that SELECTOR names (MODEL_LEN: its MODEL part). */
static bool run_is(const rs_run_info *run, const char *selector, size_t model_len)
{
    char stem[256];
    rs_run_model_stem(run, stem, sizeof stem);
    return strlen(stem) == model_len && !strncmp(stem, selector, model_len) && run->protocol &&
           !strcmp(run->protocol, selector + model_len + 1);
}

/* The finished runs' distinct MODEL/PROTOCOL names, "a/pair, a/noise" (as many as fit). */
static void list_selectors(const rs_run_info *runs, int n, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        char stem[256], one[300];
        rs_run_model_stem(&runs[i], stem, sizeof stem);
        snprintf(one, sizeof one, "%s/%s", stem, runs[i].protocol ? runs[i].protocol : "?");
        bool seen = runs[i].status != RS_RUN_DONE;
        for (int j = 0; j < i && !seen; j++)
            seen = runs[j].status == RS_RUN_DONE && run_is(&runs[j], one, strlen(stem));
        if (seen)
            continue;
        if (len + strlen(one) + 7 >= size) {
            snprintf(buf + len, size - len, ", ...");
            return;
        }
        len += (size_t)snprintf(buf + len, size - len, len ? ", %s" : "%s", one);
    }
}

int rs_run_select(rs_store *store, const char *name, const char *text, int64_t *id, rs_error *err)
{
    long long given;
    size_t model_len = 0;
    *id = 0;
    if (rs_parse_integer(text, 1, INT64_MAX, &given) == 0) {
        *id = given;
        return 0;
    }
    bool last = !strcmp(text, "last");
    if (!last && !split_selector(text, &model_len))
        return rs_error_set(err, RS_EINVAL, "'%s' names no run: want a run id, 'last' or MODEL/PROTOCOL", text);
    rs_run_info *runs;
    int n;
    int rc = rs_store_list_runs(store, &runs, &n, err);
    if (rc)
        return rc;
    int pick = -1;
    for (int i = 0; i < n; i++)
        if (runs[i].status == RS_RUN_DONE && (last || run_is(&runs[i], text, model_len)))
            pick = i;
    char names[160];
    list_selectors(runs, n, names, sizeof names);
    if (pick >= 0)
        *id = runs[pick].id;
    for (int i = 0; i < n; i++)
        rs_run_info_clear(&runs[i]);
    free(runs);
    if (pick >= 0)
        return 0;
    if (!names[0])
        return rs_error_set(err, RS_EINVAL, "%s: holds no finished run (see 'routerscope runs --db %s')", name, name);
    return rs_error_set(err, RS_EINVAL, "%s: no finished run is '%s' (finished: %s)", name, text, names);
}

void rs_run_model_stem(const rs_run_info *run, char *buf, size_t size)
{
    const char *path = run && run->model_path ? run->model_path : "?";
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t len = strlen(name), ext = strlen(".safetensors");
    if (len > ext && !strcmp(name + len - ext, ".safetensors"))
        len -= ext;
    snprintf(buf, size, "%.*s", (int)len, name);
}

void rs_run_model_label(const rs_run_info *run, char *buf, size_t size)
{
    char stem[256];
    rs_run_model_stem(run, stem, sizeof stem);
    snprintf(buf, size, "%s (%.12s)", stem, run && run->model_sha256 ? run->model_sha256 : "?");
}

void rs_run_model_k_label(const rs_run_info *run, char *buf, size_t size)
{
    char stem[256];
    rs_run_model_stem(run, stem, sizeof stem);
    snprintf(buf, size, "%s (%.12s, k=%d)", stem, run->model_sha256 ? run->model_sha256 : "?", run->top_k);
}

void rs_run_short_label(const rs_run_info *run, char *buf, size_t size)
{
    rs_method m = rs_run_method(run);
    char stem[160];
    rs_run_model_stem(run, stem, sizeof stem);
    snprintf(buf, size, "%s k=%d (run %" PRId64 ")", m == RS_METHOD_OTHER ? stem : rs_method_name(m),
             run->top_k, run->id);
}

void rs_run_note(const rs_run_info *run, char *buf, size_t size)
{
    char model[320];
    rs_run_model_k_label(run, model, sizeof model);
    snprintf(buf, size,
             "run %" PRId64 ": model %s, data %s [%d..%d), protocol %s, %d views, %d of %d images, "
             "seed %" PRIu64,
             run->id, model, run->data, run->offset, run->offset + run->count,
             run->protocol, run->num_views, run->images_done, run->count, run->seed);
}

void rs_run_label(const rs_run_info *run, char *buf, size_t size)
{
    char model[256];
    rs_run_model_label(run, model, sizeof model);
    snprintf(buf, size, "run %" PRId64 ": %.120s, k=%d, %s, seed %" PRIu64, run->id, model, run->top_k,
             run->protocol, run->seed);
}

void rs_run_name(const rs_run_info *run, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRId64, run->id);
}

bool rs_run_is_noise(const rs_run_info *run)
{
    return run && run->protocol && !strcmp(run->protocol, "noise");
}

/* ---- what differs between two runs -------------------------------------------------------- */

/* The text rs_run_difference builds and the fields found so far. */
typedef struct diff_text {
    char *buf;
    size_t size;
    rs_run_diff_form form;
    unsigned found;
} diff_text;

static const char *str(const char *s)
{
    return s ? s : "";
}

/* Records FIELDS as differing and adds their words: the list joins every part with "; ", the
 * other forms keep the first. A part that would not fit is cut at the end of BUF. */
static void differ(diff_text *t, unsigned fields, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void differ(diff_text *t, unsigned fields, const char *fmt, ...)
{
    bool first = !t->found;
    t->found |= fields;
    if (!t->size || (!first && t->form != RS_RUN_DIFF_LIST))
        return;
    size_t len = strlen(t->buf);
    if (len + 2 >= t->size)
        return;
    if (len)
        len += (size_t)snprintf(t->buf + len, t->size - len, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->buf + len, t->size - len, fmt, ap);
    va_end(ap);
}

/* The data and the slice asked for: one sentence covers both. */
static void differ_data(diff_text *t, const rs_run_info *a, const rs_run_info *b, unsigned what)
{
    bool data = (what & RS_RUN_DIFF_DATA) && strcmp(str(a->data), str(b->data));
    bool offset = (what & RS_RUN_DIFF_SLICE) && a->offset != b->offset;
    bool count = (what & RS_RUN_DIFF_SLICE) && a->count != b->count;
    if (t->form == RS_RUN_DIFF_SENTENCE && (data || offset || count)) {
        differ(t, (data ? RS_RUN_DIFF_DATA : 0) | (offset || count ? RS_RUN_DIFF_SLICE : 0),
               "data differs (%s [%d..%d) vs %s [%d..%d))", str(a->data), a->offset, a->offset + a->count,
               str(b->data), b->offset, b->offset + b->count);
        return;
    }
    if (data)
        differ(t, RS_RUN_DIFF_DATA, "data '%s' vs '%s'", str(a->data), str(b->data));
    if (offset)
        differ(t, RS_RUN_DIFF_SLICE, "offset %d vs %d", a->offset, b->offset);
    if (count)
        differ(t, RS_RUN_DIFF_SLICE, "count %d vs %d", a->count, b->count);
}

static void differ_images(diff_text *t, const rs_run_info *a, const rs_run_info *b)
{
    if (a->offset == b->offset && a->images_done == b->images_done)
        return;
    if (t->form != RS_RUN_DIFF_SENTENCE)
        differ(t, RS_RUN_DIFF_IMAGES, "images %d..%d vs %d..%d", a->offset, a->offset + a->images_done - 1,
               b->offset, b->offset + b->images_done - 1);
    else if (a->offset == b->offset)
        differ(t, RS_RUN_DIFF_IMAGES, "images done differ (%d vs %d)", a->images_done, b->images_done);
    else
        differ(t, RS_RUN_DIFF_IMAGES, "images done differ (%d..%d vs %d..%d)", a->offset,
               a->offset + a->images_done - 1, b->offset, b->offset + b->images_done - 1);
}

/* The number of views, else the first view whose spec differs. */
static void differ_views(diff_text *t, const rs_run_info *a, const rs_run_info *b)
{
    bool sentence = t->form == RS_RUN_DIFF_SENTENCE;
    if (a->num_views != b->num_views) {
        differ(t, RS_RUN_DIFF_VIEWS, sentence ? "number of views differs (%d vs %d)" : "view specs: %d vs %d views",
               a->num_views, b->num_views);
        return;
    }
    for (int v = 0; v < a->num_views; v++) {
        const char *va = str(a->view_specs[v]), *vb = str(b->view_specs[v]);
        if (strcmp(va, vb)) {
            differ(t, RS_RUN_DIFF_VIEWS, sentence ? "view %d differs (%s vs %s)" : "view %d spec '%s' vs '%s'", v,
                   va, vb);
            return;
        }
    }
}

static void differ_seed(diff_text *t, const rs_run_info *a, const rs_run_info *b)
{
    if (a->seed == b->seed)
        return;
    if (t->form == RS_RUN_DIFF_SENTENCE)
        differ(t, RS_RUN_DIFF_SEED, "seed differs (%" PRIu64 " vs %" PRIu64 ": different augmented views)", a->seed,
               b->seed);
    else
        differ(t, RS_RUN_DIFF_SEED, "%s %" PRIu64 " vs %" PRIu64, t->form == RS_RUN_DIFF_FIRST ? "view seed" : "seed",
               a->seed, b->seed);
}

static void differ_shapes(diff_text *t, const rs_run_info *a, const rs_run_info *b)
{
    if (t->form == RS_RUN_DIFF_SENTENCE) {
        if (a->num_layers != b->num_layers || a->patches != b->patches)
            differ(t, RS_RUN_DIFF_SHAPES, "MoE layers or patch grid differ");
        return;
    }
    if (a->num_layers != b->num_layers)
        differ(t, RS_RUN_DIFF_SHAPES, "MoE layers %d vs %d", a->num_layers, b->num_layers);
    if (a->patches != b->patches)
        differ(t, RS_RUN_DIFF_SHAPES, "patches %d vs %d", a->patches, b->patches);
}

static void differ_dispatch(diff_text *t, const rs_run_info *a, const rs_run_info *b)
{
    if (a->capacity_factor == b->capacity_factor && a->group_images == b->group_images && a->bpr == b->bpr &&
        a->bf16_dispatch == b->bf16_dispatch && a->pad_last_group == b->pad_last_group)
        return;
    char fa[48], fb[48];
    snprintf(fa, sizeof fa, "%s%s%s", a->bpr ? ", BPR" : "", a->bf16_dispatch ? ", bfloat16" : "",
             a->pad_last_group ? ", padded" : "");
    snprintf(fb, sizeof fb, "%s%s%s", b->bpr ? ", BPR" : "", b->bf16_dispatch ? ", bfloat16" : "",
             b->pad_last_group ? ", padded" : "");
    differ(t, RS_RUN_DIFF_DISPATCH,
           t->form == RS_RUN_DIFF_SENTENCE ? "dispatch differs (capacity factor %g, groups of %d%s vs %g, groups of %d%s)"
                                           : "dispatch capacity factor %g, groups of %d%s vs %g, groups of %d%s",
           a->capacity_factor, a->group_images, fa, b->capacity_factor, b->group_images, fb);
}

unsigned rs_run_difference(const rs_run_info *a, const rs_run_info *b, unsigned what, rs_run_diff_form form,
                           char *buf, size_t size)
{
    diff_text t = {.buf = buf, .size = buf ? size : 0, .form = form};
    if (t.size)
        buf[0] = '\0';
    bool sentence = form == RS_RUN_DIFF_SENTENCE;
    differ_data(&t, a, b, what);
    if (what & RS_RUN_DIFF_IMAGES)
        differ_images(&t, a, b);
    if ((what & RS_RUN_DIFF_PROTOCOL) && strcmp(str(a->protocol), str(b->protocol)))
        differ(&t, RS_RUN_DIFF_PROTOCOL, sentence ? "protocol differs (%s vs %s)" : "protocol '%s' vs '%s'",
               str(a->protocol), str(b->protocol));
    if (what & RS_RUN_DIFF_VIEWS)
        differ_views(&t, a, b);
    if (what & RS_RUN_DIFF_SEED)
        differ_seed(&t, a, b);
    if (what & RS_RUN_DIFF_SHAPES)
        differ_shapes(&t, a, b);
    if ((what & RS_RUN_DIFF_MODEL) && strcmp(str(a->model_sha256), str(b->model_sha256)))
        differ(&t, RS_RUN_DIFF_MODEL, sentence ? "model differs (%.12s vs %.12s)" : "model %.12s vs %.12s",
               a->model_sha256 ? a->model_sha256 : "?", b->model_sha256 ? b->model_sha256 : "?");
    if (what & RS_RUN_DIFF_DISPATCH)
        differ_dispatch(&t, a, b);
    return t.found;
}

const char *rs_run_class_name(const rs_run_info *run, int cls, char *buf, size_t size)
{
    if (cls < 0)
        snprintf(buf, size, "?");
    else if (run && run->class_names && cls < run->num_class_names)
        snprintf(buf, size, "%d %s", cls, run->class_names[cls]);
    else
        snprintf(buf, size, "%d", cls);
    return buf;
}

static const char *const method_keys[RS_METHOD_COUNT] = {"other", "vmoe", "prc",
                                                               "jsd",   "adv",  "advmoe"};

rs_method rs_run_method(const rs_run_info *run)
{
    if (!run)
        return RS_METHOD_OTHER;
    if (run->method) {
        for (int m = RS_METHOD_VMOE; m < RS_METHOD_COUNT; m++)
            if (!strcmp(run->method, method_keys[m]))
                return (rs_method)m;
        return RS_METHOD_OTHER;
    }
    /* Checkpoints from before "method" existed are known by their file names
     * (models/fmnist-prc-k2.safetensors); the method names are tried before "vmoe". */
    if (!run->model_path)
        return RS_METHOD_OTHER;
    const char *base = strrchr(run->model_path, '/');
    base = base ? base + 1 : run->model_path;
    if (strcasestr(base, "prc"))
        return RS_METHOD_PRC;
    if (strcasestr(base, "jsd"))
        return RS_METHOD_JSD;
    if (strcasestr(base, "advmoe"))
        return RS_METHOD_ADVMOE;
    if (strcasestr(base, "adv"))
        return RS_METHOD_ADV;
    if (strcasestr(base, "vmoe") || strcasestr(base, "v-moe"))
        return RS_METHOD_VMOE;
    return RS_METHOD_OTHER;
}

const char *rs_method_name(rs_method m)
{
    static const char *const names[RS_METHOD_COUNT] = {"other",     "V-MoE",        "V-MoE+PRC",
                                                       "V-MoE+JSD", "V-MoE (adv.)", "AdvMoE"};
    return m >= 0 && m < RS_METHOD_COUNT ? names[m] : names[0];
}

const char *rs_method_key(rs_method m)
{
    return m >= 0 && m < RS_METHOD_COUNT ? method_keys[m] : method_keys[0];
}

void rs_image_routing_free(rs_image_routing *r)
{
    if (!r)
        return;
    free(r->predicted);
    free(r->pred_prob);
    free(r->match);
    free(r->top_idx);
    free(r->top_gate);
    free(r->probs);
    memset(r, 0, sizeof *r);
}

/* Moves block VIEWS[i] of N blocks of SIZE bytes each to block i (VIEWS ascending). */
static void keep_blocks(void *base, size_t size, const int *views, int n)
{
    if (!base)
        return;
    for (int i = 0; i < n; i++)
        memmove((char *)base + (size_t)i * size, (char *)base + (size_t)views[i] * size, size);
}

void rs_image_routing_keep_views(rs_image_routing *r, const int *views, int n)
{
    size_t rows = (size_t)r->layers * r->tokens;
    keep_blocks(r->predicted, sizeof *r->predicted, views, n);
    keep_blocks(r->pred_prob, sizeof *r->pred_prob, views, n);
    keep_blocks(r->match, sizeof *r->match * (size_t)r->patches, views, n);
    keep_blocks(r->top_idx, rows * r->record_k, views, n);
    keep_blocks(r->top_gate, sizeof *r->top_gate * rows * r->record_k, views, n);
    keep_blocks(r->probs, sizeof *r->probs * rows * r->experts, views, n);
    r->views = n;
}

/* Shapes from RUN and zeroed arrays for them. */
static int image_routing_alloc(const rs_run_info *run, int image, rs_image_routing *r, rs_error *err)
{
    r->image = image, r->label = -1, r->views = run->num_views, r->layers = run->num_layers;
    r->tokens = run->tokens, r->record_k = run->record_k, r->experts = run->num_experts;
    r->patches = run->patches, r->grid_h = run->grid_h, r->grid_w = run->grid_w, r->has_cls = run->has_cls;
    size_t V = (size_t)r->views, rows = V * r->layers * r->tokens;
    r->predicted = calloc(V, sizeof *r->predicted);
    r->pred_prob = calloc(V, sizeof *r->pred_prob);
    r->match = calloc(V * r->patches, sizeof *r->match);
    r->top_idx = calloc(rows * r->record_k, 1);
    r->top_gate = calloc(rows * r->record_k, sizeof *r->top_gate);
    bool full = run->record != RS_RECORD_TOPK;
    r->probs = full ? calloc(rows * r->experts, sizeof *r->probs) : NULL;
    if (!r->predicted || !r->pred_prob || !r->match || !r->top_idx || !r->top_gate || (full && !r->probs))
        return rs_error_set(err, RS_ENOMEM, "out of memory reading image %d", image);
    return 0;
}

/* Copies one (view, layer) record into R; counts it in *SEEN. */
static void image_routing_take(rs_image_routing *r, const rs_routing_record *rec, size_t *seen)
{
    if (rec->view < 0 || rec->view >= r->views || rec->layer < 0 || rec->layer >= r->layers)
        return;
    size_t base = ((size_t)rec->view * r->layers + rec->layer) * r->tokens;
    memcpy(r->top_idx + base * r->record_k, rec->top_idx, (size_t)r->tokens * r->record_k);
    memcpy(r->top_gate + base * r->record_k, rec->top_gate, sizeof(float) * r->tokens * r->record_k);
    if (r->probs && rec->probs)
        memcpy(r->probs + base * r->experts, rec->probs, sizeof(float) * r->tokens * r->experts);
    memcpy(r->match + (size_t)rec->view * r->patches, rec->match, sizeof(int16_t) * r->patches);
    r->predicted[rec->view] = rec->predicted;
    r->pred_prob[rec->view] = rec->pred_prob;
    r->label = rec->label;
    (*seen)++;
}

int rs_run_image_routing(rs_store *store, const rs_run_info *run, int image, rs_image_routing *out,
                         rs_error *err)
{
    memset(out, 0, sizeof *out);
    if (image < run->offset || image >= run->offset + run->images_done)
        return rs_error_set(err, RS_EINVAL, "run %" PRId64 " holds images %d..%d, not image %d", run->id,
                            run->offset, run->offset + run->images_done - 1, image);
    rs_store_cursor *cur = NULL;
    int rc = image_routing_alloc(run, image, out, err);
    if (!rc)
        rc = rs_store_cursor_open_images(store, run->id, image, image, &cur, err);
    size_t seen = 0, want = (size_t)out->views * out->layers;
    rs_routing_record rec;
    while (!rc && (rc = rs_store_cursor_next(cur, &rec, err)) == 1) {
        rc = 0;
        image_routing_take(out, &rec, &seen);
    }
    rs_store_cursor_close(cur);
    if (!rc && seen != want)
        rc = rs_error_set(err, RS_EFORMAT, "run %" PRId64 ": image %d has %zu routing records, expected %zu", run->id,
                          image, seen, want);
    for (size_t q = 0; !rc && q < want * out->tokens * out->record_k; q++)
        if (out->top_idx[q] >= out->experts)
            rc = rs_error_set(err, RS_EFORMAT, "run %" PRId64 ": image %d: expert id %d >= %d experts", run->id,
                              image, out->top_idx[q], out->experts);
    if (rc < 0)
        rs_image_routing_free(out);
    return rc < 0 ? rc : 0;
}

int rs_run_view_pixels(const rs_run_info *run, int image, float **pixels, rs_error *err)
{
    *pixels = NULL;
    int C = run->channels, H = run->image_h, W = run->image_w, V = run->num_views;
    if (C < 1 || H < 1 || W < 1 || V < 1)
        return rs_error_set(err, RS_EFORMAT, "run %" PRId64 ": the store does not know the model's input shape",
                            run->id);
    size_t n = (size_t)C * H * W;
    rs_source *src = NULL;
    float *source_px = malloc(sizeof(float) * n), *px = malloc(sizeof(float) * n * (size_t)V);
    int rc = !source_px || !px ? rs_error_set(err, RS_ENOMEM, "out of memory") : rs_source_open(run->data, &src, err);
    if (!rc)
        rc = rs_source_load(src, image, C, H, W, source_px, err);
    for (int v = 0; v < V && !rc; v++) {
        rs_view_spec spec;
        rs_view view;
        rc = rs_view_spec_parse(run->view_specs[v], &spec, err);
        if (!rc)
            rc = rs_view_spec_check_base(&spec, v, err);
        if (!rc) {
            /* A view with a base starts from its base's pixels (already in PX). */
            const float *from = spec.base >= 0 ? px + (size_t)spec.base * n : source_px;
            rs_view_draw(&spec, W, H, run->seed, image, v, &view);
            if (rs_view_render(&view, from, C, H, W, px + (size_t)v * n))
                rc = rs_error_set(err, RS_ENOMEM, "out of memory");
        }
    }
    rs_source_close(src);
    free(source_px);
    if (rc) {
        free(px);
        return rc;
    }
    *pixels = px;
    return 0;
}

int rs_run_image_top1(rs_store *store, const rs_run_info *run, int64_t **pairs_out, int64_t **agree_out,
                      rs_error *err)
{
    int N = run->images_done, L = run->num_layers, Np = run->patches, R = run->record_k;
    int64_t *pairs = calloc((size_t)(N > 0 ? N : 1), sizeof *pairs);
    int64_t *agree = calloc((size_t)(N > 0 ? N : 1), sizeof *agree);
    int *ref = malloc(sizeof(int) * (size_t)(L > 0 ? L : 1) * (size_t)(Np > 0 ? Np : 1));
    rs_store_cursor *cur = NULL;
    int rc = !pairs || !agree || !ref ? rs_error_set(err, RS_ENOMEM, "out of memory")
                                      : rs_store_cursor_open(store, run->id, &cur, err);
    rs_routing_record rec;
    while (!rc && (rc = rs_store_cursor_next(cur, &rec, err)) == 1) {
        rc = 0;
        int i = rec.image - run->offset;
        if (i < 0 || i >= N || rec.layer < 0 || rec.layer >= L)
            continue;
        const uint8_t *top = rec.top_idx + (size_t)run->has_cls * R;
        if (rec.view == 0) {
            for (int j = 0; j < Np; j++)
                ref[(size_t)rec.layer * Np + j] = top[(size_t)j * R];
            continue;
        }
        for (int j = 0; j < Np; j++) {
            int m = rec.match[j];
            if (m < 0 || m >= Np)
                continue;
            pairs[i]++;
            agree[i] += top[(size_t)j * R] == ref[(size_t)rec.layer * Np + m];
        }
    }
    rs_store_cursor_close(cur);
    free(ref);
    if (rc < 0) {
        free(pairs);
        free(agree);
        return rc;
    }
    *pairs_out = pairs;
    *agree_out = agree;
    return 0;
}
