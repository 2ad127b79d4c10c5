/* routerscope convert vmoe PREFIX OUT — import a google-research/vmoe checkpoint. (A timm
 * .pth is pytorch/convert_timm.py's: `convert timm` points there.) */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "vmoe_ckpt.h"

static const char usage_text[] =
    "usage: routerscope convert vmoe PREFIX OUT.safetensors [--config PRESET] [--top-k K]\n"
    "                                [--image-size N] [--classifier token|gap] [--gelu erf|tanh]\n"
    "\n"
    "Read a google-research/vmoe checkpoint (PREFIX.index and PREFIX.data-NNNNN-of-NNNNN,\n"
    "msgpack) and write it as a routerscope-vmoe .safetensors file (F32, timm names). The\n"
    "configuration comes from the tensors' shapes; what they cannot tell comes from a preset\n"
    "or the flags. The output is checked by opening it as `inspect` would.\n"
    "\n"
    "  --config PRESET     k and the evaluation dispatch of a vmoe config (docs/checkpoint.md):\n"
    "                      vmoe-s32-last2        V-MoE-S/32 last 2, from scratch (factor 4.0)\n"
    "                      vmoe-s32-last2-ft384  its 384-px fine-tune (factor 1.5)\n"
    "                      vmoe-b16-ft384        V-MoE-B/16 fine-tuned at 384 px (factor 1.5)\n"
    "                      vmoe-attack           the attack study's B/16 (factor 1.5, 4 images)\n"
    "                      all: k = 2, groups of 8 images unless said, no BPR, bfloat16\n"
    "                      dispatch; applied by eval/replay --dispatch model\n"
    "  --top-k K           experts per token (required without a preset)\n"
    "  --image-size N      input side in pixels (default: from pos_embedding, square grid)\n"
    "  --classifier C      token or gap; must agree with the checkpoint ('cls' present)\n"
    "  --gelu G            tanh (default: flax.linen.gelu's approximation) or erf\n"
    "\n"
    "Inputs are [-1, 1] (mean = std = 0.5 per channel); layer norm eps 1e-6.\n"
    "\n"
    "A timm-style PyTorch state dict (.pth) is converted by a script, because only Python\n"
    "reads its pickles: /usr/bin/python3 pytorch/convert_timm.py STATE.pth CONFIG.json OUT\n"
    "(README \"Analysing your own checkpoint\").\n";

static bool known_preset(const char *name)
{
    for (int i = 0; rs_vmoe_presets[i]; i++)
        if (!strcmp(rs_vmoe_presets[i], name))
            return true;
    return false;
}

int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"top-k", required_argument, NULL, 'k'},
                                         {"image-size", required_argument, NULL, 's'},
                                         {"classifier", required_argument, NULL, 'C'},
                                         {"gelu", required_argument, NULL, 'g'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    rs_vmoe_options o = {.preset = NULL, .top_k = 0, .image_size = 0, .classifier = -1, .gelu = -1};
    int c;
    while ((c = rs_cli_next_option("convert", argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case 'c':
            o.preset = optarg;
            if (!known_preset(optarg))
                return rs_cli_usage_error("convert", "unknown --config '%s' (known: vmoe-s32-last2, "
                                          "vmoe-s32-last2-ft384, vmoe-b16-ft384, vmoe-attack)", optarg);
            break;
        case 'k':
            if (!rs_cli_parse_int("convert", "--top-k", optarg, 1, RS_MAX_EXPERTS, &o.top_k))
                return RS_EXIT_USAGE;
            break;
        case 's':
            if (!rs_cli_parse_int("convert", "--image-size", optarg, 1, 65536, &o.image_size))
                return RS_EXIT_USAGE;
            break;
        case 'C':
            if (!strcmp(optarg, "token"))
                o.classifier = RS_CLASSIFIER_TOKEN;
            else if (!strcmp(optarg, "gap"))
                o.classifier = RS_CLASSIFIER_GAP;
            else
                return rs_cli_usage_error("convert", "--classifier must be token or gap, not '%s'", optarg);
            break;
        case 'g':
            if (!strcmp(optarg, "erf"))
                o.gelu = RS_GELU_ERF;
            else if (!strcmp(optarg, "tanh"))
                o.gelu = RS_GELU_TANH;
            else
                return rs_cli_usage_error("convert", "--gelu must be erf or tanh, not '%s'", optarg);
            break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
    }
    /* A .pth is Python pickles: its converter is a script (pytorch/convert_timm.py says why). */
    if (optind < argc && !strcmp(argv[optind], "timm"))
        return rs_cli_usage_error("convert", "a PyTorch state dict is read by Python: /usr/bin/python3 "
                                  "pytorch/convert_timm.py STATE.pth CONFIG.json OUT.safetensors");
    if (argc - optind != 3)
        return rs_cli_usage_error("convert", "wants FORMAT PREFIX OUT (FORMAT: vmoe)");
    if (strcmp(argv[optind], "vmoe") != 0)
        return rs_cli_usage_error("convert", "unknown format '%s' (known: vmoe)", argv[optind]);
    const char *prefix = argv[optind + 1], *out = argv[optind + 2];
    char summary[256];
    rs_error err;
    if (rs_vmoe_convert(prefix, out, &o, summary, sizeof summary, &err))
        return rs_cli_fail(&err);
    printf("wrote %s: %s\n", out, summary);
    return RS_EXIT_OK;
}
