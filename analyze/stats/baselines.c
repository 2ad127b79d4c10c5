/* baselines.c — each run's baseline and whether they compare (contract in baselines.h). */
#include "baselines.h"

#include <string.h>

int rs_baseline_of(const rs_run_info *runs, int i)
{
    const rs_run_info *r = &runs[i];
    bool vmoe_run = rs_run_method(r) == RS_METHOD_VMOE;
    int first = -1, vmoe = -1;
    for (int j = 0; j < i; j++) {
        const rs_run_info *q = &runs[j];
        if (strcmp(r->protocol, q->protocol) || r->top_k != q->top_k)
            continue;
        if (vmoe_run) {
            if (!strcmp(q->model_sha256, r->model_sha256))
                return j;
            continue;
        }
        if (rs_run_method(q) == RS_METHOD_VMOE) {
            if (r->train_seed >= 0 && q->train_seed == r->train_seed)
                return j;
            vmoe = vmoe < 0 ? j : vmoe;
        }
        first = first < 0 ? j : first;
    }
    return vmoe >= 0 ? vmoe : first;
}

bool rs_baseline_comparable(const rs_run_info *base, const rs_run_info *run, char *why, size_t size)
{
    return rs_run_difference(base, run, RS_BASELINE_FIELDS, RS_RUN_DIFF_SENTENCE, why, size) == 0;
}
