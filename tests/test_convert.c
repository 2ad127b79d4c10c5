/* Tests of the google-research/vmoe reader and converter (model/vmoe_ckpt.c).
 *
 * - golden: tests/golden/vmoe/small.* (pytorch/vmoe_checkpoint.py: 3 shards, expert and
 *   query kernels split across shards, subchunked arrays, BF16 and F16 leaves, params under
 *   "params/") converts to a model whose C forward pass matches the float64 reference:
 *   logits within 1e-4, router probabilities within 1e-5.
 * - by hand: a 2x3 array assembled from two shards (one slice BF16 in two subchunks),
 *   an unused int32 leaf skipped.
 * - errors, each one line naming the file: missing shard, unknown ext type, truncated
 *   index, chunk/slice shape mismatch, slices that do not cover the array.
 * - presets: each writes k and its vmoe config's evaluation dispatch (capacity factor,
 *   group, BPR, bfloat16 dispatch) into the converted config; an unknown one is refused. */
#include <math.h>
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "forward.h"
#include "model.h"
#include "testutil.h"
#include "vmoe_ckpt.h"

static const char *golden_dir;
static char scratch[64];

/* ---- writing small checkpoints by hand ---------------------------------------------------- */

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void pack_bin(msgpack_packer *pk, const msgpack_sbuffer *b)
{
    msgpack_pack_bin(pk, b->size);
    msgpack_pack_bin_body(pk, b->data, b->size);
}

/* slice_nd bytes for NDIM [start, stop) pairs. */
static void slice_nd(msgpack_sbuffer *out, int ndim, const int *start, const int *stop)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)ndim);
    for (int d = 0; d < ndim; d++) {
        msgpack_sbuffer s;
        msgpack_packer p2;
        msgpack_sbuffer_init(&s);
        msgpack_packer_init(&p2, &s, msgpack_sbuffer_write);
        msgpack_pack_array(&p2, 3);
        msgpack_pack_int(&p2, start[d]);
        msgpack_pack_int(&p2, stop[d]);
        msgpack_pack_nil(&p2);
        pack_bin(&pk, &s);
        msgpack_sbuffer_destroy(&s);
    }
}

static void pack_ext(msgpack_packer *pk, int type, const msgpack_sbuffer *b)
{
    msgpack_pack_ext(pk, b->size, (int8_t)type);
    msgpack_pack_ext_body(pk, b->data, b->size);
}

/* ext 1: [shape (N), dtype, bytes]. */
static void pack_ndarray(msgpack_packer *pk, const char *dtype, const void *bytes, size_t nbytes, int n)
{
    msgpack_sbuffer s;
    msgpack_packer p2;
    msgpack_sbuffer_init(&s);
    msgpack_packer_init(&p2, &s, msgpack_sbuffer_write);
    msgpack_pack_array(&p2, 3);
    msgpack_pack_array(&p2, 1);
    msgpack_pack_int(&p2, n);
    pack_cstr(&p2, dtype);
    msgpack_pack_bin(&p2, nbytes);
    msgpack_pack_bin_body(&p2, bytes, nbytes);
    pack_ext(pk, 1, &s);
    msgpack_sbuffer_destroy(&s);
}

/* ext 8 for a 2x3 array of DTYPE stored as NSLICES row slices, slice i in shard i. */
static void pack_index_info(msgpack_packer *pk, const char *dtype, int nslices)
{
    msgpack_sbuffer shaped, info, sl;
    msgpack_packer p2;
    msgpack_sbuffer_init(&shaped);
    msgpack_packer_init(&p2, &shaped, msgpack_sbuffer_write);
    msgpack_pack_array(&p2, 4);
    msgpack_pack_array(&p2, 2);
    msgpack_pack_int(&p2, 2);
    msgpack_pack_int(&p2, 3);
    pack_cstr(&p2, dtype);
    msgpack_pack_false(&p2);
    msgpack_pack_map(&p2, 0);
    msgpack_sbuffer_init(&info);
    msgpack_packer_init(&p2, &info, msgpack_sbuffer_write);
    msgpack_pack_array(&p2, 3);
    pack_bin(&p2, &shaped);
    msgpack_pack_array(&p2, (size_t)nslices);
    for (int i = 0; i < nslices; i++) {
        slice_nd(&sl, 2, (int[]){i, 0}, (int[]){i + 1, 3});
        pack_bin(&p2, &sl);
        msgpack_sbuffer_destroy(&sl);
    }
    msgpack_pack_array(&p2, (size_t)nslices);
    for (int i = 0; i < nslices; i++)
        msgpack_pack_int(&p2, i);
    pack_ext(pk, 8, &info);
    msgpack_sbuffer_destroy(&shaped);
    msgpack_sbuffer_destroy(&info);
}

