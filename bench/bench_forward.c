/* bench_forward — times the C forward pass (and, for scale, one large sgemm).
 *
 *   bench_forward MODEL BATCH THREADS SECONDS [CF GROUP [bpr]]
 *                                               -> "c_images_per_s X gflop_per_image Y"
 *     (CF GROUP: dispatch with capacity factor CF in groups of GROUP images, as
 *     `--capacity-factor CF --group-images GROUP`; bench/dispatch.sh compares the two)
 *   bench_forward --sgemm N THREADS SECONDS     -> "sgemm_gflops X"
 *   bench_forward --ceiling MODEL BATCH THREADS SECONDS -> "ceiling_gflops X"
 *     (the matrix products of one forward group of MODEL alone, the same shapes, on THREADS
 *     threads each with its own: the rate the pass would reach if nothing else took time)
 *   Any form takes --gemm openblas|onednn and --precision f32|bf16 (model/gemm.h).
 *
 * Driven by bench/bench.py, which runs the PyTorch reference on the same weights and
 * batch in the same run and prints the ratio. Input is fixed pseudo-random data: speed
 * does not depend on the pixel values. */
#include <cblas.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_util.h"
#include "gemm.h"
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
    bench_rate(sgemm_step, &g, seconds, 3, &per_s, NULL);
    printf("sgemm_gflops %.1f\n", 2.0 * n * n * (double)n * per_s / 1e9);
    free(a);
    free(b);
    free(c);
    return 0;
}

/* One matrix product of a forward group: SHAPE repeated REPS times; BIG when it is one of
 * the large matmuls that bf16 runs in bfloat16 (A (m,k) times W (n,k)^T then); WEIGHT when
 * B is a weight, which the pass multiplies by through rs_gemm_weight_f32 (packed once). */
typedef struct gemm_shape {
    int m, n, k, reps;
    bool trans_b, big, weight;
} gemm_shape;

/* The products of one group of G images (forward.c, layers.c), at most 16; expert rows
 * are split evenly (N*k/E each), as a balanced router would. */
static int group_shapes(const rs_config *c, int G, gemm_shape *s)
{
    int T = rs_config_tokens(c), N = G * T, D = c->hidden, M = c->mlp_dim, E = c->num_experts;
    int H = c->heads, Dh = D / H, P = c->patch_size, n = 0, moe = c->num_moe, dense = c->depth - moe;
    int rows = (N * c->top_k + E - 1) / E;
    s[n++] = (gemm_shape){G * rs_config_patches(c), D, c->channels * P * P, 1, true, false, true};
    s[n++] = (gemm_shape){N, 3 * D, D, c->depth, true, true, true};
    s[n++] = (gemm_shape){T, T, Dh, c->depth * G * H, true, false, false};
    s[n++] = (gemm_shape){T, Dh, T, c->depth * G * H, false, false, false};
    s[n++] = (gemm_shape){N, D, D, c->depth, true, true, true};
    if (dense) {
        s[n++] = (gemm_shape){N, M, D, dense, true, true, true};
        s[n++] = (gemm_shape){N, D, M, dense, true, true, true};
    }
    if (moe) {
        s[n++] = (gemm_shape){N, E, D, moe, true, false, true};
        s[n++] = (gemm_shape){rows, M, D, moe * E, true, true, true};
        s[n++] = (gemm_shape){rows, D, M, moe * E, true, true, true};
    }
    s[n++] = (gemm_shape){G, c->num_classes, D, 1, true, false, true};
    return n;
}

/* One thread's operands for the largest shape, and its GEMM state. */
typedef struct ceiling_thread {
    rs_gemm *gemm;
    float *a, *b, *c;
    uint16_t *bh;
} ceiling_thread;

typedef struct ceiling_call {
    const gemm_shape *shapes;
    int num_shapes, threads;
    ceiling_thread *t;
} ceiling_call;

/* Every thread runs the group's products once. */
static int ceiling_step(void *ctx)
{
    const ceiling_call *cc = ctx;
    int failed = 0;
    #pragma omp parallel num_threads(cc->threads) reduction(|:failed)
    {
        int id = 0;
#ifdef _OPENMP
        id = omp_get_thread_num();
#endif
        ceiling_thread *t = &cc->t[id];
        bool bf16 = rs_gemm_precision(t->gemm) == RS_PRECISION_BF16;
        for (int i = 0; i < cc->num_shapes; i++) {
            const gemm_shape *s = &cc->shapes[i];
            for (int r = 0; r < s->reps; r++) {
                if (bf16 && s->big)
                    rs_gemm_bf16(t->gemm, s->m, s->n, s->k, t->a, s->k, t->bh, 0.0f, t->c, s->n);
                else if (s->weight)
                    rs_gemm_weight_f32(t->gemm, s->trans_b, s->m, s->n, s->k, t->a, s->k, t->b,
                                       s->trans_b ? s->k : s->n, 0.0f, t->c, s->n);
                else
                    rs_gemm_f32(t->gemm, false, s->trans_b, s->m, s->n, s->k, 1.0f, t->a, s->k, t->b,
                                s->trans_b ? s->k : s->n, 0.0f, t->c, s->n);
            }
        }
        failed |= rs_gemm_status(t->gemm, NULL) != 0;
    }
    return failed;
}

