/* bf16_agree — how far --precision bf16 moves a model from float32 (docs/gemm.md quotes it):
 * the same images through two forward states of the same checkpoint, oneDNN float32 and
 * oneDNN bf16, and per model: prediction agreement, Top-1 routing agreement per MoE layer
 * (every token, class token included), the largest logit difference.
 *
 *   build/bf16_agree SRC MODEL...      (e.g. fashion-mnist:test models/NAME.safetensors)
 *   -> one line per model: "MODEL images N pred_agree P top1 L0 L1 ... max_logit_diff X" */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "input/source.h"
#include "model.h"
#include "predict.h"

enum { BATCH = 256, THREADS = 2 };

/* The two passes of one model and what they agree on so far. */
typedef struct agree {
    rs_model *m[2];       /* 0: float32, 1: bf16; both oneDNN */
    rs_forward *f[2];
    long long images, same_pred, tokens, same_top1[RS_MAX_DEPTH];
    double max_logit;
} agree;

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        best = x[i] > x[best] ? i : best;
    return best;
}

/* Counts one batch of B images that both passes ran. */
static void tally(agree *a, int B)
{
    const rs_config *c = &a->m[0]->cfg;
    const rs_forward_out *o[2] = {rs_forward_result(a->f[0]), rs_forward_result(a->f[1])};
    int K = c->num_classes, R = rs_config_record_k(c);
    for (int b = 0; b < B; b++) {
        const float *l0 = o[0]->logits + (size_t)b * K, *l1 = o[1]->logits + (size_t)b * K;
        a->same_pred += argmax(l0, K) == argmax(l1, K);
        for (int k = 0; k < K; k++)
            a->max_logit = fmax(a->max_logit, fabs((double)l0[k] - l1[k]));
    }
    size_t rows = (size_t)B * rs_config_tokens(c);
    for (int s = 0; s < c->num_moe; s++)
        for (size_t t = 0; t < rows; t++)
            a->same_top1[s] += o[0]->moe[s].top_idx[t * R] == o[1]->moe[s].top_idx[t * R];
    a->tokens += (long long)rows;
    a->images += B;
}

static int run_model(const char *path, rs_source *src, rs_error *err)
{
    agree a = {0};
    int rc = 0;
    for (int p = 0; p < 2 && !rc; p++) {
        if (!(rc = rs_model_open(path, &a.m[p], err)) &&
            !(rc = rs_model_set_compute(a.m[p], RS_GEMM_ONEDNN, p ? RS_PRECISION_BF16 : RS_PRECISION_F32, err)))
            rc = rs_forward_create(a.m[p], BATCH, THREADS, &a.f[p], err);
    }
    const rs_config *c = rc ? NULL : &a.m[0]->cfg;
    size_t img = c ? (size_t)c->channels * c->image_h * c->image_w : 0;
    float *x = c ? malloc(sizeof(float) * BATCH * img) : NULL;
    if (!rc && !x)
        rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    int n = rc ? 0 : rs_source_count(src);
    for (int first = 0; !rc && first < n; first += BATCH) {
        int B = n - first < BATCH ? n - first : BATCH;
        rc = rs_source_load_batch(src, first, B, c->channels, c->image_h, c->image_w, THREADS, x, err);
        for (int i = 0; !rc && i < B; i++)
            rs_model_normalize(c, x + (size_t)i * img);
        for (int p = 0; p < 2 && !rc; p++)
            rc = rs_forward_run(a.f[p], x, B, err);
        if (!rc)
            tally(&a, B);
    }
    if (!rc) {
        printf("%s images %lld pred_agree %.4f top1", path, a.images, (double)a.same_pred / a.images);
        for (int s = 0; s < c->num_moe; s++)
            printf(" %.4f", (double)a.same_top1[s] / a.tokens);
        printf(" max_logit_diff %.3g\n", a.max_logit);
        fflush(stdout); /* one line per model as it finishes: a long list takes a while */
    }
    free(x);
    for (int p = 0; p < 2; p++) {
        rs_forward_free(a.f[p]);
        rs_model_close(a.m[p]);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bf16_agree SRC MODEL...\n");
        return 2;
    }
    rs_error err;
    rs_source *src;
    if (rs_source_open(argv[1], &src, &err)) {
        fprintf(stderr, "bf16_agree: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    for (int i = 2; i < argc && !rc; i++)
        if ((rc = run_model(argv[i], src, &err)))
            fprintf(stderr, "bf16_agree: %s\n", err.msg);
    rs_source_close(src);
    return rc ? 1 : 0;
}
