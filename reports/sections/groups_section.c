/* groups_section.c — the comparison report's "Groups of seeds" section (report.h):
 * per protocol, the groups' tables (tables/groups_tables.h) and their figure (groups_plot.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups_plot.h"
#include "tables/groups_tables.h"
#include "sections.h"

/* The runs of group GR (options) whose protocol is PROTOCOL, in order, into IDS; returns how
 * many. */
static int runs_of_protocol(const rs_report_state *R, int gr, const char *protocol, int64_t *ids)
{
    const rs_report_options *o = R->opt;
    int n = 0;
    for (int i = 0; i < o->group_sizes[gr]; i++)
        for (int j = 0; j < R->n; j++)
            if (R->info[j].id == o->group_runs[gr][i] && !strcmp(R->info[j].protocol, protocol))
                ids[n++] = o->group_runs[gr][i];
    return n;
}

/* Tables and figure of the groups' runs of one protocol; RUNS[g] SIZES[g] ids. */
static void protocol_groups(rs_report_state *R, const char *protocol, int64_t *const *runs, const int *sizes)
{
    rs_doc *d = &R->d;
    const rs_report_options *o = R->opt;
    rs_stats_options so = {.resamples = o->resamples, .seed = RS_STATS_DEFAULT_SEED, .name = o->db,
                           .force = o->force};
    rs_groups *g = NULL;
    d->rc = rs_groups_compute(R->store, o->group_names, (const int64_t *const *)runs, sizes, o->num_groups, &so, &g,
                              d->err);
    if (d->rc)
        return;
    char buf[160], name[96], file[128], path[4096];
    snprintf(buf, sizeof buf, "Groups of seeds: %s protocol", protocol);
    rs_doc_add(d, RS_DOC_H2, buf, NULL);
    char counts[RS_GROUPS_MAX * 48];
    int len = 0;
    bool unequal = false;
    for (int gr = 0; gr < g->num_groups; gr++) {
        len += snprintf(counts + len, sizeof counts - len, "%s%s %d", gr ? ", " : "", g->names[gr], sizes[gr]);
        unequal |= sizes[gr] != sizes[0];
    }
    rs_doc_addf(d, RS_DOC_PARA, "%d group%s of runs, one per training seed (%s), the first (%s) the reference%s. %s",
                g->num_groups, g->num_groups == 1 ? "" : "s", counts, g->names[0],
                unequal ? "; a group with fewer seeds is compared on the seeds it has" : "",
                sizes[0] == 1 ? "With one seed per group there is no between-seed interval: each figure is one run's."
                              : rs_report_groups_why);
    if (g->forced)
        rs_doc_addf(d, RS_DOC_PARA, "Flagged (--force): these groups are not comparable as given: %s.", g->mismatch);
    snprintf(name, sizeof name, "groups-%s-summary", protocol);
    rs_doc_add_table(d, rs_report_groups_summary_table(g, protocol), name);
    snprintf(file, sizeof file, "groups-%s.png", protocol);
    rs_report_fig_path(R, file, path, sizeof path);
    if (!d->rc)
        d->rc = rs_render_groups(g, path, d->err);
    rs_report_figure(R, file, "Headline figures of every run of each group (hue: method; lighter: later seed; "
                              "marker: k) and the mean over seeds (bar).");
    if (g->num_groups > 1) {
        snprintf(name, sizeof name, "groups-%s-differences", protocol);
        rs_doc_add_table(d, rs_report_groups_diff_table(g, protocol), name);
        snprintf(name, sizeof name, "groups-%s-seeds", protocol);
        rs_doc_add_table(d, rs_report_groups_seed_table(g, protocol), name);
    }
    rs_groups_free(g);
}

void rs_report_groups_section(rs_report_state *R)
{
    const rs_report_options *o = R->opt;
    if (!o->num_groups || R->d.rc)
        return;
    int64_t *runs[RS_GROUPS_MAX] = {0};
    for (int gr = 0; gr < o->num_groups && gr < RS_GROUPS_MAX; gr++)
        if (!(runs[gr] = malloc(sizeof *runs[gr] * (size_t)o->group_sizes[gr])))
            R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
    /* protocols in the order the first group's runs show them */
    for (int i = 0; i < o->group_sizes[0] && !R->d.rc; i++) {
        const rs_run_info *r = NULL;
        for (int j = 0; j < R->n; j++)
            r = R->info[j].id == o->group_runs[0][i] ? &R->info[j] : r;
        bool seen = false;
        for (int h = 0; r && h < i; h++)
            for (int j = 0; j < R->n; j++)
                seen |= R->info[j].id == o->group_runs[0][h] && !strcmp(R->info[j].protocol, r->protocol);
        if (!r || seen)
            continue;
        int sizes[RS_GROUPS_MAX];
        for (int gr = 0; gr < o->num_groups && gr < RS_GROUPS_MAX; gr++)
            sizes[gr] = runs_of_protocol(R, gr, r->protocol, runs[gr]);
        for (int gr = 1; gr < o->num_groups && !R->d.rc; gr++)
            if (!sizes[gr] || sizes[gr] > sizes[0])
                R->d.rc = rs_error_set(R->d.err, RS_EINVAL,
                                       "group %s holds %d %s runs and group %s %d: seeds pair by position within "
                                       "each protocol, and the first group holds every seed", o->group_names[gr],
                                       sizes[gr], r->protocol, o->group_names[0], sizes[0]);
        if (!R->d.rc)
            protocol_groups(R, r->protocol, runs, sizes);
    }
    for (int gr = 0; gr < o->num_groups && gr < RS_GROUPS_MAX; gr++)
        free(runs[gr]);
}
