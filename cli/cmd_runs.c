/* routerscope runs --db FILE — the runs a routing store holds. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "store/run.h"

static const char usage_text[] =
    "usage: routerscope runs --db FILE\n"
    "\n"
    "List the replay runs recorded in FILE: id, status, progress, protocol and views,\n"
    "model (checkpoint file name, sha256 prefix, top-k), data and seed (and the dispatch and\n"
    "'record topk' where a run has them). Run ids are what --resume, stats and reports take.\n";

static const char *status_name(rs_run_status s)
{
    switch (s) {
    case RS_RUN_RUNNING: return "running";
    case RS_RUN_DONE: return "done";
    case RS_RUN_FAILED: return "failed";
    case RS_RUN_INTERRUPTED: return "interrupted";
    }
    return "?";
}

int cmd_runs(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db = NULL;
    int c;
    while ((c = rs_cli_next_option("runs", argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case 'D': db = optarg; break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
    }
    if (!db)
        return rs_cli_usage_error("runs", "--db is required");
    if (optind != argc)
        return rs_cli_usage_error("runs", "takes no arguments besides --db");
    rs_store *store;
    rs_error err;
    if (rs_store_open(db, true, &store, &err))
        return rs_cli_fail(&err);
    rs_run_info *runs;
    int n;
    if (rs_store_list_runs(store, &runs, &n, &err)) {
        rs_store_close(store);
        return rs_cli_fail(&err);
    }
    printf("%-4s %-11s %-13s %-8s %-36s %-20s %-22s %s\n", "run", "status", "images", "protocol",
           "model (file, sha256 prefix, k)", "data", "started (UTC)", "views");
    for (int i = 0; i < n; i++) {
        const rs_run_info *r = &runs[i];
        char when[32] = "-", images[32], label[300];
        rs_run_model_k_label(r, label, sizeof label);
        time_t t = (time_t)r->started;
        struct tm tm;
        if (t > 0 && gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        snprintf(images, sizeof images, "%d/%d", r->images_done, r->count);
        printf("%-4" PRId64 " %-11s %-13s %-8s %-36s %-20s %-22s", r->id, status_name(r->status), images,
               r->protocol, label, r->data, when);
        for (int v = 0; v < r->num_views; v++)
            printf("%s%s", v ? " ; " : " ", r->view_specs[v]);
        printf("  (seed %" PRIu64, r->seed);
        if (r->capacity_factor > 0) /* dispatch settings tell otherwise identical runs apart */
            printf(", capacity factor %g, groups of %d images%s%s%s", r->capacity_factor, r->group_images,
                   r->bpr ? ", BPR" : "", r->bf16_dispatch ? ", bfloat16 dispatch" : "",
                   r->pad_last_group ? ", last group padded" : "");
        if (r->has_group_seed)
            printf(", group seed %" PRIu64, r->group_seed);
        if (r->compute[0]) /* so is the GEMM backend (OpenBLAS float32 is not shown) */
            printf(", gemm %s", r->compute);
        if (r->record == RS_RECORD_TOPK) /* full, the default, goes unsaid as in older stores */
            printf(", record topk");
        printf(")\n");
        if (r->status == RS_RUN_FAILED && r->error)
            printf("     error: %s\n", r->error);
    }
    for (int i = 0; i < n; i++)
        rs_run_info_clear(&runs[i]);
    free(runs);
    rs_store_close(store);
    return RS_EXIT_OK;
}
