#!/usr/bin/python3
"""PyTorch training-step time of the landmark networks, the reference for bench/stgcn_bench.

Run with Debian's /usr/bin/python3 (python3-torch):

    /usr/bin/python3 tools/bench/stgcn_torch.py --models lstm-recurrent,lstm-averaging --threads 2

The networks are the PyTorch re-implementations the parity tests use
(tools/fixtures/stgcn_models.py: PaperBlockRef, NeighbourAttentionRef,
Network; tools/fixtures/stgcn_reference.py: STGCNBlockRef), loaded by path
and built at full size over the 68-point mesh (tools/fixtures/graph_reference.py):
the paper's block with 64 temporal channels, 64 hidden, 68 node features,
3 x 16 branch channels, kernels 9 / 15 / 20, and the same dropout as stpain
(0.25 after each branch and after each LSTM of the head). Models:

    lstm-recurrent    STGCN-LSTM, the paper's block with recurrent attention
    lstm-averaging    STGCN-LSTM, the block with neighbour averaging
    pooled-recurrent  STGCN (mean over time and nodes -> Linear), recurrent attention
    pooled-averaging  STGCN, neighbour averaging
    lstm-yan          STGCN-LSTM with Yan et al.'s ST-GCN blocks (spatial partitions, k = 9)

A training step is what stpain's fit() does per batch: zero_grad, forward,
cross-entropy, backward, Adam step (eps 1e-7, as Keras). Inputs are random
[batch, frames, 68, 2] clips with labels 0/1. One warm-up step, then the best
of --repeats. With --eval-batch B > 0 the script also times a forward pass in
eval mode under no_grad on B clips (the validation pass of an epoch). With
--epochs E > 0 it also runs E epochs over --train-clips clips (batch order
shuffled, the last batch partial) and reports the measured time.

Output is one line per figure, machine-readable (bench/stgcn_bench.cpp parses
it), key=value pairs after a tag:

    torch_info torch=1.13.0 threads=2 capability=AVX2 openblas_coretype=Haswell
    torch_result model=lstm-recurrent params=... batch=10 frames=20 threads=2 repeats=5 step_s=... mean_s=... eval_s=... run_s=...

Errors go to stderr with exit status 1 (e.g. torch not installed).
"""
import argparse
import ast
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.realpath(__file__))  # through the runfiles symlink to tools/bench
sys.path.insert(0, HERE)  # common.py, next to this script
import common  # noqa: E402  (not tools/fixtures/common.py: load_reference_models drops that import)

FIXTURES = os.path.join(HERE, "..", "fixtures")
MODELS = ("lstm-recurrent", "lstm-averaging", "pooled-recurrent", "pooled-averaging", "lstm-yan")


def load_reference_models(fixtures):
    """tools/fixtures/stgcn_models.py without its fixture-writing statements.

    The file builds and writes the test fixtures at module level; only its
    imports, constants, functions and classes are executed here (V and SMALL,
    the graph its classes read as globals, are set by the caller)."""
    path = os.path.join(fixtures, "stgcn_models.py")
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    keep = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "common":
            continue  # the fixture writer
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            keep.append(node)
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id in ("V", "SMALL") for t in node.targets):
            keep.append(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            keep.append(node)  # the docstring
    module = types.ModuleType("stgcn_models_reference")
    module.__file__ = path
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), module.__dict__)
    return module


