/* routerscope compare — two runs' routing consistency side by side, with paired intervals. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "stats.h"
#include "table.h"

static const char usage_text[] =
    "usage: routerscope compare --db FILE RUN_A RUN_B [--db-b FILE_B] [--force]\n"
    "                           [--format md|csv|tex|json] [--resamples N] [--seed S]\n"
    "\n"
    "Compare the routing consistency of run RUN_A with run RUN_B (of FILE_B when given),\n"
    "per MoE layer and over all layers: each run's rate, the difference B - A and its 95 %\n"
    "interval from a paired bootstrap over images (the primary comparison), and McNemar's\n"
    "test on Top-1 over the shared matched patch pairs (it treats patches as independent,\n"
    "so its p-value is optimistic). The runs must cover the same images with the same\n"
    "protocol, view specs and seed.\n"
    "\n"
    "  --db-b FILE_B    RUN_B lives in FILE_B\n"
    "  --force          compare even when the runs' data, protocol, views or seed differ\n"
    "  --format F       md (default), csv, tex or json\n"
    "  --resamples N    bootstrap resamples (default 1000; 0: no intervals)\n"
    "  --seed S         bootstrap seed (default 20240607)\n";

static const char *const mcnemar_note =
    "McNemar treats matched patches as independent; patches of one image are correlated, so its "
    "p-value is optimistic. The paired bootstrap over images is the primary comparison.";

static void set_rate(rs_table *t, int r, int c, const rs_stats_rate *x, int64_t n)
{
    if (x->valid)
        rs_table_set_rate(t, r, c, x->value, x->boot_valid, x->boot_lo, x->boot_hi, true, x->wilson_lo,
                          x->wilson_hi, n);
}

static rs_table *diff_table(const rs_run_info *ia, const rs_stats_comparison *cmp, const char *run)
{
    static const char *const metric_keys[RS_STATS_NUM_RATES] = {"top1", "top2", "top2_unordered",
                                                                 "top2_overlap"};
    const char *keys[] = {"view", "layer", "metric", "a", "b", "diff"};
    const char *heads[] = {"View", "Layer", "Metric", "Run A", "Run B", "B \u2212 A"};
    rs_table *t = rs_table_create("Routing consistency, B vs A (%, 95 % bootstrap intervals; B \u2212 A in "
                                  "points, paired bootstrap over images)",
                                  run, 6, keys, heads);
    if (!t)
        return NULL;
    const rs_stats *a = cmp->a, *b = cmp->b;
    int ns = rs_cli_agreement_slot_count(cmp->views);
    for (int l = 0; l <= cmp->layers; l++) {
        for (int i = 0; i < ns; i++) {
            int v = rs_cli_agreement_slot(cmp->views, i), cell = rs_stats_cell(a, v, l);
            char view[64], layer[64], lh[64];
            rs_cli_agreement_label(ia, v, view, sizeof view);
            rs_cli_layer_label(ia, l, layer, sizeof layer, false);
            rs_cli_layer_label(ia, l, lh, sizeof lh, true);
            for (int k = 0; k < RS_STATS_NUM_RATES; k++) {
                int r = rs_table_add_row(t, view, layer, metric_keys[k]);
                rs_table_set_text(t, r, 0, view);
                rs_table_set_text(t, r, 1, lh);
                rs_table_set_text(t, r, 2, rs_cli_rate_headers[k]);
                set_rate(t, r, 3, &a->agree[cell].rate[k], a->agree[cell].n.pairs);
                set_rate(t, r, 4, &b->agree[cell].rate[k], b->agree[cell].n.pairs);
                const rs_stats_diff *d = &cmp->diff[(size_t)cell * RS_STATS_NUM_RATES + k];
                if (d->valid)
                    rs_table_set_diff(t, r, 5, d->value, d->boot_valid, d->boot_lo, d->boot_hi);
            }
        }
    }
    return t;
}

static rs_table *mcnemar_table(const rs_run_info *ia, const rs_stats_comparison *cmp, const char *run)
{
    const char *keys[] = {"view", "layer", "shared_pairs", "a_only", "b_only", "chi2", "p"};
    const char *heads[] = {"View", "Layer", "Shared pairs", "A agrees, B not", "B agrees, A not", "McNemar \u03c7\u00b2",
                           "p"};
    rs_table *t = rs_table_create("McNemar's test on Top-1 (patches treated as independent)", run, 7, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, mcnemar_note);
    int ns = rs_cli_agreement_slot_count(cmp->views);
    for (int l = 0; l <= cmp->layers; l++) {
        for (int i = 0; i < ns; i++) {
            int v = rs_cli_agreement_slot(cmp->views, i);
            const rs_stats_mcnemar *m = &cmp->mcnemar[rs_stats_cell(cmp->a, v, l)];
            char view[64], layer[64], lh[64];
            rs_cli_agreement_label(ia, v, view, sizeof view);
            rs_cli_layer_label(ia, l, layer, sizeof layer, false);
            rs_cli_layer_label(ia, l, lh, sizeof lh, true);
            int r = rs_table_add_row(t, view, layer, "mcnemar_top1");
            rs_table_set_text(t, r, 0, view);
            rs_table_set_text(t, r, 1, lh);
            rs_table_set_count(t, r, 2, m->pairs);
            rs_table_set_count(t, r, 3, m->b);
            rs_table_set_count(t, r, 4, m->c);
            if (m->valid) {
                rs_table_set_number(t, r, 5, m->chi2, 3, m->pairs);
                rs_table_set_number(t, r, 6, m->p, -1, m->pairs);
            }
        }
    }
    return t;
}

/* RUN_A / RUN_B: positive run ids. */
static bool parse_run(const char *what, const char *text, int *out)
{
    return rs_cli_parse_int("compare", what, text, 1, 2147483647, out);
}

