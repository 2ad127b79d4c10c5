/* routerscope export --db FILE --run ID [--format csv|jsonl] [--probs] [-o OUT] — a run's
 * routing as one row per token and rank (or expert), for sqlite3, pandas or R. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "store/export.h"
#include "store/run.h"
#include "store/store.h"

static const char usage_text[] =
    "usage: routerscope export --db FILE --run ID [--format csv|jsonl] [--probs] [-o OUT]\n"
    "\n"
    "Write run ID's routing as plain rows, streamed (memory stays small whatever the run):\n"
    "one row per image, view, MoE layer, token and rank with the expert and its gate, the\n"
    "image's label and the view's prediction. Columns and the format version: docs/export.md.\n"
    "\n"
    "options:\n"
    "  --db FILE          the routing store (read only)\n"
    "  --run ID           the run to export (see 'routerscope runs --db FILE'); also last, or\n"
    "                     MODEL/PROTOCOL: the last finished run of that checkpoint and protocol\n"
    "  --format F         csv (default, with a header row) or jsonl (one JSON object a line)\n"
    "  --probs            one row per token and expert with the router's probability instead\n"
    "                     (a run replayed with --record topk has none: refused, exit 1)\n"
    "  -o, --output OUT   write to OUT instead of stdout\n";

/* Opens DB, finds the run RUN_TEXT names, writes it to OUT_PATH (stdout when NULL). */
static int export_to(const char *db, const char *run_text, const rs_export_options *opt, const char *out_path)
{
    rs_store *store;
    rs_error err;
    if (rs_store_open(db, true, &store, &err))
        return rs_cli_fail(&err);
    rs_run_info info = {0};
    int64_t run = 0;
    if (rs_run_select(store, db, run_text, &run, &err) || rs_run_load(store, db, run, &info, &err)) {
        rs_store_close(store);
        return rs_cli_fail(&err);
    }
    char note[128];
    if (rs_run_unfinished(&info, note, sizeof note))
        fprintf(stderr, "routerscope export: note: %s: the rows cover the %d images it holds\n", note,
                info.images_done);
    rs_run_info_clear(&info);
    FILE *out = out_path ? fopen(out_path, "w") : stdout;
    if (!out) {
        rs_error_set(&err, RS_EIO, "%s: cannot write", out_path);
        rs_store_close(store);
        return rs_cli_fail(&err);
    }
    int rc = rs_export_run(store, run, opt, out, NULL, &err);
    if (out_path && fclose(out) && !rc)
        rc = rs_error_set(&err, RS_EIO, "%s: write failed", out_path);
    rs_store_close(store);
    return rc ? rs_cli_fail(&err) : RS_EXIT_OK;
}

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"run", required_argument, NULL, 'r'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"probs", no_argument, NULL, 'p'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db = NULL, *out_path = NULL, *run = NULL;
    int c;
    rs_export_options opt = {.format = RS_EXPORT_CSV};
    while ((c = rs_cli_next_option("export", argc, argv, ":o:h", opts)) != -1) {
        switch (c) {
        case 'D': db = optarg; break;
        case 'r':
            if (!rs_cli_check_run("export", "--run", run = optarg))
                return RS_EXIT_USAGE;
            break;
        case 'f':
            if (!strcmp(optarg, "csv"))
                opt.format = RS_EXPORT_CSV;
            else if (!strcmp(optarg, "jsonl"))
                opt.format = RS_EXPORT_JSONL;
            else
                return rs_cli_usage_error("export", "--format wants csv or jsonl, got '%s'", optarg);
            break;
        case 'p': opt.probs = true; break;
        case 'o': out_path = optarg; break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
    }
    if (!db)
        return rs_cli_usage_error("export", "--db is required");
    if (!run)
        return rs_cli_usage_error("export", "--run is required");
    if (optind != argc)
        return rs_cli_usage_error("export", "unexpected argument '%s'", argv[optind]);
    opt.store_name = db;
    opt.out_name = out_path ? out_path : "stdout";
    return export_to(db, run, &opt, out_path);
}
