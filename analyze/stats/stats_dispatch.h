/* stats_dispatch.h — what dispatch with expert capacity did in a stored run
 * (docs/dispatch.md, docs/metrics.md "Dispatch"). The routing changes of the kept sets are
 * stats.h's routing_changes.
 *
 * For a run with a capacity factor (its records carry kept masks), in one streaming pass:
 *   drops: top-k choices dispatched and dropped, over every token (class token included),
 *     per view slot, layer slot and expert slot (the expert of the choice).
 * A view that forces routing (route:) dispatched the experts it ran (rs_routing_record's
 * executed): its drops and kept sets are those; its router top-k sets stay the router's.
 *   agreement per non-reference view against view 0 over matched patch pairs (the pairs of
 *     stats.h): router top-k sets equal; kept sets equal (two empty sets are equal); mean
 *     IoU of the kept sets.
 * Cells: as stats.h, (V+1) view slots × (L+1) layer slots (rs_stats_dispatch_cell): slot V
 * pools the views (drops: all views; agreement: the non-reference views), slot L the
 * layers; experts likewise E+1 slots, slot E pooling them. A rate whose cell holds nothing
 * has valid = false.
 *
 * Ownership: rs_stats_dispatch_compute allocates *OUT; rs_stats_dispatch_free releases it
 * (NULL allowed). Errors: RS_EINVAL for a run without capacity; RS_EFORMAT for records
 * that break the run's contract (a missing kept mask, expert ids >= E, a view or layer out
 * of order); RS_ENOMEM; store errors as the store reports them. Nothing is printed. */
#ifndef RS_STATS_DISPATCH_H
#define RS_STATS_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "rs_error.h"
#include "stats.h"
#include "store/store.h"

typedef struct rs_stats_dispatch {
    int views, layers, experts, top_k, images;
    double level;
    /* (cells, E+1) */
    int64_t *choices, *dropped;
    /* (cells): agreement over matched pairs, valid only for non-reference view slots */
    rs_stats_rate *topk_set, *kept_set;
    rs_stats_mean *kept_iou;
} rs_stats_dispatch;

static inline int rs_stats_dispatch_cell(const rs_stats_dispatch *d, int view_slot, int layer_slot)
{
    return view_slot * (d->layers + 1) + layer_slot;
}

/* OPT: level as in stats.h (NULL: defaults). */
int rs_stats_dispatch_compute(rs_store *store, int64_t run_id, const rs_stats_options *opt, rs_stats_dispatch **out,
                              rs_error *err);
void rs_stats_dispatch_free(rs_stats_dispatch *d);

#endif
