/* Gradient test: model/grad.h against PyTorch autograd (pytorch/grad_golden.py, float64).
 *
 * For every tests/golden/grad-NAME.grad.safetensors and each objective it lists (its attack
 * spec goes through rs_objective_set): input gradient max abs error <= 1e-4 x max |ref
 * gradient|, value within 1e-5 relative (see VALUE_TOL). The generator itself checks the
 * reference gradients against central finite differences in float64.
 *
 * Also: the gradient's forward is the forward pass (CE and router-target values equal,
 * bit for bit, those computed from rs_forward_run's outputs); results do not depend on the
 * thread count or the batch size (2G+3 tiled images as one batch on two threads and in
 * batches of G on one thread give identical bytes); bad specs and bad calls are errors;
 * router-ce is router-target negated and takes label mod E with target=label.
 *
 * The grad-dispatch-* cases carry a dispatch (capacity factor, group, BPR) in their metadata:
 * the gradient is then that of the capacity-limited model (rs_grad_create_dispatch), against
 * autograd through vmoe.py's dispatch, within the same tolerances; the forward-identity and
 * determinism checks run on them too (the last group short). grad-dispatch-k2-bf16 and
 * grad-dispatch-k1-bf16-pad add vmoe's bfloat16 dispatch (straight through) and, in the
 * second, a short last group padded with explicit zero images in the reference. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "forward.h"
#include "grad.h"
#include "model.h"
#include "testutil.h"

#define GRAD_TOL 1e-4
#define VALUE_TOL 1e-5

static const char *golden_dir;

/* One golden case, loaded. */
typedef struct gcase {
    rs_safetensors *ref;
    rs_model *m;
    int B;
    float *pixels;       /* (B,C,H,W) */
    int32_t *labels;     /* (B) */
    float **ref_probs;   /* num_moe, (B,T,E) */
    json_t *objectives;  /* [[name, spec], ...] */
    rs_dispatch dispatch;
    const rs_dispatch *d; /* &dispatch for a dispatch case, else NULL */
} gcase;

static void load_case(const char *name, gcase *gc)
{
    char path[1024];
    rs_error err;
    snprintf(path, sizeof path, "%s/%s", golden_dir, name);
    if (rs_safetensors_open(path, &gc->ref, &err))
        fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/%s", golden_dir, rs_safetensors_metadata(gc->ref, "model"));
    if (rs_model_open(path, &gc->m, &err) || tu_set_backend(gc->m, &err))
        fail_msg("%s", err.msg);
    const rs_config *c = &gc->m->cfg;
    gc->B = (int)rs_safetensors_find(gc->ref, "pixels")->shape[0];
    gc->pixels = tu_tensor_f32(gc->ref, "pixels", NULL);
    float *labels = tu_tensor_f32(gc->ref, "labels", NULL);
    gc->labels = malloc(sizeof(int32_t) * gc->B);
    for (int b = 0; b < gc->B; b++)
        gc->labels[b] = (int32_t)labels[b];
    free(labels);
    gc->ref_probs = calloc((size_t)c->num_moe + 1, sizeof(float *));
    for (int s = 0; s < c->num_moe; s++) {
        char tname[64];
        snprintf(tname, sizeof tname, "ref.%d", c->moe_layers[s]);
        size_t n;
        gc->ref_probs[s] = tu_tensor_f32(gc->ref, tname, &n);
        assert_non_null(gc->ref_probs[s]);
        assert_int_equal(n, (size_t)gc->B * rs_config_tokens(c) * c->num_experts);
    }
    json_error_t jerr;
    gc->objectives = json_loads(rs_safetensors_metadata(gc->ref, "objectives"), 0, &jerr);
    assert_non_null(gc->objectives);
    const char *d = rs_safetensors_metadata(gc->ref, "dispatch");
    gc->d = NULL;
    if (d) {
        json_t *j = json_loads(d, 0, &jerr);
        assert_non_null(j);
        gc->dispatch = (rs_dispatch){.capacity_factor = json_number_value(json_object_get(j, "capacity_factor")),
                                     .group_images = (int)json_integer_value(json_object_get(j, "group_images")),
                                     .bpr = json_is_true(json_object_get(j, "bpr")),
                                     .bf16 = json_is_true(json_object_get(j, "bf16")),
                                     .pad_last = json_is_true(json_object_get(j, "pad_last"))};
        assert_true(gc->dispatch.capacity_factor > 0);
        gc->d = &gc->dispatch;
        json_decref(j);
    }
}

