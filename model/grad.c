#include "grad.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "group.h"
#include "kernels.h"
#include "layers.h"
#include "predict.h"
#include "rs_number.h"

/* What one block's backward needs from its forward, for one group (N = G*T rows). */
typedef struct tape_block {
    float *x_in;        /* (N,D) residual stream entering the block (norm1's input) */
    float *x_mid;       /* (N,D) residual stream after attention (norm2's input) */
    rs_block_bufs b;    /* qkv, every head's attention probabilities, GELU inputs, expert
                           outputs and routing, all kept (layers.h) */
} tape_block;

/* One thread's buffers for one group of up to G images. */
typedef struct workspace {
    tape_block blocks[RS_MAX_DEPTH];
    rs_group_bufs g;    /* the forward's working buffers; g.x ends as the final residual stream */
    float *logits;      /* (G,K) */
    float *dx, *dxn, *dattn, *dqkv, *dscores, *dh, *dp; /* (N,D) (N,D) (N,D) (N,3D) (T,T) (N,M) (N,E) */
    float *dlogits, *dfeat, *dpooled; /* (G,K) (G,D) (G,D) */
    double *value;      /* (G) */
    int32_t *order;     /* (2N) dispatch's priority order and its scratch; NULL without a capacity */
    float *pad;         /* (G,C,H,W) a short group and its zero images with pad_last, else NULL */
    float *arena;       /* owns everything above */
} workspace;

struct rs_grad {
    const rs_model *m;
    int max_batch, threads, group; /* GROUP: images per group (group.h) */
    rs_dispatch dispatch; /* capacity_factor 0: every top-k choice runs */
    int dispatch_rows;  /* token rows per dispatch group with a capacity */
    workspace *ws;      /* one per thread */
};

/* What a run reads besides the pixels, for one group. */
typedef struct group_in {
    const rs_objective *obj;
    const int32_t *labels;      /* (G) or NULL */
    const float *const *ref;    /* num_moe pointers to this group's (N,E) rows, or NULL */
    int nsel;                   /* selected MoE blocks */
    int real;                   /* images with an objective; the group's others pad it (dispatch.h):
                                   no objective, so no gradient, as vmoe's zero-loss padding */
} group_in;

/* ---- objective specs ---- */

static const char *const KIND_NAMES[] = {"ce", "router", "router-target", "jsd", "margin", "router-ce"};
#define NUM_KINDS ((int)(sizeof KIND_NAMES / sizeof *KIND_NAMES))

void rs_objective_init(rs_objective *obj)
{
    memset(obj, 0, sizeof *obj);
    obj->num_terms = 1;
    obj->term[0] = RS_OBJ_ROUTER;
    obj->beta = 1.0;
    obj->target = -1;
}

static int parse_kind(const char *s, size_t len, rs_objective_kind *kind)
{
    for (int i = 0; i < NUM_KINDS; i++)
        if (strlen(KIND_NAMES[i]) == len && !strncmp(s, KIND_NAMES[i], len)) {
            *kind = (rs_objective_kind)i;
            return 0;
        }
    return -1;
}

static int parse_loss(rs_objective *obj, const char *value, rs_error *err)
{
    const char *amp = strchr(value, '&');
    rs_objective_kind a, b = RS_OBJ_CE;
    size_t len0 = amp ? (size_t)(amp - value) : strlen(value);
    if (parse_kind(value, len0, &a) || (amp && (strchr(amp + 1, '&') || parse_kind(amp + 1, strlen(amp + 1), &b))))
        return rs_error_set(err, RS_EINVAL,
                            "loss: '%s' is not ce, router, router-target, router-ce, jsd, margin or two of them joined by '&'",
                            value);
    obj->num_terms = amp ? 2 : 1;
    obj->term[0] = a;
    obj->term[1] = b;
    return 1;
}

static int parse_layers(rs_objective *obj, const char *value, rs_error *err)
{
    int rc = rs_parse_block_list(value, &obj->block_mask, err);
    return rc ? rc : 1;
}

