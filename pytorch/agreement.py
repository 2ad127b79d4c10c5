"""Routing agreement between two augmented views, test predictions and accuracy of a
routerscope checkpoint trained on Fashion-MNIST, in PyTorch (the reference for the C replay).

    /usr/bin/python3 pytorch/agreement.py models/NAME.safetensors [--split test] [--seed 0] \
        [--crop-min 0.25] [--predictions FILE] [--json FILE] [--threads 1]

Views: the PRC training augmentation (train.py): each image gets two views, each an
independent inception crop (area in [--crop-min, 1], aspect 3/4..4/3) with its own
horizontal flip (p = 0.5), resized to 28x28 bilinearly. The view parameters of all images
are drawn up front from one torch.Generator seeded with --seed: view 1 of every image, then
view 2 of every image (train.sample_views), so the views depend only on the seed, the split
and --crop-min, not on batching or threads.

Routing: the model in eval mode (float32, no router noise), the clean router softmax of every
MoE layer; a token's top-2 experts are the two largest probabilities, ties to the lower
index. Patch j of view 2 is matched to the view-1 patch that contains the source point of
its centre (train.patch_correspondence; view 1 is the reference); unmatched patches are
left out, the class token too. Over the matched pairs (micro average), per MoE layer and
pooled over the layers ("overall"):
  top1      a1 == b1
  top2      a1 == b1 and a2 == b2         (ordered)
  top2_set  {a1, a2} == {b1, b2}          (order-agnostic)
  overlap   |{a1, a2} & {b1, b2}| / 2     (secondary)
plus ||S - I||_F with S = E * sum r1 r2^T / N (the PRC matrix over the matched pairs).

Predictions: class = argmax of the logits (first maximum) on the clean images
((x/255 - 0.5)/0.5, float32, eval mode); --predictions writes one class index per line,
in the split's order.
"""
import argparse
import ctypes
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import load_model  # noqa: E402
from train import (NUM_VAL, load_split, normalise, patch_correspondence,  # noqa: E402
                   render_views, sample_views)


def set_threads(n):
    """torch (OpenMP, oneDNN) and OpenBLAS threads. Debian's torch calls OpenBLAS (pthread
    build) for float32 GEMMs, which otherwise starts one thread per core whatever
    torch.set_num_threads says."""
    torch.set_num_threads(n)
    try:
        ctypes.CDLL("libopenblas.so.0").openblas_set_num_threads(n)
    except (OSError, AttributeError):
        pass


def split_data(split):
    """uint8 images [N,1,28,28] and labels [N] of 'train' (first 55,000), 'val' (last 5,000
    training images) or 'test'."""
    if split == "test":
        return load_split("t10k")
    images, labels = load_split("train")
    if split == "val":
        return images[-NUM_VAL:], labels[-NUM_VAL:]
    if split == "train":
        return images[:-NUM_VAL], labels[:-NUM_VAL]
    raise ValueError(f"unknown split {split!r}")


def top2(probs):
    """[..., E] -> the two largest experts [..., 2], ties to the lower index."""
    return torch.sort(-probs, dim=-1, stable=True).indices[..., :2]