static void free_case(gcase *gc)
{
    for (int s = 0; s < gc->m->cfg.num_moe; s++)
        free(gc->ref_probs[s]);
    free(gc->ref_probs);
    free(gc->pixels);
    free(gc->labels);
    json_decref(gc->objectives);
    rs_model_close(gc->m);
    rs_safetensors_close(gc->ref);
}

/* SPEC ("loss=ce&router,beta=0.5") into OBJ through rs_objective_set, as the attack
 * spec parser does. Returns the first error code, 0 when every key was consumed. */
static int parse_spec(const char *spec, const rs_config *c, rs_objective *obj, rs_error *err)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    rs_objective_init(obj);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = '\0';
        int rc = rs_objective_set(obj, kv, eq + 1, err);
        if (rc < 0)
            return rc;
        assert_int_equal(rc, 1);
    }
    return c ? rs_objective_check(obj, c, err) : 0;
}

static void grad_golden(void **state)
{
    const char *name = *state;
    gcase gc;
    load_case(name, &gc);
    const rs_config *c = &gc.m->cfg;
    size_t img = (size_t)c->channels * c->image_h * c->image_w, n = gc.B * img;
    float *value = malloc(sizeof(float) * gc.B), *grad = malloc(sizeof(float) * n);
    rs_grad *g;
    rs_error err;
    assert_int_equal(rs_grad_create_dispatch(gc.m, gc.B, 1, gc.d, &g, &err), 0);
    size_t i;
    json_t *o;
    json_array_foreach(gc.objectives, i, o) {
        const char *obj_name = json_string_value(json_array_get(o, 0)), *spec = json_string_value(json_array_get(o, 1));
        rs_objective obj;
        if (parse_spec(spec, c, &obj, &err))
            fail_msg("%s: %s", spec, err.msg);
        if (rs_grad_run(g, &obj, gc.pixels, gc.B, gc.labels, (const float *const *)gc.ref_probs, value, grad, &err))
            fail_msg("%s: %s", spec, err.msg);
        char tname[64];
        snprintf(tname, sizeof tname, "grad.%s", obj_name);
        float *ref_grad = tu_tensor_f32(gc.ref, tname, NULL);
        snprintf(tname, sizeof tname, "value.%s", obj_name);
        float *ref_value = tu_tensor_f32(gc.ref, tname, NULL);
        assert_non_null(ref_grad);
        assert_non_null(ref_value);
        double scale = 0, worst = 0, worst_v = 0;
        for (size_t j = 0; j < n; j++) {
            scale = fmax(scale, fabs(ref_grad[j]));
            worst = fmax(worst, fabs((double)grad[j] - ref_grad[j]));
        }
        for (int b = 0; b < gc.B; b++)
            worst_v = fmax(worst_v, fabs((double)value[b] - ref_value[b]) / fabs(ref_value[b]));
        print_message("%-32s %-38s grad err %.1e x max|g| (%.1e), value rel err %.1e\n", name, spec,
                      worst / scale, scale, worst_v);
        assert_true(scale > 0);
        assert_true(worst <= GRAD_TOL * scale);
        assert_true(worst_v <= VALUE_TOL);
        free(ref_grad);
        free(ref_value);
    }
    rs_grad_free(g);
    free(value);
    free(grad);
    free_case(&gc);
}

/* The gradient's forward is rs_forward_run's: the CE and router-target values equal those
 * computed (in the same order) from the forward pass's logits and routing. */
