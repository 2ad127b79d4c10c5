/* bench_forward — times the C forward pass (and, for scale, one large sgemm).
 *
 *   bench_forward MODEL BATCH THREADS SECONDS [CF GROUP [bpr]]
 *                                               -> "c_images_per_s X gflop_per_image Y"
 *     (CF GROUP: dispatch with capacity factor CF in groups of GROUP images, as
 *     `--capacity-factor CF --group-images GROUP`; bench/dispatch.sh compares the two)
 *   bench_forward --sgemm N THREADS SECONDS     -> "sgemm_gflops X"
 *
 * Driven by bench/bench.py, which runs the PyTorch reference on the same weights and
 * batch in the same run and prints the ratio. Input is fixed pseudo-random data: speed
 * does not depend on the pixel values. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "forward.h"
#include "model.h"

/* Multiply-adds of one image's forward pass, counted as 2 flops each. */
static double flops_per_image(const rs_config *c)
{
    double T = rs_config_tokens(c), D = c->hidden, M = c->mlp_dim, E = c->num_experts;
    double P = c->patch_size, Np = rs_config_patches(c);
    double f = Np * D * c->channels * P * P;
    for (int i = 0; i < c->depth; i++) {
        f += T * D * 3 * D + 2 * T * T * D + T * D * D;
        f += rs_config_moe_slot(c, i) >= 0 ? T * D * E + c->top_k * T * 2 * D * M : T * 2 * D * M;
    }
    return 2 * f;
}

/* One N x N x N product of A and B into C, the machine's sgemm rate. */
typedef struct sgemm_call {
    int n;
    const float *a, *b;
    float *c;
} sgemm_call;

static int sgemm_step(void *ctx)
{
    const sgemm_call *g = ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->n, g->n, g->n, 1, g->a, g->n, g->b, g->n, 0, g->c, g->n);
    return 0;
}

static int bench_sgemm(int n, int threads, double seconds)
{
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c)
        return 1;
    bench_fill(a, (size_t)n * n, -1, 1);
    bench_fill(b, (size_t)n * n, -1, 1);
    rs_blas_set_threads(threads);
    sgemm_call g = {n, a, b, c};
    double per_s;
    sgemm_step(&g); /* warm-up */
    bench_rate(sgemm_step, &g, seconds, 3, &per_s);
    printf("sgemm_gflops %.1f\n", 2.0 * n * n * (double)n * per_s / 1e9);
    free(a);
    free(b);
    free(c);
    return 0;
}

/* One forward pass of a batch. */
typedef struct forward_call {
    rs_forward *f;
    const float *x;
    int batch;
    rs_error err;
} forward_call;

static int forward_step(void *ctx)
{
    forward_call *fc = ctx;
    return rs_forward_run(fc->f, fc->x, fc->batch, &fc->err);
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--sgemm"))
        return bench_sgemm(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
    if (argc != 5 && argc != 7 && !(argc == 8 && !strcmp(argv[7], "bpr"))) {
        fprintf(stderr, "usage: bench_forward MODEL BATCH THREADS SECONDS [CF GROUP [bpr]] | --sgemm N THREADS SECONDS\n");
        return 2;
    }
    int batch = atoi(argv[2]), threads = atoi(argv[3]);
    double seconds = atof(argv[4]);
    rs_dispatch d = {0};
    if (argc >= 7)
        d = (rs_dispatch){.capacity_factor = atof(argv[5]), .group_images = atoi(argv[6]), .bpr = argc == 8};
    rs_error err;
    rs_model *m;
    rs_forward *f;
    if (rs_model_open(argv[1], &m, &err) || rs_forward_create_dispatch(m, batch, threads, &d, &f, &err)) {
        fprintf(stderr, "bench_forward: %s\n", err.msg);
        return 1;
    }
    const rs_config *c = &m->cfg;
    size_t n = (size_t)batch * c->channels * c->image_h * c->image_w;
    float *x = malloc(sizeof(float) * n);
    if (!x)
        return 1;
    bench_fill(x, n, -1, 1);
    forward_call fc = {f, x, batch, {0}};
    double per_s;
    /* the first call is the warm-up: it pages in the weights and spins up the threads */
    if (forward_step(&fc) || bench_rate(forward_step, &fc, seconds, 2, &per_s)) {
        fprintf(stderr, "bench_forward: %s\n", fc.err.msg);
        return 1;
    }
    printf("c_images_per_s %.1f gflop_per_image %.4f\n", batch * per_s, flops_per_image(c) / 1e9);
    free(x);
    rs_forward_free(f);
    rs_model_close(m);
    return 0;
}