int rs_objective_set(rs_objective *obj, const char *key, const char *value, rs_error *err)
{
    if (!strcmp(key, "loss"))
        return parse_loss(obj, value, err);
    if (!strcmp(key, "layers"))
        return parse_layers(obj, value, err);
    if (!strcmp(key, "beta")) {
        if (rs_parse_number(value, &obj->beta))
            return rs_error_set(err, RS_EINVAL, "beta: '%s' is not a finite number", value);
        return 1;
    }
    if (!strcmp(key, "target")) {
        if (!strcmp(value, "label")) {
            obj->target = RS_OBJ_TARGET_LABEL;
            return 1;
        }
        long long v;
        if (rs_parse_integer(value, 0, RS_MAX_EXPERTS - 1, &v))
            return rs_error_set(err, RS_EINVAL, "target: '%s' is not an expert index or 'label'", value);
        obj->target = (int)v;
        return 1;
    }
    return 0;
}

static bool has_term(const rs_objective *obj, rs_objective_kind kind)
{
    for (int t = 0; t < obj->num_terms && t < 2; t++)
        if (obj->term[t] == kind)
            return true;
    return false;
}

int rs_objective_needs_labels(const rs_objective *obj)
{
    return has_term(obj, RS_OBJ_CE) || (has_term(obj, RS_OBJ_ROUTER_CE) && obj->target == RS_OBJ_TARGET_LABEL);
}

int rs_objective_needs_ref(const rs_objective *obj)
{
    return has_term(obj, RS_OBJ_ROUTER) || has_term(obj, RS_OBJ_JSD) || has_term(obj, RS_OBJ_MARGIN);
}

int rs_objective_check(const rs_objective *obj, const rs_config *cfg, rs_error *err)
{
    if (obj->num_terms < 1 || obj->num_terms > 2)
        return rs_error_set(err, RS_EINVAL, "loss: %d terms (1 or 2; was the objective initialised?)",
                            obj->num_terms);
    bool router = false;
    for (int t = 0; t < obj->num_terms; t++) {
        if ((int)obj->term[t] < 0 || (int)obj->term[t] >= NUM_KINDS)
            return rs_error_set(err, RS_EINVAL, "loss: unknown term %d", (int)obj->term[t]);
        router |= obj->term[t] != RS_OBJ_CE;
    }
    if (!isfinite(obj->beta))
        return rs_error_set(err, RS_EINVAL, "beta: not a finite number");
    bool toward = has_term(obj, RS_OBJ_ROUTER_TARGET), ce = has_term(obj, RS_OBJ_ROUTER_CE);
    bool target = toward || ce, label = obj->target == RS_OBJ_TARGET_LABEL;
    if (toward && obj->target < 0)
        return rs_error_set(err, RS_EINVAL, "loss=router-target needs target=E (an expert)");
    if (ce && obj->target < 0 && !label)
        return rs_error_set(err, RS_EINVAL, "loss=router-ce needs target=E (an expert) or target=label");
    if (!target && (obj->target >= 0 || label))
        return rs_error_set(err, RS_EINVAL, "target is given but the loss has no router-target or router-ce term");
    if (target && obj->target >= cfg->num_experts)
        return rs_error_set(err, RS_EINVAL, "target=%d: the model has %d experts (0..%d)", obj->target,
                            cfg->num_experts, cfg->num_experts - 1);
    if (router && cfg->num_moe == 0)
        return rs_error_set(err, RS_EINVAL, "loss: the model has no MoE block for a router term");
    return rs_config_check_moe_blocks(cfg, obj->block_mask, err);
}

static bool block_selected(const rs_objective *obj, int block)
{
    return obj->block_mask == 0 || (block < 32 && (obj->block_mask >> block & 1u));
}

/* ---- objective values and their gradients ---- */

/* Index of the largest P[e] (ties to the lower index), skipping SKIP (or -1). */
static int argmax_skip(const float *p, int E, int skip)
{
    int best = -1;
    for (int e = 0; e < E; e++)
        if (e != skip && (best < 0 || p[e] > p[best]))
            best = e;
    return best;
}

/* One router term for one token: returns its value, writes DZ (E) = d value / d logits
 * (router logits before the softmax). P the current softmax, R the reference (or NULL),
 * TARGET the expert of router-target and router-ce. */
