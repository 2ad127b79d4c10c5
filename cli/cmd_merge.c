/* routerscope merge — join the shard stores of one replay job into one store. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "store/merge.h"
#include "version.h"

static const char usage_text[] =
    "usage: routerscope merge --db OUT SHARD.db ...\n"
    "\n"
    "Join the stores written by 'routerscope replay ... --shard I/N' (I = 0..N-1, one job)\n"
    "into OUT. The merged run holds exactly the records a single-process replay of the job\n"
    "holds, so stats, compare, render, report and export give the same output. Shards of\n"
    "different jobs, missing or overlapping shards and unfinished shards are refused. A\n"
    "killed merge is continued by running it again; the run is marked done only at the end.\n"
    "\n"
    "  --db OUT         the output store (created when missing; may hold other runs)\n"
    "  --batch N        images per copy transaction (default 256)\n";

int cmd_merge(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    rs_merge_options o = {.batch = 256, .version = RS_VERSION " (commit " RS_VERSION_COMMIT ")"};
    int c;
    while ((c = rs_cli_next_option("merge", argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case 'D': o.db_path = optarg; break;
        case 'b':
            if (!rs_cli_parse_int("merge", "--batch", optarg, 1, 65536, &o.batch))
                return RS_EXIT_USAGE;
            break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
    }
    if (!o.db_path)
        return rs_cli_usage_error("merge", "--db is required");
    if (optind >= argc)
        return rs_cli_usage_error("merge", "wants the shard stores to merge");
    o.num_shards = argc - optind;
    rs_merge_shard *shards = calloc((size_t)o.num_shards, sizeof *shards);
    char *command = rs_cli_command_line(argc, argv);
    if (!shards || !command) {
        free(shards);
        free(command);
        rs_error err = {RS_ENOMEM, "out of memory"};
        return rs_cli_fail(&err);
    }
    for (int i = 0; i < o.num_shards; i++)
        shards[i].path = argv[optind + i];
    o.shards = shards;
    o.command = command;
    rs_merge_summary s;
    rs_error err;
    int rc = rs_merge(&o, &s, &err);
    free(shards);
    free(command);
    if (rc)
        return rs_cli_fail(&err);
    if (s.already_done)
        printf("run %" PRId64 " in %s already holds this job (%d images); nothing to do\n", s.run_id, o.db_path,
               s.images);
    else
        printf("run %" PRId64 ": merged %d shards, %d images (%d copied now) into %s in %.1f s\n", s.run_id,
               s.shards, s.images, s.images_copied, o.db_path, s.seconds);
    return RS_EXIT_OK;
}
