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

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # common.py, next to this script
import common  # noqa: E402


def convnext_xlarge(torchvision):
    """ConvNeXt-XLarge (the paper's backbone), which torchvision does not name: its block settings
    (depths 3-3-27-3, widths 256..2048) in torchvision's ConvNeXt class."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    widths, depths = [256, 512, 1024, 2048], [3, 3, 27, 3]
    settings = [CNBlockConfig(w, widths[i + 1] if i < 3 else None, d) for i, (w, d) in enumerate(zip(widths, depths))]
    return lambda: ConvNeXt(settings, stochastic_depth_prob=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="tiny,base", help="comma-separated: tiny,small,base,large,xlarge")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per point, best kept (default 3)")
    parser.add_argument("--size", type=int, default=224, help="image height and width (default 224)")
    parser.add_argument("--channels-last", action="store_true",
                        help="also convert model and input to torch.channels_last (not the default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuDNN; needs a CUDA build of torch)")
    args = parser.parse_args()

    try:
        import torch
        import torchvision
    except ImportError as e:  # the C++ side prints "PyTorch figure unavailable"
        print(f"convnext_torch.py: cannot import torch/torchvision: {e}", file=sys.stderr)
        return 1

    dev = common.device(torch, args.device, "convnext_torch.py")
    sync = common.synchronizer(torch, dev)
    common.start(torch, args.threads, versions={"torchvision": torchvision.__version__},
                 extra={"memory_format": "channels_last" if args.channels_last else "contiguous", "device": dev.type,
                        "gpu": torch.cuda.get_device_name(dev).replace(" ", "_") if dev.type == "cuda" else "none"})

    for arch in common.split(args.archs):
        make = getattr(torchvision.models, f"convnext_{arch}", None) if arch != "xlarge" else convnext_xlarge(torchvision)
        if make is None:
            print(f"convnext_torch.py: torchvision has no convnext_{arch}", file=sys.stderr)
            return 1
        model = make().eval().to(dev)  # random weights: no download
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        for batch in (int(b) for b in common.split(args.batches)):
            x = torch.randn(batch, 3, args.size, args.size, device=dev)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                times = common.timed(lambda: model(x), args.repeats, sync)
            best = min(times)
            common.line("torch_result", arch=arch, batch=batch, size=args.size, threads=torch.get_num_threads(),
                        repeats=args.repeats, best_s=f"{best:.6f}", mean_s=f"{common.mean(times):.6f}",
                        images_per_s=f"{batch / best:.4f}")
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
