#include "config.h"

#include <jansson.h>
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rs_number.h"

/* Upper bounds that no real checkpoint reaches; they keep later size arithmetic
 * (B * T * M floats) far from overflow when a header is corrupt. */
#define RS_MAX_DIM 65536
#define RS_MAX_IMAGE 4096
/* Bounds of the input normalisation: |mean| and std at most RS_MAX_NORM, std at least
 * RS_MIN_STD, so that (x - mean) / std of a [0,1] pixel stays a modest finite float. */
#define RS_MAX_NORM 1000.0
#define RS_MIN_STD 1e-6

static int get_int(json_t *obj, const char *key, int lo, int hi, int *out, rs_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return rs_error_set(err, RS_EFORMAT, "config: key \"%s\" is missing", key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return rs_error_set(err, RS_EFORMAT, "config: %s must be an integer in [%d, %d]", key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

static int get_bool(json_t *obj, const char *key, bool optional, bool *out, rs_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v && optional) {
        *out = false;
        return 0;
    }
    if (!v)
        return rs_error_set(err, RS_EFORMAT, "config: key \"%s\" is missing", key);
    if (!json_is_boolean(v))
        return rs_error_set(err, RS_EFORMAT, "config: %s must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* Which of CHOICES (NULL-terminated) the string at KEY is. */
static int get_choice(json_t *obj, const char *key, const char *const *choices, int *out,
                      rs_error *err)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (!s)
        return rs_error_set(err, RS_EFORMAT, "config: key \"%s\" is missing or not a string", key);
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(s, choices[i])) {
            *out = i;
            return 0;
        }
    }
    return rs_error_set(err, RS_EFORMAT, "config: %s \"%s\" is not one of %s or %s", key, s,
                        choices[0], choices[1]);
}

static int get_floats(json_t *obj, const char *key, int n, float *out, rs_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return rs_error_set(err, RS_EFORMAT, "config: %s must be an array of %d numbers", key, n);
    for (int i = 0; i < n; i++) {
        json_t *x = json_array_get(v, (size_t)i);
        /* A double beyond float's range has no float value (converting it is undefined). */
        if (!json_is_number(x) || !(fabs(json_number_value(x)) <= FLT_MAX))
            return rs_error_set(err, RS_EFORMAT, "config: %s[%d] is not a number in float range", key, i);
        out[i] = (float)json_number_value(x);
    }
    return 0;
}

static int parse_image_size(json_t *root, rs_config *c, rs_error *err)
{
    json_t *v = json_object_get(root, "image_size");
    json_t *h = json_array_get(v, 0), *w = json_array_get(v, 1);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(h) || !json_is_integer(w) ||
        json_integer_value(h) < 1 || json_integer_value(h) > RS_MAX_IMAGE ||
        json_integer_value(w) < 1 || json_integer_value(w) > RS_MAX_IMAGE)
        return rs_error_set(err, RS_EFORMAT, "config: image_size must be [H, W] with 1 <= H, W <= %d",
                            RS_MAX_IMAGE);
    c->image_h = (int)json_integer_value(h);
    c->image_w = (int)json_integer_value(w);
    return 0;
}

static int parse_moe_layers(json_t *root, rs_config *c, rs_error *err)
{
    json_t *v = json_object_get(root, "moe_layers");
    if (!json_is_array(v) || json_array_size(v) > (size_t)c->depth)
        return rs_error_set(err, RS_EFORMAT, "config: moe_layers must be an array of block indices");
    c->num_moe = (int)json_array_size(v);
    for (int i = 0; i < c->num_moe; i++) {
        json_t *x = json_array_get(v, (size_t)i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= c->depth)
            return rs_error_set(err, RS_EFORMAT, "config: moe_layers[%d] is not a block index in [0, %d)",
                                i, c->depth);
        c->moe_layers[i] = (int)json_integer_value(x);
        if (i > 0 && c->moe_layers[i] <= c->moe_layers[i - 1])
            return rs_error_set(err, RS_EFORMAT, "config: moe_layers must be strictly increasing");
    }
    return 0;
}

static int parse_labels(json_t *root, rs_config *c, rs_error *err)
{
    json_t *v = json_object_get(root, "labels");
    if (!v)
        return 0;
    if (!json_is_array(v) || (int)json_array_size(v) != c->num_classes)
        return rs_error_set(err, RS_EFORMAT, "config: labels must be an array of %d strings",
                            c->num_classes);
    c->labels = calloc((size_t)c->num_classes, sizeof *c->labels);
    if (!c->labels)
        return rs_error_set(err, RS_ENOMEM, "config: out of memory");
    for (int i = 0; i < c->num_classes; i++) {
        const char *s = json_string_value(json_array_get(v, (size_t)i));
        if (!s)
            return rs_error_set(err, RS_EFORMAT, "config: labels[%d] is not a string", i);
        if (!(c->labels[i] = strdup(s)))
            return rs_error_set(err, RS_ENOMEM, "config: out of memory");
    }
    return 0;
}

