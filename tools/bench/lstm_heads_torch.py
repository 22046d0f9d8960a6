#!/usr/bin/python3
"""PyTorch training-step time of the four sequence heads, the reference for bench/lstm_heads_bench.

Run with Debian's /usr/bin/python3 (python3-torch):

    /usr/bin/python3 tools/bench/lstm_heads_torch.py --heads lstm,bilstm,attention,stacked --threads 2

The heads are those of tools/fixtures/heads.py (the authors' Keras code in
PyTorch, what tests/heads_test.cpp checks stpain against) at stpain's default
sizes (include/stpain/models/sequence_heads.hpp, SequenceHeadOptions):
2048 input features, first recurrent layer 128 units (per direction), second
and third 64, Dense 128 (ReLU), 2 classes, dropout 0.25 before the stacked
head's classifier:

    lstm       LSTM(128, seq) -> LSTM(64) -> Linear(128) -> ReLU -> Linear(2)
    bilstm     Bi-LSTM(128, seq) -> Bi-LSTM(64) -> Linear(128) -> ReLU -> Linear(2)
    attention  LSTM(128, seq) -> softmax(h h^T) h -> LSTM(64) -> Linear(128) -> ReLU -> Linear(2)
    stacked    Bi-LSTM(128, seq) -> Bi-LSTM(64, seq) -> LSTM(64) -> Linear(128) -> ReLU
               -> Dropout(0.25) -> Linear(2)

A training step is what stpain's fit() does per batch: zero_grad, forward in
train mode, cross-entropy, backward, Adam step (eps 1e-7, as Keras). Inputs
are random [batch, frames, features] sequences with labels 0/1. One warm-up
step, then the best of --repeats.

Output is one line per figure, machine-readable (bench/lstm_heads_bench.cpp
parses it), key=value pairs after a tag:

    torch_info torch=1.13.0 threads=2 capability=AVX2 mkldnn=1 openblas_coretype=Haswell
    torch_result head=lstm params=... batch=8 frames=20 features=2048 threads=2 repeats=10 step_s=... mean_s=...

Errors go to stderr with exit status 1 (e.g. torch not installed).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # common.py, next to this script
import common  # noqa: E402

HEADS = ("lstm", "bilstm", "attention", "stacked")


def build(name, torch, nn, features, units1=128, units2=64, dense=128, classes=2, dropout=0.25):
    """The head `name` at the given sizes (defaults: stpain's SequenceHeadOptions)."""

    def last_state(lstm, x):
        _, (h, _) = lstm(x)
        return torch.cat([h[-2], h[-1]], dim=1) if lstm.bidirectional else h[-1]

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            bi = name in ("bilstm", "stacked")
            d = 2 if bi else 1
            self.lstm1 = nn.LSTM(features, units1, batch_first=True, bidirectional=bi)
            self.lstm2 = nn.LSTM(d * units1, units2, batch_first=True, bidirectional=bi)
            top = d * units2
            if name == "stacked":
                self.lstm3 = nn.LSTM(d * units2, units2, batch_first=True)
                top = units2
            self.fc1, self.fc2 = nn.Linear(top, dense), nn.Linear(dense, classes)
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            h = self.lstm1(x)[0]
            if name == "attention":
                h = torch.softmax(h @ h.transpose(1, 2), dim=-1) @ h  # Q = K = V, no scaling
            if name == "stacked":
                s = last_state(self.lstm3, self.lstm2(h)[0])
                return self.fc2(self.drop(torch.relu(self.fc1(s))))
            return self.fc2(torch.relu(self.fc1(last_state(self.lstm2, h))))

    return Head()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heads", default=",".join(HEADS), help="comma-separated: " + ",".join(HEADS))
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (needs a CUDA build of torch)")
    parser.add_argument("--batch", type=int, default=8, help="sequences per training step (default 8)")
    parser.add_argument("--frames", type=int, default=20, help="time steps per sequence (default 20)")
    parser.add_argument("--features", type=int, default=2048, help="features per step (default 2048)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps, best kept (default 10)")
    args = parser.parse_args()

    try:
        import torch
        from torch import nn
    except ImportError as e:  # the C++ side prints "PyTorch figure unavailable"
        print(f"lstm_heads_torch.py: cannot import torch: {e}", file=sys.stderr)
        return 1

    dev = common.device(torch, args.device, "lstm_heads_torch.py")
    sync = common.synchronizer(torch, dev)
    common.start(torch, args.threads, extra={"device": dev.type})

    for name in common.split(args.heads):
        if name not in HEADS:
            print(f"lstm_heads_torch.py: unknown head {name} (one of {', '.join(HEADS)})", file=sys.stderr)
            return 1
        net = build(name, torch, nn, args.features).train().to(dev)
        step = common.keras_adam_step(torch, net)
        x = torch.randn(args.batch, args.frames, args.features, device=dev)
        y = torch.arange(args.batch, device=dev) % 2
        times = common.timed(lambda: step(x, y), args.repeats, sync)
        common.line("torch_result", head=name, params=common.parameter_count(net), batch=args.batch,
                    frames=args.frames, features=args.features, threads=torch.get_num_threads(),
                    repeats=args.repeats, step_s=f"{min(times):.6f}", mean_s=f"{common.mean(times):.6f}")
        del net, step
    return 0


if __name__ == "__main__":
    sys.exit(main())
