/* routerscope stats — the consistency table of one run and its other routing figures. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "stats.h"
#include "stats_tables.h"
#include "table.h"

static const char usage_text[] =
    "usage: routerscope stats --db FILE [--run R] [--by layer|view|class|expert]\n"
    "                         [--format md|csv|tex|json] [--resamples N] [--seed S]\n"
    "\n"
    "Routing consistency of run R (default: the last finished run) of FILE. Each view is\n"
    "compared with view 0 over matched patch pairs, per MoE layer and over all of them:\n"
    "Top-1, Top-2, Top-2 (order-agnostic) and Top-2 overlap in percent, with 95 % intervals\n"
    "from a bootstrap over images (json also carries Wilson intervals), matched pairs and\n"
    "unmatched patches. Then accuracy per view, prediction change vs routing change per\n"
    "image, and per layer the PRC score ||S - I||_F, mean JSD and entropy (bits) and the\n"
    "coefficient of variation of expert load.\n"
    "\n"
    "  --run R          run id (see 'routerscope runs')\n"
    "  --by KEY         layer (default): rows by layer, then view; view: by view, then layer;\n"
    "                   class / expert: agreement over all layers by label / by view 0's\n"
    "                   top-1 expert (no intervals), then the other tables\n"
    "  --format F       md (default, aligned for a terminal), csv (one row per figure),\n"
    "                   tex (booktabs), json (every figure with its intervals)\n"
    "  --resamples N    bootstrap resamples (default 1000; 0: no intervals)\n"
    "  --seed S         bootstrap seed (default 20240607)\n";

/* ---- shared with compare ----------------------------------------------------------------- */

int rs_cli_load_run(const char *cmd, rs_store *store, const char *db, int64_t run, rs_run_info *info,
                    rs_error *err)
{
    (void)cmd;
    if (run > 0)
        return rs_store_get_run(store, run, info, err);
    rs_run_info *runs;
    int n;
    int rc = rs_store_list_runs(store, &runs, &n, err);
    if (rc)
        return rc;
    int pick = -1;
    for (int i = 0; i < n; i++) {
        if (runs[i].status == RS_RUN_DONE)
            pick = i;
    }
    int64_t id = pick >= 0 ? runs[pick].id : 0;
    for (int i = 0; i < n; i++)
        rs_run_info_clear(&runs[i]);
    free(runs);
    if (pick < 0)
        return rs_error_set(err, RS_EINVAL, "%s: no finished run (see 'routerscope runs --db %s')", db, db);
    return rs_store_get_run(store, id, info, err);
}

/* The label helpers and tables live in reports/stats_tables.c (shared with `report`). */
void rs_cli_view_label(const rs_run_info *info, int slot, char *buf, size_t size)
{
    rs_report_view_label(info, slot, buf, size);
}

void rs_cli_agreement_label(const rs_run_info *info, int slot, char *buf, size_t size)
{
    rs_report_agreement_label(info, slot, buf, size);
}

void rs_cli_layer_label(const rs_run_info *info, int slot, char *buf, size_t size, bool human)
{
    rs_report_layer_label(info, slot, buf, size, human);
}

int rs_cli_agreement_slot_count(int views)
{
    return rs_report_agreement_slot_count(views);
}

int rs_cli_agreement_slot(int views, int i)
{
    return rs_report_agreement_slot(views, i);
}

const char *const rs_cli_rate_headers[RS_STATS_NUM_RATES] = {"Top-1", "Top-2", "Top-2 (order-agnostic)",
                                                             "Top-2 overlap"};

void rs_cli_run_note(const rs_run_info *info, char *buf, size_t size)
{
    rs_report_run_note(info, buf, size);
}

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"run", required_argument, NULL, 'r'},
                                         {"by", required_argument, NULL, 'b'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"resamples", required_argument, NULL, 'n'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db = NULL, *by = "layer";
    int run = 0, resamples = RS_STATS_DEFAULT_RESAMPLES, seed = -1;
    rs_table_format format = RS_TABLE_MD;
    int c;
    while ((c = rs_cli_next_option("stats", argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case 'D': db = optarg; break;
        case 'r':
            if (!rs_cli_parse_int("stats", "--run", optarg, 1, 2147483647, &run))
                return RS_EXIT_USAGE;
            break;
        case 'b': by = optarg; break;
        case 'f':
            if (rs_table_parse_format(optarg, &format))
                return rs_cli_usage_error("stats", "--format wants md, csv, tex or json, got '%s'", optarg);
            break;
        case 'n':
            if (!rs_cli_parse_int("stats", "--resamples", optarg, 0, 1000000, &resamples))
                return RS_EXIT_USAGE;
            break;
        case 's':
            if (!rs_cli_parse_int("stats", "--seed", optarg, 0, 2147483647, &seed))
                return RS_EXIT_USAGE;
            break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
    }
    if (!db || !*db)
        return rs_cli_usage_error("stats", "--db is required");
    if (optind != argc)
        return rs_cli_usage_error("stats", "unexpected argument '%s'", argv[optind]);
    bool by_class = !strcmp(by, "class"), by_expert = !strcmp(by, "expert"), by_view = !strcmp(by, "view");
    if (!by_class && !by_expert && !by_view && strcmp(by, "layer"))
        return rs_cli_usage_error("stats", "--by wants layer, view, class or expert, got '%s'", by);

    rs_store *store;
    rs_error err;
    if (rs_store_open(db, true, &store, &err))
        return rs_cli_fail(&err);
    rs_run_info info = {0};
    rs_stats *st = NULL;
    rs_stats_options opt = {
        .resamples = resamples ? resamples : -1,
        .seed = seed >= 0 ? (uint64_t)seed : RS_STATS_DEFAULT_SEED,
        .name = db,
    };
    int status = RS_EXIT_OK;
    if (rs_cli_load_run("stats", store, db, run, &info, &err) ||
        rs_stats_compute(store, info.id, &opt, &st, &err)) {
        status = rs_cli_fail(&err);
        goto done;
    }
    char run_name[32], note[512], boot[160];
    snprintf(run_name, sizeof run_name, "%" PRId64, info.id);
    rs_cli_run_note(&info, note, sizeof note);
    if (st->resamples > 0)
        snprintf(boot, sizeof boot, "bootstrap over images: %d resamples, seed %" PRIu64 ", level %.0f %%",
                 st->resamples, st->seed, 100 * st->level);
    else
        snprintf(boot, sizeof boot, "no bootstrap (--resamples 0)");
    const char *notes[] = {note, boot};
    rs_table *tables[6] = {0};
    int nt = 0;
    if (by_class || by_expert)
        tables[nt++] = rs_report_split_table(&info, st, run_name, by_class);
    tables[nt++] = rs_report_consistency_table(&info, st, run_name, by_view);
    tables[nt++] = rs_report_accuracy_table(&info, st, run_name);
    tables[nt++] = rs_report_change_table(&info, st, run_name);
    tables[nt++] = rs_report_layer_table(&info, st, run_name);
    tables[nt++] = rs_report_transition_table(&info, st, run_name);
    for (int i = 0; i < nt; i++) {
        if (!tables[i]) {
            rs_error_set(&err, RS_ENOMEM, "out of memory");
            status = rs_cli_fail(&err);
            break;
        }
    }
    if (status == RS_EXIT_OK && rs_table_write(stdout, tables, nt, notes, 2, format, &err))
        status = rs_cli_fail(&err);
    for (int i = 0; i < nt; i++)
        rs_table_free(tables[i]);
done:
    rs_stats_free(st);
    rs_run_info_clear(&info);
    rs_store_close(store);
    return status;
}