/* The optional "dispatch" object (config.h). */
static int parse_dispatch(json_t *root, rs_config *c, rs_error *err)
{
    json_t *v = json_object_get(root, "dispatch");
    if (!v)
        return 0;
    json_t *cf = json_object_get(v, "capacity_factor");
    if (!json_is_object(v) || !json_is_number(cf) || !(json_number_value(cf) > 0) ||
        json_number_value(cf) > RS_DISPATCH_MAX_FACTOR)
        return rs_error_set(err, RS_EFORMAT, "config: dispatch must be an object with a capacity_factor in (0, %g]",
                            RS_DISPATCH_MAX_FACTOR);
    c->dispatch.capacity_factor = json_number_value(cf);
    int rc = get_int(v, "group_images", 1, RS_DISPATCH_MAX_GROUP_IMAGES, &c->dispatch.group_images, err);
    if (!rc)
        rc = get_bool(v, "bpr", true, &c->dispatch.bpr, err);
    if (!rc)
        rc = get_bool(v, "bf16", true, &c->dispatch.bf16, err);
    return rc;
}

/* The optional provenance keys: method name and training seed. */
static int parse_provenance(json_t *root, rs_config *c, rs_error *err)
{
    c->train_seed = -1;
    json_t *m = json_object_get(root, "method"), *s = json_object_get(root, "train_seed");
    if (m) {
        const char *name = json_string_value(m);
        size_t len = name ? strlen(name) : 0;
        bool ok = len > 0 && len < sizeof c->method;
        for (size_t i = 0; ok && i < len; i++)
            ok = isalnum((unsigned char)name[i]) || strchr("-_+", name[i]);
        if (!ok)
            return rs_error_set(err, RS_EFORMAT,
                                "config: method must be a name of 1 to %d letters, digits, '-', '_' or '+'",
                                (int)sizeof c->method - 1);
        memcpy(c->method, name, len + 1);
    }
    if (s) {
        if (!json_is_integer(s) || json_integer_value(s) < 0)
            return rs_error_set(err, RS_EFORMAT, "config: train_seed must be an integer >= 0");
        c->train_seed = (long long)json_integer_value(s);
    }
    return 0;
}

static int parse_fields(json_t *root, rs_config *c, rs_error *err)
{
    static const char *const classifiers[] = {"token", "gap", NULL};
    static const char *const gelus[] = {"erf", "tanh", NULL};
    int rc, choice;
    if ((rc = parse_image_size(root, c, err)) ||
        (rc = get_int(root, "channels", 1, RS_MAX_CHANNELS, &c->channels, err)) ||
        (rc = get_int(root, "patch_size", 1, RS_MAX_IMAGE, &c->patch_size, err)) ||
        (rc = get_int(root, "hidden", 1, RS_MAX_DIM, &c->hidden, err)) ||
        (rc = get_int(root, "depth", 1, RS_MAX_DEPTH, &c->depth, err)) ||
        (rc = get_int(root, "heads", 1, RS_MAX_DIM, &c->heads, err)) ||
        (rc = get_int(root, "mlp_dim", 1, RS_MAX_DIM, &c->mlp_dim, err)) ||
        (rc = get_int(root, "num_classes", 1, RS_MAX_DIM, &c->num_classes, err)) ||
        (rc = parse_moe_layers(root, c, err)) ||
        (rc = get_int(root, "num_experts", 2, RS_MAX_EXPERTS, &c->num_experts, err)) ||
        (rc = get_int(root, "top_k", 1, RS_MAX_EXPERTS, &c->top_k, err)) ||
        (rc = get_bool(root, "router_bias", true, &c->router_bias, err)) ||
        (rc = get_bool(root, "representation", false, &c->representation, err)) ||
        (rc = get_floats(root, "mean", c->channels, c->mean, err)) ||
        (rc = get_floats(root, "std", c->channels, c->std, err)) ||
        (rc = parse_labels(root, c, err)) || (rc = parse_dispatch(root, c, err)) ||
        (rc = parse_provenance(root, c, err)))
        return rc;
    if ((rc = get_choice(root, "classifier", classifiers, &choice, err)))
        return rc;
    c->classifier = (rs_classifier)choice;
    if ((rc = get_choice(root, "gelu", gelus, &choice, err)))
        return rc;
    c->gelu = (rs_gelu)choice;
    /* Below 1e-12 the float either rounds to 0 or vanishes next to any variance. */
    json_t *eps = json_object_get(root, "layer_norm_eps");
    if (!json_is_number(eps) || !(json_number_value(eps) >= 1e-12 && json_number_value(eps) < 1))
        return rs_error_set(err, RS_EFORMAT, "config: layer_norm_eps must be a number in [1e-12, 1)");
    c->layer_norm_eps = (float)json_number_value(eps);
    return 0;
}

