#include "forward.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "kernels.h"
#include "layers.h"

/* One thread's scratch space for one group of up to G images, N = G * T rows: the
 * group's buffers, and one set of block buffers reused by every block (the routing
 * pointers are set per block to the caller's output rows). */
typedef struct workspace {
    rs_group_bufs g;
    rs_block_bufs b;   /* qkv (N,3D), one (T,T) score buffer, expert outputs (N,D), routing sort */
    int32_t *order;    /* (2N) dispatch priority order and its sort scratch; NULL without capacity */
    float *pad;        /* with pad_last: (G,C,H,W) a short group and its zero images, else NULL */
    int32_t *forced_pad; /* with pad_last: (N,k) a padded group's forced rows, -1 for the padding */
    uint8_t *forced_run_pad; /* with pad_last: (N,k) their run flags */
} workspace;

struct rs_forward {
    const rs_model *m;
    int max_batch, threads, group; /* GROUP: images per group (group.h) */
    rs_dispatch dispatch; /* capacity_factor 0: every top-k choice runs */
    int dispatch_rows;    /* token rows per dispatch group with a capacity */
    workspace *ws;     /* one per thread, owned */
    rs_forward_out out;
};

void rs_blas_set_threads(int threads)
{
    openblas_set_num_threads(threads);
}

/* What token rows ROW0 .. ROW0+N-1 of MoE slot R ran: rs_moe_choices of each. */
static void record_executed(const rs_config *c, const rs_block_bufs *bb, rs_moe_routing *r, size_t row0, int N)
{
    int k = c->top_k, R = rs_config_record_k(c);
    for (int n = 0; n < N; n++)
        memcpy(r->executed + (row0 + (size_t)n) * k, rs_moe_choices(bb, n, R, k), sizeof(int32_t) * (size_t)k);
}

/* FS's rows of the N real tokens of a padded group starting at row FROW, into the
 * workspace's pad rows, the padding's rows routed as usual (-1); sets BB's forced rows. */
static void pad_forced(const rs_config *c, workspace *ws, const rs_forced *fs, size_t frow, int N, int n)
{
    size_t k = (size_t)c->top_k, real = (size_t)n * k;
    memcpy(ws->forced_pad, fs->experts + frow, sizeof(int32_t) * real);
    for (size_t i = real; i < (size_t)N * k; i++)
        ws->forced_pad[i] = -1;
    for (size_t i = 0; i < (size_t)N * k; i++)
        ws->forced_run_pad[i] = i >= real || !fs->run || fs->run[frow + i];
    ws->b.forced = ws->forced_pad;
    ws->b.forced_run = ws->forced_run_pad;
}

/* The whole network for the G images IMAGES, images FIRST .. FIRST+G-1 of the batch, of
 * which the first REAL are the batch's (the rest a short group's padding, dispatch.h),
 * FORCED as in rs_forward_run_forced (NULL: none). */