static void grad_forward_identical(void **state)
{
    gcase gc;
    load_case(*(const char **)state, &gc);
    const rs_config *c = &gc.m->cfg;
    int B = gc.B, K = c->num_classes, T = rs_config_tokens(c), Np = rs_config_patches(c), E = c->num_experts;
    size_t img = (size_t)c->channels * c->image_h * c->image_w, plane = (size_t)c->image_h * c->image_w;
    float *norm = malloc(sizeof(float) * B * img), *value = malloc(sizeof(float) * B);
    float *grad = malloc(sizeof(float) * B * img);
    for (size_t i = 0; i < B * img; i++) /* rs_model_normalize's formula */
        norm[i] = (gc.pixels[i] - c->mean[i / plane % c->channels]) / c->std[i / plane % c->channels];
    rs_forward *f;
    rs_grad *g;
    rs_error err;
    assert_int_equal(rs_forward_create_dispatch(gc.m, B, 1, gc.d, &f, &err), 0);
    assert_int_equal(rs_forward_run(f, norm, B, &err), 0);
    const rs_forward_out *out = rs_forward_result(f);
    assert_int_equal(rs_grad_create_dispatch(gc.m, B, 1, gc.d, &g, &err), 0);
    rs_objective obj;
    assert_int_equal(parse_spec("loss=ce", c, &obj, &err), 0);
    assert_int_equal(rs_grad_run(g, &obj, gc.pixels, B, gc.labels, NULL, value, grad, &err), 0);
    for (int b = 0; b < B; b++) {
        const float *z = out->logits + (size_t)b * K;
        int top = 0;
        for (int k = 1; k < K; k++)
            top = z[k] > z[top] ? k : top;
        double sum = 0;
        for (int k = 0; k < K; k++)
            sum += exp((double)z[k] - z[top]);
        assert_true(value[b] == (float)((double)z[top] + log(sum) - (double)z[gc.labels[b]]));
    }
    assert_int_equal(parse_spec("loss=router-target,target=0", c, &obj, &err), 0);
    assert_int_equal(rs_grad_run(g, &obj, gc.pixels, B, NULL, NULL, value, grad, &err), 0);
    for (int b = 0; b < B; b++) {
        double v = 0, scale = 1.0 / ((double)Np * c->num_moe);
        for (int s = c->num_moe - 1; s >= 0; s--) /* the backward visits blocks last to first */
            for (int t = T - Np; t < T; t++)
                v += scale * log((double)out->moe[s].probs[((size_t)b * T + t) * E]);
        assert_true(value[b] == (float)v);
    }
    rs_grad_free(g);
    rs_forward_free(f);
    free(norm);
    free(value);
    free(grad);
    free_case(&gc);
}

/* Runs OBJ over N images in batches of CHUNK on THREADS threads, with dispatch D (or NULL). */
static void run_chunks(const rs_model *m, const rs_dispatch *d, const rs_objective *obj, const float *pixels,
                       const int32_t *labels, float **ref, int n, int chunk, int threads, float *value, float *grad)
{
    const rs_config *c = &m->cfg;
    size_t img = (size_t)c->channels * c->image_h * c->image_w, TE = (size_t)rs_config_tokens(c) * c->num_experts;
    rs_grad *g;
    rs_error err;
    assert_int_equal(rs_grad_create_dispatch(m, chunk, threads, d, &g, &err), 0);
    for (int b0 = 0; b0 < n; b0 += chunk) {
        int k = n - b0 < chunk ? n - b0 : chunk;
        const float *r[RS_MAX_DEPTH];
        for (int s = 0; s < c->num_moe; s++)
            r[s] = ref[s] + b0 * TE;
        assert_int_equal(rs_grad_run(g, obj, pixels + b0 * img, k, labels + b0, r, value + b0, grad + b0 * img, &err),
                         0);
    }
    rs_grad_free(g);
}

