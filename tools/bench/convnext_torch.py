#!/usr/bin/python3
"""torchvision ConvNeXt forward throughput, the reference for bench/convnext_bench.

Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision):

    /usr/bin/python3 tools/bench/convnext_torch.py --archs tiny,base --batches 1,8 --threads 2

Builds torchvision.models.convnext_<arch>() with random weights (nothing is
downloaded), in eval mode, and times model(x) under torch.no_grad() on
[batch, 3, size, size] inputs: one warm-up call, then the best of --repeats.

Output is one line per figure, machine-readable (bench/convnext_bench.cpp
parses it), key=value pairs after a tag:

    torch_info torch=1.13.0 torchvision=0.14.1 threads=2 capability=AVX2 openblas_coretype=Haswell ...
    torch_result arch=tiny batch=8 size=224 threads=2 repeats=3 best_s=... mean_s=... images_per_s=...

Errors go to stderr with exit status 1 (e.g. torch not installed).
"""
import argparse
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="tiny,base", help="comma-separated: tiny,small,base,large")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per point, best kept (default 3)")
    parser.add_argument("--size", type=int, default=224, help="image height and width (default 224)")
    parser.add_argument("--channels-last", action="store_true",
                        help="also convert model and input to torch.channels_last (not the default)")
    args = parser.parse_args()

    try:
        import torch
        import torchvision
    except ImportError as e:  # the C++ side prints "PyTorch figure unavailable"
        print(f"convnext_torch.py: cannot import torch/torchvision: {e}", file=sys.stderr)
        return 1

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    capability = "unknown"
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # torch < 2.0: read it off the build report
        for line in torch.__config__.show().splitlines():
            if "CPU capability usage" in line:
                capability = line.split(":", 1)[1].strip()
    print(f"torch_info torch={torch.__version__} torchvision={torchvision.__version__} "
          f"threads={torch.get_num_threads()} capability={capability} "
          f"mkldnn={int(torch.backends.mkldnn.is_available())} "
          f"openblas_coretype={os.environ.get('OPENBLAS_CORETYPE', 'unset')} "
          f"memory_format={'channels_last' if args.channels_last else 'contiguous'}", flush=True)

    for arch in args.archs.split(","):
        arch = arch.strip()
        if not arch:
            continue
        make = getattr(torchvision.models, f"convnext_{arch}", None)
        if make is None:
            print(f"convnext_torch.py: torchvision has no convnext_{arch}", file=sys.stderr)
            return 1
        model = make().eval()  # random weights: no download
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        for batch in (int(b) for b in args.batches.split(",") if b.strip()):
            x = torch.randn(batch, 3, args.size, args.size)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            times = []
            with torch.no_grad():
                model(x)  # warm-up: allocator, oneDNN primitive caches
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    model(x)
                    times.append(time.perf_counter() - t0)
            best = min(times)
            print(f"torch_result arch={arch} batch={batch} size={args.size} threads={torch.get_num_threads()} "
                  f"repeats={args.repeats} best_s={best:.6f} mean_s={sum(times) / len(times):.6f} "
                  f"images_per_s={batch / best:.4f}", flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
