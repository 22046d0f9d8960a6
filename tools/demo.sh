#!/usr/bin/env bash
# The end-to-end demo (the README's first command runs it after tools/setup.sh):
# a PEMF-like dataset made from a real face, both experiments of the paper on
# it, and a report with the paper's Tables 1-3 beside ours, clearly labelled
# as synthetic data. Every step is one of the example programs and can be run
# on its own; a step whose output already exists is skipped (delete it to redo).
#
#   tools/demo.sh [--out DIR] [--pemf ROOT] [--weights FILE] [--train-backbone] [--quick] [--help]
#     --out DIR          where everything goes (default out/demo)
#     --pemf ROOT        use this PEMF root instead of generating one
#     --weights FILE     pre-trained ConvNeXt weights (e.g. ImageNet-22k XLarge,
#                        docs/convnext.md) instead of a seeded random ConvNeXt-atto
#     --train-backbone   train a ConvNeXt-atto on frames of 16 other generated
#                        subjects first and use its features
#     --quick            fewer subjects and epochs (a smoke run of a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

out=out/demo pemf= weights= quick=0 train_backbone=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --pemf) pemf=$2; shift 2 ;;
    --weights) weights=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --train-backbone) train_backbone=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

# Sized to finish in under 30 minutes on 2 cores: 3 subject-independent folds
# (the programs default to 5), Yan et al.'s ST-GCN block for the landmark
# models (it learns the planted movement in 10 epochs and costs less than the
# paper's recurrent attention block, which --block paper selects in train_stgcn).
subjects=68 pretrain_subjects=16 folds=3 stgcn_epochs=10 fusion_epochs=12 head_epochs=40 backbone_epochs=8 size=96
block=stgcn
if [ "$quick" = 1 ]; then
  subjects=15 pretrain_subjects=6 folds=3 stgcn_epochs=4 fusion_epochs=4 head_epochs=8 backbone_epochs=2 size=64
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - start ))s] $*"; }

step "building the programs (bazel, --config=opt)"
bazel build --config=opt //examples:all 2>&1 | grep -E "^(ERROR|FAILED)|error:" || true
bin=bazel-bin/examples
[ -x $bin/train_stgcn ] || { echo "demo.sh: the build failed (run: bazel build --config=opt //examples:all)" >&2; exit 1; }

synthetic=()
if [ -z "$pemf" ]; then
  pemf=$out/pemf
  synthetic=(--synthetic)
  step "1/8 generating a PEMF-like set from a real face ($subjects subjects) -> $pemf"
  [ -d "$pemf/Pictures" ] || $bin/make_synthetic_pemf --out "$pemf" --subjects $subjects --seed 1
fi

step "2/8 dlib landmarks on every colour clip -> $out/landmarks.csv"
[ -s "$out/landmarks.csv" ] || $bin/extract_landmarks --pemf "$pemf" --folders colour --tidy-csv "$out/landmarks.csv" \
  --out-csv "$out/landmarks_authors.csv" --labels-csv "$out/labels_authors.csv"
first_clip=$(find "$pemf" -path "*Posed Pain/Colour frames" -type d | sort | head -n 1)
[ -d "$out/overlay" ] || $bin/extract_landmarks --frames "$first_clip" --overlay-dir "$out/overlay" >/dev/null

step "3/8 STGCN and STGCN-LSTM ($block block, mesh graph, SMOTE, subject-independent folds) -> $out/stgcn"
[ -s "$out/stgcn/results.json" ] || $bin/train_stgcn --tidy "$out/landmarks.csv" --model all --block $block \
  --epochs $stgcn_epochs --lr 1e-3 --folds $folds --out "$out/stgcn" "${synthetic[@]}"

# The visual pipeline sees each clip cut to its face (dlib, one box per clip):
# squash-resized whole frames leave the face ~40 px wide at 96 px and the
# heads at chance. Without --weights the backbone is a seeded random
# ConvNeXt-atto: on this synthetic set its features gave the LSTM head
# 82% accuracy / 84% ROC-AUC, against 71% / 71% for an atto trained on 16
# other subjects' frames (--train-backbone), which learns their identities.
backbone=(--arch atto --seed 3)
if [ -n "$weights" ]; then
  step "4/8 using the given ConvNeXt weights $weights"
  backbone=(--weights "$weights")
  size=224
elif [ "$train_backbone" = 1 ]; then
  weights=$out/backbone.safetensors
  step "4/8 a small ConvNeXt trained on frames of separate generated subjects -> $weights"
  if [ ! -s "$weights" ]; then
    [ -d "$out/pretrain/Pictures" ] || $bin/make_synthetic_pemf --out "$out/pretrain" --subjects $pretrain_subjects --seed 99
    $bin/train_convnext_frames --pemf "$out/pretrain" --out "$weights" --arch atto --size $size --epochs $backbone_epochs --face-crop
  fi
  backbone=(--weights "$weights")
else
  step "4/8 backbone: a seeded random ConvNeXt-atto (--weights FILE or --train-backbone to change)"
fi

step "5/8 ConvNeXt features of every clip's face -> $out/features.safetensors"
[ -s "$out/features.safetensors" ] || $bin/extract_features --pemf "$pemf" "${backbone[@]}" --no-head --size $size \
  --face-crop --out "$out/features.safetensors"

step "6/8 the four LSTM heads and the per-frame baseline -> $out/convnext_lstm"
[ -s "$out/convnext_lstm/results.json" ] || $bin/train_convnext_lstm --features "$out/features.safetensors" --head all \
  --epochs $head_epochs --folds $folds --out "$out/convnext_lstm" "${synthetic[@]}"

step "7/8 fusing both pipelines (late and mid fusion) -> $out/fusion"
[ -s "$out/fusion/results.json" ] || $bin/train_fusion --features "$out/features.safetensors" --tidy "$out/landmarks.csv" \
  --block $block --epochs $fusion_epochs --visual-epochs $head_epochs --folds $folds --out "$out/fusion" "${synthetic[@]}"

step "8/8 the report -> $out/report.md"
$bin/write_report --out "$out"

echo
echo "demo done in $(( $(date +%s) - start ))s: open $out/report.md"