static int check_consistency(const rs_config *c, rs_error *err)
{
    if (c->image_h % c->patch_size || c->image_w % c->patch_size)
        return rs_error_set(err, RS_EFORMAT, "config: patch_size %d does not divide image_size [%d, %d]",
                            c->patch_size, c->image_h, c->image_w);
    if (c->hidden % c->heads)
        return rs_error_set(err, RS_EFORMAT, "config: heads %d does not divide hidden %d", c->heads,
                            c->hidden);
    if (c->top_k > c->num_experts)
        return rs_error_set(err, RS_EFORMAT, "config: top_k is %d but num_experts is %d", c->top_k,
                            c->num_experts);
    if ((long long)rs_config_tokens(c) * c->hidden > (1LL << 28))
        return rs_error_set(err, RS_EFORMAT, "config: %d tokens of width %d is too large",
                            rs_config_tokens(c), c->hidden);
    /* Normalisation of [0,1] pixels: a mean far outside that range or a std of 1e-40
     * (a float denormal, or 0) turns every input into infinities. */
    for (int i = 0; i < c->channels; i++) {
        if (!(c->mean[i] >= -RS_MAX_NORM && c->mean[i] <= RS_MAX_NORM))
            return rs_error_set(err, RS_EFORMAT, "config: mean[%d] is %.4g, outside [-%g, %g]", i, c->mean[i],
                                RS_MAX_NORM, RS_MAX_NORM);
        if (!(c->std[i] >= RS_MIN_STD && c->std[i] <= RS_MAX_NORM))
            return rs_error_set(err, RS_EFORMAT, "config: std[%d] is %.4g, outside [%g, %g]", i, c->std[i],
                                RS_MIN_STD, RS_MAX_NORM);
    }
    return 0;
}

int rs_config_parse(const char *json_text, rs_config *cfg, rs_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    if (!json_text)
        return rs_error_set(err, RS_EFORMAT, "no \"config\" in __metadata__");
    json_error_t jerr;
    json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return rs_error_set(err, RS_EFORMAT, "config is not valid JSON: %s (at byte %d)", jerr.text,
                            jerr.position);
    int rc = json_is_object(root) ? parse_fields(root, cfg, err)
                                  : rs_error_set(err, RS_EFORMAT, "config is not a JSON object");
    if (!rc)
        rc = check_consistency(cfg, err);
    json_decref(root);
    if (rc)
        rs_config_free(cfg);
    return rc;
}

void rs_config_free(rs_config *cfg)
{
    if (cfg && cfg->labels) {
        for (int i = 0; i < cfg->num_classes; i++)
            free(cfg->labels[i]);
        free(cfg->labels);
        cfg->labels = NULL;
    }
}

int rs_config_moe_slot(const rs_config *c, int block)
{
    for (int i = 0; i < c->num_moe; i++) {
        if (c->moe_layers[i] == block)
            return i;
    }
    return -1;
}

int rs_parse_block_list(const char *text, unsigned *mask, rs_error *err)
{
    unsigned m = 0;
    const char *s = text;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);
        char item[16];
        long long b = -1;
        if (len < sizeof item) {
            memcpy(item, s, len);
            item[len] = '\0';
            if (rs_parse_integer(item, 0, 31, &b))
                b = -1;
        }
        if (b < 0)
            return rs_error_set(err, RS_EINVAL, "layers: '%s' is not block indices 0..31 separated by '/'", text);
        if (m >> b & 1u)
            return rs_error_set(err, RS_EINVAL, "layers: '%s' names block %lld twice", text, b);
        m |= 1u << b;
        if (!slash)
            break;
        s = slash + 1;
    }
    *mask = m;
    return 0;
}

int rs_config_check_moe_blocks(const rs_config *c, unsigned mask, rs_error *err)
{
    for (int b = 0; b < 32; b++) {
        if (!(mask >> b & 1u) || (b < c->depth && rs_config_moe_slot(c, b) >= 0))
            continue;
        char blocks[256] = "";
        size_t len = 0;
        for (int s = 0; s < c->num_moe && len < sizeof blocks; s++)
            len += (size_t)snprintf(blocks + len, sizeof blocks - len, "%s%d", s ? ", " : "", c->moe_layers[s]);
        return rs_error_set(err, RS_EINVAL, "layers: block %d is not a MoE block (MoE blocks: %s)", b,
                            c->num_moe ? blocks : "none");
    }
    return 0;
}
