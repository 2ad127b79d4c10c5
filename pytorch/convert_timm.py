"""Convert a timm-style PyTorch state dict (.pth) into a routerscope checkpoint.

    /usr/bin/python3 pytorch/convert_timm.py STATE.pth CONFIG.json OUT.safetensors \
        [--dtype F32|F16|BF16] [--experts 'blocks.{i}.mlp.experts.{e}'] [--router 'blocks.{i}.mlp.router']

STATE.pth is what `torch.save(model.state_dict(), "STATE.pth")` writes (a dict holding it
under "state_dict" or "model", and DataParallel's "module." prefix, are unwrapped).
CONFIG.json is the model's configuration: the keys of docs/checkpoint.md's config table.
The renaming is docs/checkpoint.md's "From timm-style weights": `patch_embed.proj.*` and
`pre_logits.fc.*` lose their middle part, expert e's MLP of MoE block i (`--experts`, each
with fc1/fc2 weight and bias) is stacked into `blocks.{i}.moe.experts.*`, the router Linear
(`--router`) becomes `blocks.{i}.moe.router.*`, and a missing `attn.qkv.bias` (timm's
qkv_bias=False) becomes zeros. A state dict already in routerscope's names (pytorch/vmoe.py)
passes through.

Every name and shape is checked against the config before anything is written. When they do
not fit, one line on stderr says what does not (the first of each kind of problem and how
many more) and the exit status is 1; OUT is not written. `routerscope inspect OUT` then
opens the file with the C loader, which checks it again.

PyTorch's .pth is a zip of Python pickles, which only Python reads: that is why this is a
script beside routerscope, not a `routerscope convert` format (scripts/ensure-deps.sh
--python installs Debian's python3-torch).
"""
import argparse
import json
import os
import re
import sys

try:
    import torch
except ImportError:
    sys.exit("convert_timm: needs PyTorch: run it with /usr/bin/python3 after "
             "scripts/ensure-deps.sh --python (Debian's python3-torch)")

from export import DTYPES, write_safetensors
from vmoe import check_config, expected_shapes, num_tokens

# What each dimension of a tensor is, by the name's last parts (blocks.{i}. removed), to say
# which config key a wrong size comes from.
DIMS = {
    "patch_embed.weight": ("hidden", "channels", "patch_size", "patch_size"),
    "cls_token": (None, None, "hidden"), "pos_embed": (None, "tokens", "hidden"),
    "attn.qkv.weight": ("3 hidden", "hidden"), "attn.qkv.bias": ("3 hidden",),
    "attn.proj.weight": ("hidden", "hidden"),
    "mlp.fc1.weight": ("mlp_dim", "hidden"), "mlp.fc1.bias": ("mlp_dim",),
    "mlp.fc2.weight": ("hidden", "mlp_dim"),
    "moe.router.weight": ("num_experts", "hidden"), "moe.router.bias": ("num_experts",),
    "moe.experts.fc1.weight": ("num_experts", "mlp_dim", "hidden"),
    "moe.experts.fc1.bias": ("num_experts", "mlp_dim"),
    "moe.experts.fc2.weight": ("num_experts", "hidden", "mlp_dim"),
    "moe.experts.fc2.bias": ("num_experts", "hidden"),
    "pre_logits.weight": ("hidden", "hidden"),
    "head.weight": ("num_classes", "hidden"), "head.bias": ("num_classes",),
}


class Mismatch(Exception):
    """The state dict does not fit the config; the message is the one line to print."""


def load_state(path):
    """{name: float32 tensor} from a .pth, unwrapped as the module docstring says."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise Mismatch(f"{path}: {e.strerror}")
    except Exception as e:  # torch raises pickle, zip and runtime errors of many kinds
        raise Mismatch(f"{path}: torch.load(weights_only=True) cannot read it ({type(e).__name__}): not a "
                       "file of torch.save, or it holds Python objects besides tensors (save the model's "
                       "state_dict() alone)")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise Mismatch(f"{path}: holds a {type(state).__name__}, not a dict of tensors (a state_dict())")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    other = [k for k, v in state.items() if not torch.is_tensor(v)]
    if other:
        raise Mismatch(f"{path}: '{other[0]}' is not a tensor{more(other)}: give the model's state_dict()")
    return {k: v.detach().float() for k, v in state.items()}


def more(items):
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


def pattern(text, tail):
    """A regex for a --experts/--router pattern: {i} and {e} match block and expert numbers."""
    rx = re.escape(text).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{e\}", r"(?P<e>\d+)")
    return re.compile("^" + rx + tail + "$")


def rename(state, config, experts, router):
    """The state dict in routerscope's names; problems found on the way go to PROBLEMS."""
    out, stacks, problems = {}, {}, []
    expert_rx = pattern(experts, r"\.(?P<layer>fc1|fc2)\.(?P<part>weight|bias)")
    router_rx = pattern(router, r"\.(?P<part>weight|bias)")
    for name, t in state.items():
        m = expert_rx.match(name)
        if m:
            key = f"blocks.{m['i']}.moe.experts.{m['layer']}.{m['part']}"
            stacks.setdefault(key, {})[int(m["e"])] = t
            continue
        m = router_rx.match(name)
        if m:
            out[f"blocks.{m['i']}.moe.router.{m['part']}"] = t
            continue
        out[name.replace("patch_embed.proj.", "patch_embed.").replace("pre_logits.fc.", "pre_logits.")] = t
    for key, per_expert in sorted(stacks.items()):
        found = sorted(per_expert)
        if found != list(range(len(found))):
            problems.append(f"{key.rsplit('.moe.', 1)[0]}: experts {found} in the state dict, want 0..E-1")
            continue
        if len({tuple(per_expert[e].shape) for e in found}) > 1:
            problems.append(f"{key}: the experts' tensors differ in shape")
            continue
        out[key] = torch.stack([per_expert[e] for e in found])
    for i in range(config["depth"]):
        b = f"blocks.{i}.attn.qkv."
        if b + "weight" in out and b + "bias" not in out:
            out[b + "bias"] = torch.zeros(out[b + "weight"].shape[0])
    return out, problems