static void forward_group(rs_forward *f, workspace *ws, const float *images, const rs_forced *forced, int first,
                          int G, int real)
{
    const rs_model *m = f->m;
    const rs_config *c = &m->cfg;
    size_t T = (size_t)rs_config_tokens(c), E = (size_t)c->num_experts, R = (size_t)rs_config_record_k(c);
    int N = G * (int)T;
    rs_layer_embed(m, &ws->g, images, G, false);
    for (int i = 0; i < c->depth; i++) {
        const rs_block_weights *w = &m->blocks[i];
        rs_layer_attention(c, &ws->g, &ws->b, w, G);
        rs_layer_norm(ws->g.xn, ws->g.x, w->norm2_w, w->norm2_b, (size_t)N, (size_t)c->hidden, c->layer_norm_eps);
        if (w->moe_slot < 0) {
            rs_layer_dense(c, &ws->g, &ws->b, w, N);
        } else {
            rs_moe_routing *r = &f->out.moe[w->moe_slot];
            size_t row0 = (size_t)first * T;
            ws->b.probs = r->probs + row0 * E;
            ws->b.top_idx = r->top_idx + row0 * R;
            ws->b.top_gate = r->top_gate + row0 * R;
            ws->b.kept = r->kept ? r->kept + row0 * R : NULL;
            const rs_forced *fs = forced && forced[w->moe_slot].experts ? &forced[w->moe_slot] : NULL;
            size_t frow = row0 * (size_t)c->top_k;
            ws->b.forced = fs ? fs->experts + frow : NULL;
            ws->b.forced_run = fs && fs->run ? fs->run + frow : NULL;
            if (fs && real < G)
                pad_forced(c, ws, fs, frow, N, real * (int)T);
            rs_layer_moe(c, &ws->g, &ws->b, w, N, ws->b.kept ? &f->dispatch : NULL, f->dispatch_rows, ws->order);
            record_executed(c, &ws->b, r, row0, N);
        }
    }
    rs_layer_head(m, &ws->g, G, f->out.logits + (size_t)first * c->num_classes);
}

/* What every group of one rs_forward_run_forced reads. */
typedef struct run_ctx {
    rs_forward *f;
    const float *images;
    const rs_forced *forced;
} run_ctx;

static void run_group(void *ctx, int thread, int first, int n)
{
    run_ctx *r = ctx;
    const rs_config *c = &r->f->m->cfg;
    workspace *ws = &r->f->ws[thread];
    const float *images = r->images + (size_t)first * c->channels * c->image_h * c->image_w;
    int G = rs_group_padded(r->f->dispatch.capacity_factor > 0 ? &r->f->dispatch : NULL, n);
    if (G > n)
        images = rs_group_pad(c, images, n, G, false, ws->pad);
    forward_group(r->f, ws, images, r->forced, first, G, n);
}

/* RS_EINVAL unless every row of FORCED (batch*T rows of k) is -1 first or k distinct experts. */
static int check_forced(const rs_config *c, const int32_t *forced, int batch, int slot, rs_error *err)
{
    int k = c->top_k, E = c->num_experts;
    size_t rows = (size_t)batch * rs_config_tokens(c);
    for (size_t n = 0; n < rows; n++) {
        const int32_t *ids = forced + n * k;
        if (ids[0] < 0 && ids[0] != -1)
            return rs_error_set(err, RS_EINVAL, "forward: forced expert %d at block %d, token row %zu", ids[0],
                                c->moe_layers[slot], n);
        for (int a = 0; ids[0] >= 0 && a < k; a++) {
            bool twice = false;
            for (int b = 0; b < a; b++)
                twice |= ids[b] == ids[a];
            if (ids[a] < 0 || ids[a] >= E || twice)
                return rs_error_set(err, RS_EINVAL, "forward: forced experts of token row %zu at block %d are not "
                                    "%d distinct experts of 0..%d", n, c->moe_layers[slot], k, E - 1);
        }
    }
    return 0;
}

int rs_forward_run(rs_forward *f, const float *images, int batch, rs_error *err)
{
    return rs_forward_run_forced(f, images, batch, NULL, err);
}

int rs_forward_run_forced(rs_forward *f, const float *images, int batch, const rs_forced *forced, rs_error *err)
{
    if (batch < 1 || batch > f->max_batch)
        return rs_error_set(err, RS_EINVAL, "forward: batch %d outside [1, %d]", batch, f->max_batch);
    const rs_config *c = &f->m->cfg;
    for (int s = 0; forced && s < c->num_moe; s++) {
        int rc = forced[s].experts ? check_forced(c, forced[s].experts, batch, s, err) : 0;
        if (rc)
            return rc;
    }
    for (int s = 0; s < c->num_moe; s++)
        f->out.moe[s].forced = forced && forced[s].experts;
    run_ctx ctx = {f, images, forced};
    rs_group_run(batch, f->group, f->threads, run_group, &ctx);
    f->out.batch = batch;
    for (int t = 0; t < f->threads; t++) {
        int rc = rs_gemm_status(f->ws[t].g.gemm, err);
        if (rc)
            return rs_error_prefix(err, rs_safetensors_path(f->m->file));
    }
    return 0;
}

