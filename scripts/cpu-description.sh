#!/usr/bin/env bash
# One line naming this machine's CPU for logs and benchmark records: model, family/model
# numbers (a KVM guest often says only "AMD EPYC"), the widest vector ISA, and the core count.
set -euo pipefail
info=/proc/cpuinfo
field() { grep -m1 "^$1[[:space:]]*:" "$info" | cut -d: -f2- | sed 's/^ //' || true; }
flags=" $(field flags) "
isa=SSE
for f in avx avx2 avx512f avx512_bf16 amx_tile; do
  [[ $flags == *" $f "* ]] && isa=$f
done
case $isa in avx512f) isa="AVX-512" ;; avx512_bf16) isa="AVX-512 + BF16" ;; amx_tile) isa="AVX-512 + AMX" ;; avx2) isa="AVX2" ;; avx) isa="AVX" ;; esac
echo "$(field 'model name') (family $(field 'cpu family') model $(field model), $isa), $(nproc) cores"
