/* bench_grad — times the C input gradient (model/grad.h) or the forward pass alone.
 *
 *   bench_grad MODEL BATCH THREADS SECONDS grad|forward [CF GROUP [bf16]] [--gemm B] [--precision P]
 *       -> "images_per_s X"
 *
 * grad: forward + backward of loss=router (the reference routing from one forward pass of
 * the same images); forward: rs_forward_run on the normalised images, what a replay runs.
 * With CF GROUP both run with expert capacity (capacity factor CF, dispatch groups of GROUP
 * images): the gradient through dispatch (rs_grad_create_dispatch); with bf16 also vmoe's
 * bfloat16 dispatch (expert inputs and outputs rounded, dispatch.h).
 * Driven by bench/bench_grad.py, which times PyTorch autograd on the same weights, batch
 * and threads in the same run. Input is fixed pseudo-random pixels in [0,1]. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "forward.h"
#include "grad.h"
#include "model.h"

/* Everything one timed call needs. */
typedef struct bench {
    bool grad;                /* grad mode, else forward alone */
    rs_forward *f;
    rs_grad *g;
    rs_objective obj;
    const float *pixels, *norm;
    const float *ref[RS_MAX_DEPTH];
    float *value, *grad_out;
    int batch;
    rs_error err;
} bench;

static int step(void *ctx)
{
    bench *b = ctx;
    if (b->grad)
        return rs_grad_run(b->g, &b->obj, b->pixels, b->batch, NULL, b->ref, b->value, b->grad_out, &b->err);
    return rs_forward_run(b->f, b->norm, b->batch, &b->err);
}

int main(int argc, char **argv)
{
    rs_gemm_backend backend;
    rs_precision precision;
    if (bench_compute_args(&argc, argv, &backend, &precision))
        return 2;
    if ((argc != 6 && argc != 8 && argc != 9) || (strcmp(argv[5], "grad") && strcmp(argv[5], "forward")) ||
        (argc == 9 && strcmp(argv[8], "bf16"))) {
        fprintf(stderr, "usage: bench_grad MODEL BATCH THREADS SECONDS grad|forward [CF GROUP [bf16]] [--gemm B] "
                        "[--precision P]\n");
        return 2;
    }
    rs_dispatch dispatch = {0};
    if (argc >= 8)
        dispatch = (rs_dispatch){.capacity_factor = atof(argv[6]), .group_images = atoi(argv[7]), .bf16 = argc == 9};
    int batch = atoi(argv[2]), threads = atoi(argv[3]);
    double seconds = atof(argv[4]);
    rs_error err;
    rs_model *m;
    rs_forward *f;
    rs_grad *g;
    if (rs_model_open(argv[1], &m, &err) || rs_model_set_compute(m, backend, precision, &err) ||
        rs_forward_create_dispatch(m, batch, threads, &dispatch, &f, &err) ||
        rs_grad_create_dispatch(m, batch, threads, &dispatch, &g, &err)) {
        fprintf(stderr, "bench_grad: %s\n", err.msg);
        return 1;
    }
    const rs_config *c = &m->cfg;
    size_t plane = (size_t)c->image_h * c->image_w, n = (size_t)batch * c->channels * plane;
    float *pixels = malloc(sizeof(float) * n), *norm = malloc(sizeof(float) * n);
    float *grad = malloc(sizeof(float) * n), *value = malloc(sizeof(float) * batch);
    if (!pixels || !norm || !grad || !value)
        return 1;
    bench_fill(pixels, n, 0, 1);
    for (size_t i = 0; i < n; i++)
        norm[i] = (pixels[i] - c->mean[i / plane % c->channels]) / c->std[i / plane % c->channels];
    if (rs_forward_run(f, norm, batch, &err)) {
        fprintf(stderr, "bench_grad: %s\n", err.msg);
        return 1;
    }
    const rs_forward_out *out = rs_forward_result(f);
    bench b = {!strcmp(argv[5], "grad"), f, g, {0}, pixels, norm, {NULL}, value, grad, batch, {0}};
    for (int s = 0; s < c->num_moe; s++)
        b.ref[s] = out->moe[s].probs; /* grad mode never runs the forward state again */
    rs_objective_init(&b.obj);
    double per_s;
    /* the first call is the warm-up: it pages in the weights and spins up the threads */
    if (step(&b) || bench_rate(step, &b, seconds, 2, &per_s, NULL)) {
        fprintf(stderr, "bench_grad: %s\n", b.err.msg);
        return 1;
    }
    printf("images_per_s %.2f\n", batch * per_s);
    free(pixels);
    free(norm);
    free(grad);
    free(value);
    rs_grad_free(g);
    rs_forward_free(f);
    rs_model_close(m);
    return 0;
}
