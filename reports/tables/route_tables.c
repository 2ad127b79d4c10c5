/* route_tables.c — the routing interventions table (contract in route_tables.h). */
#include "route_tables.h"

#include <inttypes.h>
#include <stdio.h>

#include "store/run.h"
#include "stats_tables.h"

/* "all" for every MoE block, else "block 1/3". */
static void blocks_label(unsigned blocks, char *buf, size_t size)
{
    size_t len = (size_t)snprintf(buf, size, blocks ? "block" : "all");
    for (int b = 0, first = 1; b < 32 && len < size; b++)
        if (blocks >> b & 1u) {
            len += (size_t)snprintf(buf + len, size - len, "%s%d", first ? " " : "/", b);
            first = 0;
        }
}

static void route_row(rs_table *t, const rs_route_row *x, const rs_run_info *run, bool several)
{
    char view[64], base[64], from[64], blocks[128], run_id[32], model[64];
    snprintf(view, sizeof view, "view %d", x->view); /* its spec is long; the next two columns say it */
    rs_report_view_label(run, x->base, base, sizeof base);
    rs_report_view_label(run, x->from, from, sizeof from);
    blocks_label(x->blocks, blocks, sizeof blocks);
    snprintf(run_id, sizeof run_id, "%" PRId64, run->id);
    int r = rs_table_add_row(t, view, blocks, NULL), c = 0;
    rs_table_set_row_run(t, r, run_id);
    if (several) {
        snprintf(model, sizeof model, "%s, k=%d", rs_method_name(rs_run_method(run)), run->top_k);
        rs_table_set_text(t, r, c++, model);
    }
    rs_table_set_text(t, r, c++, view);
    rs_table_set_text(t, r, c++, base);
    rs_table_set_text(t, r, c++, from);
    rs_table_set_text(t, r, c++, blocks);
    rs_table_set_count(t, r, c++, x->images);
    rs_table_set_count(t, r, c++, x->changed);
    rs_report_set_rate(t, r, c++, &x->attributable, x->changed);
    rs_report_set_rate(t, r, c++, &x->remaining, x->changed);
    rs_table_set_count(t, r, c, x->introduced);
}

rs_table *rs_report_route_table(const rs_route_stats *const *rs, const rs_run_info *const *runs, int n)
{
    const char *keys[] = {"model", "forced_view", "perturbed_view", "routing_from", "blocks", "images", "changed",
                          "attributable", "remaining", "introduced"};
    const char *heads[] = {"Model", "Forced view", "Perturbed view", "Routing of", "Blocks forced", "Images",
                           "Prediction changed", "Routing-attributable", "Remaining", "Changed by forcing"};
    bool several = n > 1;
    int skip = several ? 0 : 1;
    char run[32];
    snprintf(run, sizeof run, "%" PRId64, n > 0 ? runs[0]->id : 0);
    rs_table *t = rs_table_create("Routing interventions: of the images whose prediction the perturbation changed, "
                                  "the share that forcing the reference's routing restores (%, 95 % bootstrap "
                                  "interval over images)",
                                  several ? "route" : run, 10 - skip, keys + skip, heads + skip);
    for (int i = 0; t && i < n; i++)
        for (int j = 0; j < rs[i]->rows; j++)
            route_row(t, &rs[i]->row[j], runs[i], several);
    return t;
}
