/* bench_check.c — what the run check costs next to `export`: rs_store_check_run (what every
 * reader runs first, rs_run_load) and rs_export_run (CSV routing rows to /dev/null) of one run,
 * alternated REPEATS times, medians printed (a shared, loaded machine: alternating keeps both
 * under the same load). docs/store.md, "Checking a run", quotes its figures.
 *
 *   build/bench_check DB RUN [REPEATS]   (default 5) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "store/export.h"
#include "store/store.h"

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_check DB RUN [REPEATS]\n");
        return 2;
    }
    int64_t run = strtoll(argv[2], NULL, 10);
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    if (repeats < 1 || repeats > 100)
        repeats = 5;
    rs_store *store;
    rs_error err;
    FILE *null = fopen("/dev/null", "w");
    if (!null || rs_store_open(argv[1], true, &store, &err)) {
        fprintf(stderr, "bench_check: %s\n", null ? err.msg : "cannot open /dev/null");
        return 1;
    }
    double check[100], export[100];
    int64_t rows = 0;
    rs_export_options opt = {.format = RS_EXPORT_CSV, .store_name = argv[1], .out_name = "/dev/null"};
    int rc = 0;
    for (int i = 0; i < repeats && !rc; i++) {
        double t0 = bench_now();
        rc = rs_store_check_run(store, run, &err);
        double t1 = bench_now();
        if (!rc)
            rc = rs_export_run(store, run, &opt, null, &rows, &err);
        double t2 = bench_now();
        check[i] = t1 - t0;
        export[i] = t2 - t1;
    }
    rs_store_close(store);
    fclose(null);
    if (rc) {
        fprintf(stderr, "bench_check: %s\n", err.msg);
        return 1;
    }
    double c = median(check, repeats), e = median(export, repeats);
    printf("run %" PRId64 ": check %.3f s, export %.3f s (%" PRId64 " rows): the check is %.1f %% of export "
           "(medians of %d)\n", run, c, e, rows, 100 * c / e, repeats);
    return 0;
}
