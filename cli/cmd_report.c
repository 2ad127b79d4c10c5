/* routerscope report — one run's report, or the comparison report of several runs, as
 * HTML, Markdown and PDF with tables and figures (reports/report.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "doc/outdir.h"
#include "report.h"
#include "store/run.h"
#include "version.h"

static const char usage_text[] =
    "usage: routerscope report --db FILE --runs A[,B,...] --out DIR [--images N] [--resamples N]\n"
    "                         [--detail]\n"
    "       routerscope report --db FILE --group NAME=ID,... [--group NAME2=ID,...] --out DIR [...]\n"
    "\n"
    "Write the report of run A (or the comparison report of runs A, B, ...) of FILE into DIR:\n"
    "index.html (opens from disk), report.md, report.pdf, tables/*.csv and *.tex, figures/*.png.\n"
    "Every report starts with its answer. One run: its headline figures, then routing\n"
    "consistency (Top-1, Top-2, Top-2 order-agnostic with 95 % intervals), accuracy, router\n"
    "figures, the severity sweep of a noise run, load, transitions, grids. Several runs: each\n"
    "run against its baseline (or, with none, each run's own figures; with groups, each\n"
    "method over seeds), the headline table (PRC Table 2 form), paired differences,\n"
    "accuracy (Table 1 form), the severity sweep of the noise runs, router figures, examples\n"
    "(grids of the same images per run, per-patch heatmaps) and the images whose Top-1\n"
    "agreement differs most; --detail adds each run's own tables and figures. Runs that are\n"
    "not comparable are flagged. Every output records its provenance; the same input gives\n"
    "the same bytes.\n"
    "\n"
    "  --runs A,B,...   run ids (see 'routerscope runs'), or last, or MODEL/PROTOCOL: the last\n"
    "                   finished run of the checkpoint with that file stem and protocol\n"
    "                   (mine/pair,mine/noise)\n"
    "  --group NAME=IDS instead of --runs: groups of runs, one per training seed, seeds paired\n"
    "                   by position (docs/groups.md); the report holds all their runs and,\n"
    "                   per protocol, each figure as the mean over seeds with its spread and\n"
    "                   each group against the first with a t interval over seeds; runs\n"
    "                   with forced views add the dissection (docs/dissection.md)\n"
    "  --force          groups whose runs differ (method, k, images, seed order) go on, flagged\n"
    "  --out DIR        output folder, replaced as a whole when the report is complete; an\n"
    "                   existing DIR must be empty or an earlier report (it holds the file\n"
    "                   " RS_OUTDIR_MARKER ")\n"
    "  --images N       expert-selection grids of N example images (default 2; 0: none): the\n"
    "                   first on which every pair run matched at least half of its patches\n"
    "  --detail         several runs: add each run's own tables, load and transition figures\n"
    "                   (with groups also each layer's headline rows and the attack's runs)\n"
    "  --resamples N    bootstrap resamples (default 1000; 0: no intervals)\n";

/* The options' checks; every group's run ids into *IDS (--runs are found once the store is
 * open). Returns -1 to go on, else the exit status. */
static int check_args(const char *db, const char *out, const char *runs_text, int argc, char **argv,
                      const rs_cli_groups *groups, int64_t **ids, int *nids)
{
    if (!db || !*db)
        return rs_cli_usage_error("report", "--db is required");
    if (!runs_text && !groups->n)
        return rs_cli_usage_error("report", "--runs (or --group) is required");
    if (runs_text && groups->n)
        return rs_cli_usage_error("report", "--group names the runs: give --runs or --group, not both");
    if (!out || !*out)
        return rs_cli_usage_error("report", "--out DIR is required");
    if (optind != argc)
        return rs_cli_usage_error("report", "unexpected argument '%s'", argv[optind]);
    if (runs_text && !rs_cli_check_runs("report", "--runs", runs_text))
        return RS_EXIT_USAGE;
    if (runs_text)
        return -1;
    if (!rs_cli_groups_check("report", groups, 1))
        return RS_EXIT_USAGE;
    if (groups->n * groups->sizes[0] < 2)
        return rs_cli_usage_error("report", "a report of groups wants at least two runs");
    if (!(*ids = malloc(sizeof **ids * (size_t)(groups->n * groups->sizes[0])))) {
        rs_error err;
        rs_error_set(&err, RS_ENOMEM, "out of memory");
        return rs_cli_fail(&err);
    }
    for (int g = 0; g < groups->n; g++)
        for (int i = 0; i < groups->sizes[g]; i++)
            (*ids)[(*nids)++] = groups->ids[g][i];
    return -1;
}

