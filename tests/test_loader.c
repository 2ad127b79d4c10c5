/* Loader tests: every way a checkpoint can be broken gives one error naming the file
 * (and tensor), never a crash; and a valid file whose F32 tensors are misaligned or
 * stored as F16 still loads. The broken files are made here from a golden model by
 * editing its header or bytes. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "forward.h"
#include "model.h"
#include "testutil.h"

static char source[1024];  /* a valid golden model */
static char tmpdir[] = "/tmp/rs_test_loader_XXXXXX";

typedef struct file_parts {
    unsigned char *bytes;
    size_t size;
    json_t *header;
    const unsigned char *data; /* into bytes */
    size_t data_size;
} file_parts;

static file_parts split(void)
{
    file_parts p = {0};
    p.bytes = tu_read_file(source, &p.size);
    assert_non_null(p.bytes);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p.bytes[i];
    p.header = json_loadb((const char *)p.bytes + 8, hlen, 0, NULL);
    assert_non_null(p.header);
    p.data = p.bytes + 8 + hlen;
    p.data_size = p.size - 8 - hlen;
    return p;
}

/* Writes HEADER (padded with PAD spaces) and DATA to a new file; returns its path. */
static const char *join(const char *name, json_t *header, int pad, const void *data, size_t size)
{
    static char path[1100];
    snprintf(path, sizeof path, "%s/%s.safetensors", tmpdir, name);
    char *text = json_dumps(header, JSON_COMPACT);
    size_t hlen = strlen(text) + (size_t)pad;
    unsigned char *buf = malloc(8 + hlen + size);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, text, strlen(text));
    memset(buf + 8 + strlen(text), ' ', (size_t)pad);
    memcpy(buf + 8 + hlen, data, size);
    assert_int_equal(tu_write_file(path, buf, 8 + hlen + size), 0);
    free(buf);
    free(text);
    return path;
}

static void free_parts(file_parts *p)
{
    json_decref(p->header);
    free(p->bytes);
}

/* Opening PATH must fail with CODE and a message containing each of the NULL-terminated
 * fragments; the message is one line and starts with the path. */
static void expect_failure(const char *path, int code, ...)
{
    rs_model *m = (rs_model *)0x1;
    rs_error err = {0};
    int rc = rs_model_open(path, &m, &err);
    print_message("  %s\n", err.msg);
    assert_int_equal(rc, code);
    assert_null(m);
    assert_null(strchr(err.msg, '\n'));
    assert_int_equal(strncmp(err.msg, path, strlen(path)), 0);
    va_list ap;
    va_start(ap, code);
    for (const char *frag; (frag = va_arg(ap, const char *));) {
        if (!strstr(err.msg, frag))
            fail_msg("message '%s' lacks '%s'", err.msg, frag);
    }
    va_end(ap);
}

static void test_missing_file(void **state)
{
    (void)state;
    char path[1100];
    snprintf(path, sizeof path, "%s/nothing.safetensors", tmpdir);
    expect_failure(path, RS_EIO, "cannot open", "No such file", NULL);
}

static void test_truncated(void **state)
{
    (void)state;
    file_parts p = split();
    char path[1100];
    snprintf(path, sizeof path, "%s/short.safetensors", tmpdir);
    tu_write_file(path, p.bytes, 5);
    expect_failure(path, RS_EFORMAT, "too short", NULL);
    /* Cut inside the data section: the last tensors' offsets now point past the end. */
    tu_write_file(path, p.bytes, p.size - 100);
    expect_failure(path, RS_EFORMAT, "outside the data section", NULL);
    /* Cut inside the header. */
    tu_write_file(path, p.bytes, 64);
    expect_failure(path, RS_EFORMAT, "exceeds the file", NULL);
    free_parts(&p);
}

/* A file that is not safetensors at all (text, a database) is named as such. */
static void test_not_safetensors(void **state)
{
    (void)state;
    char path[1100];
    snprintf(path, sizeof path, "%s/notes.safetensors", tmpdir);
    static const char text[] = "SQLite format 3\0 these are not weights at all";
    tu_write_file(path, text, sizeof text);
    expect_failure(path, RS_EFORMAT, "notes.safetensors: not a safetensors file", "starts with \"SQLite format 3.\"",
                   NULL);
}

