/* route_section.c — the report's "Routing interventions" section (report.h): when some of the
 * report's runs have forced views (route:, analyze/stats/route_stats.h), one table of every such
 * run's forced views. */
#include <stdlib.h>

#include "sections.h"
#include "tables/route_tables.h"

void rs_report_route(rs_report_state *R)
{
    if (R->d.rc)
        return;
    rs_route_stats **rs = calloc((size_t)R->n, sizeof *rs);
    const rs_route_stats **shown = calloc((size_t)R->n, sizeof *shown);
    const rs_run_info **runs = calloc((size_t)R->n, sizeof *runs);
    rs_stats_options so = {.name = R->opt->db};
    int n = 0, rc = rs && shown && runs ? 0 : rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < R->n; i++) {
        rc = rs_route_stats_compute(R->store, &R->info[i], R->st[i], &so, &rs[i], R->d.err);
        if (!rc && rs[i]->rows > 0)
            shown[n] = rs[i], runs[n++] = &R->info[i];
    }
    R->d.rc = rc;
    if (!rc && n > 0) {
        rs_doc_add(&R->d, RS_DOC_H2, "Routing interventions", NULL);
        rs_doc_add(&R->d, RS_DOC_PARA,
                   "A forced view runs the pixels of a perturbed view, but each of its patches that matches a patch "
                   "of the reference view runs the experts the reference ran there, gated by its own router "
                   "probabilities (docs/dispatch.md). Of the images whose predicted class the perturbation changed, "
                   "routing-attributable is the share whose prediction the reference's routing restores; the rest "
                   "remains changed with the routing forced, so its cause lies elsewhere (attention, dense blocks, "
                   "the experts' inputs).", NULL);
        rs_doc_add_table(&R->d, rs_report_route_table(shown, runs, n), "route-interventions");
    }
    for (int i = 0; rs && i < R->n; i++)
        rs_route_stats_free(rs[i]);
    free(rs);
    free(shown);
    free(runs);
}
