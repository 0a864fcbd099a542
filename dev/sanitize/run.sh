#!/usr/bin/env bash
# The sanitizer job (DESIGN.md §1, "Safety"): both parts must be clean.
#
#  1. AddressSanitizer + UndefinedBehaviorSanitizer: the extension built with gcc's -fsanitize=address,undefined
#     (build/asan, installed into .sanitize/asan-site) runs the test suite with the runtimes preloaded into
#     the ordinary Python. Any report fails the run (UBSan does not recover; ASan stops at the first error).
#  2. ThreadSanitizer: dev/sanitize/threads_harness.cpp, every optimizer variant, fill and probe of every
#     ISA with 2-4 threads, built with clang and LLVM's OpenMP runtime, whose Archer tool gives TSan the
#     OpenMP synchronization (a harness, because an uninstrumented CPython under TSan reports noise).
#     It also runs once with --race, which must be reported: the harness can fail.
#
# Usage: dev/sanitize/run.sh            the whole test suite under ASan/UBSan, then TSan (~6 min on 2 cores)
#        dev/sanitize/run.sh --quick    the tests that drive the compiled core, then TSan (what .ci/run does)
# Needs: the dev venv (.venv, with the test extra), gcc, and clang + LLVM's OpenMP (apt-get install clang
# libomp-dev; installed here when missing and this runs as root).
set -euo pipefail
cd "$(dirname "$0")/../.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
. .venv/bin/activate
out=.sanitize
mkdir -p "$out"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
python -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12"  # built here without isolation
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
rm -rf "$out/asan-site"
CXXFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" \
  python -m pip install --quiet --no-deps --no-build-isolation --target "$out/asan-site" \
  --config-settings=build-dir=build/asan .

# NVRTC cannot load its builtins library under the ASan runtime (a dlopen it does), so the CUDA compile
# checks are left to the ordinary run; they do not touch the extension.
tests=(tests --deselect tests/test_cuda_nvrtc.py)
if [ "$quick" = 1 ]; then
  tests=(tests/test_safety.py tests/test_fuzz_bindings.py tests/test_bad_input.py tests/test_state_dict.py
         tests/test_threads_and_isa.py tests/test_registry.py tests/test_hypothesis.py tests/test_adafactor.py
         tests/test_scaled_step.py tests/test_mixed_precision.py)
fi
echo "== tests under ASan/UBSan: ${tests[*]}"
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
PYTHONPATH="$out/asan-site" \
  python -m pytest -q -p no:cacheprovider -o addopts="" "${tests[@]}"

echo "== ThreadSanitizer harness"
llvm_lib=$(ls -d /usr/lib/llvm-*/lib 2>/dev/null | sort -V | tail -n 1 || true)
if ! command -v clang++ >/dev/null 2>&1 || [ -z "$llvm_lib" ] || [ ! -e "$llvm_lib/libarcher.so" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libomp-dev >/dev/null
    llvm_lib=$(ls -d /usr/lib/llvm-*/lib | sort -V | tail -n 1)
  else
    echo "ThreadSanitizer part needs clang and LLVM's OpenMP runtime with Archer (apt-get install clang libomp-dev)"
    exit 1
  fi
fi
tsan="$out/tsan"
mkdir -p "$tsan"
common=(-std=c++17 -O1 -g -w -fsanitize=thread -fopenmp -ffp-contract=off -fno-math-errno -I cpp/include -I cpp/src)
isa_flags=("baseline:" "avx2:-mavx2 -mfma" "avx512:-mavx512f -mavx512vl -mavx512dq -mavx2 -mfma -mprefer-vector-width=512")
for entry in "${isa_flags[@]}"; do
  name=${entry%%:*}
  # shellcheck disable=SC2206 - the ISA flags are words
  extra=(${entry#*:})
  clang++ "${common[@]}" "${extra[@]}" -DFUSEDOPT_ISA_NAMESPACE="isa_$name" -c cpp/src/kernels_isa.cpp -o "$tsan/kernels_$name.o" &
done
wait
clang++ "${common[@]}" -DFUSEDOPT_HAVE_X86_ISAS dev/sanitize/threads_harness.cpp cpp/src/isa.cpp cpp/src/thread_pool.cpp "$tsan"/kernels_*.o \
  -o "$tsan/threads_harness"
export OMP_TOOL_LIBRARIES="$llvm_lib/libarcher.so" ARCHER_OPTIONS=verbose=1
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 ignore_noninstrumented_modules=1"
"$tsan/threads_harness"
echo "== the same on the OpenMP runtime's team (fusedopt.set_thread_runtime('openmp'), baseline ISA)"
"$tsan/threads_harness" --openmp
echo "== the harness must catch a race (two tensors sharing memory, --race)"
status=0
"$tsan/threads_harness" --race >"$tsan/race.log" 2>&1 || status=$?
if [ "$status" != 66 ] || ! grep -q "WARNING: ThreadSanitizer: data race" "$tsan/race.log"; then
  echo "the --race run was not reported (exit $status):"
  tail -n 20 "$tsan/race.log"
  exit 1
fi
echo "race reported, as it must be"
echo "sanitizers: clean"