static double router_term(rs_objective_kind kind, const float *p, const float *r, int target, int E, double *dz)
{
    int star = r ? argmax_skip(r, E, -1) : -1;
    double v = 0.0, s = 0.0;
    switch (kind) {
    case RS_OBJ_ROUTER: /* d(-log p_t) / dz = p - onehot(t); router-target is its negation */
    case RS_OBJ_ROUTER_CE:
    case RS_OBJ_ROUTER_TARGET: {
        int t = kind == RS_OBJ_ROUTER ? star : target;
        double sign = kind == RS_OBJ_ROUTER_TARGET ? -1.0 : 1.0;
        for (int e = 0; e < E; e++)
            dz[e] = sign * ((double)p[e] - (e == t));
        return -sign * log((double)p[t]);
    }
    case RS_OBJ_JSD: /* d JSD / dp_e = log2(p_e / m_e) / 2, then the softmax's backward */
        for (int e = 0; e < E; e++) {
            double pe = p[e], re = r[e], me = 0.5 * (pe + re);
            v += (re > 0 ? re * log(re / me) : 0.0) + (pe > 0 ? pe * log(pe / me) : 0.0);
            dz[e] = pe > 0 ? 0.5 * log(pe / me) / M_LN2 : 0.0;
        }
        v *= 0.5 / M_LN2;
        break;
    case RS_OBJ_MARGIN: { /* value = best other gate - gate of e* */
        int other = argmax_skip(p, E, star);
        for (int e = 0; e < E; e++)
            dz[e] = (e == other) - (e == star);
        v = (double)p[other] - (double)p[star];
        break;
    }
    default:
        return 0.0;
    }
    for (int e = 0; e < E; e++)
        s += (double)p[e] * dz[e];
    for (int e = 0; e < E; e++)
        dz[e] = (double)p[e] * (dz[e] - s);
    return v;
}

/* For MoE block SLOT of the group: adds the router terms' values to VALUE (G) and their
 * gradient with respect to the router logits to DP (N,E). */
static void router_objective(const rs_config *c, const group_in *in, int slot, const float *probs,
                             double *value, float *dp)
{
    int T = rs_config_tokens(c), Np = rs_config_patches(c), E = c->num_experts, first = T - Np;
    double dz[RS_MAX_EXPERTS];
    const rs_objective *obj = in->obj;
    double scale = 1.0 / ((double)Np * in->nsel);
    for (int t = 0; t < obj->num_terms; t++) {
        if (obj->term[t] == RS_OBJ_CE)
            continue;
        double w = (t == 0 ? 1.0 : obj->beta) * scale;
        for (int b = 0; b < in->real; b++) {
            int target = obj->target == RS_OBJ_TARGET_LABEL ? in->labels[b] % E : obj->target;
            for (int tok = first; tok < T; tok++) {
                size_t row = (size_t)b * T + tok;
                const float *r = in->ref ? in->ref[slot] + row * E : NULL;
                value[b] += w * router_term(obj->term[t], probs + row * E, r, target, E, dz);
                for (int e = 0; e < E; e++)
                    dp[row * E + e] += (float)(w * dz[e]);
            }
        }
    }
}

/* VALUE (G) += the CE terms; DLOGITS (G,K) = their gradient. */
static void ce_objective(const rs_config *c, const group_in *in, const float *logits, int G, double *value,
                         float *dlogits)
{
    int K = c->num_classes;
    memset(dlogits, 0, sizeof(float) * (size_t)G * K);
    for (int t = 0; t < in->obj->num_terms; t++) {
        if (in->obj->term[t] != RS_OBJ_CE)
            continue;
        double w = t == 0 ? 1.0 : in->obj->beta;
        for (int b = 0; b < in->real; b++) {
            const float *z = logits + (size_t)b * K;
            int y = in->labels[b];
            double mx = z[argmax_skip(z, K, -1)], sum = 0.0;
            for (int k = 0; k < K; k++)
                sum += exp((double)z[k] - mx);
            value[b] += w * (mx + log(sum) - (double)z[y]);
            for (int k = 0; k < K; k++)
                dlogits[(size_t)b * K + k] += (float)(w * (exp((double)z[k] - mx) / sum - (k == y)));
        }
    }
}

/* ---- the taped forward pass: the forward pass's layers, keeping what the backward needs ---- */

/* With a capacity (DISPATCH non-NULL) the group holds whole dispatch groups of DISPATCH_ROWS
 * rows, dispatched as in rs_forward_run: rs_layer_moe fills each block's kept mask and routes
 * only the kept choices, so the tape holds exactly the expert rows the forward pass ran, and
 * the backward (moe_back), which walks those rows, gives dropped choices no gradient. */
