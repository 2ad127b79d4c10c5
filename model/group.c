/* group.c — the group loop of the forward and gradient passes (contract in group.h). */
#include "group.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int rs_group_threads(int max_batch, int group, int threads)
{
    int groups = (max_batch + group - 1) / group;
    return threads < groups ? threads : groups;
}

void rs_group_run(int batch, int group, int threads, rs_group_fn *fn, void *ctx)
{
    int groups = (batch + group - 1) / group;
    /* Dynamic: groups cost the same, but a thread may lose its core for a while. */
    #pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if(threads > 1 && groups > 1)
    for (int g = 0; g < groups; g++) {
        int thread = 0;
#ifdef _OPENMP
        thread = omp_get_thread_num();
#endif
        int first = g * group;
        fn(ctx, thread, first, batch - first < group ? batch - first : group);
    }
}
