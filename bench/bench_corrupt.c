/* bench_corrupt.c — what each common corruption costs per image: rs_corrupt_apply on a
 * SIZE x SIZE x 3 image (8-bit levels of a fixed pseudo-random pattern, smooth with edges,
 * so that the noise corruptions' Poisson counts and the blurs see image-like values), one
 * thread, drawing from GSL's mt19937 as the view layer does. For each corruption and
 * severity it prints milliseconds of CPU time per image (CPU time, not wall time: the
 * project's machine is shared, and bench/corrupt.sh measures the replay the same way), then per corruption and per family the mean
 * over severities, and the heaviest family: bench/corrupt.sh divides these by a replay's
 * time per view (docs/corruptions.md, "Cost").
 *
 *   build/bench_corrupt [SIZE] [SECONDS] [SET]   (defaults 224, 0.3 per severity, imagenet) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include <gsl/gsl_rng.h>

#include "input/corrupt.h"

typedef struct job {
    int id, severity, size;
    rs_corrupt_set set;
    const float *clean;
    float *img;
    gsl_rng *g;
} job;

static double gsl_uniform(void *state)
{
    return gsl_rng_uniform(state);
}

static int one(void *ctx)
{
    job *j = ctx;
    size_t n = (size_t)3 * j->size * j->size;
    memcpy(j->img, j->clean, n * sizeof *j->img);
    rs_corrupt_rng rng = {gsl_uniform, j->g};
    rs_error err;
    return rs_corrupt_apply(j->id, j->severity, j->set, &rng, j->img, 3, j->size, j->size, &err);
}

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU milliseconds per call of one(J): calls until SECONDS of CPU time and at least 3 calls,
 * after one warm-up call. Returns a negative value when a call fails. */
static double cpu_ms(job *j, double seconds)
{
    if (one(j))
        return -1;
    int calls = 0;
    double t0 = cpu_now(), t;
    do {
        if (one(j))
            return -1;
        calls++;
    } while ((t = cpu_now() - t0) < seconds || calls < 3);
    return 1e3 * t / calls;
}

/* The families in the order the benchmark's paper lists them. */
static const char *const families[] = {"noise", "blur", "weather", "digital"};

int main(int argc, char **argv)
{
    int size = argc > 1 ? atoi(argv[1]) : 224;
    double seconds = argc > 2 ? atof(argv[2]) : 0.3;
    rs_corrupt_set set = argc > 3 && !strcmp(argv[3], "cifar") ? RS_CSET_CIFAR : RS_CSET_IMAGENET;
    if (size < 8 || size > 4096 || !(seconds > 0)) {
        fprintf(stderr, "usage: bench_corrupt [SIZE] [SECONDS] [imagenet|cifar]\n");
        return 2;
    }
    size_t n = (size_t)3 * size * size;
    float *clean = malloc(n * sizeof *clean), *img = malloc(n * sizeof *img);
    gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
    if (!clean || !img || !g)
        return 1;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                double v = 0.5 + 0.35 * sin((x * (1 + c) + 2 * y) * 0.05) * cos(y * 0.037 + c);
                v = (x / 19 + y / 13) % 3 == 0 ? v * 0.4 : v;
                clean[((size_t)c * size + y) * size + x] = (float)(floor(v * 255 + 0.5) / 255);
            }
    double ms[RS_CORRUPT_COUNT];
    printf("corruption (%s set, %dx%dx3, 1 thread): CPU ms per image at severity 1..5, mean\n",
           rs_corrupt_set_name(set), size, size);
    for (int id = 0; id < RS_CORRUPT_COUNT; id++) {
        double sum = 0;
        printf("%-18s", rs_corrupt_name(id));
        for (int s = 1; s <= 5; s++) {
            job j = {id, s, size, set, clean, img, g};
            double t = cpu_ms(&j, seconds);
            if (t < 0) {
                fprintf(stderr, "%s at severity %d failed\n", rs_corrupt_name(id), s);
                return 1;
            }
            printf(" %8.2f", t);
            sum += t;
        }
        ms[id] = sum / 5;
        printf("   %8.2f\n", ms[id]);
    }
    /* A family's figure is over the benchmark's fifteen only (the extras are held out). */
    const char *heaviest = NULL;
    double worst = 0;
    for (int f = 0; f < 4; f++) {
        double sum = 0;
        int count = 0;
        for (int id = 0; id < RS_CORRUPT_COUNT; id++)
            if (!strcmp(rs_corrupt_family(id), families[f]) && strstr(RS_CORRUPT_DEFAULT, rs_corrupt_name(id)))
                sum += ms[id], count++;
        printf("family %-8s %8.2f ms per view (mean of %d corruptions x 5 severities)\n", families[f], sum / count,
               count);
        if (sum / count > worst)
            worst = sum / count, heaviest = families[f];
    }
    printf("heaviest %s %.2f\n", heaviest, worst);
    free(clean), free(img);
    gsl_rng_free(g);
    return 0;
}
