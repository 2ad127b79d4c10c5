/* routerscope replay — record per-patch routing of images under views into the store. */
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "replay/replay.h"
#include "input/corrupt.h"
#include "input/view.h"
#include "rs_number.h"
#include "version.h"

static const char usage_text[] =
    "usage: routerscope replay MODEL --data SRC --db FILE\n"
    "                          [--protocol pair|noise|custom|adversarial|intervene|corruptions]\n"
    "                          [--augment SPEC] [--views 'SPEC;SPEC;...'] [--attack SPEC]\n"
    "                          [--eps LIST] [--corruptions LIST] [--severities LIST] [--seed S]\n"
    "                          [--offset N] [--limit N] [--threads N] [--batch N] [--shard I/N]\n"
    "                          [--shard-dir DIR] [--record full|topk]\n"
    "                          [--capacity-factor F [--group-images N | --group-size S] [--bpr]\n"
    "                           [--bf16-dispatch] [--pad-last-group]\n"
    "                           | --dispatch model] [--group-seed N]\n"
    "                          [--gemm openblas|onednn] [--precision f32|bf16]\n"
    "       routerscope replay --db FILE --resume RUN [MODEL] [--threads N] [--batch N]\n"
    "\n"
    "Replay images clean, noisy or augmented through MODEL and record every MoE layer's\n"
    "routing for every patch in the SQLite database FILE.\n"
    "\n"
    "  --data SRC       fashion-mnist:test|train, idx:IMAGES[,LABELS], cifar10:DIR[,train],\n"
    "                   cifar100:DIR[,train], png:DIR, list:FILE\n"
    "  --protocol P     pair (default): two views of --augment per image;\n"
    "                   noise: clean and ImageNet-C severities 1-5; custom: --views;\n"
    "                   adversarial: clean and one --attack view per --eps value;\n"
    "                   intervene: clean, --augment, and --augment run with the clean view's\n"
    "                   routing forced in all MoE blocks, then in each alone (docs/dispatch.md);\n"
    "                   corruptions: clean, then each --corruptions at each --severities, with\n"
    "                   CIFAR-10-C's parameters for inputs <= 64 px, else ImageNet-C's\n"
    "                   (docs/corruptions.md)\n"
    "  --augment SPEC   pair's view (default " RS_PAIR_AUGMENT "),\n"
    "                   intervene's perturbation (default " RS_INTERVENE_PERTURB ")\n"
    "  --views LIST     custom's views separated by ';' (blanks around it allowed, as 'runs'\n"
    "                   prints them), the first is the reference\n"
    "  --attack SPEC    adversarial's attack, a pgd: spec without eps\n"
    "                   (default " RS_ADVERSARIAL_ATTACK "; docs/attacks.md)\n"
    "  --eps LIST       adversarial's radii on [0,1] pixels, increasing, separated by ','\n"
    "                   (default " RS_ADVERSARIAL_EPS ")\n"
    "  --corruptions LIST  the corruptions protocol's names separated by ',': any of\n"
    "                   " RS_CORRUPT_DEFAULT "\n"
    "                   (the default: the benchmark's 15), speckle_noise, gaussian_blur,\n"
    "                   saturate\n"
    "  --severities LIST   its severities, 1..5 separated by ',' (default 1,2,3,4,5)\n"
    "  --seed S         seed of every random draw (default 0)\n"
    "  --offset N, --limit N   a slice of the source\n"
    "  --threads N      threads (default: all CPUs)\n"
    "  --batch N        images per committed batch (default 256), rounded up to whole groups\n"
    "                   of the forward pass so that results never depend on it\n"
    "  --resume RUN     continue an unfinished run (see 'routerscope runs')\n"
    "  --record FORM    full (default): top-k ids, gates and the float16 softmax over all\n"
    "                   experts; topk: ids and gates only, for stores at benchmark scale\n"
    "                   (JSD, entropy, the PRC score and export --probs then say that the\n"
    "                   run did not record them; bytes per record in docs/store.md)\n"
    "  --shard I/N      replay only shard I (0..N-1) of the job into FILE; join the N shard\n"
    "                   stores with 'routerscope merge' (docs/scale-out.md)\n"
    RS_CLI_COMPUTE_USAGE RS_CLI_DISPATCH_USAGE
    "                   With a capacity factor, batches and shards are whole dispatch groups\n"
    "                   (with --group-seed, whole windows of 8 groups) and the store records\n"
    "                   which choices were kept.\n"
    "\n"
    "Under mpirun (or srun) with N ranks, rank I replays shard I/N into FILE.shard-I-of-N\n"
    "and rank 0 merges the shards into FILE; --threads defaults to CPUs / ranks per node.\n"
    "  --shard-dir DIR  (MPI only) keep each rank's shard store in DIR ('%r' = the rank;\n"
    "                   created when missing), e.g. on node-local disk; the ranks send\n"
    "                   their finished stores to rank 0 over MPI to merge\n"
    "\n"
    "View specs chain operations with '+': clean, noise:sigma=S, noise:severity=1..5,\n"
    "crop:area=A-B,ratio=R1-R2, flip:p=P, rotate:deg=D, translate:px=P, jitter:b=B,c=C,s=S,\n"
    "base:view=V (first; start from view V), pgd:eps=E,steps=N,alpha=A,loss=L,... (an attack,\n"
    "applied last; docs/attacks.md), route:from=F,layers=B1/B2 (last: run the experts view F\n"
    "ran on each matched patch; docs/dispatch.md).\n"
    "Running an identical job again reports the finished run or resumes an unfinished one.\n"
    "Ctrl-C finishes the current batch, commits it and stops; resume later with --resume.\n";