static void test_header_longer_than_file(void **state)
{
    (void)state;
    file_parts p = split();
    uint64_t big = (uint64_t)p.size + 1000;
    for (int i = 0; i < 8; i++)
        p.bytes[i] = (unsigned char)(big >> (8 * i));
    char path[1100];
    snprintf(path, sizeof path, "%s/long.safetensors", tmpdir);
    tu_write_file(path, p.bytes, p.size);
    expect_failure(path, RS_EFORMAT, "header length", "exceeds the file", NULL);
    /* A length near 2^64 must not wrap around. */
    memset(p.bytes, 0xff, 8);
    tu_write_file(path, p.bytes, p.size);
    expect_failure(path, RS_EFORMAT, "exceeds the file", NULL);
    free_parts(&p);
}

static void test_bad_json(void **state)
{
    (void)state;
    file_parts p = split();
    /* The header's closing brace becomes a comma: an object that never ends. */
    unsigned char *close = (unsigned char *)p.data - 1;
    while (*close == ' ')
        close--;
    assert_int_equal(*close, '}');
    *close = ',';
    char path[1100];
    snprintf(path, sizeof path, "%s/json.safetensors", tmpdir);
    tu_write_file(path, p.bytes, p.size);
    expect_failure(path, RS_EFORMAT, "not valid JSON", NULL);
    free_parts(&p);
}

static void test_unknown_dtype(void **state)
{
    (void)state;
    file_parts p = split();
    json_object_set_new(json_object_get(p.header, "head.bias"), "dtype", json_string("Q32"));
    expect_failure(join("dtype", p.header, 0, p.data, p.data_size), RS_EFORMAT, "tensor head.bias",
                   "dtype 'Q32' is not supported", NULL);
    free_parts(&p);
}

static void test_missing_tensor(void **state)
{
    (void)state;
    file_parts p = split();
    json_object_del(p.header, "blocks.2.moe.router.weight");
    expect_failure(join("missing", p.header, 0, p.data, p.data_size), RS_EFORMAT,
                   "tensor blocks.2.moe.router.weight is missing", NULL);
    free_parts(&p);
}

static void test_unexpected_tensor(void **state)
{
    (void)state;
    file_parts p = split();
    json_object_set_new(p.header, "blocks.0.mlp.fc3.weight",
                        json_pack("{s:s, s:[i], s:[i,i]}", "dtype", "F32", "shape", 0, "data_offsets", 0, 0));
    expect_failure(join("extra", p.header, 0, p.data, p.data_size), RS_EFORMAT,
                   "tensor blocks.0.mlp.fc3.weight is not part of the layout", NULL);
    free_parts(&p);
}

static void test_wrong_shape(void **state)
{
    (void)state;
    file_parts p = split();
    /* Same byte count, transposed: only the config check can see it. */
    json_t *t = json_object_get(p.header, "blocks.1.moe.router.weight");
    json_object_set_new(t, "shape", json_pack("[i,i]", 32, 4));
    expect_failure(join("shape", p.header, 0, p.data, p.data_size), RS_EFORMAT,
                   "tensor blocks.1.moe.router.weight: shape [32,4] but config wants [4,32]", NULL);
    /* A shape whose byte count disagrees with its offsets. */
    json_object_set_new(t, "shape", json_pack("[i,i]", 4, 31));
    expect_failure(join("shape2", p.header, 0, p.data, p.data_size), RS_EFORMAT,
                   "tensor blocks.1.moe.router.weight", "needs 496 bytes but data_offsets span 512", NULL);
    free_parts(&p);
}

static void test_bad_offsets(void **state)
{
    (void)state;
    file_parts p = split();
    json_t *offs = json_object_get(json_object_get(p.header, "head.bias"), "data_offsets");
    json_int_t begin = json_integer_value(json_array_get(offs, 0));
    json_int_t end = json_integer_value(json_array_get(offs, 1));
    /* Slide head.bias 4 bytes down, into its neighbour. */
    json_array_set_new(offs, 0, json_integer(begin - 4));
    json_array_set_new(offs, 1, json_integer(end - 4));
    expect_failure(join("overlap", p.header, 0, p.data, p.data_size), RS_EFORMAT, "overlap", NULL);
    json_array_set_new(offs, 0, json_integer((json_int_t)p.data_size));
    json_array_set_new(offs, 1, json_integer((json_int_t)p.data_size + (end - begin)));
    expect_failure(join("range", p.header, 0, p.data, p.data_size), RS_EFORMAT, "tensor head.bias",
                   "outside the data section", NULL);
    json_array_set_new(offs, 0, json_integer(end));
    json_array_set_new(offs, 1, json_integer(begin));
    expect_failure(join("reversed", p.header, 0, p.data, p.data_size), RS_EFORMAT, "begin <= end", NULL);
    free_parts(&p);
}

