/* groups_section.c — the comparison report's groups of seeds (report.h): the groups of every
 * protocol computed once (analyze/stats/groups.h), the title's question and the answer
 * first (one table of every method against the reference, Holm over its cells, and a few
 * sentences read off it), then per protocol the groups' tables (tables/groups_tables.h)
 * and their figure (groups_plot.h). */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "groups_plot.h"
#include "tables/groups_tables.h"
#include "sections.h"

/* The run of id ID among the report's, or NULL. */
static const rs_run_info *run_of(const rs_report_state *R, int64_t id)
{
    for (int j = 0; j < R->n; j++)
        if (R->info[j].id == id)
            return &R->info[j];
    return NULL;
}

/* The runs of group GR (options) whose protocol is PROTOCOL, in order, into IDS; returns how
 * many. */
static int runs_of_protocol(const rs_report_state *R, int gr, const char *protocol, int64_t *ids)
{
    const rs_report_options *o = R->opt;
    int n = 0;
    for (int i = 0; i < o->group_sizes[gr]; i++) {
        const rs_run_info *r = run_of(R, o->group_runs[gr][i]);
        if (r && !strcmp(r->protocol, protocol))
            ids[n++] = o->group_runs[gr][i];
    }
    return n;
}

/* The groups of the protocol of the first group's run I, unless an earlier run had that
 * protocol: appended to R->groups. RUNS: scratch, a buffer per group. */
static void protocol_compute(rs_report_state *R, int i, int64_t **runs)
{
    const rs_report_options *o = R->opt;
    const rs_run_info *r = run_of(R, o->group_runs[0][i]);
    bool seen = false;
    for (int h = 0; r && h < i; h++) {
        const rs_run_info *q = run_of(R, o->group_runs[0][h]);
        seen |= q && !strcmp(q->protocol, r->protocol);
    }
    if (!r || seen)
        return;
    int sizes[RS_GROUPS_MAX];
    for (int gr = 0; gr < o->num_groups && gr < RS_GROUPS_MAX; gr++)
        sizes[gr] = runs_of_protocol(R, gr, r->protocol, runs[gr]);
    for (int gr = 1; gr < o->num_groups; gr++)
        if (!sizes[gr] || sizes[gr] > sizes[0]) {
            R->d.rc = rs_error_set(R->d.err, RS_EINVAL,
                                   "group %s holds %d %s runs and group %s %d: seeds pair by position within each "
                                   "protocol, and the first group holds every seed", o->group_names[gr], sizes[gr],
                                   r->protocol, o->group_names[0], sizes[0]);
            return;
        }
    rs_stats_options so = {.resamples = o->resamples, .seed = RS_STATS_DEFAULT_SEED, .name = o->db,
                           .force = o->force};
    R->d.rc = rs_groups_compute(R->store, o->group_names, (const int64_t *const *)runs, sizes, o->num_groups, &so,
                                &R->groups[R->protocols], R->d.err);
    if (!R->d.rc)
        R->protocols++;
}

void rs_report_groups_compute(rs_report_state *R)
{
    const rs_report_options *o = R->opt;
    if (!o->num_groups || R->d.rc || R->groups)
        return;
    int64_t *runs[RS_GROUPS_MAX] = {0};
    R->groups = calloc((size_t)o->group_sizes[0], sizeof *R->groups); /* freed by rs_report_groups_free */
    bool oom = !R->groups;
    for (int gr = 0; gr < o->num_groups && gr < RS_GROUPS_MAX; gr++)
        oom |= !(runs[gr] = malloc(sizeof *runs[gr] * (size_t)o->group_sizes[gr]));
    if (oom)
        R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
    /* protocols in the order the first group's runs show them */
    for (int i = 0; i < o->group_sizes[0] && !R->d.rc; i++)
        protocol_compute(R, i, runs);
    if (!R->d.rc && o->num_groups > 1 && R->protocols)
        R->d.rc = rs_groups_answer((const rs_groups *const *)R->groups, R->protocols, &R->answer, R->d.err);
    for (int gr = 0; gr < o->num_groups && gr < RS_GROUPS_MAX; gr++)
        free(runs[gr]);
}

void rs_report_groups_free(rs_report_state *R)
{
    for (int q = 0; R->groups && q < R->protocols; q++)
        rs_groups_free(R->groups[q]);
    free(R->groups);
    rs_answer_free(R->answer);
    R->groups = NULL, R->answer = NULL, R->protocols = 0;
}

/* "V-MoE+PRC k=2" of group GR. */
static void method_label(const rs_groups *g, int gr, char *buf, size_t size)
{
    const rs_run_info *r = &g->info[rs_groups_at(g, gr, 0)];
    snprintf(buf, size, "%s k=%d", rs_method_name(rs_run_method(r)), r->top_k);
}