/* Set by the SIGINT handler, read by the engine between batches: a signal handler can
 * only reach a flag of static storage. */
static volatile sig_atomic_t stop_requested;

static void on_sigint(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void progress(void *ctx, int done, int total, int this_call, double seconds)
{
    (void)ctx;
    double rate = this_call / (seconds > 0 ? seconds : 1e-9);
    fprintf(stderr, "\rreplay %d/%d images, %.0f images/s, ETA %.0f s   ", done, total, rate,
            rate > 0 ? (total - done) / rate : 0.0);
}


/* --shard I/N: 0 <= I < N, both decimal (rs_number.h). */
static bool parse_shard(const char *text, rs_replay_options *o)
{
    const char *slash = strchr(text, '/');
    char first[24];
    long long i = -1, n = 0;
    bool ok = slash && (size_t)(slash - text) < sizeof first;
    if (ok) {
        memcpy(first, text, (size_t)(slash - text));
        first[slash - text] = '\0';
        ok = !rs_parse_integer(first, 0, 999999, &i) && !rs_parse_integer(slash + 1, 1, 1000000, &n) && i < n;
    }
    if (!ok) {
        rs_cli_usage_error("replay", "--shard wants I/N with 0 <= I < N, got '%s'", text);
        return false;
    }
    o->shard_index = (int)i;
    o->shard_count = (int)n;
    return true;
}

/* --record full|topk. */
static bool parse_record(const char *text, rs_replay_options *o)
{
    rs_error err;
    if (!rs_record_form_parse(text, &o->record, &err))
        return true;
    rs_cli_usage_error("replay", "--record wants full or topk, got '%s'", text);
    return false;
}

static int parse(int argc, char **argv, rs_replay_options *o, const char **shard_dir)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},     {"db", required_argument, NULL, 'D'},
        {"protocol", required_argument, NULL, 'p'}, {"augment", required_argument, NULL, 'a'},
        {"views", required_argument, NULL, 'v'},    {"seed", required_argument, NULL, 's'},
        {"offset", required_argument, NULL, 'o'},   {"limit", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},  {"batch", required_argument, NULL, 'b'},
        {"resume", required_argument, NULL, 'r'},   {"shard", required_argument, NULL, 'S'},
        {"shard-dir", required_argument, NULL, 'L'}, {"attack", required_argument, NULL, 'A'},
        {"eps", required_argument, NULL, 'E'},      {"help", no_argument, NULL, 'h'},
        {"corruptions", required_argument, NULL, 'C'}, {"severities", required_argument, NULL, 'V'},
        {"record", required_argument, NULL, 'R'},
        RS_CLI_DISPATCH_OPTIONS, RS_CLI_COMPUTE_OPTIONS,
        {NULL, 0, NULL, 0}};
    int c, resume = 0, set = 0;
    rs_cli_dispatch dispatch = {0};
    rs_cli_compute compute = {RS_CLI_DEFAULT_GEMM, RS_PRECISION_F32};
    while ((c = rs_cli_next_option("replay", argc, argv, ":h", opts)) != -1) {
        bool ok = true;
        switch (c) {
        case 'd': o->data = optarg, set++; break;
        case 'D': o->db_path = optarg; break;
        case 'p': o->protocol = optarg, set++; break;
        case 'a': o->augment = optarg, set++; break;
        case 'v': o->views = optarg, set++; break;
        case 'A': o->attack = optarg, set++; break;
        case 'E': o->eps = optarg, set++; break;
        case 'C': o->corruptions = optarg, set++; break;
        case 'V': o->severities = optarg, set++; break;
        case 's': ok = rs_cli_parse_u64("replay", "--seed", optarg, &o->seed), set++; break;
        case 'o': ok = rs_cli_parse_int("replay", "--offset", optarg, 0, INT_MAX, &o->offset), set++; break;
        case 'l': ok = rs_cli_parse_int("replay", "--limit", optarg, 1, INT_MAX, &o->limit), set++; break;
        case 't': ok = rs_cli_parse_int("replay", "--threads", optarg, 1, 256, &o->threads); break;
        case 'b': ok = rs_cli_parse_int("replay", "--batch", optarg, 1, 65536, &o->batch); break;
        case 'r': ok = rs_cli_parse_int("replay", "--resume", optarg, 1, INT_MAX, &resume); break;
        case 'S': ok = parse_shard(optarg, o), set++; break;
        case 'L': *shard_dir = optarg; break;
        case 'R': ok = parse_record(optarg, o), set++; break;
        case 'h': fputs(usage_text, stdout); return -1;
        RS_CLI_DISPATCH_OPTION_CASES:
            ok = rs_cli_dispatch_option("replay", c, optarg, &dispatch), set++;
            break;
        RS_CLI_COMPUTE_OPTION_CASES:
            ok = rs_cli_compute_option("replay", c, optarg, &compute), set++;
            break;
        default: return RS_EXIT_USAGE;
        }
        if (!ok)
            return RS_EXIT_USAGE;
    }
    if (!rs_cli_dispatch_check("replay", &dispatch))
        return RS_EXIT_USAGE;
    o->dispatch = (rs_dispatch){.capacity_factor = dispatch.capacity_factor, .group_images = dispatch.group_images,
                                .bpr = dispatch.bpr, .bf16 = dispatch.bf16, .pad_last = dispatch.pad_last};
    o->dispatch_model = dispatch.from_model;
    o->group_tokens = dispatch.group_tokens;
    o->has_group_seed = dispatch.has_group_seed;
    o->group_seed = dispatch.group_seed;
    o->gemm = compute.gemm;
    o->precision = compute.precision;
    o->resume_run = resume;
    if (!o->db_path)
        return rs_cli_usage_error("replay", "--db is required");
    if (!o->db_path[0] || !strcmp(o->db_path, ":memory:"))
        return rs_cli_usage_error("replay", "--db wants a file to keep the records in");
    if (*shard_dir && !(*shard_dir)[0])
        return rs_cli_usage_error("replay", "--shard-dir wants a folder");
    if (argc - optind > 1)
        return rs_cli_usage_error("replay", "wants one MODEL");
    o->model_path = argc - optind == 1 ? argv[optind] : NULL;
    if (resume && set)
        return rs_cli_usage_error("replay", "--resume takes the run's own data, slice, protocol, views, seed, "
                                            "dispatch, gemm and record form; only MODEL, --threads and --batch may be "
                                            "given");
    if (resume)
        return 0;
    if (!o->model_path)
        return rs_cli_usage_error("replay", "wants a MODEL (or --resume RUN)");
    if (!o->data)
        return rs_cli_usage_error("replay", "--data is required");
    if (!o->protocol)
        o->protocol = "pair";
    if (strcmp(o->protocol, "pair") && strcmp(o->protocol, "noise") && strcmp(o->protocol, "custom") &&
        strcmp(o->protocol, "adversarial") && strcmp(o->protocol, "intervene") && strcmp(o->protocol, "corruptions"))
        return rs_cli_usage_error("replay",
                                  "unknown protocol '%s' (want pair, noise, custom, adversarial, intervene or "
                                  "corruptions)",
                                  o->protocol);
    if (!strcmp(o->protocol, "custom") && !o->views)
        return rs_cli_usage_error("replay", "--protocol custom needs --views 'SPEC;SPEC;...'");
    if (o->views && strcmp(o->protocol, "custom"))
        return rs_cli_usage_error("replay", "--views belongs to --protocol custom");
    if (o->augment && strcmp(o->protocol, "pair") && strcmp(o->protocol, "intervene"))
        return rs_cli_usage_error("replay", "--augment belongs to --protocol pair or intervene");
    if ((o->attack || o->eps) && strcmp(o->protocol, "adversarial"))
        return rs_cli_usage_error("replay", "%s belongs to --protocol adversarial", o->attack ? "--attack" : "--eps");
    if ((o->corruptions || o->severities) && strcmp(o->protocol, "corruptions"))
        return rs_cli_usage_error("replay", "%s belongs to --protocol corruptions",
                                  o->corruptions ? "--corruptions" : "--severities");
    return 0;
}

