#!/usr/bin/env bash
# Installs every Debian 12 package stpain needs, then the files it makes from
# Debian packages. Idempotent, non-interactive, offline apart from Debian's mirror.
#   tools/setup.sh          build + tests + examples
#   tools/setup.sh --dev    also PyTorch, torchvision, scikit-learn, imbalanced-learn
#                           (fixture generators in tools/fixtures/ and the benchmarks' PyTorch figures)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

PKGS=(
  bazel-bootstrap          # Bazel 4.2.3
  g++                      # GCC 12 with libgomp (OpenMP)
  catch2                   # Catch2 v2 single header
  libeigen3-dev            # Eigen 3.4
  xtensor-dev libxsimd-dev # xtensor 0.24 (+ xtl) and xsimd 8
  libopenblas-openmp-dev   # OpenBLAS built on OpenMP: one thread pool with stpain's loops
  libopencv-dev            # image and video I/O, warping
  libdlib-dev libdlib-data # face detector + 68-point shape predictor model
  python3                  # helper scripts
)
if [ "$dev" = 1 ]; then
  PKGS+=(python3-torch python3-torchvision python3-numpy python3-sklearn python3-imblearn python3-opencv)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# dlib (and PyTorch) reach BLAS through libblas.so.3: point it at the OpenMP
# OpenBLAS too, so a process never holds two OpenBLAS copies with two pools.
alt=/usr/lib/x86_64-linux-gnu/openblas-openmp
for name in libblas.so.3 liblapack.so.3; do
  if update-alternatives --list "$name-x86_64-linux-gnu" 2>/dev/null | grep -q "$alt/$name"; then
    $SUDO update-alternatives --quiet --set "$name-x86_64-linux-gnu" "$alt/$name"
  fi
done

# A real face photo (NASA's astronaut Eileen Collins, public domain), shipped
# in python3-skimage: extracted from the .deb without installing the package.
photo=tests/data/astronaut.png
if [ ! -s "$photo" ]; then
  tmp=$(mktemp -d)
  chmod 777 "$tmp"  # apt-get download runs as the _apt user
  (cd "$tmp" && apt-get download -qq python3-skimage &&
    dpkg-deb --fsys-tarfile python3-skimage_*.deb | tar -x ./usr/lib/python3/dist-packages/skimage/data/astronaut.png)
  mkdir -p "$(dirname "$photo")"
  cp "$tmp/usr/lib/python3/dist-packages/skimage/data/astronaut.png" "$photo"
  rm -rf "$tmp"
fi

echo "setup: done"
