/* report.c — rs_report_write (report.h): loads the runs and their statistics, finds each
 * run's baseline, builds the document (the title, the single-run or the comparison
 * report's sections, the provenance as an appendix) and writes it as Markdown, HTML and PDF. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sections/explorer.h"
#include "sections/sections.h"
#include "stats/baselines.h"

static int make_dir(const char *path, rs_error *err)
{
    if (mkdir(path, 0777) && errno != EEXIST)
        return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (stat(path, &sb) || !S_ISDIR(sb.st_mode))
        return rs_error_set(err, RS_EIO, "%s: not a folder", path);
    return 0;
}

/* True when A and B have the same view specs, in order. */
static bool same_views_as(const rs_run_info *a, const rs_run_info *b)
{
    if (a->num_views != b->num_views)
        return false;
    for (int v = 0; v < a->num_views; v++)
        if (strcmp(a->view_specs[v], b->view_specs[v]))
            return false;
    return true;
}

static void provenance(rs_report_state *R, char ***lines_out, int *nlines)
{
    const rs_report_options *o = R->opt;
    int cap = 8 + 3 * R->n, n = 0;
    char **lines = calloc((size_t)cap, sizeof *lines);
    if (!lines) {
        *lines_out = NULL;
        *nlines = 0;
        return;
    }
    char buf[4096];
    snprintf(buf, sizeof buf, "routerscope %s", o->version ? o->version : "?");
    lines[n++] = strdup(buf);
    snprintf(buf, sizeof buf, "command: %s", o->command ? o->command : "?");
    lines[n++] = strdup(buf);
    snprintf(buf, sizeof buf, "database: %s", o->db ? o->db : "?");
    lines[n++] = strdup(buf);
    if (R->n && R->st[0]->resamples > 0)
        snprintf(buf, sizeof buf,
                 "intervals: percentile bootstrap over images, %d resamples, seed %" PRIu64 ", level %.0f %%; "
                 "accuracy: Wilson",
                 R->st[0]->resamples, R->st[0]->seed, 100 * R->st[0]->level);
    else
        snprintf(buf, sizeof buf, "intervals: no bootstrap");
    lines[n++] = strdup(buf);
    for (int i = 0; i < R->n; i++) {
        const rs_run_info *r = &R->info[i];
        /* a model or a view list met before is named by that run: thirty runs stay a page */
        int same_model = -1, same_views = -1;
        for (int j = i - 1; j >= 0; j--) {
            if (!strcmp(R->info[j].model_sha256, r->model_sha256) && !strcmp(R->info[j].model_path, r->model_path))
                same_model = j;
            if (same_views_as(&R->info[j], r))
                same_views = j;
        }
        char model[512];
        if (same_model >= 0)
            snprintf(model, sizeof model, "as run %" PRId64, R->info[same_model].id);
        else
            snprintf(model, sizeof model, "sha256 %s", r->model_sha256);
        int len = snprintf(buf, sizeof buf,
                           "run %" PRId64 ": model %s (%s, k=%d); data %s [%d..%d), %d of %d images; "
                           "protocol %s; seed %" PRIu64 "; views:",
                           r->id, r->model_path, model, r->top_k, r->data, r->offset, r->offset + r->count,
                           r->images_done, r->count, r->protocol, r->seed);
        if (same_views >= 0)
            snprintf(buf + len, sizeof buf - (size_t)len, " as run %" PRId64, R->info[same_views].id);
        for (int v = 0; same_views < 0 && v < r->num_views && len < (int)sizeof buf; v++)
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%s %d=%s", v ? ";" : "", v, r->view_specs[v]);
        lines[n++] = strdup(buf);
        snprintf(buf, sizeof buf, "run %" PRId64 " replayed by: %s (routerscope %s)", r->id,
                 r->command && *r->command ? r->command : "?", r->version && *r->version ? r->version : "?");
        lines[n++] = strdup(buf);
    }
    *lines_out = lines;
    *nlines = n;
}

/* Runs and statistics of the options' run ids, and the output folders. */
static int load(rs_report_state *R, rs_error *err)
{
    const rs_report_options *opt = R->opt;
    int rc = 0;
    for (int i = 0; !rc && i < R->n; i++) {
        rc = rs_store_get_run(R->store, opt->runs[i], &R->info[i], err);
        if (!rc && R->info[i].images_done < 1)
            rc = rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 " has no images done", opt->db ? opt->db : "store",
                              opt->runs[i]);
    }
    rs_stats_options so = {.resamples = opt->resamples, .seed = RS_STATS_DEFAULT_SEED, .name = opt->db};
    for (int i = 0; !rc && i < R->n; i++)
        rc = rs_stats_compute(R->store, R->info[i].id, &so, &R->st[i], err);
    char sub[4096];
    if (!rc)
        rc = make_dir(opt->out_dir, err);
    snprintf(sub, sizeof sub, "%s/tables", opt->out_dir);
    if (!rc)
        rc = make_dir(sub, err);
    snprintf(sub, sizeof sub, "%s/figures", opt->out_dir);
    if (!rc)
        rc = make_dir(sub, err);
    return rc;
}

