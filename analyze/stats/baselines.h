/* baselines.h — which run each run of a comparison is read against, and whether the two
 * can be compared (the comparison report, report.h).
 *
 * A run's baseline is among the runs given before it with its protocol and top-k (baselines
 * never cross k: with VMOE_K1, PRC_K1, VMOE_K2, PRC_K2 each PRC run is read against its
 * V-MoE run). A method's run is read against a V-MoE run (store/run.h's rs_run_method: the
 * checkpoint's method, or its file name): the one of the same training seed where there is
 * one, as seeds pair (docs/groups.md), else the first; without a V-MoE run, against the
 * first such run. A V-MoE run is read only against an earlier run of its own checkpoint
 * (another view seed, or itself): another training seed of V-MoE is not a method to
 * compare.
 *
 * Pure functions of the runs' stored descriptions: nothing is read, allocated or printed. */
#ifndef RS_BASELINES_H
#define RS_BASELINES_H

#include <stdbool.h>
#include <stddef.h>

#include "store/run.h"

/* What a run and its baseline must share to be compared: the same images of the same data
 * under the same views, and the same MoE layers and patch grid. */
#define RS_BASELINE_FIELDS                                                                                       \
    (RS_RUN_DIFF_DATA | RS_RUN_DIFF_SLICE | RS_RUN_DIFF_IMAGES | RS_RUN_DIFF_PROTOCOL | RS_RUN_DIFF_VIEWS |      \
     RS_RUN_DIFF_SEED | RS_RUN_DIFF_SHAPES)

/* The baseline of RUNS[I] among RUNS[0..I): its index, or -1 when there is none. */
int rs_baseline_of(const rs_run_info *runs, int i);

/* True when RUN can be compared with its baseline BASE; otherwise why not, as a report
 * says it ("seed differs (0 vs 1: different augmented views)"), into WHY ("" when
 * comparable; WHY may be NULL with SIZE 0). */
bool rs_baseline_comparable(const rs_run_info *base, const rs_run_info *run, char *why, size_t size);

#endif
