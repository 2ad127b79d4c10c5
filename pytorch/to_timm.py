"""Write a routerscope checkpoint back out as a timm-style PyTorch state dict and its config:
what a user of README's "Analysing your own checkpoint" starts from, made from a bundled
model so that the walkthrough can be tested on real weights (tests/checkpoint_test.sh).

    /usr/bin/python3 pytorch/to_timm.py MODEL.safetensors OUT.pth OUT.json

The names are the ones pytorch/convert_timm.py reads by default: `patch_embed.proj.*`,
each expert's MLP as `blocks.{i}.mlp.experts.{e}.fc{1,2}.*`, the router as
`blocks.{i}.mlp.router.*`. OUT.json is the model's config as the checkpoint stores it.
"""
import argparse
import json
import re

import torch

from export import load


def to_timm(state):
    """{routerscope name: tensor} -> {timm-style name: tensor}, experts unstacked."""
    out = {}
    for name, t in state.items():
        m = re.match(r"^(blocks\.\d+)\.moe\.experts\.(fc[12]\.(?:weight|bias))$", name)
        if m:
            for e in range(t.shape[0]):
                out[f"{m[1]}.mlp.experts.{e}.{m[2]}"] = t[e].clone()
            continue
        name = name.replace(".moe.router.", ".mlp.router.")
        out[name.replace("patch_embed.", "patch_embed.proj.", 1) if name.startswith("patch_embed.") else name] = t
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", metavar="MODEL.safetensors")
    ap.add_argument("pth", metavar="OUT.pth")
    ap.add_argument("config", metavar="OUT.json")
    args = ap.parse_args()
    config, state = load(args.model)
    torch.save(to_timm(state), args.pth)
    with open(args.config, "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    print(f"wrote {args.pth} ({len(state)} tensors in routerscope's layout) and {args.config}")


if __name__ == "__main__":
    main()
