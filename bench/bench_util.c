/* bench_util.c — the benchmarks' shared clock, input and timed loop (bench_util.h). */
#include "bench_util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bench_fill(float *x, size_t n, float lo, float hi)
{
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = lo + (hi - lo) * ((float)(s >> 8) / 16777216.0f);
    }
}

/* Seconds of CPU time of the whole process. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int bench_rate(int (*step)(void *ctx), void *ctx, double seconds, int min_calls, double *per_s, double *per_cpu_s)
{
    int calls = 0;
    double t0 = bench_now(), c0 = cpu_now(), dt;
    do {
        int rc = step(ctx);
        if (rc)
            return rc;
        calls++;
        dt = bench_now() - t0;
    } while (dt < seconds || calls < min_calls);
    *per_s = calls / dt;
    if (per_cpu_s)
        *per_cpu_s = calls / (cpu_now() - c0);
    return 0;
}

int bench_compute_args(int *argc, char **argv, rs_gemm_backend *backend, rs_precision *precision)
{
    *backend = RS_GEMM_OPENBLAS;
    *precision = RS_PRECISION_F32;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        bool gemm = !strcmp(argv[i], "--gemm"), prec = !strcmp(argv[i], "--precision");
        if ((gemm || prec) && i + 1 < *argc) {
            rs_error err;
            int rc = gemm ? rs_gemm_backend_parse(argv[i + 1], backend, &err)
                          : rs_precision_parse(argv[i + 1], precision, &err);
            if (rc) {
                fprintf(stderr, "%s: %s\n", argv[0], err.msg);
                return 2;
            }
            i++;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}
