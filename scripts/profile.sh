#!/usr/bin/env bash
# npm run profile -- <script.ts> [args]: where a run spends its time, Wasm functions by name.
#
# Samples with Linux perf (cpu-clock, so it works without hardware counters), lets V8 write
# a jitdump of the code it generates (--perf-prof), folds the JIT code in (perf inject
# --jit), and names each wasm-function[N] after the N-th function of build/memvisor.wat
# (the release build's text, numbered from 1 after the one import). Then:
#   perf annotate -i build/profile/perf.jit.data --stdio -s 'JS:wasm-function[N]-N-turbofan'
# shows that function's machine code with its samples.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: npm run profile -- <script.ts> [args]" >&2; exit 2; }
command -v perf >/dev/null || { echo "profile: needs Linux perf (apt-get install linux-perf)" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
script=$(realpath "$1"); shift
npm run build:core --silent --prefix "$root"
out="$root/build/profile"
rm -rf "$out" && mkdir -p "$out"
grep -E '^ \(func ' "$root/build/memvisor.wat" | awk '{print NR, $2}' > "$out/functions.txt"
cd "$out"
perf record -q -e cpu-clock -k 1 -o perf.data node --perf-prof --import tsx "$script" "$@"
perf inject --jit -i perf.data -o perf.jit.data 2>/dev/null
perf report -i perf.jit.data --stdio --sort sym 2>/dev/null | grep '%' | head -25 | while read -r pct _ sym; do
  n=$(printf '%s' "$sym" | sed -n 's/.*wasm-function\[\([0-9]*\)\].*/\1/p')
  name=$sym
  [ -n "$n" ] && name="$(sed -n "${n}p" functions.txt | cut -d' ' -f2) (wasm-function[$n], $(printf '%s' "$sym" | sed 's/.*-//'))"
  printf '%8s  %s\n' "$pct" "$name"
done