/* Identical bytes for 2G+3 images as one batch on two threads and in batches of G. */
static void grad_deterministic(void **state)
{
    gcase gc;
    load_case(*(const char **)state, &gc);
    const rs_config *c = &gc.m->cfg;
    rs_grad *probe;
    rs_error err;
    assert_int_equal(rs_grad_create_dispatch(gc.m, 1, 1, gc.d, &probe, &err), 0);
    int G = rs_grad_group_size(probe), n = 2 * G + 3;
    rs_grad_free(probe);
    rs_forward *fprobe;
    assert_int_equal(rs_forward_create_dispatch(gc.m, 1, 1, gc.d, &fprobe, &err), 0);
    assert_int_equal(G, rs_forward_group_size(fprobe));
    rs_forward_free(fprobe);
    size_t img = (size_t)c->channels * c->image_h * c->image_w, TE = (size_t)rs_config_tokens(c) * c->num_experts;
    float *pixels = malloc(sizeof(float) * n * img);
    int32_t *labels = malloc(sizeof(int32_t) * n);
    float *ref[RS_MAX_DEPTH];
    for (int s = 0; s < c->num_moe; s++)
        ref[s] = malloc(sizeof(float) * n * TE);
    for (int i = 0; i < n; i++) {
        int b = i % gc.B;
        memcpy(pixels + i * img, gc.pixels + b * img, sizeof(float) * img);
        labels[i] = gc.labels[b];
        for (int s = 0; s < c->num_moe; s++)
            memcpy(ref[s] + i * TE, gc.ref_probs[s] + b * TE, sizeof(float) * TE);
    }
    rs_objective obj;
    assert_int_equal(parse_spec("loss=ce&jsd,beta=0.5", c, &obj, &err), 0);
    float *v1 = malloc(sizeof(float) * n), *v2 = malloc(sizeof(float) * n);
    float *g1 = malloc(sizeof(float) * n * img), *g2 = malloc(sizeof(float) * n * img);
    run_chunks(gc.m, gc.d, &obj, pixels, labels, ref, n, n, 2, v1, g1);
    run_chunks(gc.m, gc.d, &obj, pixels, labels, ref, n, G, 1, v2, g2);
    assert_memory_equal(v1, v2, sizeof(float) * n);
    assert_memory_equal(g1, g2, sizeof(float) * n * img);
    for (int s = 0; s < c->num_moe; s++)
        free(ref[s]);
    free(pixels);
    free(labels);
    free(v1);
    free(v2);
    free(g1);
    free(g2);
    free_case(&gc);
}

static void expect_spec_error(const char *spec, const rs_config *c, const char *needle)
{
    rs_objective obj;
    rs_error err = {0};
    assert_int_equal(parse_spec(spec, c, &obj, &err), RS_EINVAL);
    if (!strstr(err.msg, needle))
        fail_msg("%s: message '%s' lacks '%s'", spec, err.msg, needle);
    assert_null(strchr(err.msg, '\n'));
}