int cmd_replay(int argc, char **argv)
{
    rs_replay_options o = {.batch = 256, .version = RS_VERSION " (commit " RS_VERSION_COMMIT ")"};
    const char *shard_dir = NULL;
    int rc = parse(argc, argv, &o, &shard_dir);
    if (rc)
        return rc < 0 ? RS_EXIT_OK : rc;
    bool threads_given = o.threads > 0;
    if (!threads_given)
        o.threads = rs_cli_default_threads();
    char *command = rs_cli_command_line(argc, argv);
    o.command = command ? command : "routerscope replay";
    if (rs_cli_show_progress())
        o.progress = progress;
    o.stop = &stop_requested;
    /* SA_RESETHAND: a second Ctrl-C kills at once, for when the batch in flight is long. */
    struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESETHAND}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);

    int mpi_status = rs_cli_replay_mpi(&o, threads_given, shard_dir);
    if (mpi_status < 0 && shard_dir)
        mpi_status = rs_cli_usage_error("replay", "--shard-dir belongs to runs under mpirun with several ranks");
    if (mpi_status >= 0) {
        sigaction(SIGINT, &old, NULL);
        free(command);
        return mpi_status;
    }
    rs_replay_summary s;
    rs_error err;
    rc = rs_replay(&o, &s, &err);
    sigaction(SIGINT, &old, NULL);
    if (o.progress && s.images_this_call)
        fputc('\n', stderr);
    free(command);
    if (rc)
        return rs_cli_fail(&err);
    if (s.already_done) {
        printf("run %" PRId64 " is already complete (%d images x %d views) in %s; nothing to do\n", s.run_id,
               s.images_total, s.views, o.db_path);
        return RS_EXIT_OK;
    }
    char shard[96] = "", attack_share[32] = "";
    if (s.attack_seconds > 0)
        snprintf(attack_share, sizeof attack_share, "attacks %.0f%%, ",
                 100 * s.attack_seconds / (s.seconds > 0 ? s.seconds : 1e-9));
    if (s.shard_count > 0)
        snprintf(shard, sizeof shard, " (shard %d/%d: images %d..%d)", s.shard_index, s.shard_count,
                 s.first_image, s.first_image + s.images_total - 1);
    printf("run %" PRId64 "%s%s: %d images x %d views x %d MoE layers x %d tokens: %lld routing records in %.1f s "
           "(%.0f images/s, batch %d, decode %.0f%%, forward %.0f%%, %sSQLite %.0f%%); %s %.1f MB",
           s.run_id, shard, s.resumed ? " (resumed)" : "", s.images_this_call, s.views, s.layers, s.tokens, s.records,
           s.seconds, s.images_this_call / (s.seconds > 0 ? s.seconds : 1e-9), s.batch,
           100 * s.decode_seconds / (s.seconds > 0 ? s.seconds : 1e-9),
           100 * s.forward_seconds / (s.seconds > 0 ? s.seconds : 1e-9), attack_share, 100 * s.store_seconds / (s.seconds > 0 ? s.seconds : 1e-9), o.db_path, (double)s.db_bytes / 1e6);
    if (s.views > 1 && s.images_this_call)
        printf("; %lld patches without a match in view 0", s.unmatched);
    printf("\n");
    if (s.interrupted) {
        fprintf(stderr, "routerscope: interrupted after %d of %d images; resume with: routerscope replay --db %s --resume %" PRId64 "\n",
                s.images_done, s.images_total, o.db_path, s.run_id);
        return 130;
    }
    return RS_EXIT_OK;
}
