"""What bench.py and bench_grad.py share: their common options, the timed loop of the
PyTorch side and running a C benchmark of the build."""
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def add_common_args(parser, seconds):
    """The options both benchmarks take; SECONDS is the default time per measurement."""
    parser.add_argument("--build", default="build", help="meson build folder (default build)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=seconds, help="time per measurement")
    parser.add_argument("--shapes", default="tiny,s32")


def rate(step, batch, seconds, cpu=None):
    """Images/s of STEP, one call a batch of BATCH images: a warm-up call, then calls until
    SECONDS have passed and at least two ran (as the C side's bench_rate). With CPU (a
    list), appends the images per second of this process's CPU time."""
    step()
    calls, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds or calls < 2:
        step()
        calls += 1
    if cpu is not None:
        cpu.append(batch * calls / (time.process_time() - c0))
    return batch * calls / (time.perf_counter() - t0)


def run_c(args, exe, *argv):
    """Runs the C benchmark EXE of the build folder args.build with ARGV; its output
    "KEY VALUE KEY VALUE ..." as a dict of floats."""
    out = subprocess.run([str(ROOT / args.build / exe), *map(str, argv)], check=True, capture_output=True,
                         text=True).stdout.split()
    return {out[i]: float(out[i + 1]) for i in range(0, len(out), 2)}
