"""Input-gradient benchmark: the C forward + backward (model/grad.h) against PyTorch autograd,
and against the C forward pass alone.

Same weights, batch and thread count on both sides, in this one run; each figure is the
median of 5 alternating runs (PyTorch, C forward + backward, C forward, PyTorch, ...). The C
side runs with OpenBLAS and with oneDNN (model/gemm.h): forward + backward in float32 on
each (the gradient is float32 only), the forward alone also in bf16; "ceiling" is oneDNN's
float32 matmul rate on the forward pass's own GEMM shapes alone (bench_forward --ceiling),
and "% ceil" the oneDNN forward's share of it.
The objective is loss=router (the reference routing from a clean forward pass of the same
images, a constant), computed on the PyTorch side by pytorch/grad_golden.py's objective.

    /usr/bin/python3 bench/bench_grad.py [--build build] [--threads 2] [--seconds 3]
        [--shapes tiny,s32] [--batch tiny=64,s32=16] [--capacity 1.5:4] [--bf16]

With --capacity CF:GROUP (default vmoe's attack study, 1.5 and groups of 4 images) the C
gradient also runs through dispatch ("C f+b cap", rs_grad_create_dispatch), and its cost is
given relative to the plain gradient ("cap / plain": 1.10 means 10 % slower); "" skips it.
With --bf16 the gradient through dispatch also runs with vmoe's bfloat16 dispatch ("C f+b
bf16"), relative to the same gradient without it ("bf16 / cap").

Shapes: tiny = the bundled models/fmnist-tiny-vmoe-k2.safetensors; s32 = bench.py's
V-MoE-S/32 "last 2" shape with random weights. Needs a built tree (bench_grad).
"""
import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pytorch"))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from bench import SHAPES  # noqa: E402
from bench_util import add_common_args, rate, run_c  # noqa: E402
from export import export, load_model, make_model  # noqa: E402
from grad_golden import objective  # noqa: E402

RUNS = 5
SPEC = "loss=router"


def pixels_for(config, batch):
    c, (h, w) = config["channels"], config["image_size"]
    return torch.rand(batch, c, h, w, generator=torch.Generator().manual_seed(0))


def time_torch(model, config, batch, seconds):
    """Images/s of forward + backward of the objective with respect to the pixels."""
    pixels = pixels_for(config, batch)
    mean = torch.tensor(config["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(config["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        _, ref = model((pixels - mean) / std, return_router=True)

    labels = torch.zeros(batch, dtype=torch.long)  # unused by loss=router, but the objective reads them

    def step():
        x = pixels.clone().requires_grad_(True)
        v = objective(model, config, SPEC, x, labels, ref)
        torch.autograd.grad(v.sum(), x)

    return rate(step, batch, seconds)


def time_c(args, path, batch, mode, capacity=(), compute=()):
    return run_c(args, "bench_grad", path, batch, args.threads, args.seconds, mode, *capacity,
                 *compute)["images_per_s"]


ONEDNN = ("--gemm", "onednn")
BF16 = ("--gemm", "onednn", "--precision", "bf16")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, seconds=3.0)
    parser.add_argument("--batch", default="tiny=64,s32=16", help="images per call, per shape")
    parser.add_argument("--capacity", default="1.5:4", help="CF:GROUP for the gradient through dispatch, "
                        "or '' for none")
    parser.add_argument("--bf16", action="store_true", help="also time the gradient through dispatch with "
                        "bfloat16 dispatch (needs --capacity)")
    args = parser.parse_args()
    capacity = tuple(args.capacity.split(":")) if args.capacity else ()
    torch.set_num_threads(args.threads)
    batches = dict((k, int(v)) for k, v in (kv.split("=") for kv in args.batch.split(",")))
    print(f"torch {torch.__version__}, {args.threads} threads, {SPEC}, median of {RUNS} alternating runs "
          f"of {args.seconds:g} s, load average {os.getloadavg()[0]:.1f}")
    print(f"{'shape':6} {'batch':>5} {'PyTorch f+b':>12} {'C f+b':>9} {'C fwd':>9} "
          f"{'C/PyTorch':>10} {'f+b / fwd':>10}"
          + (f" {'C f+b cap':>10} {'cap / plain':>11}" if capacity else "")
          + (f" {'C f+b bf16':>10} {'bf16 / cap':>10}" if capacity and args.bf16 else "") + "   (images/s, OpenBLAS)")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes.split(","):
            if name == "tiny":
                path = ROOT / "models" / "fmnist-tiny-vmoe-k2.safetensors"
                model = load_model(path)
            else:
                path = Path(tmp) / f"{name}.safetensors"
                export(make_model(SHAPES[name], seed=0), SHAPES[name], path)
                model = load_model(path)
            config, batch = model.config, batches[name]
            runs = {"torch": [], "grad": [], "forward": [], "grad_onednn": [], "fwd_onednn": [], "fwd_bf16": []}
            if capacity:
                runs["cap"] = []
            if capacity and args.bf16:
                runs["bf16"] = []
            for _ in range(RUNS):
                runs["torch"].append(time_torch(model, config, batch, args.seconds))
                runs["grad"].append(time_c(args, path, batch, "grad"))
                runs["forward"].append(time_c(args, path, batch, "forward"))
                runs["grad_onednn"].append(time_c(args, path, batch, "grad", compute=ONEDNN))
                runs["fwd_onednn"].append(time_c(args, path, batch, "forward", compute=ONEDNN))
                runs["fwd_bf16"].append(time_c(args, path, batch, "forward", compute=BF16))
                if capacity:
                    runs["cap"].append(time_c(args, path, batch, "grad", capacity))
                if capacity and args.bf16:
                    runs["bf16"].append(time_c(args, path, batch, "grad", capacity + ("bf16",)))
            med = {k: statistics.median(v) for k, v in runs.items()}
            cap = f" {med['cap']:10.1f} {med['grad'] / med['cap']:10.2f}x" if capacity else ""
            if capacity and args.bf16:
                cap += f" {med['bf16']:10.1f} {med['cap'] / med['bf16']:9.2f}x"
            print(f"{name:6} {batch:5d} {med['torch']:12.1f} {med['grad']:9.1f} {med['forward']:9.1f} "
                  f"{med['grad'] / med['torch']:9.2f}x {med['forward'] / med['grad']:9.2f}x{cap}", flush=True)
            ceil = run_c(args, "bench_forward", "--ceiling", path, batch, args.threads, args.seconds,
                         *ONEDNN)["ceiling_gflops"]
            gflop = run_c(args, "bench_forward", path, 1, 1, 0.01)["gflop_per_image"]
            print(f"       oneDNN: f+b {med['grad_onednn']:.1f} ({med['grad_onednn'] / med['grad']:.2f}x OpenBLAS, "
                  f"{med['grad_onednn'] / med['torch']:.2f}x PyTorch), fwd f32 {med['fwd_onednn']:.1f} "
                  f"({med['fwd_onednn'] / med['forward']:.2f}x OpenBLAS), fwd bf16 {med['fwd_bf16']:.1f} "
                  f"({med['fwd_bf16'] / med['fwd_onednn']:.2f}x f32); ceiling {ceil:.0f} GFLOP/s, fwd f32 at "
                  f"{100 * med['fwd_onednn'] * gflop / ceil:.0f}% of it", flush=True)
            print("       runs: " + "; ".join(f"{k} " + " ".join(f"{x:.1f}" for x in v) for k, v in runs.items()))


if __name__ == "__main__":
    main()
