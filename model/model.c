#include "model.h"

#include <math.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Binding state while the tensors are looked up one by one. */
typedef struct binder {
    rs_model *m;
    char *used;     /* one flag per file tensor: did the layout claim it? */
    int capacity;   /* of m->owned */
    rs_error *err;
} binder;

static const float *adopt(binder *b, const rs_st_tensor *t)
{
    rs_model *m = b->m;
    if (t->dtype == RS_DTYPE_F32 && ((uintptr_t)t->data & 3) == 0)
        return t->data;
    if (m->num_owned == b->capacity) {
        int cap = b->capacity ? 2 * b->capacity : 16;
        float **grown = realloc(m->owned, sizeof *grown * (size_t)cap);
        if (!grown)
            return NULL;
        m->owned = grown;
        b->capacity = cap;
    }
    float *buf = malloc(sizeof *buf * (size_t)(t->numel ? t->numel : 1));
    if (!buf)
        return NULL;
    rs_dtype_to_f32(t->dtype, t->data, buf, (size_t)t->numel);
    m->owned[m->num_owned++] = buf;
    m->copied_bytes += sizeof *buf * (size_t)t->numel;
    return buf;
}

/* Looks up NAME, checks its shape against the NDIM sizes that follow, and stores a float
 * view in *OUT. With OPTIONAL, an absent tensor leaves *OUT NULL. */
static int bind(binder *b, const float **out, int optional, const char *name, int ndim, ...)
{
    const rs_safetensors *st = b->m->file;
    const char *path = rs_safetensors_path(st);
    const rs_st_tensor *t = rs_safetensors_find(st, name);
    *out = NULL;
    if (!t) {
        if (optional)
            return 0;
        return rs_error_set(b->err, RS_EFORMAT, "%s: tensor %s is missing", path, name);
    }
    int64_t want[RS_ST_MAX_DIMS];
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++)
        want[i] = va_arg(ap, int);
    va_end(ap);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == want[i];
    if (!same) {
        char have_s[96], want_s[96];
        return rs_error_set(b->err, RS_EFORMAT, "%s: tensor %s: shape %s but config wants %s", path,
                            name, rs_shape_str(t->shape, t->ndim, have_s, sizeof have_s),
                            rs_shape_str(want, ndim, want_s, sizeof want_s));
    }
    b->used[t - rs_safetensors_at(st, 0)] = 1;
    b->m->num_params += t->numel;
    if (!(*out = adopt(b, t)))
        return rs_error_set(b->err, RS_ENOMEM, "%s: out of memory widening %s", path, name);
    /* One NaN or infinity spreads through every later layer: the outputs would be
     * meaningless (and the store rejects NaN probabilities halfway through a run). */
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite((*out)[i]))
            return rs_error_set(b->err, RS_EFORMAT, "%s: tensor %s: element %lld is %s (weights must be finite)",
                                path, name, (long long)i, isnan((*out)[i]) ? "NaN" : "infinite");
    return 0;
}

/* "blocks.I.PART" in BUF (one buffer serves every bind: bind copies what it keeps). */
static const char *block_name(char *buf, size_t size, int i, const char *part)
{
    snprintf(buf, size, "blocks.%d.%s", i, part);
    return buf;
}

static int bind_block(binder *b, int i)
{
    const rs_config *c = &b->m->cfg;
    rs_block_weights *w = &b->m->blocks[i];
    int D = c->hidden, M = c->mlp_dim, E = c->num_experts, rc;
    char n[64];
#define NAME(part) block_name(n, sizeof n, i, part)
    if ((rc = bind(b, &w->norm1_w, 0, NAME("norm1.weight"), 1, D)) ||
        (rc = bind(b, &w->norm1_b, 0, NAME("norm1.bias"), 1, D)) ||
        (rc = bind(b, &w->qkv_w, 0, NAME("attn.qkv.weight"), 2, 3 * D, D)) ||
        (rc = bind(b, &w->qkv_b, 0, NAME("attn.qkv.bias"), 1, 3 * D)) ||
        (rc = bind(b, &w->proj_w, 0, NAME("attn.proj.weight"), 2, D, D)) ||
        (rc = bind(b, &w->proj_b, 0, NAME("attn.proj.bias"), 1, D)) ||
        (rc = bind(b, &w->norm2_w, 0, NAME("norm2.weight"), 1, D)) ||
        (rc = bind(b, &w->norm2_b, 0, NAME("norm2.bias"), 1, D)))
        return rc;
    w->moe_slot = rs_config_moe_slot(c, i);
    if (w->moe_slot < 0) {
        if ((rc = bind(b, &w->fc1_w, 0, NAME("mlp.fc1.weight"), 2, M, D)) ||
            (rc = bind(b, &w->fc1_b, 0, NAME("mlp.fc1.bias"), 1, M)) ||
            (rc = bind(b, &w->fc2_w, 0, NAME("mlp.fc2.weight"), 2, D, M)) ||
            (rc = bind(b, &w->fc2_b, 0, NAME("mlp.fc2.bias"), 1, D)))
            return rc;
        return 0;
    }
    if ((rc = bind(b, &w->router_w, 0, NAME("moe.router.weight"), 2, E, D)) ||
        (rc = bind(b, &w->router_b, !c->router_bias, NAME("moe.router.bias"), 1, E)) ||
        (rc = bind(b, &w->efc1_w, 0, NAME("moe.experts.fc1.weight"), 3, E, M, D)) ||
        (rc = bind(b, &w->efc1_b, 0, NAME("moe.experts.fc1.bias"), 2, E, M)) ||
        (rc = bind(b, &w->efc2_w, 0, NAME("moe.experts.fc2.weight"), 3, E, D, M)) ||
        (rc = bind(b, &w->efc2_b, 0, NAME("moe.experts.fc2.bias"), 2, E, D)))
        return rc;
#undef NAME
    return 0;
}

