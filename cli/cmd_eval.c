/* routerscope eval MODEL --data SRC — accuracy and speed of the C forward pass. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "replay/evaluate.h"
#include "replay/group_order.h"
#include "model.h"
#include "input/source.h"

static const char usage_text[] =
    "usage: routerscope eval MODEL --data SRC [--threads N] [--batch N] [--offset N] [--limit N]\n"
    "                        [--gemm openblas|onednn] [--precision f32|bf16]\n"
    "                        [--capacity-factor F [--group-images N | --group-size S] [--bpr]\n"
    "                         [--bf16-dispatch] [--pad-last-group]\n"
    "                         | --dispatch model] [--group-seed N]\n"
    "\n"
    "Classify the images of SRC with MODEL and print the accuracy and images/s. Images\n"
    "are scaled (shorter side, bilinear) and centre-cropped to the model's input.\n"
    "\n"
    "  --data SRC     fashion-mnist:test | fashion-mnist:train | idx:IMAGES[,LABELS]\n"
    "                 | cifar10:DIR[,train] | cifar100:DIR[,train] | png:DIR (optional\n"
    "                 DIR/labels.txt: lines FILENAME LABEL) | list:FILE (lines PATH LABEL)\n"
    "  --threads N    threads for OpenBLAS and our own loops (default: all CPUs)\n"
    "  --batch N      images per forward pass (default 256)\n"
    "  --offset N     skip the first N images (default 0)\n"
    "  --limit N      use at most N images (default: all)\n"
    "  --predictions FILE  write each image's predicted class, one per line\n" RS_CLI_COMPUTE_USAGE
    RS_CLI_DISPATCH_USAGE;

typedef struct eval_options {
    const char *model, *data, *predictions;
    int threads, batch, offset, limit;
    rs_cli_dispatch dispatch;
    rs_cli_compute compute;
} eval_options;

static int parse(int argc, char **argv, eval_options *o)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},   {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'},  {"offset", required_argument, NULL, 'o'},
        {"limit", required_argument, NULL, 'l'},  {"predictions", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},         RS_CLI_DISPATCH_OPTIONS, RS_CLI_COMPUTE_OPTIONS,
        {NULL, 0, NULL, 0}};
    *o = (eval_options){.threads = rs_cli_default_threads(), .batch = 256, .limit = INT_MAX,
                        .compute = {RS_CLI_DEFAULT_GEMM, RS_PRECISION_F32}};
    int c;
    while ((c = rs_cli_next_option("eval", argc, argv, ":h", opts)) != -1) {
        bool ok = true;
        switch (c) {
        case 'd': o->data = optarg; break;
        case 't': ok = rs_cli_parse_int("eval", "--threads", optarg, 1, 256, &o->threads); break;
        case 'b': ok = rs_cli_parse_int("eval", "--batch", optarg, 1, 65536, &o->batch); break;
        case 'o': ok = rs_cli_parse_int("eval", "--offset", optarg, 0, INT_MAX, &o->offset); break;
        case 'l': ok = rs_cli_parse_int("eval", "--limit", optarg, 1, INT_MAX, &o->limit); break;
        case 'p': o->predictions = optarg; break;
        case 'h': fputs(usage_text, stdout); return -1;
        RS_CLI_DISPATCH_OPTION_CASES:
            ok = rs_cli_dispatch_option("eval", c, optarg, &o->dispatch);
            break;
        RS_CLI_COMPUTE_OPTION_CASES:
            ok = rs_cli_compute_option("eval", c, optarg, &o->compute);
            break;
        default: return RS_EXIT_USAGE;
        }
        if (!ok)
            return RS_EXIT_USAGE;
    }
    if (!rs_cli_dispatch_check("eval", &o->dispatch))
        return RS_EXIT_USAGE;
    if (argc - optind != 1)
        return rs_cli_usage_error("eval", "wants exactly one MODEL");
    if (!o->data)
        return rs_cli_usage_error("eval", "--data is required");
    o->model = argv[optind];
    return 0;
}

static void progress(void *ctx, int done, int total, double elapsed)
{
    (void)ctx;
    double rate = done / (elapsed > 0 ? elapsed : 1e-9);
    fprintf(stderr, "\reval %d/%d images, %.0f images/s, ETA %.0f s   ", done, total, rate,
            (total - done) / (rate > 0 ? rate : 1));
}

static void print_summary(const eval_options *o, const rs_source *src, const rs_eval_summary *s)
{
    printf("%s on %s: %d images", o->model, rs_source_name(src), s->images);
    if (s->labelled)
        printf(", accuracy %.2f%% (%d/%d)", 100.0 * s->correct / s->labelled, s->correct, s->labelled);
    else
        printf(", no labels");
    printf("\nspeed: %.0f images/s end to end, %.0f images/s in the forward pass (%.2f s, batch %d, %d threads, "
           "%s %s)\n", s->images / (s->seconds > 0 ? s->seconds : 1e-9),
           s->images / (s->forward_seconds > 0 ? s->forward_seconds : 1e-9), s->seconds, s->batch, o->threads,
           rs_gemm_backend_name(o->compute.gemm), rs_precision_name(o->compute.precision));
}

static void print_dispatch(const rs_eval_options *eo, const rs_eval_summary *s)
{
    const rs_dispatch *d = &eo->dispatch;
    char seed[48] = "";
    if (eo->has_group_seed)
        snprintf(seed, sizeof seed, ", group seed %" PRIu64, eo->group_seed);
    if (d->capacity_factor > 0)
        printf("dispatch: capacity factor %g, groups of %d images%s%s%s%s: %lld of %lld top-k choices dropped "
               "(%.2f%%)\n", d->capacity_factor, d->group_images, d->bpr ? ", BPR" : "",
               d->bf16 ? ", bfloat16 dispatch" : "", d->pad_last ? ", last group padded" : "", seed, s->dropped,
               s->choices,
               s->choices ? 100.0 * s->dropped / s->choices : 0.0);
}

int cmd_eval(int argc, char **argv)
{
    eval_options o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? RS_EXIT_OK : rc;
    rs_error err;
    rs_model *m;
    if (rs_model_open(o.model, &m, &err))
        return rs_cli_fail(&err);
    if (rs_model_set_compute(m, o.compute.gemm, o.compute.precision, &err)) {
        rs_model_close(m);
        return rs_cli_fail(&err);
    }
    rs_source *src = NULL;
    bool show = rs_cli_show_progress();
    rs_eval_options eo = {.threads = o.threads, .batch = o.batch, .offset = o.offset,
                          .limit = o.limit == INT_MAX ? 0 : o.limit, .predictions = o.predictions,
                          .progress = show ? progress : NULL,
                          .has_group_seed = o.dispatch.has_group_seed, .group_seed = o.dispatch.group_seed};
    const rs_dispatch given = {.capacity_factor = o.dispatch.capacity_factor,
                               .group_images = o.dispatch.group_images, .bpr = o.dispatch.bpr,
                               .bf16 = o.dispatch.bf16, .pad_last = o.dispatch.pad_last};
    if (rs_group_dispatch_resolve(&m->cfg, o.model, o.dispatch.from_model, &given, o.dispatch.group_tokens,
                                  o.dispatch.has_group_seed, &eo.dispatch, &err)) {
        rs_model_close(m);
        return rs_cli_fail(&err);
    }
    rs_eval_summary sum;
    if (!(rc = rs_source_open(o.data, &src, &err)))
        rc = rs_evaluate(m, src, &eo, &sum, &err);
    if (show)
        fputc('\n', stderr);
    if (rc)
        rs_cli_fail(&err);
    else {
        print_summary(&o, src, &sum);
        print_dispatch(&eo, &sum);
    }
    rs_source_close(src);
    rs_model_close(m);
    return rc ? RS_EXIT_FAIL : RS_EXIT_OK;
}
