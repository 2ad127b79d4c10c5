/* routerscope report — one run's report, or the comparison report of several runs, as
 * HTML, Markdown and PDF with tables and figures (reports/report.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "outdir.h"
#include "report.h"
#include "version.h"

static const char usage_text[] =
    "usage: routerscope report --db FILE --runs A[,B,...] --out DIR [--images N] [--resamples N]\n"
    "                         [--detail]\n"
    "\n"
    "Write the report of run A (or the comparison report of runs A, B, ...) of FILE into DIR:\n"
    "index.html (opens from disk), report.md, report.pdf, tables/*.csv and *.tex, figures/*.png.\n"
    "One run: routing consistency (Top-1, Top-2, Top-2 order-agnostic with 95 % intervals),\n"
    "accuracy, router figures, the severity sweep of a noise run, load, transitions, grids.\n"
    "Several runs: a summary, the headline table (PRC Table 2 form), paired differences,\n"
    "accuracy (Table 1 form), the severity sweep of the noise runs, router figures, examples\n"
    "(grids of the same images per run, per-patch heatmaps) and the images whose Top-1\n"
    "agreement differs most; --detail adds each run's own tables and figures. Runs that are\n"
    "not comparable are flagged. Every output records its provenance; the same input gives\n"
    "the same bytes.\n"
    "\n"
    "  --runs A,B,...   run ids (see 'routerscope runs')\n"
    "  --out DIR        output folder, replaced as a whole when the report is complete; an\n"
    "                   existing DIR must be empty or an earlier report (it holds the file\n"
    "                   " RS_OUTDIR_MARKER ")\n"
    "  --images N       expert-selection grids of N example images (default 2; 0: none): the\n"
    "                   first on which every pair run matched at least half of its patches\n"
    "  --detail         several runs: add each run's own tables, load and transition figures\n"
    "  --resamples N    bootstrap resamples (default 1000; 0: no intervals)\n";

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"runs", required_argument, NULL, 'R'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"images", required_argument, NULL, 'i'},
                                         {"resamples", required_argument, NULL, 'n'},
                                         {"detail", no_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db = NULL, *out = NULL, *runs_text = NULL;
    int images = RS_REPORT_DEFAULT_IMAGES, resamples = RS_STATS_DEFAULT_RESAMPLES, c;
    bool detail = false;
    while ((c = rs_cli_next_option("report", argc, argv, ":h", opts)) != -1) {
        switch (c) {
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
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
    }
    if (!db || !*db)
        return rs_cli_usage_error("report", "--db is required");
    if (!runs_text)
        return rs_cli_usage_error("report", "--runs is required");
    if (!out || !*out)
        return rs_cli_usage_error("report", "--out DIR is required");
    if (optind != argc)
        return rs_cli_usage_error("report", "unexpected argument '%s'", argv[optind]);
    int64_t *ids = NULL;
    int nids = 0;
    if (!rs_cli_parse_runs(runs_text, &ids, &nids))
        return rs_cli_usage_error("report", "--runs wants run ids separated by commas, got '%s'", runs_text);

    rs_error err = {0};
    rs_store *store = NULL;
    rs_outdir dir;
    char *cmdline = rs_cli_command_line(argc, argv);
    int status = RS_EXIT_OK;
    if (!cmdline) {
        rs_error_set(&err, RS_ENOMEM, "out of memory");
        status = rs_cli_fail(&err);
    } else if (rs_store_open(db, true, &store, &err)) {
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
    return status;
}