/* Appends ITEM to the comma-separated list BUF unless it is there already. */
static void add_once(char *buf, size_t size, const char *item)
{
    size_t n = strlen(item), len = strlen(buf);
    for (const char *p = strstr(buf, item); p; p = strstr(p + 1, item))
        if ((p == buf || p[-1] == ' ') && (p[n] == ',' || p[n] == 0))
            return;
    snprintf(buf + len, size - len, "%s%s", len ? ", " : "", item);
}

/* The title names the models and the protocols, so a reader knows at once what is compared. */
static void title(rs_report_state *R)
{
    char models[1024] = "", protocols[128] = "", stem[256], text[1400];
    for (int i = 0; i < R->n; i++) {
        rs_run_model_stem(&R->info[i], stem, sizeof stem);
        add_once(models, sizeof models, stem);
        add_once(protocols, sizeof protocols, R->info[i].protocol);
    }
    if (R->answer) {  /* groups: the question the answer table answers */
        rs_report_groups_title(R);
        return;
    }
    if (R->n == 1)
        snprintf(text, sizeof text, "Routing consistency of %s (k=%d), %s protocol, run %" PRId64, models,
                 R->info[0].top_k, protocols, R->info[0].id);
    else
        snprintf(text, sizeof text, "Routing consistency of %s; %s protocol%s", models, protocols,
                 strchr(protocols, ',') ? "s" : "");
    rs_doc_add(&R->d, RS_DOC_H1, text, NULL);
}

/* Baselines (stats/baselines.h); runs not comparable with theirs are flagged in the document. */
static void baselines(rs_report_state *R)
{
    for (int i = 0; i < R->n; i++) {
        int b = rs_baseline_of(R->info, i);
        R->baseline[i] = b;
        if (b >= 0 && !rs_baseline_comparable(&R->info[b], &R->info[i], R->flag[i], sizeof R->flag[i])) {
            char line[512];
            snprintf(line, sizeof line,
                     "Flag: run %" PRId64 " is not comparable with run %" PRId64
                     ": %s. They are reported side by side; paired differences are left out.",
                     R->info[i].id, R->info[b].id, R->flag[i]);
            rs_doc_add(&R->d, RS_DOC_PARA, line, NULL);
        }
    }
}

static int write_documents(const rs_doc *d, const char *dir, rs_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/report.md", dir);
    int rc = rs_doc_write_md(d, path, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/index.html", dir);
        rc = rs_doc_write_html(d, path, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/report.pdf", dir);
        rc = rs_doc_write_pdf(d, path, err);
    }
    return rc;
}

static void state_free(rs_report_state *R)
{
    rs_report_groups_free(R);
    rs_doc_free(&R->d);
    for (int i = 0; i < R->n; i++) {
        if (R->st)
            rs_stats_free(R->st[i]);
        if (R->info)
            rs_run_info_clear(&R->info[i]);
    }
    free(R->st);
    free(R->info);
    free(R->flag);
    free(R->baseline);
}

int rs_report_write(rs_store *store, const rs_report_options *opt, rs_error *err)
{
    if (!opt || !opt->out_dir || !*opt->out_dir || opt->num_runs < 1 || opt->images < 0)
        return rs_error_set(err, RS_EINVAL, "report: bad options");
    rs_report_state R = {.store = store, .opt = opt, .n = opt->num_runs};
    R.info = calloc((size_t)R.n, sizeof *R.info);
    R.st = calloc((size_t)R.n, sizeof *R.st);
    R.flag = calloc((size_t)R.n, sizeof *R.flag);  /* owned here, freed at the end */
    R.baseline = calloc((size_t)R.n, sizeof *R.baseline);
    R.d.err = err;
    R.d.dir = opt->out_dir;
    int rc = !R.info || !R.st || !R.flag || !R.baseline ? rs_error_set(err, RS_ENOMEM, "out of memory") : 0;
    if (!rc)
        rc = load(&R, err);
    char **prov = NULL;
    int nprov = 0;
    if (!rc) {
        provenance(&R, &prov, &nprov);
        if (!prov)
            rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    if (!rc) {
        R.d.notes = (const char *const *)prov;
        R.d.nnotes = nprov;
        rs_report_groups_compute(&R);
        title(&R);
        for (int i = 0; i < R.n; i++) { /* an unfinished run is said on the first page (store.h) */
            char note[160] = "Note: ";
            if (rs_run_unfinished(&R.info[i], note + 6, sizeof note - 6))
                rs_doc_add(&R.d, RS_DOC_PARA, note, NULL);
        }
        baselines(&R);
        if (R.n == 1)
            rs_report_single(&R);
        else
            rs_report_comparison(&R);
        rs_report_attack(&R);
        rs_report_route(&R);
        rs_report_dissect(&R);   /* groups with forced views: router vs experts over seeds */
        rs_report_explorer(&R);  /* index.html's explorer of the example images */
        /* what made the report, for whoever checks it; a reader starts with the answer */
        rs_doc_add(&R.d, RS_DOC_H2, "Appendix: provenance", NULL);
        rs_doc_add_list(&R.d, prov, nprov);
        rc = R.d.rc;
    }
    if (!rc)
        rc = write_documents(&R.d, opt->out_dir, err);
    for (int i = 0; i < nprov; i++)
        free(prov[i]);
    free(prov);
    state_free(&R);
    return rc;
}