/* Appends to BUF (SIZE, holding *LEN characters) as printf does; stops at the end. */
static void appendf(char *buf, size_t size, int *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t size, int *len, const char *fmt, ...)
{
    if (*len < 0 || (size_t)*len >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    *len += vsnprintf(buf + *len, size - (size_t)*len, fmt, ap);
    va_end(ap);
}

/* The separator before item I of N in "A, B and C". */
static const char *sep(int i, int n)
{
    return i == 0 ? "" : i + 1 == n ? " and " : ", ";
}

void rs_report_groups_title(rs_report_state *R)
{
    const rs_groups *g = R->groups[0];
    char text[2048], label[96];
    int len = 0;
    appendf(text, sizeof text, &len, "How do%s ", g->num_groups == 2 ? "es" : "");
    for (int gr = 1; gr < g->num_groups; gr++) {
        method_label(g, gr, label, sizeof label);
        appendf(text, sizeof text, &len, "%s%s", sep(gr - 1, g->num_groups - 1), label);
    }
    method_label(g, 0, label, sizeof label);
    appendf(text, sizeof text, &len, " change routing against %s? ", label);
    for (int q = 0; q < R->protocols; q++)
        appendf(text, sizeof text, &len, "%s%s", sep(q, R->protocols), R->groups[q]->info[0].protocol);
    appendf(text, sizeof text, &len, " protocol%s on %s (", R->protocols == 1 ? "" : "s", g->info[0].data);
    for (int q = 0; q < R->protocols; q++)
        appendf(text, sizeof text, &len, "%s%d", sep(q, R->protocols), R->groups[q]->info[0].images_done);
    appendf(text, sizeof text, &len, " images); training seeds:");
    for (int gr = 0; gr < g->num_groups; gr++)
        appendf(text, sizeof text, &len, "%s %s %d", gr ? "," : "", g->names[gr], g->size[gr]);
    rs_doc_add(&R->d, RS_DOC_H1, text, NULL);
}

/* The reader's name of figure F. */
static const char *figure_phrase(int f)
{
    static const char *const phrase[RS_GROUP_NUM_FIGURES] = {
        "Top-1 agreement", "ordered Top-2 agreement", "order-agnostic Top-2 agreement", "accuracy on view 0",
        "accuracy on the other views"};
    return phrase[f];
}

/* "p = 0.031" or "p < 0.001". */
static void p_text(double p, char *buf, size_t size)
{
    if (p < 0.001)
        snprintf(buf, size, "p < 0.001");
    else
        snprintf(buf, size, "p = %.2g", p);
}

/* The cell of row ROW with the smallest Holm p (ties: the larger difference), routing
 * agreement before accuracy (routing is the question): *Q, *F; and how many of the row's
 * cells have a p-value and hold. False when none has a p-value. */
static bool clearest(const rs_answer *a, int row, int *q, int *f, int *tested, int *held)
{
    const rs_answer_cell *best = NULL;
    bool best_acc = true;
    *tested = *held = 0;
    for (int p = 0; p < a->protocols; p++)
        for (int k = 0; k < RS_GROUP_NUM_FIGURES; k++) {
            const rs_answer_cell *c = rs_answer_at(a, row, p, k);
            if (!c->diff.valid)
                continue;
            (*tested)++, *held += c->holds;
            bool acc = rs_groups_is_accuracy(k);
            if (!best || (best_acc && !acc) ||
                (acc == best_acc && (c->holm < best->holm ||
                                     (c->holm == best->holm && fabs(c->diff.mean) > fabs(best->diff.mean)))))
                best = c, best_acc = acc, *q = p, *f = k;
        }
    return best != NULL;
}

/* Why a difference D that does not hold after Holm is not claimed: its own interval may
 * still exclude 0, which the sentence must not deny. */
static const char *not_held(const rs_t_interval *d)
{
    return d->lo > 0 || d->hi < 0 ? "excludes 0 on its own but does not hold after Holm across the table"
                                  : "is not bounded away from 0";
}

/* One sentence on method ROW (group ROW + 1) of the answer. */
static void row_sentence(const rs_report_state *R, int row, char *buf, size_t size)
{
    const rs_answer *a = R->answer;
    char label[96], p[32];
    method_label(R->groups[0], row + 1, label, sizeof label);
    int q = 0, f = 0, tested, held;
    if (!clearest(a, row, &q, &f, &tested, &held)) {
        const rs_answer_cell *c = rs_answer_at(a, row, 0, RS_GROUP_TOP1);
        snprintf(buf, size, "%s has one training seed: its differences (%s, %s protocol: %+.2f points) have no "
                 "interval or p-value and speak for that seed only.", label, figure_phrase(RS_GROUP_TOP1),
                 R->groups[0]->info[0].protocol, 100 * c->diff.mean);
        return;
    }
    const rs_answer_cell *c = rs_answer_at(a, row, q, f);
    const char *protocol = R->groups[q]->info[0].protocol;
    p_text(c->holm, p, sizeof p);
    if (!c->holds) {
        snprintf(buf, size, "The clearest %sdifference of %s, %s under the %s protocol, %+.2f points [%+.2f, %+.2f] "
                 "over %d seeds (Holm %s), %s; %d of its %d differences with a p-value hold%s.",
                 rs_groups_is_accuracy(f) ? "" : "routing ", label, figure_phrase(f), protocol, 100 * c->diff.mean,
                 100 * c->diff.lo, 100 * c->diff.hi, c->diff.n, p, not_held(&c->diff), held, tested,
                 held == 1 ? "s" : "");
        return;
    }
    int len = snprintf(buf, size, "%s %s %s under the %s protocol by %+.2f points [%+.2f, %+.2f] over %d seeds "
                       "(Holm %s)", label, c->diff.mean > 0 ? "raises" : "lowers", figure_phrase(f), protocol,
                       100 * c->diff.mean, 100 * c->diff.lo, 100 * c->diff.hi, c->diff.n, p);
    const rs_answer_cell *t1 = rs_answer_at(a, row, q, RS_GROUP_TOP1);
    if (f != RS_GROUP_TOP1 && t1->diff.valid && !t1->holds && len < (int)size)
        len += snprintf(buf + len, size - (size_t)len, "; its Top-1 difference there, %+.2f [%+.2f, %+.2f], %s",
                        100 * t1->diff.mean, 100 * t1->diff.lo, 100 * t1->diff.hi, not_held(&t1->diff));
    if (len < (int)size)
        snprintf(buf + len, size - (size_t)len, "; %d of its %d differences with a p-value hold%s.", held, tested,
                 held == 1 ? "s" : "");
}

void rs_report_answer_section(rs_report_state *R)
{
    if (!R->answer || R->d.rc)
        return;
    rs_doc *d = &R->d;
    rs_doc_add(d, RS_DOC_H2, "Answer over training seeds", NULL);
    rs_doc_add_table(d, rs_report_answer_table(R->answer, (const rs_groups *const *)R->groups, "answer"), "answer");
    /* at most five sentences: one per method, the fifth names what is left */
    char *lines[5];
    int n = 0, rows = R->answer->rows;
    for (int row = 0; row < rows && n < 5 && !d->rc; row++) {
        char buf[1024];
        if (n == 4 && rows > 5)
            snprintf(buf, sizeof buf, "The table holds %d more methods.", rows - 4);
        else
            row_sentence(R, row, buf, sizeof buf);
        if (!(lines[n] = strdup(buf)))
            d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
        else
            n++;
    }
    rs_doc_add_list(d, lines, n);
    for (int k = 0; k < n; k++)
        free(lines[k]);
}

/* Tables and figure of the groups of protocol Q. */
static void protocol_groups(rs_report_state *R, int q)
{
    rs_doc *d = &R->d;
    const rs_groups *g = R->groups[q];
    const char *protocol = g->info[0].protocol;
    char buf[160], name[96], file[128], path[4096];
    snprintf(buf, sizeof buf, "Groups of seeds: %s protocol", protocol);
    rs_doc_add(d, RS_DOC_H2, buf, NULL);
    char counts[RS_GROUPS_MAX * 48];
    int len = 0;
    bool unequal = false;
    for (int gr = 0; gr < g->num_groups; gr++) {
        len += snprintf(counts + len, sizeof counts - len, "%s%s %d", gr ? ", " : "", g->names[gr], g->size[gr]);
        unequal |= g->size[gr] != g->size[0];
    }
    rs_doc_addf(d, RS_DOC_PARA, "%d group%s of runs, one per training seed (%s), the first (%s) the reference%s. %s",
                g->num_groups, g->num_groups == 1 ? "" : "s", counts, g->names[0],
                unequal ? "; a group with fewer seeds is compared on the seeds it has" : "",
                g->size[0] == 1 ? "With one seed per group there is no between-seed interval: each figure is one run's."
                                : rs_report_groups_why);
    if (g->forced)
        rs_doc_addf(d, RS_DOC_PARA, "Flagged (--force): these groups are not comparable as given: %s.", g->mismatch);
    snprintf(name, sizeof name, "groups-%s-summary", protocol);
    rs_doc_add_table(d, rs_report_groups_summary_table(g, protocol), name);
    snprintf(file, sizeof file, "groups-%s.png", protocol);
    for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
        rs_report_fig_path_twin(R, file, twin, path, sizeof path);
        d->rc = rs_render_groups(g, path, d->err);
    }
    rs_report_figure(R, file, "Headline figures of every run of each group (hue: method; lighter: later seed; "
                              "marker: k) and the mean over seeds (bar).");
    if (R->answer) {
        snprintf(name, sizeof name, "groups-%s-differences", protocol);
        rs_doc_add_table(d, rs_report_groups_diff_table(g, R->answer, q, protocol), name);
        snprintf(name, sizeof name, "groups-%s-seeds", protocol);
        rs_doc_add_table(d, rs_report_groups_seed_diff_table(g, protocol), name);
    }
}

void rs_report_groups_section(rs_report_state *R)
{
    rs_report_groups_compute(R);
    for (int q = 0; q < R->protocols && !R->d.rc; q++)
        protocol_groups(R, q);
}