def describe(label, config):
    """How a config key (or derived size) makes a dimension's size."""
    if label == "tokens":
        h, w = config["image_size"]
        cls = " + class token" if config["classifier"] == "token" else ""
        return f"tokens {num_tokens(config)}: image_size {h}x{w} in patches of {config['patch_size']}{cls}"
    if label == "3 hidden":
        return f"3 x hidden {config['hidden']}"
    return f"{label} {config[label]}"


def shape_problem(name, got, want, config):
    suffix = re.sub(r"^blocks\.\d+\.", "", name)
    labels = DIMS.get(suffix, ("hidden",) * len(want))
    why = []
    if len(got) == len(want):
        why = [describe(labels[j], config) for j in range(len(want))
               if got[j] != want[j] and j < len(labels) and labels[j]]
    why = sorted(set(why), key=why.index)
    return (f"{name}: {list(got)} in the state dict, config wants {list(want)}"
            + (f" ({', '.join(why)})" if why else ""))


def block_of(name):
    m = re.match(r"^blocks\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def check(tensors, config, problems):
    """Raise Mismatch with one line when TENSORS does not fit CONFIG."""
    want = expected_shapes(config)
    blocks = {block_of(n) for n in tensors} - {None}
    moe = sorted({block_of(n) for n in tensors if ".moe." in n} - {None})
    if blocks and max(blocks) + 1 != config["depth"]:
        problems.append(f"{max(blocks) + 1} blocks in the state dict, config depth {config['depth']}")
    if moe != sorted(config["moe_layers"]):
        problems.append(f"MoE blocks {moe} in the state dict, config moe_layers {config['moe_layers']}")
    wrong = [shape_problem(n, tuple(tensors[n].shape), want[n], config)
             for n in want if n in tensors and tuple(tensors[n].shape) != tuple(want[n])]
    if wrong:
        problems.append(wrong[0] + more(wrong))
    missing = [n for n in want if n not in tensors]
    if missing:
        problems.append(f"missing: {missing[0]}{more(missing)}")
    extra = sorted(n for n in tensors if n not in want)
    if extra:
        problems.append(f"not in the layout for this config: {extra[0]}{more(extra)}")
    if problems:
        raise Mismatch("; ".join(problems))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("state", metavar="STATE.pth")
    ap.add_argument("config", metavar="CONFIG.json")
    ap.add_argument("out", metavar="OUT.safetensors")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="F32")
    ap.add_argument("--experts", default="blocks.{i}.mlp.experts.{e}",
                    help="expert e of MoE block i in the state dict (default: %(default)s)")
    ap.add_argument("--router", default="blocks.{i}.mlp.router",
                    help="the router Linear of MoE block i (default: %(default)s)")
    args = ap.parse_args()
    try:
        try:
            with open(args.config) as f:
                config = json.load(f)
            check_config(config)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise Mismatch(f"{args.config}: {e}")
        tensors, problems = rename(load_state(args.state), config, args.experts, args.router)
        try:
            check(tensors, config, problems)
        except Mismatch as e:
            raise Mismatch(f"{args.state} does not fit {args.config}: {e}")
        metadata = {"format": "routerscope-vmoe", "config": json.dumps(config),
                    "source": os.path.basename(args.state)}
        write_safetensors(args.out, tensors, metadata, args.dtype)
    except Mismatch as e:
        sys.exit(f"convert_timm: {e}")
    print(f"wrote {args.out}: {len(tensors)} tensors ({args.dtype}) from {args.state}")


if __name__ == "__main__":
    main()