/* Bad specs are one-line errors quoting the value; other keys are left to the caller. */
static void grad_bad_specs(void **state)
{
    gcase gc;
    load_case(*(const char **)state, &gc); /* MoE blocks 0 and 1 of 2, E = 4 */
    const rs_config *c = &gc.m->cfg;
    expect_spec_error("loss=foo", NULL, "'foo'");
    expect_spec_error("loss=ce&router&jsd", NULL, "'ce&router&jsd'");
    expect_spec_error("loss=ce&", NULL, "'ce&'");
    expect_spec_error("beta=abc", NULL, "'abc'");
    expect_spec_error("beta=inf", NULL, "'inf'");
    expect_spec_error("target=-1", NULL, "'-1'");
    expect_spec_error("target=1x", NULL, "'1x'");
    expect_spec_error("target= 1", NULL, "' 1'");
    expect_spec_error("layers=+1", NULL, "'+1'");
    expect_spec_error("layers=1/x", NULL, "'1/x'");
    expect_spec_error("layers=40", NULL, "'40'");
    expect_spec_error("layers=", NULL, "''");
    expect_spec_error("layers=1//2", NULL, "'1//2'");
    expect_spec_error("loss=router-target", c, "needs target=");
    expect_spec_error("loss=router-target,target=label", c, "needs target=E (an expert)");
    expect_spec_error("loss=router-ce", c, "needs target=E (an expert) or target=label");
    expect_spec_error("target=labels", NULL, "'labels'");
    expect_spec_error("loss=router,target=1", c, "no router-target or router-ce term");
    expect_spec_error("loss=ce,target=label", c, "no router-target or router-ce term");
    expect_spec_error("loss=router-target,target=4", c, "4 experts");
    expect_spec_error("loss=router-ce,target=4", c, "4 experts");
    expect_spec_error("loss=router,layers=0/2", c, "block 2 is not a MoE block");
    rs_objective obj, before;
    rs_error err;
    rs_objective_init(&obj);
    before = obj;
    assert_int_equal(rs_objective_set(&obj, "eps", "4/255", &err), 0);
    assert_memory_equal(&obj, &before, sizeof obj);
    assert_int_equal(parse_spec("layers=1/0,loss=margin&ce,beta=-2", c, &obj, &err), 0);
    assert_int_equal(obj.block_mask, 3u);
    assert_int_equal(obj.num_terms, 2);
    assert_int_equal(obj.term[0], RS_OBJ_MARGIN);
    assert_int_equal(obj.term[1], RS_OBJ_CE);
    assert_true(obj.beta == -2.0);
    rs_objective zero = {0};
    assert_int_equal(rs_objective_check(&zero, c, &err), RS_EINVAL);

    /* Bad calls: nothing written, RS_EINVAL. */
    size_t img = (size_t)c->channels * c->image_h * c->image_w;
    float value[3] = {7, 7, 7}, *grad = malloc(sizeof(float) * 3 * img);
    rs_grad *g;
    assert_int_equal(rs_grad_create(gc.m, 3, 1, &g, &err), 0);
    assert_int_equal(parse_spec("loss=ce&router", c, &obj, &err), 0);
    const float *const *ref = (const float *const *)gc.ref_probs;
    assert_int_equal(rs_grad_run(g, &obj, gc.pixels, 4, gc.labels, ref, value, grad, &err), RS_EINVAL);
    assert_int_equal(rs_grad_run(g, &obj, gc.pixels, 3, NULL, ref, value, grad, &err), RS_EINVAL);
    assert_int_equal(rs_grad_run(g, &obj, gc.pixels, 3, gc.labels, NULL, value, grad, &err), RS_EINVAL);
    int32_t bad[3] = {0, (int32_t)c->num_classes, 0};
    assert_int_equal(rs_grad_run(g, &obj, gc.pixels, 3, bad, ref, value, grad, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "label"));
    assert_true(value[0] == 7 && value[1] == 7 && value[2] == 7);
    assert_int_equal(rs_grad_create(gc.m, 0, 1, &(rs_grad *){NULL}, &err), RS_EINVAL);
    rs_dispatch bad_d = {.capacity_factor = -1, .group_images = 2};
    assert_int_equal(rs_grad_create_dispatch(gc.m, 3, 1, &bad_d, &(rs_grad *){NULL}, &err), RS_EINVAL);
    bad_d = (rs_dispatch){.capacity_factor = 1, .group_images = 0};
    assert_int_equal(rs_grad_create_dispatch(gc.m, 3, 1, &bad_d, &(rs_grad *){NULL}, &err), RS_EINVAL);
    rs_grad_free(g);
    rs_grad_free(NULL);
    free(grad);
    free_case(&gc);
}

/* Value and gradient of SPEC for the case's pixels and LABELS into VALUE (B) and GRAD. */
static void run_spec(rs_grad *g, const gcase *gc, const char *spec, const int32_t *labels, float *value, float *grad)
{
    rs_objective obj;
    rs_error err;
    if (parse_spec(spec, &gc->m->cfg, &obj, &err) ||
        rs_grad_run(g, &obj, gc->pixels, gc->B, labels, NULL, value, grad, &err))
        fail_msg("%s: %s", spec, err.msg);
}

/* router-ce toward expert N is router-target toward N negated, bit for bit; target=label
 * takes the label mod E (labels 4, 1, 2 on E = 4 are experts 0, 1, 2); an image without a
 * label is refused. */
