/* bench_util.c — the benchmarks' shared clock, input and timed loop (bench_util.h). */
#include "bench_util.h"

#include <stdint.h>
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

int bench_rate(int (*step)(void *ctx), void *ctx, double seconds, int min_calls, double *per_s)
{
    int calls = 0;
    double t0 = bench_now(), dt;
    do {
        int rc = step(ctx);
        if (rc)
            return rc;
        calls++;
        dt = bench_now() - t0;
    } while (dt < seconds || calls < min_calls);
    *per_s = calls / dt;
    return 0;
}
