/* routerscope eval MODEL --data SRC — accuracy and speed of the C forward pass. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "forward.h"
#include "model.h"
#include "source.h"

static const char usage_text[] =
    "usage: routerscope eval MODEL --data SRC [--threads N] [--batch N] [--offset N] [--limit N]\n"
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
    "  --predictions FILE  write each image's predicted class, one per line\n";

typedef struct eval_options {
    const char *model, *data, *predictions;
    int threads, batch, offset, limit;
} eval_options;

static int parse(int argc, char **argv, eval_options *o)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},   {"threads", required_argument, NULL, 't'},
        {"batch", required_argument, NULL, 'b'},  {"offset", required_argument, NULL, 'o'},
        {"limit", required_argument, NULL, 'l'},  {"predictions", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    *o = (eval_options){.threads = rs_cli_default_threads(), .batch = 256, .limit = INT_MAX};
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
        default: return RS_EXIT_USAGE;
        }
        if (!ok)
            return RS_EXIT_USAGE;
    }
    if (argc - optind != 1)
        return rs_cli_usage_error("eval", "wants exactly one MODEL");
    if (!o->data)
        return rs_cli_usage_error("eval", "--data is required");
    o->model = argv[optind];
    return 0;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

static void progress(int done, int total, double elapsed)
{
    double rate = done / (elapsed > 0 ? elapsed : 1e-9);
    fprintf(stderr, "\reval %d/%d images, %.0f images/s, ETA %.0f s   ", done, total, rate,
            (total - done) / (rate > 0 ? rate : 1));
}

static int run(const eval_options *o, const rs_model *m, rs_source *src, rs_error *err)
{
    const rs_config *c = &m->cfg;
    int count = rs_source_count(src);
    if (o->offset >= count)
        return rs_error_set(err, RS_EINVAL, "%s: --offset %d but the data set has %d images", rs_source_name(src),
                            o->offset, count);
    int total = count - o->offset < o->limit ? count - o->offset : o->limit;
    int batch = o->batch < total ? o->batch : total;
    rs_forward *f;
    int rc = rs_forward_create(m, batch, o->threads, &f, err);
    if (rc)
        return rc;
    size_t image_size = (size_t)c->channels * c->image_h * c->image_w;
    float *input = malloc(sizeof(float) * (size_t)batch * image_size);
    if (!input) {
        rs_forward_free(f);
        return rs_error_set(err, RS_ENOMEM, "out of memory for a batch of %d images", batch);
    }
    FILE *pred = NULL;
    if (o->predictions && !(pred = fopen(o->predictions, "w"))) {
        free(input);
        rs_forward_free(f);
        return rs_error_set(err, RS_EIO, "%s: cannot write: %s", o->predictions, strerror(errno));
    }
    bool show = rs_cli_show_progress();
    int correct = 0, labelled = 0;
    double t0 = rs_cli_now(), forward_s = 0;
    for (int done = 0; done < total && !rc; done += batch) {
        int n = total - done < batch ? total - done : batch;
        if ((rc = rs_source_load_batch(src, o->offset + done, n, c->channels, c->image_h, c->image_w, o->threads,
                                       input, err)))
            break;
        for (int i = 0; i < n; i++)
            rs_normalize(c, input + (size_t)i * image_size);
        double t1 = rs_cli_now();
        rc = rs_forward_run(f, input, n, err);
        forward_s += rs_cli_now() - t1;
        const float *logits = rs_forward_result(f)->logits;
        for (int i = 0; !rc && i < n; i++) {
            int label = rs_source_label(src, o->offset + done + i);
            int predicted = argmax(logits + (size_t)i * c->num_classes, c->num_classes);
            if (label >= 0) {
                labelled++;
                correct += predicted == label;
            }
            if (pred)
                fprintf(pred, "%d\n", predicted);
        }
        if (show)
            progress(done + n, total, rs_cli_now() - t0);
    }
    double wall = rs_cli_now() - t0;
    if (show)
        fputc('\n', stderr);
    /* ferror catches a failed fprintf that a successful fclose would hide. */
    if (pred && (ferror(pred) | fclose(pred)) && !rc)
        rc = rs_error_set(err, RS_EIO, "%s: write failed: %s", o->predictions, strerror(errno));
    if (!rc) {
        printf("%s on %s: %d images", o->model, rs_source_name(src), total);
        if (labelled)
            printf(", accuracy %.2f%% (%d/%d)", 100.0 * correct / labelled, correct, labelled);
        else
            printf(", no labels");
        printf("\nspeed: %.0f images/s end to end, %.0f images/s in the forward pass (%.2f s, batch %d, %d threads)\n",
               total / (wall > 0 ? wall : 1e-9), total / (forward_s > 0 ? forward_s : 1e-9), wall, batch, o->threads);
    }
    free(input);
    rs_forward_free(f);
    return rc;
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
    rs_source *src = NULL;
    if ((rc = rs_source_open(o.data, &src, &err)) || (rc = run(&o, m, src, &err)))
        rs_cli_fail(&err);
    rs_source_close(src);
    rs_model_close(m);
    return rc ? RS_EXIT_FAIL : RS_EXIT_OK;
}