static void grad_router_ce(void **state)
{
    gcase gc;
    load_case(*(const char **)state, &gc); /* K = 5, E = 4 */
    const rs_config *c = &gc.m->cfg;
    assert_int_equal(gc.B, 3);
    assert_true(c->num_classes == 5 && c->num_experts == 4);
    size_t img = (size_t)c->channels * c->image_h * c->image_w, n = 3 * img;
    float v1[3], v2[3], *g1 = malloc(sizeof(float) * n), *g2 = malloc(sizeof(float) * n);
    rs_grad *g;
    rs_error err;
    assert_int_equal(rs_grad_create(gc.m, 3, 1, &g, &err), 0);
    run_spec(g, &gc, "loss=router-ce,target=2", NULL, v1, g1);
    run_spec(g, &gc, "loss=router-target,target=2", NULL, v2, g2);
    for (int b = 0; b < 3; b++)
        assert_true(v1[b] == -v2[b] && v1[b] > 0);
    for (size_t i = 0; i < n; i++)
        assert_true(g1[i] == -g2[i]);
    const int32_t labels[3] = {4, 1, 2};
    run_spec(g, &gc, "loss=router-ce,target=label", labels, v1, g1);
    for (int b = 0; b < 3; b++) {
        char spec[64];
        snprintf(spec, sizeof spec, "loss=router-ce,target=%d", labels[b] % 4);
        run_spec(g, &gc, spec, NULL, v2, g2);
        assert_true(v1[b] == v2[b]);
        assert_memory_equal(g1 + b * img, g2 + b * img, sizeof(float) * img);
    }
    rs_objective obj;
    assert_int_equal(parse_spec("loss=router-ce,target=label", c, &obj, &err), 0);
    assert_true(rs_objective_needs_labels(&obj) && !rs_objective_needs_ref(&obj));
    assert_int_equal(rs_grad_run(g, &obj, gc.pixels, 3, NULL, NULL, v1, g1, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "target=label need the labels"));
    assert_int_equal(parse_spec("loss=router-ce,target=3", c, &obj, &err), 0);
    assert_false(rs_objective_needs_labels(&obj));
    rs_grad_free(g);
    free(g1);
    free(g2);
    free_case(&gc);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_case(const struct dirent *d)
{
    const char *suffix = ".grad.safetensors";
    size_t n = strlen(d->d_name), ns = strlen(suffix);
    return !strncmp(d->d_name, "grad-", 5) && n > ns && !strcmp(d->d_name + n - ns, suffix);
}

int main(void)
{
    golden_dir = tu_dir("RS_GOLDEN_DIR", "tests/golden");
    struct dirent **list;
    int n = scandir(golden_dir, &list, is_case, by_name);
    if (n < 8) {
        fprintf(stderr, "test_grad: fewer than 8 grad-*.grad.safetensors in %s\n", golden_dir);
        return 1;
    }
    struct CMUnitTest *tests = calloc((size_t)n + 8, sizeof *tests);
    for (int i = 0; i < n; i++)
        tests[i] = (struct CMUnitTest){.name = list[i]->d_name, .test_func = grad_golden,
                                       .initial_state = list[i]->d_name};
    static const char token_case[] = "grad-token-k2-erf-pre.grad.safetensors";
    static const char gap_case[] = "grad-gap-k1-tanh.grad.safetensors";
    static const char k2_bpr_case[] = "grad-dispatch-k2-bpr.grad.safetensors";
    static const char k1_case[] = "grad-dispatch-k1-vanilla.grad.safetensors";
    static const char bf16_pad_case[] = "grad-dispatch-k1-bf16-pad.grad.safetensors";
    tests[n] = (struct CMUnitTest){.name = "forward_identical", .test_func = grad_forward_identical, .initial_state = (void *)gap_case};
    tests[n + 1] = (struct CMUnitTest){.name = "deterministic", .test_func = grad_deterministic, .initial_state = (void *)token_case};
    tests[n + 2] = (struct CMUnitTest){.name = "bad_specs", .test_func = grad_bad_specs, .initial_state = (void *)token_case};
    tests[n + 3] = (struct CMUnitTest){.name = "router_ce", .test_func = grad_router_ce, .initial_state = (void *)token_case};
    tests[n + 4] = (struct CMUnitTest){.name = "forward_identical_dispatch", .test_func = grad_forward_identical, .initial_state = (void *)k2_bpr_case};
    tests[n + 5] = (struct CMUnitTest){.name = "deterministic_dispatch", .test_func = grad_deterministic, .initial_state = (void *)k1_case};
    /* bfloat16 dispatch and a padded last group: the taped forward is still the forward pass,
     * and chunks of whole groups (the last one padded alike) give the same bytes. */
    tests[n + 6] = (struct CMUnitTest){.name = "forward_identical_bf16_pad", .test_func = grad_forward_identical, .initial_state = (void *)bf16_pad_case};
    tests[n + 7] = (struct CMUnitTest){.name = "deterministic_bf16_pad", .test_func = grad_deterministic, .initial_state = (void *)bf16_pad_case};
    int rc = _cmocka_run_group_tests("grad", tests, (size_t)n + 8, NULL, NULL);
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    free(tests);
    return rc;
}
