/* bench_util.h — what the C benchmarks share (bench_forward, bench_grad): the clock, their
 * fixed pseudo-random input and the timed loop that turns repeated calls into a rate. */
#ifndef RS_BENCH_UTIL_H
#define RS_BENCH_UTIL_H

#include <stddef.h>

#include "gemm.h"

/* Seconds on the monotonic clock. */
double bench_now(void);

/* Fills X[0..N) with values in [LO, HI) from a fixed LCG: the same on every call and every
 * machine (speed does not depend on them). */
void bench_fill(float *x, size_t n, float lo, float hi);

/* Calls STEP(CTX) until SECONDS have passed and it ran at least MIN_CALLS times; *PER_S
 * receives the calls per second, and *PER_CPU_S (unless NULL) the calls per second of the
 * process's CPU time, all threads together: times the thread count, that is the rate on
 * idle cores, which a machine loaded by other jobs lowers far less than the wall-clock
 * rate. Warm-up is the caller's. Returns 0, or the first non-zero value STEP returned (the
 * loop stops there). */
int bench_rate(int (*step)(void *ctx), void *ctx, double seconds, int min_calls, double *per_s, double *per_cpu_s);

/* Takes "--gemm B" and "--precision P" (model/gemm.h) out of ARGV wherever they stand,
 * shifting the rest down and lowering *ARGC; defaults OpenBLAS f32. Returns 0, or 2 after
 * printing a bad name to stderr. */
int bench_compute_args(int *argc, char **argv, rs_gemm_backend *backend, rs_precision *precision);

#endif