static void write_buf(const char *path, const msgpack_sbuffer *b)
{
    assert_int_equal(tu_write_file(path, b->data, b->size), 0);
}

enum { HAND_OK, HAND_UNKNOWN_EXT, HAND_SHAPE_MISMATCH, HAND_INCOMPLETE, HAND_EMPTY_DTYPE };

/* PREFIX: {"index": {"w": index_info 2x3 float32 in rows 0 | 1, "z_step": int32 scalar},
 * "shard_count": 2}. Row 0 in shard 0 as float32 [1,2,3]; row 1 in shard 1 as bfloat16
 * [4,5] + [6] (two subchunks). Variants break one thing. */
static void write_hand(const char *prefix, int variant)
{
    char path[256];
    msgpack_sbuffer b;
    msgpack_packer pk;
    msgpack_sbuffer_init(&b);
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_cstr(&pk, "shard_count");
    msgpack_pack_int(&pk, 2);
    pack_cstr(&pk, "index");
    msgpack_pack_map(&pk, 2);
    pack_cstr(&pk, "z_step"); /* sorts after "w": array index 1 */
    msgpack_sbuffer shaped;
    msgpack_packer p2;
    msgpack_sbuffer_init(&shaped);
    msgpack_packer_init(&p2, &shaped, msgpack_sbuffer_write);
    msgpack_pack_array(&p2, 3);
    { /* int32 scalar, one empty slice in shard 0 */
        msgpack_sbuffer sa, sl;
        msgpack_packer p3;
        msgpack_sbuffer_init(&sa);
        msgpack_packer_init(&p3, &sa, msgpack_sbuffer_write);
        msgpack_pack_array(&p3, 4);
        msgpack_pack_array(&p3, 0);
        pack_cstr(&p3, "int32");
        msgpack_pack_false(&p3);
        msgpack_pack_map(&p3, 0);
        pack_bin(&p2, &sa);
        msgpack_pack_array(&p2, 1);
        slice_nd(&sl, 0, NULL, NULL);
        pack_bin(&p2, &sl);
        msgpack_pack_array(&p2, 1);
        msgpack_pack_int(&p2, 0);
        msgpack_sbuffer_destroy(&sa);
        msgpack_sbuffer_destroy(&sl);
    }
    pack_ext(&pk, 8, &shaped);
    msgpack_sbuffer_destroy(&shaped);
    pack_cstr(&pk, "w");
    if (variant == HAND_UNKNOWN_EXT) {
        msgpack_pack_ext(&pk, 3, 42);
        msgpack_pack_ext_body(&pk, "abc", 3);
    } else {
        pack_index_info(&pk, variant == HAND_EMPTY_DTYPE ? "" : "float32", variant == HAND_INCOMPLETE ? 1 : 2);
    }
    snprintf(path, sizeof path, "%s.index", prefix);
    write_buf(path, &b);
    msgpack_sbuffer_destroy(&b);

    static const float row0[3] = {1, 2, 3};
    static const uint16_t row1[3] = {0x4080, 0x40a0, 0x40c0}; /* 4, 5, 6 in bfloat16 */
    for (int shard = 0; shard < 2; shard++) {
        msgpack_sbuffer_init(&b);
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        pack_cstr(&pk, "__msgpack_array_chunk_a87ca2__");
        msgpack_pack_true(&pk);
        pack_cstr(&pk, "0");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_array(&pk, 2);
        if (shard == 0) {
            int n = variant == HAND_SHAPE_MISMATCH ? 2 : 3;
            msgpack_pack_array(&pk, 1);
            pack_ndarray(&pk, "float32", row0, sizeof(float) * (size_t)n, n);
        } else {
            msgpack_pack_array(&pk, 2);
            pack_ndarray(&pk, "bfloat16", row1, 4, 2);
            pack_ndarray(&pk, "bfloat16", row1 + 2, 2, 1);
        }
        msgpack_sbuffer sl;
        slice_nd(&sl, 2, (int[]){shard, 0}, (int[]){shard + 1, 3});
        pack_ext(&pk, 6, &sl);
        msgpack_sbuffer_destroy(&sl);
        snprintf(path, sizeof path, "%s.data-%05d-of-00002", prefix, shard);
        write_buf(path, &b);
        msgpack_sbuffer_destroy(&b);
    }
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_hand_assembled(void **state)
{
    (void)state;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s/hand", scratch);
    write_hand(prefix, HAND_OK);
    rs_vmoe_ckpt *ck;
    rs_error err;
    int rc = rs_vmoe_ckpt_read(prefix, &ck, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(ck->count, 2);
    const rs_vmoe_array *w = rs_vmoe_ckpt_find(ck, "w");
    assert_non_null(w);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    for (int i = 0; i < 6; i++)
        assert_true(w->data[i] == (float)(i + 1));
    const rs_vmoe_array *step = rs_vmoe_ckpt_find(ck, "z_step");
    assert_non_null(step);
    assert_false(step->is_float);
    assert_null(step->data);
    rs_vmoe_ckpt_free(ck);
}

static void expect_error(const char *prefix, const char *want1, const char *want2)
{
    rs_vmoe_ckpt *ck = NULL;
    rs_error err = {0};
    int rc = rs_vmoe_ckpt_read(prefix, &ck, &err);
    assert_true(rc < 0);
    assert_null(ck);
    if (!strstr(err.msg, want1) || (want2 && !strstr(err.msg, want2)))
        fail_msg("error '%s' lacks '%s' / '%s'", err.msg, want1, want2 ? want2 : "");
    assert_null(strchr(err.msg, '\n'));
}

static void test_errors(void **state)
{
    (void)state;
    char prefix[128], path[160];
    snprintf(prefix, sizeof prefix, "%s/bad", scratch);

    write_hand(prefix, HAND_OK);
    snprintf(path, sizeof path, "%s.data-00001-of-00002", prefix);
    assert_int_equal(unlink(path), 0);
    expect_error(prefix, "bad.data-00001-of-00002: cannot open", NULL);

    write_hand(prefix, HAND_UNKNOWN_EXT);
    expect_error(prefix, "bad.index: leaf 'w' has ext type 42", "unknown ext type");

    write_hand(prefix, HAND_SHAPE_MISMATCH);
    expect_error(prefix, "bad.data-00000-of-00002: array 0 (w): chunk has 2 values but slice [0:1,0:3] holds 3",
                 "shape mismatch");

    /* An empty dtype name (found by fuzz_convert: msgpack-c's NULL pointer for an empty
     * string reached memcpy, which UBSan stops) is a dtype like any other we skip. */
    write_hand(prefix, HAND_EMPTY_DTYPE);
    rs_vmoe_ckpt *ck = NULL;
    rs_error e2;
    assert_int_equal(rs_vmoe_ckpt_read(prefix, &ck, &e2), 0);
    const rs_vmoe_array *w = rs_vmoe_ckpt_find(ck, "w");
    assert_non_null(w);
    assert_string_equal(w->dtype, "");
    assert_false(w->is_float);
    rs_vmoe_ckpt_free(ck);

    write_hand(prefix, HAND_INCOMPLETE);
    expect_error(prefix, "array 0 (w): the shards hold 3 of its 6 values", "cannot be assembled");

    /* The golden index cut in half. */
    size_t size;
    snprintf(path, sizeof path, "%s/vmoe/small.index", golden_dir);
    unsigned char *data = tu_read_file(path, &size);
    assert_non_null(data);
    snprintf(path, sizeof path, "%s.index", prefix);
    assert_int_equal(tu_write_file(path, data, size / 2), 0);
    free(data);
    expect_error(prefix, "bad.index: truncated msgpack data", NULL);

    /* Containers declaring more elements than the file holds (found by fuzz_convert):
     * msgpack-c would allocate for the count first, 64 GB for an array of 2^32 - 1. */
    static const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const unsigned char huge_map[] = {0x81, 0xa5, 'i', 'n', 'd', 'e', 'x', 0xdf, 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(tu_write_file(path, huge_array, sizeof huge_array), 0);
    expect_error(prefix, "bad.index: a msgpack array or map declares more elements than the data holds", NULL);
    assert_int_equal(tu_write_file(path, huge_map, sizeof huge_map), 0);
    expect_error(prefix, "bad.index: a msgpack array or map declares more elements than the data holds", NULL);

    rs_error err;
    assert_int_equal(rs_vmoe_ckpt_read("/nonexistent/ckpt", &(rs_vmoe_ckpt *){NULL}, &err), RS_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/ckpt.index: cannot open"));
}

static void test_golden_convert(void **state)
{
    (void)state;
    char prefix[256], out[160], ref_path[256], summary[256];
    snprintf(prefix, sizeof prefix, "%s/vmoe/small", golden_dir);
    snprintf(out, sizeof out, "%s/small.safetensors", scratch);
    snprintf(ref_path, sizeof ref_path, "%s/vmoe/small.ref.safetensors", golden_dir);
    rs_vmoe_options opt = {.preset = NULL, .top_k = 0, .image_size = 0, .classifier = -1, .gelu = -1};
    rs_error err;
    /* k cannot be read from the tensors */
    assert_int_equal(rs_vmoe_convert(prefix, out, &opt, NULL, 0, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "--top-k"));
    opt.top_k = 2;
    if (rs_vmoe_convert(prefix, out, &opt, summary, sizeof summary, &err))
        fail_msg("%s", err.msg);
    assert_string_equal(summary, "16x16x3 P4 D32 L3 H4 M64 K10 E4 k2 moe[1,2] token gelu=tanh pre_logits");

    rs_model *m;
    if (rs_model_open(out, &m, &err))
        fail_msg("%s", err.msg);
    const rs_config *c = &m->cfg;
    assert_int_equal(c->num_moe, 2);
    assert_int_equal(c->moe_layers[0], 1);
    assert_int_equal(c->moe_layers[1], 2);
    assert_int_equal(c->top_k, 2);
    assert_true(c->representation);
    assert_true(c->mean[0] == 0.5f && c->std[2] == 0.5f);

    rs_safetensors *ref;
    if (rs_safetensors_open(ref_path, &ref, &err))
        fail_msg("%s", err.msg);
    size_t n_in, n_logits;
    float *input = tu_tensor_f32(ref, "input", &n_in);
    float *logits = tu_tensor_f32(ref, "logits", &n_logits);
    assert_non_null(input);
    assert_non_null(logits);
    int B = (int)(n_logits / (size_t)c->num_classes);
    rs_forward *f;
    assert_int_equal(rs_forward_create(m, B, 1, &f, &err), 0);
    assert_int_equal(rs_forward_run(f, input, B, &err), 0);
    const rs_forward_out *o = rs_forward_result(f);
    float worst = 0;
    for (size_t i = 0; i < n_logits; i++)
        worst = fmaxf(worst, fabsf(o->logits[i] - logits[i]));
    if (worst > 1e-4f)
        fail_msg("logits differ from the reference by %g", worst);
    for (int s = 0; s < c->num_moe; s++) {
        char name[32];
        size_t n;
        snprintf(name, sizeof name, "router.%d", c->moe_layers[s]);
        float *probs = tu_tensor_f32(ref, name, &n);
        assert_non_null(probs);
        assert_int_equal(n, (size_t)B * rs_config_tokens(c) * c->num_experts);
        float w = 0;
        for (size_t i = 0; i < n; i++)
            w = fmaxf(w, fabsf(o->moe[s].probs[i] - probs[i]));
        if (w > 1e-5f)
            fail_msg("%s differs from the reference by %g", name, w);
        free(probs);
    }
    rs_forward_free(f);
    free(input);
    free(logits);
    rs_safetensors_close(ref);
    rs_model_close(m);

    /* Flags that contradict the checkpoint. */
    opt.classifier = RS_CLASSIFIER_GAP;
    assert_int_equal(rs_vmoe_convert(prefix, out, &opt, NULL, 0, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "has a 'cls' token"));
    opt.classifier = -1;
    opt.image_size = 20;
    assert_int_equal(rs_vmoe_convert(prefix, out, &opt, NULL, 0, &err), RS_EFORMAT);
    assert_non_null(strstr(err.msg, "not a square grid"));
}

static void test_presets(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        double factor;
        int group;
    } want[] = {{"vmoe-s32-last2", 4.0, 8}, {"vmoe-s32-last2-ft384", 1.5, 8}, {"vmoe-b16-ft384", 1.5, 8},
                {"vmoe-attack", 1.5, 4}};
    char prefix[256], out[160];
    snprintf(prefix, sizeof prefix, "%s/vmoe/small", golden_dir);
    snprintf(out, sizeof out, "%s/preset.safetensors", scratch);
    rs_error err;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        rs_vmoe_options opt = {.preset = want[i].name, .top_k = 0, .image_size = 0, .classifier = -1, .gelu = -1};
        if (rs_vmoe_convert(prefix, out, &opt, NULL, 0, &err))
            fail_msg("%s: %s", want[i].name, err.msg);
        rs_model *m;
        if (rs_model_open(out, &m, &err))
            fail_msg("%s", err.msg);
        const rs_dispatch *d = &m->cfg.dispatch;
        assert_int_equal(m->cfg.top_k, 2);
        assert_true(d->capacity_factor == want[i].factor);
        assert_int_equal(d->group_images, want[i].group);
        assert_false(d->bpr);
        assert_true(d->bf16);
        rs_model_close(m);
    }
    rs_vmoe_options bad = {.preset = "vmoe-l16", .top_k = 0, .image_size = 0, .classifier = -1, .gelu = -1};
    assert_int_equal(rs_vmoe_convert(prefix, out, &bad, NULL, 0, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "unknown preset 'vmoe-l16'"));
    unlink(out);
}

int main(void)
{
    golden_dir = tu_dir("RS_GOLDEN_DIR", "tests/golden");
    snprintf(scratch, sizeof scratch, "/tmp/rs_convert_XXXXXX");
    if (!mkdtemp(scratch))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_assembled),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_golden_convert),
        cmocka_unit_test(test_presets),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tu_remove_dir(scratch);
    return rc;
}