static int bind_all(binder *b)
{
    rs_model *m = b->m;
    const rs_config *c = &m->cfg;
    int D = c->hidden, P = c->patch_size, T = rs_config_tokens(c), rc;
    int rep = c->representation ? D : 0; /* width of pre_logits, 0 when absent */
    if ((rc = bind(b, &m->patch_w, 0, "patch_embed.weight", 4, D, c->channels, P, P)) ||
        (rc = bind(b, &m->patch_b, 0, "patch_embed.bias", 1, D)) ||
        (rc = bind(b, &m->pos_embed, 0, "pos_embed", 3, 1, T, D)))
        return rc;
    if (c->classifier == RS_CLASSIFIER_TOKEN && (rc = bind(b, &m->cls_token, 0, "cls_token", 3, 1, 1, D)))
        return rc;
    for (int i = 0; i < c->depth; i++) {
        if ((rc = bind_block(b, i)))
            return rc;
    }
    if ((rc = bind(b, &m->norm_w, 0, "norm.weight", 1, D)) || (rc = bind(b, &m->norm_b, 0, "norm.bias", 1, D)))
        return rc;
    if (rep && ((rc = bind(b, &m->pre_logits_w, 0, "pre_logits.weight", 2, rep, D)) ||
                (rc = bind(b, &m->pre_logits_b, 0, "pre_logits.bias", 1, rep))))
        return rc;
    if ((rc = bind(b, &m->head_w, 0, "head.weight", 2, c->num_classes, rep ? rep : D)) ||
        (rc = bind(b, &m->head_b, 0, "head.bias", 1, c->num_classes)))
        return rc;
    /* A tensor nobody claimed means the file follows another layout or config. */
    int count = rs_safetensors_count(m->file);
    for (int i = 0; i < count; i++) {
        if (!b->used[i])
            return rs_error_set(b->err, RS_EFORMAT, "%s: tensor %s is not part of the layout for this config",
                                rs_safetensors_path(m->file), rs_safetensors_at(m->file, i)->name);
    }
    return 0;
}

int rs_model_open(const char *path, rs_model **out, rs_error *err)
{
    *out = NULL;
    rs_model *m = calloc(1, sizeof *m);
    if (!m)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);
    int rc = rs_safetensors_open(path, &m->file, err);
    if (rc) {
        free(m);
        return rc;
    }
    const char *format = rs_safetensors_metadata(m->file, "format");
    if (!format || strcmp(format, "routerscope-vmoe")) {
        rc = rs_error_set(err, RS_EFORMAT, "%s: __metadata__ format is %s%s%s, want \"routerscope-vmoe\"",
                          path, format ? "\"" : "", format ? format : "missing", format ? "\"" : "");
    } else if ((rc = rs_config_parse(rs_safetensors_metadata(m->file, "config"), &m->cfg, err))) {
        rs_error_prefix(err, path);
    } else {
        binder b = {.m = m, .err = err, .used = calloc((size_t)rs_safetensors_count(m->file) + 1, 1)};
        rc = b.used ? bind_all(&b) : rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);
        free(b.used);
    }
    if (rc) {
        rs_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* Copies N floats of SRC as bfloat16 to *CUR and returns the copy, advancing *CUR. */
static const uint16_t *twin(uint16_t **cur, const float *src, size_t n)
{
    uint16_t *dst = *cur;
    for (size_t i = 0; i < n; i++)
        dst[i] = rs_bf16_round(src[i]);
    *cur += n;
    return dst;
}

/* The bfloat16 values the large matrices of block W take (and, with CUR NULL, none are
 * written: the count alone). */
static size_t twin_block(const rs_config *c, rs_block_weights *w, uint16_t **cur)
{
    size_t D = (size_t)c->hidden, M = (size_t)c->mlp_dim, E = (size_t)c->num_experts;
    size_t ffn = w->moe_slot < 0 ? 2 * M * D : 2 * E * M * D;
    if (!cur)
        return 4 * D * D + ffn;
    w->qkv_h = twin(cur, w->qkv_w, 3 * D * D);
    w->proj_h = twin(cur, w->proj_w, D * D);
    if (w->moe_slot < 0) {
        w->fc1_h = twin(cur, w->fc1_w, M * D);
        w->fc2_h = twin(cur, w->fc2_w, D * M);
    } else {
        w->efc1_h = twin(cur, w->efc1_w, E * M * D);
        w->efc2_h = twin(cur, w->efc2_w, E * D * M);
    }
    return 4 * D * D + ffn;
}

int rs_model_set_compute(rs_model *m, rs_gemm_backend backend, rs_precision precision, rs_error *err)
{
    int rc = rs_gemm_check(backend, precision, err);
    if (rc)
        return rc;
    m->gemm = backend;
    m->precision = precision;
    if (precision != RS_PRECISION_BF16 || m->bf16)
        return 0;
    const rs_config *c = &m->cfg;
    size_t total = 0;
    for (int i = 0; i < c->depth; i++)
        total += twin_block(c, &m->blocks[i], NULL);
    if (!(m->bf16 = malloc(sizeof *m->bf16 * total)))
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory for the bfloat16 weights",
                            rs_safetensors_path(m->file));
    uint16_t *cur = m->bf16;
    for (int i = 0; i < c->depth; i++)
        twin_block(c, &m->blocks[i], &cur);
    return 0;
}

void rs_model_close(rs_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->num_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->bf16);
    rs_config_free(&m->cfg);
    rs_safetensors_close(m->file);
    free(m);
}