static int bench_ceiling(const char *path, int batch, int threads, double seconds, rs_gemm_backend backend,
                         rs_precision precision)
{
    rs_error err;
    rs_model *m;
    rs_forward *f;
    if (rs_model_open(path, &m, &err) || rs_forward_create(m, batch, 1, &f, &err)) {
        fprintf(stderr, "bench_forward: %s\n", err.msg);
        return 1;
    }
    gemm_shape shapes[16];
    int n = group_shapes(&m->cfg, rs_forward_group_size(f), shapes);
    rs_forward_free(f);
    rs_model_close(m);
    size_t big = 1;
    double flops = 0;
    for (int i = 0; i < n; i++) {
        const gemm_shape *s = &shapes[i];
        size_t sizes[3] = {(size_t)s->m * s->k, (size_t)s->n * s->k, (size_t)s->m * s->n};
        for (int j = 0; j < 3; j++)
            big = sizes[j] > big ? sizes[j] : big;
        flops += 2.0 * s->m * s->n * s->k * s->reps;
    }
    ceiling_thread *t = calloc((size_t)threads, sizeof *t);
    for (int i = 0; t && i < threads; i++) {
        t[i].a = malloc(sizeof(float) * big), t[i].b = malloc(sizeof(float) * big);
        t[i].c = malloc(sizeof(float) * big), t[i].bh = malloc(sizeof(uint16_t) * big);
        if (!t[i].a || !t[i].b || !t[i].c || !t[i].bh || rs_gemm_create(backend, precision, &t[i].gemm, &err)) {
            fprintf(stderr, "bench_forward: %s\n", t[i].gemm ? "out of memory" : err.msg);
            return 1;
        }
        bench_fill(t[i].a, big, -1, 1);
        bench_fill(t[i].b, big, -1, 1);
        for (size_t j = 0; j < big; j++)
            t[i].bh[j] = rs_bf16_round(t[i].b[j]);
    }
    rs_blas_set_threads(1);
    ceiling_call cc = {shapes, n, threads, t};
    double per_s, per_cpu_s;
    if (ceiling_step(&cc) || bench_rate(ceiling_step, &cc, seconds, 2, &per_s, &per_cpu_s)) {
        fprintf(stderr, "bench_forward: a GEMM failed\n");
        return 1;
    }
    printf("ceiling_gflops %.1f cpu_ceiling_gflops %.1f\n", threads * flops * per_s / 1e9,
           threads * threads * flops * per_cpu_s / 1e9);
    for (int i = 0; i < threads; i++) {
        rs_gemm_free(t[i].gemm);
        free(t[i].a), free(t[i].b), free(t[i].c), free(t[i].bh);
    }
    free(t);
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
    rs_gemm_backend backend;
    rs_precision precision;
    if (bench_compute_args(&argc, argv, &backend, &precision))
        return 2;
    if (argc == 5 && !strcmp(argv[1], "--sgemm"))
        return bench_sgemm(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
    if (argc == 6 && !strcmp(argv[1], "--ceiling"))
        return bench_ceiling(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), backend, precision);
    if (argc != 5 && argc != 7 && !(argc == 8 && !strcmp(argv[7], "bpr"))) {
        fprintf(stderr, "usage: bench_forward MODEL BATCH THREADS SECONDS [CF GROUP [bpr]] | --sgemm N THREADS SECONDS\n"
                        "       | --ceiling MODEL BATCH THREADS SECONDS; each with [--gemm B] [--precision P]\n");
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
    if (rs_model_open(argv[1], &m, &err) || rs_model_set_compute(m, backend, precision, &err) ||
        rs_forward_create_dispatch(m, batch, threads, &d, &f, &err)) {
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
    double per_s, per_cpu_s;
    /* the first call is the warm-up: it pages in the weights and spins up the threads */
    if (forward_step(&fc) || bench_rate(forward_step, &fc, seconds, 2, &per_s, &per_cpu_s)) {
        fprintf(stderr, "bench_forward: %s\n", fc.err.msg);
        return 1;
    }
    printf("c_images_per_s %.1f gflop_per_image %.4f cpu_images_per_s %.1f\n", batch * per_s,
           flops_per_image(c) / 1e9, threads * batch * per_cpu_s);
    free(x);
    rs_forward_free(f);
    rs_model_close(m);
    return 0;
}