static void forward_group(const rs_model *m, const rs_dispatch *dispatch, int dispatch_rows, workspace *ws,
                          const float *pixels, int G)
{
    const rs_config *c = &m->cfg;
    size_t ND = (size_t)G * rs_config_tokens(c) * c->hidden;
    int N = G * rs_config_tokens(c);
    rs_layer_embed(m, &ws->g, pixels, G, true);
    for (int i = 0; i < c->depth; i++) {
        const rs_block_weights *w = &m->blocks[i];
        tape_block *tb = &ws->blocks[i];
        memcpy(tb->x_in, ws->g.x, sizeof(float) * ND);
        rs_layer_attention(c, &ws->g, &tb->b, w, G);
        memcpy(tb->x_mid, ws->g.x, sizeof(float) * ND);
        rs_layer_norm(ws->g.xn, ws->g.x, w->norm2_w, w->norm2_b, (size_t)N, (size_t)c->hidden, c->layer_norm_eps);
        if (w->moe_slot < 0)
            rs_layer_dense(c, &ws->g, &tb->b, w, N);
        else
            rs_layer_moe(c, &ws->g, &tb->b, w, N, dispatch, dispatch_rows, ws->order);
    }
    rs_layer_head(m, &ws->g, G, ws->logits);
}

/* ---- the backward pass. dY = dX W for every layer Y = X W^T + b, as one GEMM. ---- */

/* DX (m,k) = [DX +] DY (m,n) @ W (n,k). */
static void gemm_back(rs_gemm *gm, int m, int n, int k, const float *dy, int lddy, const float *w, bool accumulate,
                      float *dx, int lddx)
{
    rs_gemm_weight_f32(gm, false, m, k, n, dy, lddy, w, k, accumulate ? 1.0f : 0.0f, dx, lddx);
}

static void gelu_back(const rs_config *c, float *dh, const float *hpre, size_t n)
{
    if (c->gelu == RS_GELU_ERF)
        rs_gelu_erf_backward(dh, hpre, n);
    else
        rs_gelu_tanh_backward(dh, hpre, n);
}

/* From dlogits (G,K) to dx (N,D), the gradient of the final residual stream. */
static void head_back(const rs_model *m, workspace *ws, int G)
{
    const rs_config *c = &m->cfg;
    int T = rs_config_tokens(c), D = c->hidden, K = c->num_classes, N = G * T;
    gemm_back(ws->g.gemm, G, K, D, ws->dlogits, K, m->head_w, false, ws->dfeat, D);
    const float *dpooled = ws->dfeat;
    if (m->pre_logits_w) {
        for (size_t i = 0; i < (size_t)G * D; i++)
            ws->dfeat[i] *= 1.0f - ws->g.pre[i] * ws->g.pre[i];
        gemm_back(ws->g.gemm, G, D, D, ws->dfeat, D, m->pre_logits_w, false, ws->dpooled, D);
        dpooled = ws->dpooled;
    }
    memset(ws->dx, 0, sizeof(float) * (size_t)N * D);
    if (c->classifier == RS_CLASSIFIER_TOKEN) {
        for (int b = 0; b < G; b++)
            rs_layer_norm_backward(ws->dx + (size_t)b * T * D, dpooled + (size_t)b * D, ws->g.x + (size_t)b * T * D,
                                   m->norm_w, 1, (size_t)D, c->layer_norm_eps);
        return;
    }
    for (int b = 0; b < G; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < D; i++)
                ws->dxn[((size_t)b * T + t) * D + i] = dpooled[(size_t)b * D + i] / (float)T;
    rs_layer_norm_backward(ws->dx, ws->dxn, ws->g.x, m->norm_w, (size_t)N, (size_t)D, c->layer_norm_eps);
}

