/* dissect_section.c — the report's "Dissection over seeds" section (sections.h): for each
 * protocol of the report's groups whose runs force perturbed views to the clean routing
 * (analyze/stats/dissect.h), the per-method table of accuracy, agreement and router- vs
 * expert-attributable prediction flips with intervals over seeds, each method's differences
 * from the first, and the per-seed counts. */
#include <stdio.h>

#include "sections.h"
#include "stats/dissect.h"
#include "tables/dissect_tables.h"

/* The section of protocol Q's groups. */
static void protocol_dissect(rs_report_state *R, int q)
{
    const rs_groups *g = R->groups[q];
    rs_stats_options so = {.name = R->opt->db};
    rs_dissect *d = NULL;
    if ((R->d.rc = rs_dissect_compute(R->store, g, &so, &d, R->d.err)))
        return;
    char buf[160], name[64];
    snprintf(buf, sizeof buf, "Dissection over seeds: %s protocol", g->info[0].protocol);
    rs_doc_add(&R->d, RS_DOC_H2, buf, NULL);
    rs_doc_add(&R->d, RS_DOC_PARA,
               "Is the router or the expert the weak point (AdvMoE's question)? Under each perturbation, of the "
               "predictions it flips, the share that forcing the clean view's routing undoes is the router's doing; "
               "what remains flipped with the clean routing is the experts' (and the dense blocks'). "
               "docs/dissection.md gives the definition.", NULL);
    snprintf(name, sizeof name, "dissect-%s", g->info[0].protocol);
    rs_doc_add_table(&R->d, rs_report_dissect_table(d, g, g->info[0].protocol), name);
    snprintf(name, sizeof name, "dissect-%s-diff", g->info[0].protocol);
    rs_doc_add_table(&R->d, rs_report_dissect_diff_table(d, g, g->info[0].protocol), name);
    snprintf(name, sizeof name, "dissect-%s-seeds", g->info[0].protocol);
    rs_doc_add_table(&R->d, rs_report_dissect_seed_table(d, g, g->info[0].protocol), name);
    rs_dissect_free(d);
}

void rs_report_dissect(rs_report_state *R)
{
    for (int q = 0; q < R->protocols && !R->d.rc; q++)
        if (rs_dissect_applies(&R->groups[q]->info[0]))
            protocol_dissect(R, q);
}