int cmd_compare(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"db-b", required_argument, NULL, 'B'},
                                         {"force", no_argument, NULL, 'F'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"resamples", required_argument, NULL, 'n'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db = NULL, *db_b = NULL;
    bool force = false;
    int resamples = RS_STATS_DEFAULT_RESAMPLES, seed = -1, run_a, run_b;
    rs_table_format format = RS_TABLE_MD;
    int c;
    while ((c = rs_cli_next_option("compare", argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case 'D': db = optarg; break;
        case 'B': db_b = optarg; break;
        case 'F': force = true; break;
        case 'f':
            if (rs_table_parse_format(optarg, &format))
                return rs_cli_usage_error("compare", "--format wants md, csv, tex or json, got '%s'", optarg);
            break;
        case 'n':
            if (!rs_cli_parse_int("compare", "--resamples", optarg, 0, 1000000, &resamples))
                return RS_EXIT_USAGE;
            break;
        case 's':
            if (!rs_cli_parse_int("compare", "--seed", optarg, 0, 2147483647, &seed))
                return RS_EXIT_USAGE;
            break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
    }
    if (!db || !*db)
        return rs_cli_usage_error("compare", "--db is required");
    if (db_b && !*db_b)
        return rs_cli_usage_error("compare", "--db-b wants a file");
    if (argc - optind != 2)
        return rs_cli_usage_error("compare", "wants two run ids, RUN_A and RUN_B");
    if (!parse_run("RUN_A", argv[optind], &run_a) || !parse_run("RUN_B", argv[optind + 1], &run_b))
        return RS_EXIT_USAGE;

    rs_error err;
    rs_store *sa = NULL, *sb = NULL;
    rs_run_info ia = {0}, ib = {0};
    rs_stats_comparison *cmp = NULL;
    rs_table *tables[2] = {0};
    int status = RS_EXIT_OK;
    if (rs_store_open(db, true, &sa, &err) || (db_b && rs_store_open(db_b, true, &sb, &err))) {
        status = rs_cli_fail(&err);
        goto done;
    }
    rs_store *store_b = sb ? sb : sa;
    rs_stats_options opt = {
        .resamples = resamples ? resamples : -1,
        .seed = seed >= 0 ? (uint64_t)seed : RS_STATS_DEFAULT_SEED,
        .force = force,
        .name = db,
        .name_b = db_b,
    };
    if (rs_store_get_run(sa, run_a, &ia, &err) || rs_store_get_run(store_b, run_b, &ib, &err) ||
        rs_stats_compare(sa, run_a, store_b, run_b, &opt, &cmp, &err)) {
        status = rs_cli_fail(&err);
        goto done;
    }
    char run_name[48], note_a[512], note_b[512], line[400];
    snprintf(run_name, sizeof run_name, "%d vs %d", run_a, run_b);
    rs_cli_run_note(&ia, line, sizeof line);
    snprintf(note_a, sizeof note_a, "A: %s%s%s", line, db_b ? " in " : "", db_b ? db : "");
    rs_cli_run_note(&ib, line, sizeof line);
    snprintf(note_b, sizeof note_b, "B: %s%s%s", line, db_b ? " in " : "", db_b ? db_b : "");
    char forced[320] = "";
    if (cmp->forced)
        snprintf(forced, sizeof forced, "--force: the runs are not comparable (%s)", cmp->mismatch);
    const char *notes[] = {note_a, note_b, forced};
    tables[0] = diff_table(&ia, cmp, run_name);
    tables[1] = mcnemar_table(&ia, cmp, run_name);
    if (!tables[0] || !tables[1]) {
        rs_error_set(&err, RS_ENOMEM, "out of memory");
        status = rs_cli_fail(&err);
    } else if (rs_table_write(stdout, tables, 2, notes, cmp->forced ? 3 : 2, format, &err)) {
        status = rs_cli_fail(&err);
    }
done:
    rs_table_free(tables[0]);
    rs_table_free(tables[1]);
    rs_stats_comparison_free(cmp);
    rs_run_info_clear(&ia);
    rs_run_info_clear(&ib);
    rs_store_close(sb);
    rs_store_close(sa);
    return status;
}