/* dx += d attention-branch / d x applied to dx (the branch's output gradient). */
static void attention_back(const rs_config *c, workspace *ws, const tape_block *tb, const rs_block_weights *w,
                           int G)
{
    int T = rs_config_tokens(c), D = c->hidden, H = c->heads, Dh = D / H, N = G * T;
    float scale = 1.0f / sqrtf((float)Dh);
    gemm_back(ws->g.gemm, N, D, D, ws->dx, D, w->proj_w, false, ws->dattn, D);
    for (int b = 0; b < G; b++)
        for (int h = 0; h < H; h++) {
            size_t off = (size_t)b * T * 3 * D + h * Dh;
            const float *q = tb->b.qkv + off, *a = tb->b.att + ((size_t)b * H + h) * T * T;
            const float *dout = ws->dattn + (size_t)b * T * D + h * Dh;
            float *dq = ws->dqkv + off;
            /* out = A V: dV = A^T dout, dA = dout V^T; A = softmax(scale Q K^T). */
            rs_gemm_f32(ws->g.gemm, true, false, T, Dh, T, 1.0f, a, T, dout, D, 0.0f, dq + 2 * D, 3 * D);
            rs_gemm_f32(ws->g.gemm, false, true, T, T, Dh, 1.0f, dout, D, q + 2 * D, 3 * D, 0.0f, ws->dscores, T);
            rs_softmax_backward(ws->dscores, a, (size_t)T, (size_t)T);
            rs_gemm_f32(ws->g.gemm, false, false, T, Dh, T, scale, ws->dscores, T, q + D, 3 * D, 0.0f, dq, 3 * D);
            rs_gemm_f32(ws->g.gemm, true, false, T, Dh, T, scale, ws->dscores, T, q, 3 * D, 0.0f, dq + D, 3 * D);
        }
    gemm_back(ws->g.gemm, N, 3 * D, D, ws->dqkv, 3 * D, w->qkv_w, false, ws->dxn, D);
    rs_layer_norm_backward(ws->dx, ws->dxn, tb->x_in, w->norm1_w, (size_t)N, (size_t)D, c->layer_norm_eps);
}

/* dxn = d dense-MLP / d norm2 output, applied to dx. */
static void dense_back(const rs_config *c, workspace *ws, const tape_block *tb, const rs_block_weights *w, int N)
{
    int D = c->hidden, M = c->mlp_dim;
    gemm_back(ws->g.gemm, N, D, M, ws->dx, D, w->fc2_w, false, ws->dh, M);
    gelu_back(c, ws->dh, tb->b.hpre, (size_t)N * M);
    gemm_back(ws->g.gemm, N, M, D, ws->dh, M, w->fc1_w, false, ws->dxn, D);
}

/* dxn = d MoE / d norm2 output applied to dx, through the experts, the gates and the
 * objective's router terms (added to VALUE). Only the routed (kept) choices have rows: with a
 * capacity the kept mask is a constant, as vmoe's masked combine weights are, and the
 * softmax still passes the kept gates' gradient to every router logit. */
static void moe_back(const rs_config *c, workspace *ws, const tape_block *tb, const rs_block_weights *w,
                     const group_in *in, int G, int block)
{
    int D = c->hidden, M = c->mlp_dim, E = c->num_experts, N = G * rs_config_tokens(c);
    const int32_t *start = tb->b.route_start;
    memset(ws->dxn, 0, sizeof(float) * (size_t)N * D);
    memset(ws->dp, 0, sizeof(float) * (size_t)N * E);
    for (int e = 0; e < E; e++) {
        int count = start[e + 1] - start[e];
        if (count == 0)
            continue;
        const int32_t *rows = tb->b.route_rows + start[e];
        const float *y = tb->b.y + (size_t)start[e] * D;
        /* out += p_e y_e: d y_e = p_e dout, d p_e = <dout, y_e>. */
        for (int i = 0; i < count; i++) {
            const float *dout = ws->dx + (size_t)rows[i] * D, *yi = y + (size_t)i * D;
            float g = tb->b.probs[(size_t)rows[i] * E + e], dot = 0.0f;
            float *dst = ws->g.gathered + (size_t)i * D;
            for (int j = 0; j < D; j++) {
                dot += dout[j] * yi[j];
                dst[j] = g * dout[j];
            }
            ws->dp[(size_t)rows[i] * E + e] = dot;
        }
        gemm_back(ws->g.gemm, count, D, M, ws->g.gathered, D, w->efc2_w + (size_t)e * D * M, false, ws->dh, M);
        gelu_back(c, ws->dh, tb->b.hpre + (size_t)start[e] * M, (size_t)count * M);
        gemm_back(ws->g.gemm, count, M, D, ws->dh, M, w->efc1_w + (size_t)e * M * D, false, ws->dattn, D);
        for (int i = 0; i < count; i++) {
            float *dst = ws->dxn + (size_t)rows[i] * D;
            const float *src = ws->dattn + (size_t)i * D;
            for (int j = 0; j < D; j++)
                dst[j] += src[j];
        }
    }
    rs_softmax_backward(ws->dp, tb->b.probs, (size_t)N, (size_t)E);
    if (block_selected(in->obj, block))
        router_objective(c, in, w->moe_slot, tb->b.probs, ws->value, ws->dp);
    gemm_back(ws->g.gemm, N, E, D, ws->dp, E, w->router_w, true, ws->dxn, D);
}

