/* cli.h — what the subcommands share: their signature, option parsing helpers, and the
 * one place that prints errors. Only cli/ prints or chooses exit statuses. */
#ifndef RS_CLI_H
#define RS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemm.h"
#include "rs_error.h"
#include "store/store.h"

/* Exit statuses: 0 success, 1 the work failed (bad file, bad data), 2 bad usage. */
enum { RS_EXIT_OK = 0, RS_EXIT_FAIL = 1, RS_EXIT_USAGE = 2 };

typedef struct rs_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} rs_command;

int cmd_inspect(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_merge(int argc, char **argv);

/* Prints "routerscope: MSG" on stderr and returns RS_EXIT_FAIL. */
int rs_cli_fail(const rs_error *err);
/* Prints "routerscope CMD: FMT..." plus a pointer to --help; returns RS_EXIT_USAGE. */
int rs_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long over ARGV with OPTS (optstring must start with ':'); returns the option
 * character, -1 at the end, or prints the usage error and returns '?' for an unknown
 * option or a missing value. */
int rs_cli_next_option(const char *cmd, int argc, char **argv, const char *optstring,
                       const struct option *opts);

/* Every number an option takes is read by rs_number.h's grammar: decimal, whole, no
 * blanks, signs of '+', hex, inf or nan. */
/* Parses a decimal integer in [lo, hi] given to option NAME; prints and returns false
 * on anything else ("abc", "12x", " 2", out of range). */
bool rs_cli_parse_int(const char *cmd, const char *name, const char *text, int lo, int hi, int *out);
/* Parses an unsigned decimal integer of 64 bits given to option NAME (--seed); prints and
 * returns false on anything else ("-1", "abc", beyond 2^64 - 1). */
bool rs_cli_parse_u64(const char *cmd, const char *name, const char *text, uint64_t *out);

/* Dispatch options of eval and replay (docs/dispatch.md): --capacity-factor F,
 * --group-images N, --group-size S, --bpr, --bf16-dispatch, --pad-last-group, --group-seed N,
 * --dispatch model. Put
 * RS_CLI_DISPATCH_OPTIONS in the option table, pass those option characters to
 * rs_cli_dispatch_option, then call rs_cli_dispatch_check once. Both print a usage error
 * and return false on bad input. */
enum { RS_OPT_CAPACITY = 0x100, RS_OPT_GROUP_IMAGES, RS_OPT_BPR, RS_OPT_DISPATCH, RS_OPT_GROUP_SIZE,
       RS_OPT_GROUP_SEED, RS_OPT_BF16, RS_OPT_PAD_LAST };
#define RS_CLI_DISPATCH_OPTIONS                                                                          \
    {"capacity-factor", required_argument, NULL, RS_OPT_CAPACITY},                                      \
    {"group-images", required_argument, NULL, RS_OPT_GROUP_IMAGES}, {"bpr", no_argument, NULL, RS_OPT_BPR}, \
    {"dispatch", required_argument, NULL, RS_OPT_DISPATCH},                                             \
    {"group-size", required_argument, NULL, RS_OPT_GROUP_SIZE},                                         \
    {"group-seed", required_argument, NULL, RS_OPT_GROUP_SEED},                                         \
    {"bf16-dispatch", no_argument, NULL, RS_OPT_BF16}, {"pad-last-group", no_argument, NULL, RS_OPT_PAD_LAST}
#define RS_CLI_DISPATCH_OPTION_CASES                                                                     \
    case RS_OPT_CAPACITY: case RS_OPT_GROUP_IMAGES: case RS_OPT_BPR: case RS_OPT_DISPATCH:                \
    case RS_OPT_GROUP_SIZE: case RS_OPT_GROUP_SEED: case RS_OPT_BF16: case RS_OPT_PAD_LAST
#define RS_CLI_DISPATCH_USAGE                                                                              \
    "  --capacity-factor F  dispatch with expert capacity as V-MoE does: each expert takes at\n"           \
    "                   most ceil(S*k*F/E), raised to a multiple of 4, of a group's S tokens;\n"         \
    "                   the rest are dropped (default: no capacity, every top-k choice runs)\n"          \
    "  --group-images N images per dispatch group, in data order (default 8, as vmoe)\n"                \
    "  --group-size S   the group in tokens instead: a multiple of the model's tokens per\n"           \
    "                   image (groups are whole images)\n"                                             \
    "  --bpr            Batch Priority Routing: tokens with larger top-1 gates go first\n"              \
    "  --bf16-dispatch  round expert inputs and outputs to bfloat16 as vmoe's configs do\n"         \
    "                   (Bfloat16Dispatcher); the rest stays float32\n"                               \
    "  --pad-last-group pad a short last group with all-zero images that take capacity and\n"      \
    "                   are not recorded (as vmoe pads its last batch)\n"                            \
    "  --group-seed N   draw each group's images from shuffled windows of 8 groups (seed N)\n"        \
    "                   instead of data order: the same images with other batch-mates\n"             \
    "  --dispatch model the dispatch in MODEL's config (a converted checkpoint's published\n"          \
    "                   evaluation settings, bfloat16 dispatch included) with a padded last\n"     \
    "                   group; see docs/dispatch.md\n"
typedef struct rs_cli_dispatch {
    double capacity_factor;     /* 0: none */
    int group_images;           /* 0: not given */
    int group_tokens;           /* --group-size; 0: not given */
    bool bpr, from_model;
    bool bf16, pad_last;        /* --bf16-dispatch, --pad-last-group */
    bool has_group_seed;
    uint64_t group_seed;
} rs_cli_dispatch;
bool rs_cli_dispatch_option(const char *cmd, int c, const char *text, rs_cli_dispatch *d);
/* --group-images, --group-size, --bpr, --bf16-dispatch and --pad-last-group need
 * --capacity-factor, --group-seed needs it or --dispatch model, which takes none of the others; --group-images and --group-size
 * exclude each other. Fills the default group when neither is given. */
bool rs_cli_dispatch_check(const char *cmd, rs_cli_dispatch *d);

/* --gemm and --precision (model/gemm.h), on eval and replay: RS_CLI_COMPUTE_OPTIONS in the
 * option table, those option characters to rs_cli_compute_option (a usage error and false
 * on a bad name). The default is RS_CLI_DEFAULT_GEMM in float32. */
enum { RS_OPT_GEMM = 0x180, RS_OPT_PRECISION };
#define RS_CLI_COMPUTE_OPTIONS                                                                           \
    {"gemm", required_argument, NULL, RS_OPT_GEMM}, {"precision", required_argument, NULL, RS_OPT_PRECISION}
#define RS_CLI_COMPUTE_OPTION_CASES case RS_OPT_GEMM: case RS_OPT_PRECISION
#define RS_CLI_COMPUTE_USAGE                                                                               \
    "  --gemm openblas|onednn  the matrix products' library (default openblas; onednn when\n"            \
    "                   built with libdnnl-dev); part of a replay's identity\n"                            \
    "  --precision f32|bf16  bf16: the large matmuls (attention projections, MLPs, experts)\n"           \
    "                   in bfloat16 with float32 accumulation, the rest float32; needs\n"               \
    "                   --gemm onednn and avx512_bf16 (docs/gemm.md; default f32)\n"
#define RS_CLI_DEFAULT_GEMM RS_GEMM_OPENBLAS
typedef struct rs_cli_compute {
    rs_gemm_backend gemm;
    rs_precision precision;
} rs_cli_compute;
bool rs_cli_compute_option(const char *cmd, int c, const char *text, rs_cli_compute *o);

/* Number of online CPUs, the default for --threads. */
int rs_cli_default_threads(void);

/* True when progress lines should be drawn (stderr is a terminal). */
bool rs_cli_show_progress(void);

double rs_cli_now(void);

/* "routerscope ARGS..." with arguments shell-quoted where needed, for provenance.
 * Caller frees; NULL when out of memory. */
char *rs_cli_command_line(int argc, char **argv);

/* Comma-separated positive run ids ("3,7") into *IDS (owned, *N entries); on any other
 * text prints the usage error of CMD naming FLAG ("--runs", "--group vmoe") and returns
 * false. A run may come twice (report --runs 1,4,1 sets a run against itself). */
bool rs_cli_parse_runs(const char *cmd, const char *flag, const char *text, int64_t **ids, int *n);

/* Runs named by the user (store/run.h's rs_run_select): an id, "last" or MODEL/PROTOCOL.
 * rs_cli_check_run checks the form of one (--run, RUN_A), rs_cli_check_runs of a
 * comma-separated list (--runs); both print the usage error of CMD naming FLAG and return
 * false on a malformed one, before any store is opened. rs_cli_select_runs then resolves a
 * checked list in STORE (DB: its name in messages) into *IDS (owned, *N entries). */
bool rs_cli_check_run(const char *cmd, const char *flag, const char *text);
bool rs_cli_check_runs(const char *cmd, const char *flag, const char *text);
int rs_cli_select_runs(rs_store *store, const char *db, const char *text, int64_t **ids, int *n, rs_error *err);

/* --group NAME=ID,ID,... (compare, report; cli/groups_args.c): the groups in the order
 * given. */
#define RS_CLI_MAX_GROUPS 16
typedef struct rs_cli_groups {
    int n;                               /* groups */
    char names[RS_CLI_MAX_GROUPS][32];
    int64_t *ids[RS_CLI_MAX_GROUPS];     /* owned */
    int sizes[RS_CLI_MAX_GROUPS];
} rs_cli_groups;
/* Adds the group TEXT; prints the usage error of CMD and returns false on bad text (name of
 * 1 to 31 letters, digits, '-', '_', '+'; positive run ids separated by commas, each once)
 * or too many groups. */
bool rs_cli_add_group(const char *cmd, const char *text, rs_cli_groups *g);
/* At least MIN groups, all of one size; prints the usage error of CMD and returns false. */
bool rs_cli_groups_check(const char *cmd, const rs_cli_groups *g, int min);
void rs_cli_groups_free(rs_cli_groups *g);

/* replay under mpirun/srun (replay_mpi.c): when launched with several MPI ranks, replays
 * this rank's shard of O's job, rank 0 merges, and returns the exit status (the same on
 * every rank); -1 when not launched by MPI (replay as usual). THREADS_GIVEN: --threads was
 * set; otherwise each rank takes CPUs / ranks on its node. SHARD_DIR (NULL: beside --db;
 * "%r" is the rank): each rank's shard store folder, sent to rank 0 over MPI to merge. */
struct rs_replay_options;
int rs_cli_replay_mpi(struct rs_replay_options *o, bool threads_given, const char *shard_dir);

#endif