static void test_bad_metadata(void **state)
{
    (void)state;
    file_parts p = split();
    json_t *meta = json_object_get(p.header, "__metadata__");
    json_t *config = json_loads(json_string_value(json_object_get(meta, "config")), 0, NULL);
    json_t *saved = json_deep_copy(meta);

    json_object_set_new(meta, "format", json_string("pytorch"));
    expect_failure(join("format", p.header, 0, p.data, p.data_size), RS_EFORMAT, "format is \"pytorch\"", NULL);
    json_object_set_new(p.header, "__metadata__", json_deep_copy(saved));
    meta = json_object_get(p.header, "__metadata__");

    json_object_set_new(meta, "config", json_string("{\"hidden\": 32,"));
    expect_failure(join("config", p.header, 0, p.data, p.data_size), RS_EFORMAT, "config is not valid JSON", NULL);

    json_object_set_new(config, "top_k", json_integer(5));
    char *text = json_dumps(config, 0);
    json_object_set_new(meta, "config", json_string(text));
    free(text);
    expect_failure(join("topk", p.header, 0, p.data, p.data_size), RS_EFORMAT, "top_k is 5 but num_experts is 4",
                   NULL);

    json_object_set_new(config, "top_k", json_integer(2));
    json_object_del(config, "heads");
    text = json_dumps(config, 0);
    json_object_set_new(meta, "config", json_string(text));
    free(text);
    expect_failure(join("heads", p.header, 0, p.data, p.data_size), RS_EFORMAT, "key \"heads\" is missing", NULL);

    json_object_set_new(config, "heads", json_integer(5));
    text = json_dumps(config, 0);
    json_object_set_new(meta, "config", json_string(text));
    free(text);
    expect_failure(join("heads5", p.header, 0, p.data, p.data_size), RS_EFORMAT, "heads 5 does not divide hidden 32",
                   NULL);

    json_object_set_new(meta, "config", json_integer(3));
    expect_failure(join("configint", p.header, 0, p.data, p.data_size), RS_EFORMAT, "is not a string", NULL);
    json_decref(config);
    json_decref(saved);
    free_parts(&p);
}

/* A NaN or an infinity in any weight fails the open, naming the tensor and element. */
static void test_non_finite_weights(void **state)
{
    (void)state;
    static const struct {
        const char *tensor;
        uint32_t bits;
        const char *what;
    } cases[] = {{"blocks.1.moe.router.weight", 0x7fc00000u, "element 3 is NaN"},
                 {"head.bias", 0xff800000u, "element 3 is infinite"}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        file_parts p = split();
        json_t *t = json_object_get(p.header, cases[k].tensor);
        assert_string_equal(json_string_value(json_object_get(t, "dtype")), "F32");
        size_t at = (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
        unsigned char *data = malloc(p.data_size);
        memcpy(data, p.data, p.data_size);
        memcpy(data + at + 3 * sizeof(float), &cases[k].bits, sizeof(float));
        expect_failure(join("nonfinite", p.header, 0, data, p.data_size), RS_EFORMAT, cases[k].tensor,
                       cases[k].what, NULL);
        free(data);
        free_parts(&p);
    }
}

/* Config numbers whose float is infinite, denormal or zero are refused: each would turn
 * every input or every layer norm into infinities. */
static void test_config_number_ranges(void **state)
{
    (void)state;
    static const struct {
        const char *key, *json, *message;
    } cases[] = {{"mean", "[1e308]", "mean[0] is not a number in float range"},
                 {"mean", "[5000]", "mean[0] is 5000, outside"},
                 {"std", "[1e-40]", "std[0] is 1e-40, outside"},
                 {"std", "[0]", "std[0] is 0, outside"},
                 {"layer_norm_eps", "1e-50", "layer_norm_eps must be a number in [1e-12, 1)"}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        file_parts p = split();
        json_t *meta = json_object_get(p.header, "__metadata__");
        json_t *config = json_loads(json_string_value(json_object_get(meta, "config")), 0, NULL);
        json_t *bad = json_loads(cases[k].json, JSON_DECODE_ANY, NULL);
        json_t *old = json_object_get(config, cases[k].key);
        for (size_t i = 1; json_is_array(bad) && i < json_array_size(old); i++) /* the other channels as they were */
            json_array_append(bad, json_array_get(old, i));
        json_object_set_new(config, cases[k].key, bad);
        char *text = json_dumps(config, 0);
        json_object_set_new(meta, "config", json_string(text));
        free(text);
        expect_failure(join("ranges", p.header, 0, p.data, p.data_size), RS_EFORMAT, cases[k].message, NULL);
        json_decref(config);
        free_parts(&p);
    }
}

/* Like every _free, rs_config_free accepts NULL, and a config twice freed is harmless. */
static void test_config_free_null(void **state)
{
    (void)state;
    rs_config_free(NULL);
    rs_config cfg;
    rs_error err;
    assert_int_not_equal(rs_config_parse("{}", &cfg, &err), 0);
    rs_config_free(&cfg);
    rs_config_free(&cfg);
}

/* Adds tensor NAME of SHAPE (F16, zeros) to HEADER at *OFFSET. */
static void add_f16(json_t *header, const char *name, int ndim, const int *shape, size_t *offset)
{
    json_t *dims = json_array();
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        json_array_append_new(dims, json_integer(shape[i]));
        n *= (size_t)shape[i];
    }
    json_object_set_new(header, name, json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F16", "shape", dims,
                                                 "data_offsets", (json_int_t)*offset,
                                                 (json_int_t)(*offset + 2 * n)));
    *offset += 2 * n;
}

