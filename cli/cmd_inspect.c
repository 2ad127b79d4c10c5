/* routerscope inspect MODEL — what a checkpoint holds. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"

static const char usage_text[] =
    "usage: routerscope inspect MODEL [--json]\n"
    "\n"
    "Open a routerscope-vmoe .safetensors checkpoint, validate it, and show its\n"
    "configuration, parameter count and which blocks are MoE.\n"
    "\n"
    "  --json   print one JSON object instead of a table\n";

static long long expert_params(const rs_config *c)
{
    long long per_expert = 2LL * c->mlp_dim * c->hidden + c->mlp_dim + c->hidden;
    return (long long)c->num_moe * c->num_experts * per_expert;
}

static void print_json(const char *path, const rs_model *m)
{
    const rs_config *c = &m->cfg;
    json_t *moe = json_array();
    for (int i = 0; i < c->num_moe; i++)
        json_array_append_new(moe, json_integer(c->moe_layers[i]));
    json_t *labels = json_array();
    for (int i = 0; c->labels && i < c->num_classes; i++)
        json_array_append_new(labels, json_string(c->labels[i]));
    long long ep = expert_params(c);
    char sha[65];
    rs_safetensors_sha256(m->file, sha);
    json_t *o = json_pack("{s:s, s:s, s:[i,i], s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:i, s:i, s:i, s:s, s:s, s:b, s:I, s:I, s:I, s:o}",
                          "path", path, "sha256", sha, "image_size", c->image_h, c->image_w, "channels", c->channels,
                          "patch_size", c->patch_size, "patches", rs_config_patches(c), "tokens",
                          rs_config_tokens(c), "hidden", c->hidden, "depth", c->depth, "heads", c->heads,
                          "mlp_dim", c->mlp_dim, "num_classes", c->num_classes, "moe_layers", moe,
                          "num_experts", c->num_experts, "top_k", c->top_k, "record_k", rs_config_record_k(c),
                          "classifier", c->classifier == RS_CLASSIFIER_TOKEN ? "token" : "gap", "gelu",
                          c->gelu == RS_GELU_ERF ? "erf" : "tanh", "representation", c->representation,
                          "params", m->num_params, "expert_params", ep, "active_params_per_token",
                          m->num_params - ep + ep * c->top_k / c->num_experts, "labels", labels);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(s);
    free(s);
    json_decref(o);
}

static void print_table(const char *path, const rs_model *m)
{
    const rs_config *c = &m->cfg;
    long long ep = expert_params(c);
    char sha[65];
    rs_safetensors_sha256(m->file, sha);
    printf("model        %s (%.2f MB)\n", path, (double)rs_safetensors_file_size(m->file) / 1e6);
    printf("sha256       %s\n", sha);
    printf("input        %dx%dx%d, mean", c->image_h, c->image_w, c->channels);
    for (int i = 0; i < c->channels; i++)
        printf(" %g", c->mean[i]);
    printf(", std");
    for (int i = 0; i < c->channels; i++)
        printf(" %g", c->std[i]);
    printf("\npatches      %d px -> %dx%d grid, %d tokens (%s classifier)\n", c->patch_size,
           rs_config_grid_h(c), rs_config_grid_w(c), rs_config_tokens(c),
           c->classifier == RS_CLASSIFIER_TOKEN ? "class token" : "global average pool");
    printf("transformer  hidden %d, depth %d, heads %d, mlp %d, GELU %s, LayerNorm eps %g%s\n", c->hidden,
           c->depth, c->heads, c->mlp_dim, c->gelu == RS_GELU_ERF ? "erf" : "tanh", c->layer_norm_eps,
           c->representation ? ", pre_logits" : "");
    printf("moe          %d experts, top-%d (records top-%d), router bias %s\n", c->num_experts, c->top_k,
           rs_config_record_k(c), m->blocks[c->num_moe ? c->moe_layers[0] : 0].router_b ? "yes" : "no");
    printf("blocks      ");
    for (int i = 0; i < c->depth; i++)
        printf(" %d:%s", i, rs_config_moe_slot(c, i) >= 0 ? "MoE" : "dense");
    printf("\nclasses      %d", c->num_classes);
    for (int i = 0; c->labels && i < c->num_classes; i++)
        printf("%s%s", i ? ", " : " (", c->labels[i]);
    printf("%s\n", c->labels ? ")" : "");
    printf("parameters   %lld (experts %lld; active per token %lld)\n", m->num_params, ep,
           m->num_params - ep + ep * c->top_k / c->num_experts);
    printf("storage      %zu bytes widened or realigned, the rest mapped in place\n", m->copied_bytes);
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    bool json = false;
    int c;
    while ((c = rs_cli_next_option("inspect", argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
    }
    if (argc - optind != 1)
        return rs_cli_usage_error("inspect", "wants exactly one MODEL");
    const char *path = argv[optind];
    rs_model *m;
    rs_error err;
    if (rs_model_open(path, &m, &err))
        return rs_cli_fail(&err);
    if (json)
        print_json(path, m);
    else
        print_table(path, m);
    rs_model_close(m);
    return RS_EXIT_OK;
}