def build(name, ref, graph_reference, torch, nn, F, dropout=0.25, channels=48, lstm1=15, lstm2=20):
    """The full-size network `name` (see the module docstring)."""
    V = ref.V

    class PaperBlock(ref.PaperBlockRef):
        """The reference block at the authors' sizes, with stpain's dropout after each branch."""

        def __init__(self, cin, recurrent):
            super().__init__(cin, recurrent, tc=64, hidden=64, branch=channels // 3, k=(9, 15, 20))
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            k = torch.cat([x, torch.relu(self.temporal(x))], dim=-1)
            g = self.attn(self.proj(k))
            z1 = self.drop(torch.relu(self.branch1(g)))
            z2 = self.drop(self.branch2(z1))
            z3 = self.drop(self.branch3(z2))
            return torch.cat([z1, z2, z3], dim=-1)

    class Net(ref.Network):
        """The reference network with stpain's dropout after each LSTM of the head."""

        def __init__(self, blocks, lstm):
            super().__init__(blocks, channels, lstm, lstm1=lstm1, lstm2=lstm2)
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            h = self.blocks[0](x)
            for b in self.blocks[1:]:
                h = b(h) + h
            if self.lstm:
                n, t = h.shape[:2]
                s = self.drop(self.lstm1(h.reshape(n, t, -1))[0])
                return self.fc(self.drop(self.lstm2(s)[1][0][-1]))
            return self.fc(h.mean(dim=(1, 2)))

    head, kind = name.split("-")
    lstm = head == "lstm"
    if kind == "yan":
        from stgcn_reference import STGCNBlockRef
        A = torch.tensor(graph_reference.get_adjacency(ref.SMALL, "spatial", 1, center=30, V=V), dtype=torch.float32)
        blocks = [STGCNBlockRef(2 if i == 0 else channels, channels, A, k=9) for i in range(3)]
        for b in blocks:  # dropout 0.25 in the temporal unit, as stpain's block options
            b.tcn[4] = nn.Dropout(dropout)
    else:
        recurrent = kind == "recurrent"
        blocks = [PaperBlock(2 if i == 0 else channels, recurrent) for i in range(3)]
    return Net(blocks, lstm)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="lstm-recurrent,lstm-averaging", help="comma-separated: " + ",".join(MODELS))
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (needs a CUDA build of torch)")
    parser.add_argument("--batch", type=int, default=10, help="clips per training step (default 10)")
    parser.add_argument("--frames", type=int, default=20, help="frames per clip (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps, best kept (default 5)")
    parser.add_argument("--eval-batch", type=int, default=0, help="also time an eval forward on this many clips")
    parser.add_argument("--epochs", type=int, default=0, help="also time this many epochs (default 0: none)")
    parser.add_argument("--train-clips", type=int, default=218, help="clips per epoch of --epochs (default 218)")
    parser.add_argument("--fixtures", default=FIXTURES, help="folder with stgcn_models.py (default tools/fixtures)")
    args = parser.parse_args()

    try:
        import torch
        from torch import nn
        import torch.nn.functional as F
    except ImportError as e:  # the C++ side prints "PyTorch figure unavailable"
        print(f"stgcn_torch.py: cannot import torch: {e}", file=sys.stderr)
        return 1
    sys.path.insert(0, os.path.abspath(args.fixtures))
    try:
        import graph_reference
        ref = load_reference_models(args.fixtures)
    except (ImportError, OSError, SyntaxError) as e:
        print(f"stgcn_torch.py: cannot load the reference models from {args.fixtures}: {e}", file=sys.stderr)
        return 1
    ref.V = graph_reference.V  # 68 points
    ref.SMALL = graph_reference.GRAPHS["mesh"]  # the authors' mesh, as stpain's FaceMesh68

    dev = common.device(torch, args.device, "stgcn_torch.py")
    sync = common.synchronizer(torch, dev)
    common.start(torch, args.threads, extra={"device": dev.type})

    for name in common.split(args.models):
        if name not in MODELS:
            print(f"stgcn_torch.py: unknown model {name} (one of {', '.join(MODELS)})", file=sys.stderr)
            return 1
        net = build(name, ref, graph_reference, torch, nn, F).train().to(dev)
        step = common.keras_adam_step(torch, net)
        x = torch.randn(args.batch, args.frames, ref.V, 2, device=dev)
        y = torch.arange(args.batch, device=dev) % 2
        times = common.timed(lambda: step(x, y), args.repeats, sync)
        fields = dict(model=name, params=common.parameter_count(net), batch=args.batch, frames=args.frames,
                      threads=torch.get_num_threads(), repeats=args.repeats, step_s=f"{min(times):.6f}",
                      mean_s=f"{common.mean(times):.6f}")
        if args.eval_batch > 0:
            xe = torch.randn(args.eval_batch, args.frames, ref.V, 2, device=dev)
            net.eval()
            with torch.no_grad():
                evals = common.timed(lambda: net(xe), max(1, args.repeats // 2), sync)
            net.train()
            fields.update(eval_batch=args.eval_batch, eval_s=f"{min(evals):.6f}")
        if args.epochs > 0:
            data = torch.randn(args.train_clips, args.frames, ref.V, 2, device=dev)
            labels = torch.arange(args.train_clips, device=dev) % 2
            t0 = time.perf_counter()
            for _ in range(args.epochs):
                order = torch.randperm(args.train_clips, device=dev)
                for s in range(0, args.train_clips, args.batch):
                    rows = order[s:s + args.batch]
                    step(data[rows], labels[rows])
            sync()
            fields.update(epochs=args.epochs, train_clips=args.train_clips, run_s=f"{time.perf_counter() - t0:.3f}")
        common.line("torch_result", **fields)
        del net, step
    return 0


if __name__ == "__main__":
    sys.exit(main())