/* d value / d pixels for the group from dx (N,D) at the embedding's output. */
static void embed_back(const rs_model *m, workspace *ws, int G, float *grad)
{
    const rs_config *c = &m->cfg;
    int C = c->channels, P = c->patch_size, H = c->image_h, W = c->image_w;
    int gw = rs_config_grid_w(c), Np = rs_config_patches(c), T = rs_config_tokens(c);
    int D = c->hidden, K = C * P * P, first = T - Np;
    const float *drows = ws->dx;
    if (first) { /* the patch rows, without the class tokens */
        for (int b = 0; b < G; b++)
            memcpy(ws->dattn + (size_t)b * Np * D, ws->dx + ((size_t)b * T + first) * D, sizeof(float) * Np * D);
        drows = ws->dattn;
    }
    gemm_back(ws->g.gemm, G * Np, D, K, drows, D, m->patch_w, false, ws->g.patches, K);
    /* Patches do not overlap (stride P), so every pixel has exactly one column entry. */
    for (int bp = 0; bp < G * Np; bp++) {
        int b = bp / Np, p = bp % Np, r0 = (p / gw) * P, c0 = (p % gw) * P;
        const float *src = ws->g.patches + (size_t)bp * K;
        for (int ch = 0; ch < C; ch++)
            for (int py = 0; py < P; py++)
                rs_model_normalize_backward_span(c, ch, src + (ch * P + py) * P,
                                                 grad + (((size_t)b * C + ch) * H + r0 + py) * W + c0, (size_t)P);
    }
}

static void backward_group(const rs_model *m, workspace *ws, const group_in *in, int G, float *grad)
{
    const rs_config *c = &m->cfg;
    int N = G * rs_config_tokens(c);
    memset(ws->value, 0, sizeof(double) * (size_t)G);
    ce_objective(c, in, ws->logits, G, ws->value, ws->dlogits);
    head_back(m, ws, G);
    for (int i = c->depth - 1; i >= 0; i--) {
        const rs_block_weights *w = &m->blocks[i];
        const tape_block *tb = &ws->blocks[i];
        if (w->moe_slot < 0)
            dense_back(c, ws, tb, w, N);
        else
            moe_back(c, ws, tb, w, in, G, i);
        rs_layer_norm_backward(ws->dx, ws->dxn, tb->x_mid, w->norm2_w, (size_t)N, (size_t)c->hidden,
                               c->layer_norm_eps);
        attention_back(c, ws, tb, w, G);
    }
    embed_back(m, ws, G, grad);
}

/* ---- buffers and the run ---- */

/* Hands out N floats at *OFFSET of BASE (64-byte aligned); with a NULL base only counts. */
static float *carve(float *base, size_t *offset, size_t n)
{
    float *p = base ? base + *offset : NULL;
    *offset += (n + 15) & ~(size_t)15;
    return p;
}

/* Lays out one workspace from BASE (NULL: just measure), with dispatch's kept masks and
 * order when CAPACITY and a padded group's images when PAD; returns the floats used. */
