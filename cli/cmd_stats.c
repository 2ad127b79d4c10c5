/* routerscope stats — the consistency table of one run and its other routing figures. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tables/attack_tables.h"
#include "cli.h"
#include "tables/dispatch_tables.h"
#include "tables/route_tables.h"
#include "store/run.h"
#include "stats/stats.h"
#include "tables/stats_tables.h"
#include "tables/table.h"

static const char usage_text[] =
    "usage: routerscope stats --db FILE [--run R] [--by layer|view|class|expert]\n"
    "                         [--format md|csv|tex|json] [--resamples N] [--seed S]\n"
    "\n"
    "Routing consistency of run R (default: the last finished run) of FILE. Each view is\n"
    "compared with view 0 over matched patch pairs, per MoE layer and over all of them:\n"
    "Top-1, Top-2, Top-2 (order-agnostic) and Top-2 overlap in percent, with 95 % intervals\n"
    "from a bootstrap over images (json also carries Wilson intervals), matched pairs and\n"
    "unmatched patches; routing_changes (google-research/vmoe's 1 - mean IoU of the kept\n"
    "expert sets, after capacity; routing_changes_router before it, docs/metrics.md). Then\n"
    "accuracy per view, prediction change vs routing\n"
    "change per image, and per layer the PRC score ||S - I||_F, mean JSD and entropy (bits)\n"
    "and the coefficient of variation of expert load (a run replayed with --record topk has\n"
    "no softmax: PRC score, JSD and entropy are left out with a note saying so). A run with a\n"
    "capacity factor adds the choices dropped per view, layer and expert, and agreement on\n"
    "the kept sets next to the router's top-k sets (docs/dispatch.md). A run with forced views\n"
    "(route:from=F) adds, per forced view, the share of the perturbation's prediction changes\n"
    "that the forced routing undoes (routing-attributable, docs/dispatch.md).\n"
    "\n"
    "  --run R          a run id (see 'routerscope runs'), last, or MODEL/PROTOCOL: the last\n"
    "                   finished run of that checkpoint file's stem and protocol (default: last)\n"
    "  --by KEY         layer (default): rows by layer, then view; view: by view, then layer;\n"
    "                   class / expert: agreement over all layers by label / by view 0's\n"
    "                   top-1 expert (no intervals), then the other tables\n"
    "  --format F       md (default, aligned for a terminal), csv (one row per figure),\n"
    "                   tex (booktabs), json (every figure with its intervals)\n"
    "  --resamples N    bootstrap resamples (default 1000; 0: no intervals)\n"
    "  --seed S         bootstrap seed (default 20240607)\n";

/* What the options ask for. */
typedef struct stats_args {
    const char *db;
    const char *run;        /* --run as given (store/run.h's selectors); NULL: the last finished run */
    bool by_class, by_expert, by_view;
    int resamples;
    uint64_t seed;
    rs_table_format format;
} stats_args;

