/* routerscope compare — two runs' routing consistency side by side, with paired intervals. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "stats/corrupt_stats.h"
#include "tables/corrupt_tables.h"
#include "tables/compare_tables.h"
#include "tables/dispatch_tables.h"
#include "stats/dissect.h"
#include "stats/groups.h"
#include "stats/interference.h"
#include "tables/dissect_tables.h"
#include "tables/groups_tables.h"
#include "store/run.h"
#include "stats/stats.h"
#include "tables/stats_tables.h"
#include "tables/table.h"

static const char usage_text[] =
    "usage: routerscope compare --db FILE RUN_A RUN_B [--db-b FILE_B] [--interference] [--force]\n"
    "                           [--format md|csv|tex|json] [--resamples N] [--seed S]\n"
    "       routerscope compare --db FILE --group NAME=ID,ID,... --group NAME2=ID,ID,... [...]\n"
    "\n"
    "Compare the routing consistency of run RUN_A with run RUN_B (of FILE_B when given),\n"
    "per MoE layer and over all layers: each run's rate, the difference B - A and its 95 %\n"
    "interval from a paired bootstrap over images (the primary comparison), and McNemar's\n"
    "test on Top-1 over the shared matched patch pairs (it treats patches as independent,\n"
    "so its p-value is optimistic). The runs must cover the same images with the same\n"
    "protocol, view specs and seed.\n"
    "\n"
    "With --interference: batch interference between two runs of the same job with dispatch\n"
    "that differ only in --group-seed (docs/dispatch.md): each view of each image in B against\n"
    "the same view in A, every token against itself: the router's Top-1, Top-2 and top-k\n"
    "set, the kept set and routing_changes, per view and MoE layer, and the share of\n"
    "predictions that stay the same, with 95 % bootstrap intervals over images.\n"
    "\n"
    "With --group: groups of runs, one run per training seed, seeds paired by position\n"
    "(docs/groups.md). Every headline figure (Top-1, Top-2, Top-2 order-agnostic, the\n"
    "accuracy of view 0 and of the other views) as the mean over seeds with its\n"
    "between-seed spread; every group against the first as\n"
    "the mean of the per-seed paired differences with a t interval over seeds (n - 1 df),\n"
    "and per seed the paired bootstrap over images. When the runs force perturbed views to\n"
    "the clean routing (base:view=P+route:from=0), also the dissection (docs/dissection.md):\n"
    "per group and perturbation, accuracy, Top-1 agreement with the clean view and the\n"
    "router- and expert-attributable shares of the flipped predictions, over seeds.\n"
    "and per seed the paired bootstrap over images. Groups of corruptions runs add each\n"
    "family's and the overall mean (ImageNet-C's) per group, and each group against the first\n"
    "per family with the relative form (docs/corruptions.md).\n"
    "\n"
    "  RUN_A, RUN_B     run ids (see 'routerscope runs'), last, or MODEL/PROTOCOL: the last\n"
    "                   finished run of the checkpoint with that file stem and protocol\n"
    "  --group NAME=IDS a group of run ids of FILE (at least two groups, equal sizes)\n"
    "  --db-b FILE_B    RUN_B lives in FILE_B\n"
    "  --interference   batch interference of RUN_B against RUN_A (see above)\n"
    "  --force          compare even when the runs' data, protocol, views or seed differ\n"
    "                   (with --interference: anything but the group seed)\n"
    "  --format F       md (default), csv, tex or json\n"
    "  --resamples N    bootstrap resamples (default 1000; 0: no intervals)\n"
    "  --seed S         bootstrap seed (default 20240607)\n";

/* What the options ask for. */
typedef struct compare_args {
    const char *db, *db_b;  /* RUN_B lives in DB_B when given */
    bool force, interference;
    int resamples;
    uint64_t seed;
    rs_table_format format;
    const char *run_a_text, *run_b_text;  /* as given: an id, last or MODEL/PROTOCOL */
    int64_t run_a, run_b;                 /* their ids, once the stores are open */
    rs_cli_groups groups;
} compare_args;