const rs_forward_out *rs_forward_result(const rs_forward *f)
{
    return &f->out;
}

int rs_forward_group_size(const rs_forward *f)
{
    return f->group;
}

static void free_workspace(workspace *ws)
{
    float *bufs[] = {ws->g.x, ws->g.xn, ws->g.attn, ws->g.hidden, ws->g.gathered, ws->g.patches, ws->g.pooled,
                     ws->g.pre, ws->b.qkv, ws->b.att, ws->b.y};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(ws->b.route_rows);
    free(ws->b.route_start);
    free(ws->order);
    rs_gemm_free(ws->g.gemm);
    free(ws->pad);
    free(ws->forced_pad);
    free(ws->forced_run_pad);
}

static bool alloc_workspace(workspace *ws, const rs_config *c, int G, bool capacity, bool pad)
{
    size_t T = (size_t)rs_config_tokens(c), N = (size_t)G * T;
    size_t D = (size_t)c->hidden, M = (size_t)c->mlp_dim, E = (size_t)c->num_experts;
    size_t img = (size_t)c->channels * c->image_h * c->image_w;
    rs_group_bufs *g = &ws->g;
    rs_block_bufs *b = &ws->b;
    return (g->x = malloc(sizeof(float) * N * D)) && (g->xn = malloc(sizeof(float) * N * D)) &&
           (b->qkv = malloc(sizeof(float) * N * 3 * D)) && (g->attn = malloc(sizeof(float) * N * D)) &&
           (g->hidden = malloc(sizeof(float) * N * M)) && (g->gathered = malloc(sizeof(float) * N * D)) &&
           (b->y = malloc(sizeof(float) * N * D)) && (b->att = malloc(sizeof(float) * T * T)) &&
           (g->patches = malloc(sizeof(float) * (size_t)G * img)) &&
           (g->pooled = malloc(sizeof(float) * (size_t)G * D)) && (g->pre = malloc(sizeof(float) * (size_t)G * D)) &&
           (b->route_rows = malloc(sizeof(int32_t) * N * (size_t)c->top_k)) &&
           (b->route_start = malloc(sizeof(int32_t) * (2 * E + 1))) &&
           (!capacity || (ws->order = malloc(sizeof(int32_t) * 2 * N))) &&
           (!pad || ((ws->pad = malloc(sizeof(float) * (size_t)G * img)) &&
                     (ws->forced_pad = malloc(sizeof(int32_t) * N * (size_t)c->top_k)) &&
                     (ws->forced_run_pad = malloc(N * (size_t)c->top_k))));
}

void rs_forward_free(rs_forward *f)
{
    if (!f)
        return;
    for (int t = 0; f->ws && t < f->threads; t++)
        free_workspace(&f->ws[t]);
    free(f->ws);
    for (int s = 0; f->out.moe && s < f->m->cfg.num_moe; s++) {
        free(f->out.moe[s].probs);
        free(f->out.moe[s].top_idx);
        free(f->out.moe[s].top_gate);
        free(f->out.moe[s].kept);
        free(f->out.moe[s].executed);
    }
    free(f->out.moe);
    free(f->out.logits);
    free(f);
}

int rs_forward_create(const rs_model *model, int max_batch, int threads, rs_forward **out, rs_error *err)
{
    return rs_forward_create_dispatch(model, max_batch, threads, NULL, out, err);
}

