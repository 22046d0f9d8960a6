#!/usr/bin/env bash
# Regenerates every PyTorch reference fixture under tests/fixtures/ with
# Debian's python3-torch (install with tools/setup.sh --dev). The generators
# are seeded, so an unchanged generator rewrites the same tensors.
set -euo pipefail
cd "$(dirname "$0")/fixtures"
PY=/usr/bin/python3  # Debian's interpreter: the one python3-torch is installed for
for script in *.py; do
  [ "$script" = common.py ] && continue
  echo "== $script"
  "$PY" "$script"
done