/* Loads each run the way every reader does (rs_run_load: a run that fails the store's check
 * is refused before any output exists) and says on stderr which runs are not finished. */
static int check_runs(rs_store *store, const char *db, const int64_t *ids, int n, rs_error *err)
{
    rs_run_info info = {0};
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char note[128];
        if (!(rc = rs_run_load(store, db, ids[i], &info, err)) && rs_run_unfinished(&info, note, sizeof note))
            fprintf(stderr, "routerscope report: note: %s: the report covers the images done\n", note);
    }
    rs_run_info_clear(&info);
    return rc;
}

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"runs", required_argument, NULL, 'R'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"images", required_argument, NULL, 'i'},
                                         {"resamples", required_argument, NULL, 'n'},
                                         {"detail", no_argument, NULL, 'd'},
                                         {"group", required_argument, NULL, 'G'},
                                         {"force", no_argument, NULL, 'F'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db = NULL, *out = NULL, *runs_text = NULL;
    int images = RS_REPORT_DEFAULT_IMAGES, resamples = RS_STATS_DEFAULT_RESAMPLES, c;
    bool detail = false;
    rs_cli_groups groups = {0};
    bool force = false;
    while ((c = rs_cli_next_option("report", argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case 'F': force = true; break;
        case 'G':
            if (!rs_cli_add_group("report", optarg, &groups))
                return rs_cli_groups_free(&groups), RS_EXIT_USAGE;
            break;
        case 'D': db = optarg; break;
        case 'o': out = optarg; break;
        case 'R': runs_text = optarg; break;
        case 'i':
            if (!rs_cli_parse_int("report", "--images", optarg, 0, 1000, &images))
                return RS_EXIT_USAGE;
            break;
        case 'n':
            if (!rs_cli_parse_int("report", "--resamples", optarg, 0, 1000000, &resamples))
                return RS_EXIT_USAGE;
            break;
        case 'd': detail = true; break;
        case 'h': rs_cli_groups_free(&groups); fputs(usage_text, stdout); return RS_EXIT_OK;
        default: rs_cli_groups_free(&groups); return RS_EXIT_USAGE;
        }
    }
    int64_t *ids = NULL;
    int nids = 0;
    int status = check_args(db, out, runs_text, argc, argv, &groups, &ids, &nids);
    if (status >= 0) {
        rs_cli_groups_free(&groups);
        return status;
    }

    rs_error err = {0};
    rs_store *store = NULL;
    rs_outdir dir;
    char *cmdline = rs_cli_command_line(argc, argv);
    const char *group_names[RS_CLI_MAX_GROUPS];
    const int64_t *group_runs[RS_CLI_MAX_GROUPS];
    for (int g = 0; g < groups.n; g++)
        group_names[g] = groups.names[g], group_runs[g] = groups.ids[g];
    status = RS_EXIT_OK;
    if (!cmdline) {
        rs_error_set(&err, RS_ENOMEM, "out of memory");
        status = rs_cli_fail(&err);
    } else if (rs_store_open(db, true, &store, &err) ||
               (runs_text && rs_cli_select_runs(store, db, runs_text, &ids, &nids, &err)) ||
               check_runs(store, db, ids, nids, &err)) {
        status = rs_cli_fail(&err);
    } else if (rs_outdir_begin(out, &dir, &err)) {
        status = rs_cli_fail(&err);
    } else {
        char version[128];
        snprintf(version, sizeof version, "%s (commit %s)", RS_VERSION, RS_VERSION_COMMIT);
        rs_report_options opt = {
            .db = db,
            .runs = ids,
            .num_runs = nids,
            .out_dir = dir.temp, /* the report's bytes never name their folder */
            .images = images,
            .detail = detail,
            .resamples = resamples ? resamples : -1,
            .command = cmdline,
            .version = version,
            .num_groups = groups.n,
            .group_sizes = groups.sizes,
            .group_names = group_names,
            .group_runs = group_runs,
            .force = force,
        };
        if (rs_report_write(store, &opt, &err) || rs_outdir_commit(&dir, &err)) {
            rs_outdir_abort(&dir);
            status = rs_cli_fail(&err);
        } else
            printf("report written to %s/index.html (also report.md, report.pdf)\n", out);
    }
    rs_store_close(store);
    free(cmdline);
    free(ids);
    rs_cli_groups_free(&groups);
    return status;
}