/* A model whose attention alone needs terabytes: 1,048,577 tokens make a T x T score
 * matrix of 4.4 TB. The message names the file and the workspace (not the batch size,
 * which does not change it). Its weights are zeros (a file with a hole), so the open is
 * quick. AddressSanitizer refuses such an allocation outright (it does not return NULL):
 * release build only. */
static void test_forward_out_of_memory_message(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip();
#else
    enum { D = 4, M = 4, K = 2, E = 2, T = 1024 * 1024 + 1 };
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", json_pack("{s:s, s:s}", "format", "routerscope-vmoe", "config",
        "{\"image_size\": [2048, 2048], \"channels\": 1, \"patch_size\": 2, \"hidden\": 4, \"depth\": 1,"
        " \"heads\": 1, \"mlp_dim\": 4, \"num_classes\": 2, \"moe_layers\": [0], \"num_experts\": 2,"
        " \"top_k\": 1, \"classifier\": \"token\", \"gelu\": \"erf\", \"mean\": [0.5], \"std\": [0.5],"
        " \"representation\": false, \"layer_norm_eps\": 1e-6}"));
    size_t off = 0;
    add_f16(h, "patch_embed.weight", 4, (int[]){D, 1, 2, 2}, &off);
    add_f16(h, "patch_embed.bias", 1, (int[]){D}, &off);
    add_f16(h, "cls_token", 3, (int[]){1, 1, D}, &off);
    add_f16(h, "pos_embed", 3, (int[]){1, T, D}, &off);
    static const char *const vec[] = {"blocks.0.norm1.weight", "blocks.0.norm1.bias", "blocks.0.norm2.weight",
                                      "blocks.0.norm2.bias", "blocks.0.attn.proj.bias", "norm.weight", "norm.bias"};
    for (size_t i = 0; i < sizeof vec / sizeof *vec; i++)
        add_f16(h, vec[i], 1, (int[]){D}, &off);
    add_f16(h, "blocks.0.attn.qkv.weight", 2, (int[]){3 * D, D}, &off);
    add_f16(h, "blocks.0.attn.qkv.bias", 1, (int[]){3 * D}, &off);
    add_f16(h, "blocks.0.attn.proj.weight", 2, (int[]){D, D}, &off);
    add_f16(h, "blocks.0.moe.router.weight", 2, (int[]){E, D}, &off);
    add_f16(h, "blocks.0.moe.experts.fc1.weight", 3, (int[]){E, M, D}, &off);
    add_f16(h, "blocks.0.moe.experts.fc1.bias", 2, (int[]){E, M}, &off);
    add_f16(h, "blocks.0.moe.experts.fc2.weight", 3, (int[]){E, D, M}, &off);
    add_f16(h, "blocks.0.moe.experts.fc2.bias", 2, (int[]){E, D}, &off);
    add_f16(h, "head.weight", 2, (int[]){K, D}, &off);
    add_f16(h, "head.bias", 1, (int[]){K}, &off);
    static const unsigned char none[1];
    const char *path = join("huge_attention", h, 0, none, 0);
    json_decref(h);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size + (off_t)off), 0);
    rs_model *m;
    rs_forward *f = NULL;
    rs_error err;
    if (rs_model_open(path, &m, &err))
        fail_msg("%s", err.msg);
    int rc = rs_forward_create(m, 1, 1, &f, &err);
    print_message("  %s\n", err.msg);
    assert_int_equal(rc, RS_ENOMEM);
    assert_null(f);
    assert_int_equal(strncmp(err.msg, path, strlen(path)), 0);
    assert_non_null(strstr(err.msg, "workspace"));
    assert_non_null(strstr(err.msg, "1048577 x 1048577 attention scores"));
    assert_null(strstr(err.msg, "batch"));
    rs_model_close(m);