static size_t layout(workspace *ws, const rs_config *c, int G, bool capacity, bool pad, float *base)
{
    size_t T = (size_t)rs_config_tokens(c), N = (size_t)G * T, D = (size_t)c->hidden, M = (size_t)c->mlp_dim;
    size_t E = (size_t)c->num_experts, k = (size_t)c->top_k, R = (size_t)rs_config_record_k(c);
    size_t img = (size_t)c->channels * c->image_h * c->image_w, K = (size_t)c->num_classes;
    size_t cur = 0;
    for (int i = 0; i < c->depth; i++) {
        tape_block *tb = &ws->blocks[i];
        bool is_moe = rs_config_moe_slot(c, i) >= 0;
        tb->x_in = carve(base, &cur, N * D);
        tb->b.qkv = carve(base, &cur, N * 3 * D);
        tb->b.att = carve(base, &cur, (size_t)G * c->heads * T * T);
        tb->b.att_stride = T * T;
        tb->x_mid = carve(base, &cur, N * D);
        tb->b.hpre = carve(base, &cur, (is_moe ? N * k : N) * M);
        if (!is_moe)
            continue;
        tb->b.y = carve(base, &cur, N * k * D);
        tb->b.keep_y = true;
        tb->b.probs = carve(base, &cur, N * E);
        tb->b.top_idx = (int32_t *)carve(base, &cur, N * R);
        tb->b.top_gate = carve(base, &cur, N * R);
        tb->b.route_rows = (int32_t *)carve(base, &cur, N * k);
        tb->b.route_start = (int32_t *)carve(base, &cur, 2 * E + 1);
        tb->b.kept = capacity ? (uint8_t *)carve(base, &cur, (N * R + 3) / 4) : NULL;
    }
    ws->order = capacity ? (int32_t *)carve(base, &cur, 2 * N) : NULL;
    ws->pad = pad ? carve(base, &cur, (size_t)G * img) : NULL;
    ws->g.x = carve(base, &cur, N * D);
    ws->g.xn = carve(base, &cur, N * D);
    ws->g.attn = carve(base, &cur, N * D);
    ws->g.hidden = carve(base, &cur, N * M);
    ws->g.gathered = carve(base, &cur, N * D);
    ws->g.patches = carve(base, &cur, (size_t)G * img);
    ws->g.pooled = carve(base, &cur, (size_t)G * D);
    ws->g.pre = carve(base, &cur, (size_t)G * D);
    ws->logits = carve(base, &cur, (size_t)G * K);
    ws->dx = carve(base, &cur, N * D);
    ws->dxn = carve(base, &cur, N * D);
    ws->dattn = carve(base, &cur, N * D);
    ws->dqkv = carve(base, &cur, N * 3 * D);
    ws->dscores = carve(base, &cur, T * T);
    ws->dh = carve(base, &cur, N * M);
    ws->dp = carve(base, &cur, N * E);
    ws->dlogits = carve(base, &cur, (size_t)G * K);
    ws->dfeat = carve(base, &cur, (size_t)G * D);
    ws->dpooled = carve(base, &cur, (size_t)G * D);
    ws->value = (double *)carve(base, &cur, 2 * (size_t)G);
    return cur;
}

void rs_grad_free(rs_grad *g)
{
    if (!g)
        return;
    for (int t = 0; g->ws && t < g->threads; t++) {
        free(g->ws[t].arena);
        rs_gemm_free(g->ws[t].g.gemm);
    }
    free(g->ws);
    free(g);
}

int rs_grad_create(const rs_model *model, int max_batch, int threads, rs_grad **out, rs_error *err)
{
    return rs_grad_create_dispatch(model, max_batch, threads, NULL, out, err);
}

int rs_grad_create_dispatch(const rs_model *model, int max_batch, int threads, const rs_dispatch *dispatch,
                            rs_grad **out, rs_error *err)
{
    *out = NULL;
    if (max_batch < 1 || threads < 1)
        return rs_error_set(err, RS_EINVAL, "grad: max_batch %d and threads %d must be >= 1", max_batch, threads);
    const rs_config *c = &model->cfg;
    int group, dg, rc = rs_group_for_dispatch(c, dispatch, "grad", &group, &dg, err);
    if (rc)
        return rc;
    bool capacity = dg > 0, pad = capacity && dispatch->pad_last;
    rs_grad *g = calloc(1, sizeof *g);
    if (!g)
        return rs_error_set(err, RS_ENOMEM, "grad: out of memory");
    g->m = model;
    if (capacity)
        g->dispatch = *dispatch;
    g->dispatch_rows = dg * rs_config_tokens(c);
    g->max_batch = max_batch;
    g->group = group;
    g->threads = rs_group_threads(max_batch, group, threads);
    workspace probe;
    size_t floats = layout(&probe, c, group, capacity, pad, NULL);
    bool ok = (g->ws = calloc((size_t)g->threads, sizeof *g->ws)) != NULL;
    for (int t = 0; ok && t < g->threads; t++) {
        /* aligned_alloc wants a size that is a multiple of the alignment: carve rounds to 16 floats. */
        ok = (g->ws[t].arena = aligned_alloc(64, sizeof(float) * floats)) != NULL;
        if (ok)
            layout(&g->ws[t], c, group, capacity, pad, g->ws[t].arena);
    }
    if (!ok) {
        rs_grad_free(g);
        return rs_error_set(err, RS_ENOMEM,
                            "%s: out of memory for the gradient's activations (about %zu MB per thread for %d "
                            "image%s per group); fewer --threads need less",
                            rs_safetensors_path(model->file), (sizeof(float) * floats >> 20) + 1, group,
                            group == 1 ? "" : "s");
    }
    /* The gradient computes in float32 (model.h), on the model's backend. */
    for (int t = 0; t < g->threads; t++) {
        if ((rc = rs_gemm_create(model->gemm, RS_PRECISION_F32, &g->ws[t].g.gemm, err))) {
            rs_grad_free(g);
            return rs_error_prefix(err, rs_safetensors_path(model->file));
        }
    }
    rs_blas_set_threads(1);
    *out = g;
    return 0;
}

