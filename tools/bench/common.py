"""What the PyTorch reference scripts of //bench share: the torch_info and
torch_result lines the C++ programs parse (bench/bench_common.hpp,
run_script), and timing.

The scripts import it from their own folder (a sys.path insert), so it works
from the workspace and from Bazel's runfiles alike; it imports no torch itself,
so a script can still report a missing torch on its own terms.
"""
import os
import sys
import time


def split(items):
    """'a, b,,c' -> ['a', 'b', 'c']: the comma lists of the command lines."""
    return [item.strip() for item in items.split(",") if item.strip()]


def line(tag, **fields):
    """Prints `tag k=v k=v ...` (in the order given) and flushes: the C++ side reads it while the script runs."""
    print(tag + "".join(f" {k}={v}" for k, v in fields.items()), flush=True)


def cpu_capability(torch):
    """The vector ISA torch's kernels use (AVX2, AVX512, ...)."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # torch < 2.0: read it off the build report
        for row in torch.__config__.show().splitlines():
            if "CPU capability usage" in row:
                return row.split(":", 1)[1].strip()
    return "unknown"


def start(torch, threads, versions=None, extra=None):
    """Sets torch's threads and seed, then prints the torch_info line.

    `versions` go right after torch's version, `extra` at the end of the line."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    line("torch_info", torch=torch.__version__, **(versions or {}), threads=torch.get_num_threads(),
         capability=cpu_capability(torch), mkldnn=int(torch.backends.mkldnn.is_available()),
         openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", "unset"), **(extra or {}))


def device(torch, name, script):
    """torch.device(name) for --device cpu|cuda; exits with status 1 and a message when CUDA is asked for and
    this torch has none (Debian's python3-torch is CPU-only): the C++ side then prints "PyTorch figure unavailable"."""
    if name == "cuda" and not torch.cuda.is_available():
        print(f"{script}: --device cuda: this torch {torch.__version__} has no usable CUDA device "
              f"(built with CUDA: {torch.version.cuda or 'no'})", file=sys.stderr)
        sys.exit(1)
    if name not in ("cpu", "cuda"):
        print(f"{script}: --device must be cpu or cuda, not {name}", file=sys.stderr)
        sys.exit(1)
    return torch.device(name)


def synchronizer(torch, dev):
    """What waits for dev's queued work: CUDA kernels run asynchronously, so timing needs it."""
    return (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)


def timed(fn, repeats, sync=lambda: None):
    """Seconds of each of `repeats` calls of fn, after one warm-up call (allocator, oneDNN primitive caches);
    sync() (see synchronizer) ends each call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def mean(times):
    return sum(times) / len(times)


def keras_adam_step(torch, net):
    """A training step as stpain's fit() takes it per batch: zero_grad, forward,
    cross-entropy, backward, Adam step (lr 1e-4, eps 1e-7 as Keras). Returns step(x, y)."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-7)

    def step(x, y):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    return step


def parameter_count(net):
    return sum(p.numel() for p in net.parameters())
