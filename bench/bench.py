"""Forward-pass benchmark: routerscope's C forward pass against the PyTorch reference.

Both run the same weights (a random model written by pytorch/export.py), the same batch
and the same thread count, one after the other in this one run, and the table gives
images/s for each and their ratio, plus the C pass's share of the machine's sgemm rate.

    /usr/bin/python3 bench/bench.py [--build build] [--threads 2] [--seconds 10] [--shapes tiny,s32]

Needs Debian's python3-torch and a built tree (bench_forward sits next to routerscope).
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pytorch"))

import torch  # noqa: E402

from bench_util import add_common_args, rate, run_c  # noqa: E402
from export import export, make_model  # noqa: E402

COMMON = dict(classifier="token", gelu="erf", layer_norm_eps=1e-6, representation=False, top_k=2,
              num_experts=8)
SHAPES = {
    # The foundation issue's shapes: the Fashion-MNIST model and V-MoE-S/32 "last 2".
    "tiny": dict(COMMON, image_size=[28, 28], channels=1, patch_size=4, hidden=64, depth=4, heads=4,
                 mlp_dim=256, num_classes=10, moe_layers=[1, 3], mean=[0.5], std=[0.5]),
    "s32": dict(COMMON, image_size=[224, 224], channels=3, patch_size=32, hidden=512, depth=8, heads=8,
                mlp_dim=2048, num_classes=1000, moe_layers=[5, 7], mean=[0.5] * 3, std=[0.5] * 3),
}


def time_torch(model, config, batch, seconds):
    c, (h, w) = config["channels"], config["image_size"]
    x = torch.rand(batch, c, h, w, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        return rate(lambda: model(x), batch, seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, seconds=10.0)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sgemm = run_c(args, "bench_forward", "--sgemm", 2048, args.threads, args.seconds / 2)["sgemm_gflops"]
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
          f"sgemm 2048^3 {sgemm:.0f} GFLOP/s")
    print(f"{'shape':6} {'PyTorch img/s':>14} {'C img/s':>10} {'C/PyTorch':>10} "
          f"{'GFLOP/img':>10} {'C GFLOP/s':>10} {'% sgemm':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes.split(","):
            config = SHAPES[name]
            model = make_model(config, seed=0)
            path = os.path.join(tmp, f"{name}.safetensors")
            export(model, config, path)
            torch_rate = time_torch(model, config, args.batch, args.seconds)
            c = run_c(args, "bench_forward", path, args.batch, args.threads, args.seconds)
            c_rate, gflop = c["c_images_per_s"], c["gflop_per_image"]
            print(f"{name:6} {torch_rate:14.1f} {c_rate:10.1f} {c_rate / torch_rate:10.2f} "
                  f"{gflop:10.4f} {c_rate * gflop:10.1f} {100 * c_rate * gflop / sgemm:7.0f}%",
                  flush=True)


if __name__ == "__main__":
    main()