/* Parses ARGV into A; returns -1 to go on, else the exit status (help, usage error). */
static int parse(int argc, char **argv, compare_args *a)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"db-b", required_argument, NULL, 'B'},
                                         {"force", no_argument, NULL, 'F'},
                                         {"interference", no_argument, NULL, 'I'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"resamples", required_argument, NULL, 'n'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"group", required_argument, NULL, 'G'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    *a = (compare_args){.resamples = RS_STATS_DEFAULT_RESAMPLES, .seed = RS_STATS_DEFAULT_SEED,
                        .format = RS_TABLE_MD};
    int c;
    while ((c = rs_cli_next_option("compare", argc, argv, ":h", opts)) != -1) {
        bool ok = true;
        switch (c) {
        case 'D': a->db = optarg; break;
        case 'B': a->db_b = optarg; break;
        case 'F': a->force = true; break;
        case 'I': a->interference = true; break;
        case 'f':
            if (rs_table_parse_format(optarg, &a->format))
                return rs_cli_usage_error("compare", "--format wants md, csv, tex or json, got '%s'", optarg);
            break;
        case 'n': ok = rs_cli_parse_int("compare", "--resamples", optarg, 0, 1000000, &a->resamples); break;
        case 's': ok = rs_cli_parse_u64("compare", "--seed", optarg, &a->seed); break;
        case 'G': ok = rs_cli_add_group("compare", optarg, &a->groups); break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
        if (!ok)
            return RS_EXIT_USAGE;
    }
    if (!a->db || !*a->db)
        return rs_cli_usage_error("compare", "--db is required");
    if (a->db_b && !*a->db_b)
        return rs_cli_usage_error("compare", "--db-b wants a file");
    if (a->groups.n) {
        if (a->interference)
            return rs_cli_usage_error("compare", "--interference compares two runs, RUN_A and RUN_B (no --group)");
        if (a->db_b)
            return rs_cli_usage_error("compare", "--group takes the runs of one --db (no --db-b)");
        if (argc != optind)
            return rs_cli_usage_error("compare", "--group replaces RUN_A RUN_B, got '%s'", argv[optind]);
        return rs_cli_groups_check("compare", &a->groups, 2) ? -1 : RS_EXIT_USAGE;
    }
    if (argc - optind != 2)
        return rs_cli_usage_error("compare", "wants two run ids, RUN_A and RUN_B");
    a->run_a_text = argv[optind], a->run_b_text = argv[optind + 1];
    if (!rs_cli_check_run("compare", "RUN_A", a->run_a_text) || !rs_cli_check_run("compare", "RUN_B", a->run_b_text))
        return RS_EXIT_USAGE;
    return -1;
}

/* Prints the comparison CMP of runs IA and IB as A asks, with a note on each run. */
static int print_tables(const compare_args *a, const rs_run_info *ia, const rs_run_info *ib,
                        const rs_stats_comparison *cmp, rs_error *err)
{
    char run_name[48], note_a[512], note_b[512], line[400];
    snprintf(run_name, sizeof run_name, "%" PRId64 " vs %" PRId64, a->run_a, a->run_b);
    rs_run_note(ia, line, sizeof line);
    snprintf(note_a, sizeof note_a, "A: %s%s%s", line, a->db_b ? " in " : "", a->db_b ? a->db : "");
    rs_run_note(ib, line, sizeof line);
    snprintf(note_b, sizeof note_b, "B: %s%s%s", line, a->db_b ? " in " : "", a->db_b ? a->db_b : "");
    char forced[320] = "";
    if (cmp->forced)
        snprintf(forced, sizeof forced, "--force: the runs are not comparable (%s)", cmp->mismatch);
    const char *notes[] = {note_a, note_b, forced};
    rs_table *tables[2] = {rs_report_compare_table(ia, cmp, run_name), rs_report_mcnemar_table(ia, cmp, run_name)};
    int rc = !tables[0] || !tables[1] ? rs_error_set(err, RS_ENOMEM, "out of memory")
                                      : rs_table_write(stdout, tables, 2, notes, cmp->forced ? 3 : 2, a->format, err);
    rs_table_free(tables[0]);
    rs_table_free(tables[1]);
    return rc;
}

/* Prints batch interference D of run IB against run IA as A asks, with a note on each run
 * and its group composition. */
static int print_interference(const compare_args *a, const rs_run_info *ia, const rs_run_info *ib,
                              const rs_interference *d, rs_error *err)
{
    char run_name[48], line[400], dispatch[160], notes[5][640];
    const rs_run_info *runs[2] = {ia, ib};
    const char *dbs[2] = {a->db, a->db_b};
    snprintf(run_name, sizeof run_name, "%" PRId64 " vs %" PRId64, a->run_a, a->run_b);
    for (int i = 0; i < 2; i++) {
        rs_run_note(runs[i], line, sizeof line);
        dispatch[0] = 0;
        if (runs[i]->capacity_factor > 0)
            rs_report_dispatch_note(runs[i], dispatch, sizeof dispatch);
        snprintf(notes[i], sizeof notes[i], "%s: %s%s%s; %s", i ? "B" : "A", line, a->db_b ? " in " : "",
                 a->db_b ? dbs[i] : "", dispatch[0] ? dispatch : "no capacity (every top-k choice kept)");
    }
    if (d->resamples > 0)
        snprintf(notes[2], sizeof notes[2], "bootstrap over images: %d resamples, seed %" PRIu64 ", level %.0f %%",
                 d->resamples, d->seed, 100 * d->level);
    else
        snprintf(notes[2], sizeof notes[2], "no bootstrap (--resamples 0)");
    snprintf(notes[3], sizeof notes[3], "--force: the runs differ in more than the group seed (%s)", d->mismatch);
    const char *lines[] = {notes[0], notes[1], notes[2], notes[3]};
    rs_table *t[2] = {rs_report_interference_table(ia, d, run_name),
                      rs_report_interference_prediction_table(ia, d, run_name)};
    int rc = !t[0] || !t[1] ? rs_error_set(err, RS_ENOMEM, "out of memory")
                            : rs_table_write(stdout, t, 2, lines, d->forced ? 4 : 3, a->format, err);
    rs_table_free(t[0]);
    rs_table_free(t[1]);
    return rc;
}

/* The corruption figures of G into *CG when its runs are corruptions runs (else NULL). */
static int corrupt_groups(const rs_groups *g, rs_corrupt_groups **cg, rs_error *err)
{
    rs_corrupt_grid grid;
    rs_error why;
    int is = rs_corrupt_grid_of(&g->info[0], &grid, &why);
    rs_corrupt_grid_clear(&grid);
    *cg = NULL;
    return is == 1 ? rs_corrupt_groups_compute(g, cg, err) : 0;
}

/* Prints the group tables of G (runs of STORE), with one note naming each group's runs, and
 * the dissection when the runs force perturbed views to the clean routing, and the corruption
 * figures when they are corruptions runs. */
static int print_groups(const compare_args *a, rs_store *store, const rs_groups *g, rs_error *err)
{
    char notes[RS_GROUPS_MAX + 1][320], label[96];
    const char *lines[RS_GROUPS_MAX + 1];
    for (int gr = 0; gr < g->num_groups; gr++) {
        rs_report_group_label(g, gr, label, sizeof label);
        int len = snprintf(notes[gr], sizeof notes[gr], "group %s, runs", label);
        for (int i = 0; i < g->size[gr] && len < (int)sizeof notes[gr]; i++)
            len += snprintf(notes[gr] + len, sizeof notes[gr] - len, i ? ", %" PRId64 : " %" PRId64,
                            g->info[rs_groups_at(g, gr, i)].id);
        lines[gr] = notes[gr];
    }
    int nn = g->num_groups;
    if (g->forced) {
        snprintf(notes[nn], sizeof notes[nn], "--force: the groups are not comparable (%s)", g->mismatch);
        lines[nn] = notes[nn], nn++;
    }
    /* the family: this protocol's groups against the first, every headline figure */
    rs_answer *ans = NULL;
    int rc = rs_groups_answer(&g, 1, &ans, err);
    if (rc)
        return rc;
    /* runs that force perturbed views to the clean routing: the dissection too (docs/dissection.md) */
    rs_dissect *d = NULL;
    rs_stats_options so = {.name = a->db};
    if (rs_dissect_applies(&g->info[0]) && (rc = rs_dissect_compute(store, g, &so, &d, err))) {
        rs_answer_free(ans);
        return rc;
    }
    rs_table *t[8] = {rs_report_groups_summary_table(g, a->db), rs_report_groups_diff_table(g, ans, 0, a->db),
                      rs_report_groups_seed_table(g, a->db)};
    int nt = 3;
    if (d) {
        t[nt++] = rs_report_dissect_table(d, g, a->db);
        t[nt++] = rs_report_dissect_diff_table(d, g, a->db);
        t[nt++] = rs_report_dissect_seed_table(d, g, a->db);
    }
    rs_corrupt_groups *cg = NULL;
    if ((rc = corrupt_groups(g, &cg, err)) == 0 && cg) {
        t[nt++] = rs_report_corrupt_answer_table(g, cg, a->db);
        t[nt++] = rs_report_corrupt_levels_table(g, cg, a->db);
    }
    for (int i = 0; i < nt && !rc; i++)
        if (!t[i])
            rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    if (!rc)
        rc = rs_table_write(stdout, t, nt, lines, nn, a->format, err);
    for (int i = 0; i < nt; i++)
        rs_table_free(t[i]);
    rs_corrupt_groups_free(cg);
    rs_dissect_free(d);
    rs_answer_free(ans);
    return rc;
}

static int compare_groups(compare_args *a)
{
    rs_error err;
    rs_store *store = NULL;
    rs_groups *g = NULL;
    const char *names[RS_CLI_MAX_GROUPS];
    const int64_t *runs[RS_CLI_MAX_GROUPS];
    for (int i = 0; i < a->groups.n; i++)
        names[i] = a->groups.names[i], runs[i] = a->groups.ids[i];
    rs_stats_options opt = {.resamples = a->resamples ? a->resamples : -1, .seed = a->seed, .force = a->force,
                            .name = a->db};
    int status = RS_EXIT_OK;
    if (rs_store_open(a->db, true, &store, &err) ||
        rs_groups_compute(store, names, runs, a->groups.sizes, a->groups.n, &opt, &g, &err) ||
        print_groups(a, store, g, &err))
        status = rs_cli_fail(&err);
    rs_groups_free(g);
    rs_store_close(store);
    rs_cli_groups_free(&a->groups);
    return status;
}

int cmd_compare(int argc, char **argv)
{
    compare_args a;
    int status = parse(argc, argv, &a);
    if (status >= 0) {
        rs_cli_groups_free(&a.groups);
        return status;
    }
    if (a.groups.n)
        return compare_groups(&a);
    rs_error err;
    rs_store *sa = NULL, *sb = NULL;
    rs_run_info ia = {0}, ib = {0};
    rs_stats_comparison *cmp = NULL;
    rs_interference *interf = NULL;
    status = RS_EXIT_OK;
    if (rs_store_open(a.db, true, &sa, &err) || (a.db_b && rs_store_open(a.db_b, true, &sb, &err))) {
        status = rs_cli_fail(&err);
        goto done;
    }
    rs_store *store_b = sb ? sb : sa;
    rs_stats_options opt = {
        .resamples = a.resamples ? a.resamples : -1,
        .seed = a.seed,
        .force = a.force,
        .name = a.db,
        .name_b = a.db_b,
    };
    const char *name_b = a.db_b ? a.db_b : a.db;
    if (rs_run_select(sa, a.db, a.run_a_text, &a.run_a, &err) ||
        rs_run_select(store_b, name_b, a.run_b_text, &a.run_b, &err) || rs_run_load(sa, a.db, a.run_a, &ia, &err) ||
        rs_run_load(store_b, name_b, a.run_b, &ib, &err))
        status = rs_cli_fail(&err);
    else if (a.interference ? rs_interference_compute(sa, a.run_a, store_b, a.run_b, &opt, &interf, &err) ||
                                  print_interference(&a, &ia, &ib, interf, &err)
                            : rs_stats_compare(sa, a.run_a, store_b, a.run_b, &opt, &cmp, &err) ||
                                  print_tables(&a, &ia, &ib, cmp, &err))
        status = rs_cli_fail(&err);
done:
    rs_interference_free(interf);
    rs_stats_comparison_free(cmp);
    rs_run_info_clear(&ia);
    rs_run_info_clear(&ib);
    rs_store_close(sb);
    rs_store_close(sa);
    return status;
}