int rs_forward_create_dispatch(const rs_model *model, int max_batch, int threads, const rs_dispatch *dispatch,
                               rs_forward **out, rs_error *err)
{
    *out = NULL;
    if (max_batch < 1 || threads < 1)
        return rs_error_set(err, RS_EINVAL, "forward: max_batch %d and threads %d must be >= 1", max_batch,
                            threads);
    const rs_config *c = &model->cfg;
    int group, dg, rc = rs_group_for_dispatch(c, dispatch, "forward", &group, &dg, err);
    if (rc)
        return rc;
    bool capacity = dg > 0, pad = capacity && dispatch->pad_last;
    /* A padded last group writes its padding's outputs too: rows for whole dispatch groups. */
    size_t rows = pad ? ((size_t)max_batch + dg - 1) / dg * dg : (size_t)max_batch;
    size_t T = (size_t)rs_config_tokens(c), N = rows * T;
    size_t E = (size_t)c->num_experts, R = (size_t)rs_config_record_k(c);
    rs_forward *f = calloc(1, sizeof *f);
    if (!f)
        return rs_error_set(err, RS_ENOMEM, "forward: out of memory");
    f->m = model;
    if (capacity)
        f->dispatch = *dispatch;
    f->dispatch_rows = dg * (int)T;
    f->max_batch = max_batch;
    f->threads = rs_group_threads(max_batch, group, threads);
    f->group = group;
    f->out.tokens = (int)T;
    f->out.record_k = (int)R;
    const char *path = rs_safetensors_path(model->file);
    bool ok = (f->ws = calloc((size_t)f->threads, sizeof *f->ws)) != NULL;
    for (int t = 0; ok && t < f->threads; t++)
        ok = alloc_workspace(&f->ws[t], c, group, capacity, pad);
    for (int t = 0; ok && t < f->threads; t++) {
        if ((rc = rs_gemm_create(model->gemm, model->precision, &f->ws[t].g.gemm, err))) {
            rs_forward_free(f);
            return rs_error_prefix(err, path);
        }
    }
    if (!ok) {
        /* The workspace does not grow with the batch: its size comes from the model (the
         * T x T attention scores, the group's activations), so say so. */
        size_t D = (size_t)c->hidden, M = (size_t)c->mlp_dim, GT = (size_t)group * T;
        size_t mb = (sizeof(float) * (GT * (6 * D + M) + T * T) >> 20) + 1;
        rs_forward_free(f);
        return rs_error_set(err, RS_ENOMEM,
                            "%s: out of memory for the forward pass's workspace (about %zu MB per thread for "
                            "%zu tokens: %zu x %zu attention scores, %d image%s per group); fewer --threads need less",
                            path, mb, T, T, T, group, group == 1 ? "" : "s");
    }
    ok = (f->out.logits = malloc(sizeof(float) * rows * c->num_classes)) &&
         (f->out.moe = calloc((size_t)(c->num_moe ? c->num_moe : 1), sizeof *f->out.moe));
    for (int s = 0; ok && s < c->num_moe; s++) {
        rs_moe_routing *r = &f->out.moe[s];
        r->block = c->moe_layers[s];
        ok = (r->probs = malloc(sizeof(float) * N * E)) && (r->top_idx = malloc(sizeof(int32_t) * N * R)) &&
             (r->top_gate = malloc(sizeof(float) * N * R)) && (!capacity || (r->kept = malloc(N * R))) &&
             (r->executed = malloc(sizeof(int32_t) * N * (size_t)c->top_k));
    }
    if (!ok) {
        size_t mb = ((sizeof(float) * N * (E + 2 * R + (size_t)c->top_k) * (size_t)c->num_moe) >> 20) + 1;
        rs_forward_free(f);
        return rs_error_set(err, RS_ENOMEM,
                            "%s: out of memory for the routing of a batch of %d images (about %zu MB); "
                            "a smaller --batch needs less", path, max_batch, mb);
    }
    /* Each of our threads runs whole groups; OpenBLAS itself must stay on the calling
     * thread, or two thread pools would fight over the cores. */
    rs_blas_set_threads(1);
    *out = f;
    return 0;
}
