"""Forward-pass benchmark: routerscope's C forward pass against the PyTorch reference.

Both run the same weights (a random model written by pytorch/export.py), the same batch
and the same thread count, one after the other in this one run. The C pass runs three ways
(model/gemm.h): OpenBLAS, oneDNN float32 and oneDNN bf16; the table gives images/s for each
and for PyTorch, their ratios, and each oneDNN pass's share of its ceiling: oneDNN's matmul
rate on the pass's own GEMM shapes alone (bench_forward --ceiling), in the same precision.
A second row, "cpu", gives the same figures by CPU time (images per CPU-second of the
process times the thread count: the rate on idle cores), which other jobs on a shared
machine disturb far less than the wall clock.

    /usr/bin/python3 bench/bench.py [--build build] [--threads 2] [--seconds 10] [--shapes tiny,s32]

Needs Debian's python3-torch and a tree built with oneDNN (libdnnl-dev; bench_forward sits
next to routerscope); bf16 needs a CPU with avx512_bf16.
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


def time_torch(model, config, batch, seconds, cpu):
    """Images/s of the PyTorch model; appends the CPU-time rate to CPU (rate())."""
    c, (h, w) = config["channels"], config["image_size"]
    x = torch.rand(batch, c, h, w, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        return rate(lambda: model(x), batch, seconds, cpu)


def c_rate(args, path, compute):
    """Images/s, GFLOP/image and images per CPU-second times threads of the C pass with
    COMPUTE (extra bench_forward arguments)."""
    c = run_c(args, "bench_forward", path, args.batch, args.threads, args.seconds, *compute)
    return c["c_images_per_s"], c["gflop_per_image"], c["cpu_images_per_s"]


def ceiling(args, path, compute):
    """GFLOP/s of the pass's GEMM shapes alone with COMPUTE, by wall clock and by CPU time."""
    c = run_c(args, "bench_forward", "--ceiling", path, args.batch, args.threads, args.seconds / 2, *compute)
    return c["ceiling_gflops"], c["cpu_ceiling_gflops"]


def row(name, torch_rate, ob, f32, bf16, gflop, ceil_f32, ceil_bf16):
    """One line of the table."""
    return (f"{name:6} {torch_rate:9.1f} {ob:9.1f} {f32:9.1f} {bf16:9.1f} {gflop:10.4f} "
            f"{f32 / ob:9.2f} {bf16 / f32:8.2f} {f32 / torch_rate:8.2f} "
            f"{100 * f32 * gflop / ceil_f32:9.0f}% {100 * bf16 * gflop / ceil_bf16:10.0f}%")


ONEDNN = ["--gemm", "onednn"]
BF16 = ["--gemm", "onednn", "--precision", "bf16"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, seconds=10.0)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sgemm = run_c(args, "bench_forward", "--sgemm", 2048, args.threads, args.seconds / 2)["sgemm_gflops"]
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
          f"OpenBLAS sgemm 2048^3 {sgemm:.0f} GFLOP/s")
    print(f"{'shape':6} {'PyTorch':>9} {'OpenBLAS':>9} {'oneDNN':>9} {'bf16':>9} {'GFLOP/img':>10} "
          f"{'oneDNN/OB':>9} {'bf16/f32':>8} {'f32/PyT':>8} {'% ceil f32':>10} {'% ceil bf16':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes.split(","):
            config = SHAPES[name]
            model = make_model(config, seed=0)
            path = os.path.join(tmp, f"{name}.safetensors")
            export(model, config, path)
            torch_cpu = []
            torch_rate = time_torch(model, config, args.batch, args.seconds, torch_cpu)
            ob, gflop, ob_cpu = c_rate(args, path, [])
            f32, _, f32_cpu = c_rate(args, path, ONEDNN)
            bf16, _, bf16_cpu = c_rate(args, path, BF16)
            (ceil_f32, cpu_ceil_f32), (ceil_bf16, cpu_ceil_bf16) = ceiling(args, path, ONEDNN), ceiling(args, path, BF16)
            print(row(name, torch_rate, ob, f32, bf16, gflop, ceil_f32, ceil_bf16), flush=True)
            # The same by CPU time (images per CPU-second times threads: the idle-core rate),
            # which other jobs on the machine disturb far less than the wall clock.
            print(row("  cpu", args.threads * torch_cpu[0], ob_cpu, f32_cpu, bf16_cpu, gflop, cpu_ceil_f32,
                      cpu_ceil_bf16), flush=True)
            print(f"       img/s; ceilings: oneDNN f32 {ceil_f32:.0f} GFLOP/s, bf16 {ceil_bf16:.0f} GFLOP/s "
                  f"(by CPU time {cpu_ceil_f32:.0f}, {cpu_ceil_bf16:.0f}); "
                  f"OpenBLAS pass {ob * gflop:.0f} GFLOP/s ({100 * ob * gflop / sgemm:.0f}% of sgemm 2048^3)",
                  flush=True)


if __name__ == "__main__":
    main()
