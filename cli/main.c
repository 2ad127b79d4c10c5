/* routerscope — entry point: maps the first argument to a subcommand (git style), and fails
 * any command whose output on stdout could not be written. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>

#include "cli.h"
#include "version.h"

static const rs_command commands[] = {
    {"inspect", cmd_inspect, "show a checkpoint's configuration, parameters and MoE layers"},
    {"eval", cmd_eval, "classify a data set: accuracy and images/s"},
    {"replay", cmd_replay, "record per-patch routing under clean, noisy and augmented views"},
    {"merge", cmd_merge, "join the shard stores of one replay job (replay --shard I/N) into one store"},
    {"runs", cmd_runs, "list the runs in a routing store"},
    {"stats", cmd_stats, "routing consistency of a run: agreement with intervals, JSD, load"},
    {"render", cmd_render, "draw expert grids, heatmaps and plots of a run (PNG, PDF, SVG)"},
    {"compare", cmd_compare, "compare two runs' agreement: paired bootstrap and McNemar"},
    {"report", cmd_report, "write a run's report or the comparison of runs (HTML, Markdown, PDF)"},
    {"export", cmd_export, "write a run's routing as CSV or JSON Lines rows (one per token and rank)"},
    {"convert", cmd_convert, "convert a google-research/vmoe checkpoint to a routerscope .safetensors"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: routerscope COMMAND [ARGS]\n"
            "\n"
            "Measure how robust the routers of V-MoE vision transformers are.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "'routerscope COMMAND --help' describes one command.\n"
            "options: --help, --version\n");
}

/* Runs the command ARGV names; its exit status. */
static int run(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "routerscope: no command given (see 'routerscope --help')\n");
        return RS_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return RS_EXIT_OK;
    }
    if (!strcmp(name, "--version")) {
        printf("routerscope %s (commit %s)\n", RS_VERSION, RS_VERSION_COMMIT);
        return RS_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "routerscope: unknown command '%s' (see 'routerscope --help')\n", name);
    return RS_EXIT_USAGE;
}

/* What a command printed is its output: a write that failed (a full disk, a closed pipe
 * reader) fails the command, whichever command it was. Checked once here, after the
 * command, for every command and --help alike; a command that already failed has said
 * why, so only its status stands. A stdout closed by the caller with nothing written to
 * it is no error (EBADF with nothing pending). */
static int finish_stdout(int status)
{
    bool pending = __fpending(stdout) != 0, failed = ferror(stdout) != 0;
    errno = 0;
    if (fclose(stdout) && (pending || errno != EBADF))
        failed = true;
    if (!failed || status != RS_EXIT_OK)
        return status;
    if (errno)
        fprintf(stderr, "routerscope: stdout: cannot write: %s\n", strerror(errno));
    else
        fprintf(stderr, "routerscope: stdout: cannot write\n");
    return RS_EXIT_FAIL;
}

int main(int argc, char **argv)
{
    return finish_stdout(run(argc, argv));
}