#endif
}

/* Realigned and widened tensors give the same outputs as the mapped original. */
static void forward_logits(const char *path, float *logits, size_t *copied)
{
    rs_model *m;
    rs_forward *f;
    rs_error err;
    if (rs_model_open(path, &m, &err))
        fail_msg("%s", err.msg);
    *copied = m->copied_bytes;
    const rs_config *c = &m->cfg;
    size_t n = (size_t)c->channels * c->image_h * c->image_w;
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    assert_int_equal(rs_forward_create(m, 1, 1, &f, &err), 0);
    assert_int_equal(rs_forward_run(f, x, 1, &err), 0);
    memcpy(logits, rs_forward_result(f)->logits, sizeof(float) * c->num_classes);
    free(x);
    rs_forward_free(f);
    rs_model_close(m);
}

static void test_unaligned_loads(void **state)
{
    (void)state;
    file_parts p = split();
    float a[64], b[64];
    size_t copied_a, copied_b;
    forward_logits(source, a, &copied_a);
    assert_int_equal(copied_a, 0); /* every F32 tensor is a view into the file */
    forward_logits(join("unaligned", p.header, 2, p.data, p.data_size), b, &copied_b);
    assert_true(copied_b > 0);
    assert_memory_equal(a, b, sizeof(float) * 10);
    free_parts(&p);
}

/* Random byte edits anywhere in the header or the first data bytes: each file must either
 * load (and then run) or fail with a message, never crash — ASan watches in the sanitizer
 * build. Deterministic: a fixed linear congruential sequence. */
static void test_random_corruption(void **state)
{
    (void)state;
    file_parts p = split();
    size_t header_end = (size_t)(p.data - p.bytes);
    unsigned char *copy = malloc(p.size);
    char path[1100];
    snprintf(path, sizeof path, "%s/fuzz.safetensors", tmpdir);
    uint32_t rng = 2024;
    int loaded = 0, refused = 0;
    for (int round = 0; round < 400; round++) {
        memcpy(copy, p.bytes, p.size);
        for (int edits = 1 + round % 3; edits > 0; edits--) {
            rng = rng * 1664525u + 1013904223u;
            size_t at = (rng >> 8) % (header_end + 64);
            rng = rng * 1664525u + 1013904223u;
            copy[at] = (unsigned char)(rng >> 24);
        }
        assert_int_equal(tu_write_file(path, copy, p.size), 0);
        rs_model *m;
        rs_error err = {0};
        if (rs_model_open(path, &m, &err) == 0) {
            rs_forward *f;
            assert_int_equal(rs_forward_create(m, 2, 1, &f, &err), 0);
            size_t n = 2 * (size_t)m->cfg.channels * m->cfg.image_h * m->cfg.image_w;
            float *x = calloc(n, sizeof *x);
            assert_int_equal(rs_forward_run(f, x, 2, &err), 0);
            free(x);
            rs_forward_free(f);
            rs_model_close(m);
            loaded++;
        } else {
            assert_true(err.msg[0] != '\0');
            assert_null(strchr(err.msg, '\n'));
            refused++;
        }
    }
    print_message("  %d corrupted files refused, %d still valid and run\n", refused, loaded);
    assert_true(refused > 200);
    free(copy);
    free_parts(&p);
}

int main(void)
{
    snprintf(source, sizeof source, "%s/token_k2_e4.safetensors", tu_dir("RS_GOLDEN_DIR", "tests/golden"));
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file),    cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_header_longer_than_file), cmocka_unit_test(test_not_safetensors),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_unknown_dtype),   cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_unexpected_tensor), cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_bad_offsets),     cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_non_finite_weights),
        cmocka_unit_test(test_config_number_ranges),
        cmocka_unit_test(test_config_free_null),
        cmocka_unit_test(test_forward_out_of_memory_message),
        cmocka_unit_test(test_unaligned_loads), cmocka_unit_test(test_random_corruption),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_remove_dir(tmpdir);
    return failed;
}
