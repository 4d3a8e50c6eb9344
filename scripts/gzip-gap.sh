#!/usr/bin/env bash
# Where the gzip size gap against `pigz -6` comes from (BENCHMARKS.md, "The gzip gap on
# repetitive text"): installs the peers it compares with (pigz, GNU gzip, Debian's
# libdeflate-gzip, python3 for zlib) if missing, then runs `cargo bench --bench gzip_gap`,
# which prints a Markdown table. Arguments: the trees, default `node,jvm`.
# OCIBUILD_GAP_RUNS (default 3) and OCIBUILD_BENCH_MB (jvm size, default 550) pass through.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pair in pigz:pigz gzip:gzip libdeflate-gzip:libdeflate-tools python3:python3; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get install -y "${missing[@]}"
fi

OCIBUILD_GAP_TREES="${1:-node,jvm}" cargo bench --bench gzip_gap