int rs_grad_group_size(const rs_grad *g)
{
    return g->group;
}

static int check_run(const rs_grad *g, const rs_objective *obj, int batch, const int32_t *labels,
                     const float *const *ref_probs, rs_error *err)
{
    const rs_config *c = &g->m->cfg;
    if (batch < 1 || batch > g->max_batch)
        return rs_error_set(err, RS_EINVAL, "grad: batch %d outside [1, %d]", batch, g->max_batch);
    int rc = rs_objective_check(obj, c, err);
    if (rc)
        return rc;
    if (rs_objective_needs_labels(obj)) {
        if (!labels)
            return rs_error_set(err, RS_EINVAL, "grad: loss=ce and router-ce's target=label need the labels");
        for (int b = 0; b < batch; b++)
            if (labels[b] < 0 || labels[b] >= c->num_classes)
                return rs_error_set(err, RS_EINVAL, "grad: label %d of image %d outside 0..%d", (int)labels[b], b,
                                    c->num_classes - 1);
    }
    if (rs_objective_needs_ref(obj) && !ref_probs)
        return rs_error_set(err, RS_EINVAL, "grad: the router, jsd and margin losses need the reference routing");
    return 0;
}

/* What every group of one rs_grad_run reads and writes (rs_grad_run's arguments). */
typedef struct run_ctx {
    rs_grad *g;
    const rs_objective *obj;
    const float *pixels;
    const int32_t *labels;
    const float *const *ref_probs;
    float *value, *grad;
    int nsel;
} run_ctx;

/* Images FIRST .. FIRST+N-1: the taped forward and the backward on THREAD's workspace. */
static void run_group(void *ctx, int thread, int first, int n)
{
    const run_ctx *r = ctx;
    const rs_config *c = &r->g->m->cfg;
    size_t img = (size_t)c->channels * c->image_h * c->image_w, T = (size_t)rs_config_tokens(c);
    size_t E = (size_t)c->num_experts;
    workspace *ws = &r->g->ws[thread];
    const float *ref[RS_MAX_DEPTH];
    for (int s = 0; r->ref_probs && s < c->num_moe; s++)
        ref[s] = r->ref_probs[s] + (size_t)first * T * E;
    group_in in = {r->obj, r->labels ? r->labels + first : NULL, r->ref_probs ? ref : NULL, r->nsel, n};
    const rs_dispatch *d = r->g->dispatch.capacity_factor > 0 ? &r->g->dispatch : NULL;
    const float *pixels = r->pixels + first * img;
    float *grad = r->grad + first * img;
    int G = rs_group_padded(d, n);
    if (G > n) { /* the padding's gradient lands in the pad buffer, after the copied pixels */
        pixels = rs_group_pad(c, pixels, n, G, true, ws->pad);
        grad = ws->pad;
    }
    forward_group(r->g->m, d, r->g->dispatch_rows, ws, pixels, G);
    backward_group(r->g->m, ws, &in, G, grad);
    if (G > n)
        memcpy(r->grad + first * img, ws->pad, sizeof(float) * img * (size_t)n);
    for (int b = 0; b < n; b++)
        r->value[first + b] = (float)ws->value[b];
}

int rs_grad_run(rs_grad *g, const rs_objective *obj, const float *pixels, int batch, const int32_t *labels,
                const float *const *ref_probs, float *value, float *grad, rs_error *err)
{
    int rc = check_run(g, obj, batch, labels, ref_probs, err);
    if (rc)
        return rc;
    const rs_config *c = &g->m->cfg;
    int nsel = 0;
    for (int s = 0; s < c->num_moe; s++)
        nsel += block_selected(obj, c->moe_layers[s]);
    run_ctx ctx = {g, obj, pixels, labels, ref_probs, value, grad, nsel};
    rs_group_run(batch, g->group, g->threads, run_group, &ctx);
    for (int t = 0; t < g->threads; t++) {
        if ((rc = rs_gemm_status(g->ws[t].g.gemm, err)))
            return rs_error_prefix(err, rs_safetensors_path(g->m->file));
    }
    return 0;
}