/* Parses ARGV into A; returns -1 to go on, else the exit status (help, usage error). */
static int parse(int argc, char **argv, stats_args *a)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"run", required_argument, NULL, 'r'},
                                         {"by", required_argument, NULL, 'b'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"resamples", required_argument, NULL, 'n'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *by = "layer";
    *a = (stats_args){.resamples = RS_STATS_DEFAULT_RESAMPLES, .seed = RS_STATS_DEFAULT_SEED, .format = RS_TABLE_MD};
    int c;
    while ((c = rs_cli_next_option("stats", argc, argv, ":h", opts)) != -1) {
        bool ok = true;
        switch (c) {
        case 'D': a->db = optarg; break;
        case 'r': ok = rs_cli_check_run("stats", "--run", a->run = optarg); break;
        case 'b': by = optarg; break;
        case 'f':
            if (rs_table_parse_format(optarg, &a->format))
                return rs_cli_usage_error("stats", "--format wants md, csv, tex or json, got '%s'", optarg);
            break;
        case 'n': ok = rs_cli_parse_int("stats", "--resamples", optarg, 0, 1000000, &a->resamples); break;
        case 's': ok = rs_cli_parse_u64("stats", "--seed", optarg, &a->seed); break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
        if (!ok)
            return RS_EXIT_USAGE;
    }
    if (!a->db || !*a->db)
        return rs_cli_usage_error("stats", "--db is required");
    if (optind != argc)
        return rs_cli_usage_error("stats", "unexpected argument '%s'", argv[optind]);
    a->by_class = !strcmp(by, "class"), a->by_expert = !strcmp(by, "expert"), a->by_view = !strcmp(by, "view");
    if (!a->by_class && !a->by_expert && !a->by_view && strcmp(by, "layer"))
        return rs_cli_usage_error("stats", "--by wants layer, view, class or expert, got '%s'", by);
    return -1;
}

/* Prints the tables of run INFO's statistics ST (DS, its dispatch figures, or NULL; RS, its
 * routing interventions) as A asks. */
static int print_tables(const stats_args *a, const rs_run_info *info, const rs_stats *st,
                        const rs_stats_dispatch *ds, const rs_route_stats *rs, rs_error *err)
{
    char run_name[32], note[512], boot[160], dispatch[160] = "";
    snprintf(run_name, sizeof run_name, "%" PRId64, info->id);
    rs_run_note(info, note, sizeof note);
    if (st->resamples > 0)
        snprintf(boot, sizeof boot, "bootstrap over images: %d resamples, seed %" PRIu64 ", level %.0f %%",
                 st->resamples, st->seed, 100 * st->level);
    else
        snprintf(boot, sizeof boot, "no bootstrap (--resamples 0)");
    if (ds)
        rs_report_dispatch_note(info, dispatch, sizeof dispatch);
    const char *notes[] = {note, boot, dispatch};
    rs_table *tables[12] = {0};
    int nt = 0;
    if (a->by_class || a->by_expert)
        tables[nt++] = rs_report_split_table(info, st, run_name, a->by_class);
    tables[nt++] = rs_report_consistency_table(info, st, run_name, a->by_view);
    tables[nt++] = rs_report_routing_changes_table(info, st, run_name);
    tables[nt++] = rs_report_accuracy_table(info, st, run_name);
    tables[nt++] = rs_report_change_table(info, st, run_name);
    tables[nt++] = rs_report_layer_table(info, st, run_name);
    tables[nt++] = rs_report_transition_table(info, st, run_name);
    if (ds) {
        tables[nt++] = rs_report_drop_table(info, ds, run_name);
        tables[nt++] = rs_report_drop_expert_table(info, ds, run_name);
        tables[nt++] = rs_report_kept_agreement_table(info, ds, run_name);
    }
    if (rs->rows > 0)
        tables[nt++] = rs_report_route_table(&rs, &info, 1);
    int rc = 0;
    for (int i = 0; i < nt && !rc; i++)
        if (!tables[i])
            rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    if (!rc)
        rc = rs_table_write(stdout, tables, nt, notes, ds ? 3 : 2, a->format, err);
    for (int i = 0; i < nt; i++)
        rs_table_free(tables[i]);
    return rc;
}

int cmd_stats(int argc, char **argv)
{
    stats_args a;
    int status = parse(argc, argv, &a);
    if (status >= 0)
        return status;
    rs_store *store;
    rs_error err;
    if (rs_store_open(a.db, true, &store, &err))
        return rs_cli_fail(&err);
    rs_run_info info = {0};
    rs_stats *st = NULL;
    rs_stats_dispatch *ds = NULL;
    rs_route_stats *rs = NULL;
    rs_stats_options opt = {.resamples = a.resamples ? a.resamples : -1, .seed = a.seed, .name = a.db};
    status = RS_EXIT_OK;
    int64_t run_id = 0;
    if ((a.run && rs_run_select(store, a.db, a.run, &run_id, &err)) || rs_run_load(store, a.db, run_id, &info, &err) || rs_stats_compute(store, info.id, &opt, &st, &err) ||
        (info.capacity_factor > 0 && rs_stats_dispatch_compute(store, info.id, &opt, &ds, &err)) ||
        rs_route_stats_compute(store, &info, st, &opt, &rs, &err) || print_tables(&a, &info, st, ds, rs, &err))
        status = rs_cli_fail(&err);
    rs_route_stats_free(rs);
    rs_stats_dispatch_free(ds);
    rs_stats_free(st);
    rs_run_info_clear(&info);
    rs_store_close(store);
    return status;
}