@torch.no_grad()
def predict(model, images, batch=500):
    """Predicted classes [N] (argmax of the logits, first maximum) on clean images."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        logits = model(normalise(images[i:i + batch].float() / 255))
        out.append(logits.argmax(1))
    return torch.cat(out)


@torch.no_grad()
def agreement(model, images, seed=0, crop_min=0.25, batch=500):
    """Pair-view routing agreement of `model` on uint8 `images`. Returns a dict:
    layers {block: {pairs, top1, top2, top2_set, overlap, s_minus_i}}, overall {...},
    images, patches (view-2 patches in all), matched (pairs per layer), seed, crop_min."""
    model.eval()
    cfg = model.config
    size, patch = tuple(cfg["image_size"]), cfg["patch_size"]
    cls = 1 if cfg["classifier"] == "token" else 0
    e = cfg["num_experts"]
    n = len(images)
    gen = torch.Generator().manual_seed(seed)
    v1 = sample_views(n, size, crop_min, gen)
    v2 = sample_views(n, size, crop_min, gen)
    counts = {}
    s_sum = {}
    matched_total = 0
    patches_total = 0
    for i in range(0, n, batch):
        sl = slice(i, min(n, i + batch))
        w1 = {k: v[sl] for k, v in v1.items()}
        w2 = {k: v[sl] for k, v in v2.items()}
        x = images[sl].float() / 255
        _, r1 = model(normalise(render_views(x, w1)), return_router=True)
        _, r2 = model(normalise(render_views(x, w2)), return_router=True)
        match = patch_correspondence(w1, w2, size, patch)  # [b, N] view-1 patch or -1
        valid = match >= 0
        bi, pj = valid.nonzero(as_tuple=True)  # matched pairs: image, view-2 patch
        pa = match[bi, pj]
        matched_total += len(bi)
        patches_total += match.numel()
        for layer in r1:
            p1 = r1[layer][:, cls:][bi, pa].double()  # [pairs, E]
            p2 = r2[layer][:, cls:][bi, pj].double()
            a, b = top2(r1[layer][:, cls:][bi, pa]), top2(r2[layer][:, cls:][bi, pj])
            t1 = a[:, 0] == b[:, 0]
            t2 = t1 & (a[:, 1] == b[:, 1])
            tset = ((a[:, 0] == b[:, 0]) & (a[:, 1] == b[:, 1])) | \
                   ((a[:, 0] == b[:, 1]) & (a[:, 1] == b[:, 0]))
            inter = ((a[:, :, None] == b[:, None, :]).any(-1)).sum(-1)
            c = counts.setdefault(layer, [0, 0, 0, 0, 0.0])
            c[0] += len(bi)
            c[1] += t1.sum().item()
            c[2] += t2.sum().item()
            c[3] += tset.sum().item()
            c[4] += inter.sum().item() / 2
            s_sum[layer] = s_sum.get(layer, 0) + p1.t() @ p2

    def rates(c):
        pairs = max(1, c[0])
        return {"pairs": c[0], "top1": c[1] / pairs, "top2": c[2] / pairs,
                "top2_set": c[3] / pairs, "overlap": c[4] / pairs}

    layers = {}
    total = [0, 0, 0, 0, 0.0]
    for layer in sorted(counts):
        layers[layer] = rates(counts[layer])
        s = e * s_sum[layer] / max(1, counts[layer][0])
        layers[layer]["s_minus_i"] = torch.linalg.norm(s - torch.eye(e, dtype=s.dtype)).item()
        total = [t + v for t, v in zip(total, counts[layer])]
    return {"layers": layers, "overall": rates(total), "images": n,
            "patches": patches_total, "matched": matched_total, "seed": seed,
            "crop_min": crop_min}


def format_agreement(res):
    """The agreement result as a Markdown table (percentages)."""
    rows = ["| MoE block | matched pairs | Top-1 | Top-2 | Top-2 order-agnostic | overlap | ‖S−I‖_F |",
            "|---|---|---|---|---|---|---|"]
    for layer, r in res["layers"].items():
        rows.append(f"| {layer} | {r['pairs']:,} | {100 * r['top1']:.2f} % | {100 * r['top2']:.2f} % | "
                    f"{100 * r['top2_set']:.2f} % | {100 * r['overlap']:.2f} % | {r['s_minus_i']:.3f} |")
    o = res["overall"]
    rows.append(f"| overall | {o['pairs']:,} | {100 * o['top1']:.2f} % | {100 * o['top2']:.2f} % | "
                f"{100 * o['top2_set']:.2f} % | {100 * o['overlap']:.2f} % | |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="checkpoint (.safetensors)")
    ap.add_argument("--split", choices=["test", "val", "train"], default="test")
    ap.add_argument("--seed", type=int, default=0, help="view seed (default 0)")
    ap.add_argument("--crop-min", type=float, default=0.25, help="smallest crop area fraction")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    ap.add_argument("--predictions", help="write the predicted class of every image, one a line")
    ap.add_argument("--json", help="write the results as JSON")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    set_threads(args.threads)

    model = load_model(args.model)
    images, labels = split_data(args.split)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    pred = predict(model, images)
    correct = (pred == labels).sum().item()
    if args.predictions:
        Path(args.predictions).write_text("".join(f"{p}\n" for p in pred.tolist()))
    res = agreement(model, images, args.seed, args.crop_min)
    res.update({"model": args.model, "split": args.split, "correct": correct,
                "accuracy": correct / len(images)})
    print(f"{args.model}: {args.split} accuracy {100 * correct / len(images):.2f} % "
          f"({correct}/{len(images)})")
    print(f"views: seed {args.seed}, crop area [{args.crop_min:g}, 1] + flip; "
          f"{res['matched']:,} of {res['patches']:,} view-2 patches matched")
    print(format_agreement(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
