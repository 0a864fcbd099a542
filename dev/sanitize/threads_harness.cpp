// ThreadSanitizer harness of the CPU kernels (dev/sanitize/run.sh builds it with clang, LLVM's OpenMP
// runtime and its Archer tool, which tells TSan about OpenMP's own synchronization). Every variant of
// every registered rule, both types, every ISA this CPU runs, and every fill and bandwidth probe, on a
// tensor list whose thread split cuts tensors, with 2, 3 and 4 threads. Each result must also equal
// the 1-thread result bit for bit; every variant also over bfloat16 lists with stochastic rounding. `--race` makes two tensors share memory (the overlap the bindings
// refuse) to show that the harness does catch a race. Exit 0: clean and identical.
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "kernels.hpp"

namespace fusedopt {
namespace {

const std::vector<int64_t> kSizes = {1, 7, 1023, 20000, 33, 50001, 16};
int g_failures = 0;

template <template <unsigned> class Family, unsigned... V>
std::vector<unsigned> present_masks(std::integer_sequence<unsigned, V...>) {
  return {Family<V>::present...};
}

struct Rule {
  std::string name;
  std::vector<unsigned> present;  // per variant
  size_t scalar_fields_float, scalar_fields_double;
};

#define FUSEDOPT_DESCRIBE(R)                                                                                     \
  Rule{#R,                                                                                                       \
       present_masks<rules::R>(std::make_integer_sequence<unsigned, rules::RuleInfo<rules::R>::n_variants>{}),   \
       sizeof(rules::R<0>::Scalars<float>) / sizeof(float), sizeof(rules::R<0>::Scalars<double>) / sizeof(double)},

std::vector<Rule> registered_rules() { return {FUSEDOPT_OPTIMIZERS(FUSEDOPT_DESCRIBE)}; }

// n_lists lists of the tensors of kSizes, filled with values that keep every rule finite.
struct Lists {
  std::vector<int64_t> offsets;
  std::vector<std::vector<std::vector<unsigned char>>> storage;  // [list][tensor] bytes
  std::vector<std::vector<void*>> pointers;

  Lists(int n_lists, size_t itemsize, bool shared_memory) {
    offsets.push_back(0);
    for (int64_t s : kSizes) offsets.push_back(offsets.back() + s);
    storage.resize(n_lists);
    pointers.resize(n_lists);
    for (int k = 0; k < n_lists; ++k) {
      for (size_t t = 0; t < kSizes.size(); ++t) {
        storage[k].emplace_back(kSizes[t] * itemsize + 64);
        pointers[k].push_back(storage[k][t].data());
        for (int64_t i = 0; i < kSizes[t]; ++i) set(k, t, i, itemsize, 0.25 + 0.001 * ((i * 7 + k * 13 + t) % 97));
      }
    }
    // tensor 3 inside tensor 5's second half, which another thread updates
    if (shared_memory) pointers[0][3] = static_cast<unsigned char*>(pointers[0][5]) + 30000 * itemsize;
  }

  void set(int k, size_t t, int64_t i, size_t itemsize, double v) {
    unsigned char* at = storage[k][t].data();
    if (itemsize == 2) reinterpret_cast<unsigned short*>(at)[i] = 0x3c00;  // a fill's output: overwritten
    else if (itemsize == 4) reinterpret_cast<float*>(at)[i] = static_cast<float>(v);
    else reinterpret_cast<double*>(at)[i] = v;
  }

  TensorListView view(int threads) const {
    TensorListView v{};
    v.n_tensors = static_cast<int64_t>(kSizes.size());
    v.offsets = offsets.data();
    for (size_t k = 0; k < pointers.size(); ++k) v.slots[k] = pointers[k].data();
    v.serial_below = 0;  // always the parallel region
    v.num_threads = threads;
    return v;
  }
};

bool same_bytes(const Lists& a, const Lists& b) { return a.storage == b.storage; }

template <typename Run>
void check_thread_counts(const std::string& what, int n_lists, size_t itemsize, bool race, Run&& run) {
  Lists one(n_lists, itemsize, race);
  run(one.view(1));
  for (int threads = 2; threads <= 4; ++threads) {
    Lists many(n_lists, itemsize, race);
    run(many.view(threads));
    // Chunks go to whichever thread claims them first, so a racy run may happen to stay on one thread:
    // repeat it (TSan stops the harness at the first report).
    for (int again = 0; race && again < 200; ++again) run(many.view(threads));
    if (!race && !same_bytes(one, many)) {
      std::printf("DIFFERENT BITS: %s with %d threads\n", what.c_str(), threads);
      ++g_failures;
    }
  }
}

void run_table(const KernelTable& table, bool race) {
  const std::vector<Rule> rules = registered_rules();
  for (size_t r = 0; r < rules.size(); ++r) {
    for (int dtype = 0; dtype < 2; ++dtype) {
      const size_t itemsize = dtype == kFloat32 ? 4 : 8;
      for (size_t v = 0; v < rules[r].present.size(); ++v) {
        const int n_lists = __builtin_popcount(rules[r].present[v]);
        const size_t fields = dtype == kFloat32 ? rules[r].scalar_fields_float : rules[r].scalar_fields_double;
        std::vector<double> scalars_d(fields, 0.5);
        std::vector<float> scalars_f(fields, 0.5f);
        const void* scalars = dtype == kFloat32 ? static_cast<const void*>(scalars_f.data()) : scalars_d.data();
        const StepKernel kernel = table.optimizers[r].variants[dtype][v];
        const std::string what = std::string(table.isa) + " " + rules[r].name + "<" + std::to_string(v) + "> " +
                                 (dtype == kFloat32 ? "float" : "double");
        check_thread_counts(what, n_lists, itemsize, race, [&](const TensorListView& view) { kernel(view, scalars); });
        if (race) return;  // one racy run is enough to show the harness catches it
      }
    }
  }
  // every variant over bfloat16 lists, rounded stochastically (cpu/mixed.hpp: staged blocks, Philox bits)
  std::vector<int64_t> ids(kSizes.size());
  for (size_t t = 0; t < ids.size(); ++t) ids[t] = static_cast<int64_t>(t);
  for (size_t r = 0; r < rules.size(); ++r) {
    for (size_t v = 0; v < rules[r].present.size(); ++v) {
      const int n_lists = __builtin_popcount(rules[r].present[v]);
      std::vector<float> scalars(rules[r].scalar_fields_float, 0.5f);
      MixedStorage m{};
      for (int k = 0; k < kMaxSlots; ++k) m.type[k] = kBFloat16;
      m.stochastic = 1;
      m.seed = 7;
      m.step = 3;
      m.tensor_ids = ids.data();
      const MixedKernel kernel = table.optimizers[r].mixed[v];
      check_thread_counts(std::string(table.isa) + " " + rules[r].name + "<" + std::to_string(v) + "> bfloat16", n_lists,
                          2, false, [&](const TensorListView& view) { kernel(view, m, scalars.data()); });
    }
  }
  for (int dtype = 0; dtype < 2; ++dtype) {
    const size_t itemsize = dtype == kFloat32 ? 4 : 8;
    check_thread_counts(std::string(table.isa) + " stream_adam_pattern", 4, itemsize, false,
                        [&](const TensorListView& view) { table.stream_adam_pattern[dtype](view, 0.0); });
    check_thread_counts(std::string(table.isa) + " stream_write", 1, itemsize, false,
                        [&](const TensorListView& view) { table.stream_write[dtype](view, 1.5); });
  }
  const size_t fill_itemsize[4] = {4, 8, 2, 2};
  for (int kind = 0; kind < 4; ++kind) {
    for (int d = 0; d < 3; ++d) {
      const InitHyper h{static_cast<Distribution>(d), -1.0, 1.0, 0.0, 1.0, -0.9, 0.9, 0.999, 1234, 5};
      check_thread_counts(std::string(table.isa) + " init_fill " + std::to_string(kind) + "/" + std::to_string(d), 1,
                          fill_itemsize[kind], false,
                          [&](const TensorListView& view) { table.init_fill[kind](view, h); });
    }
  }
}

}  // namespace
}  // namespace fusedopt

int main(int argc, char** argv) {
  using namespace fusedopt;
  const bool race = argc > 1 && std::strcmp(argv[1], "--race") == 0;
  // --openmp: the jobs on the OpenMP runtime's team (set_thread_runtime), one ISA: the runtime is the
  // same code for every ISA's kernels
  const bool openmp = argc > 1 && std::strcmp(argv[1], "--openmp") == 0;
  set_thread_runtime(openmp);
  std::vector<const KernelTable*> tables = {&kernel_table_isa_baseline()};
  if (!openmp) {
#if defined(FUSEDOPT_HAVE_X86_ISAS)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) tables.push_back(&kernel_table_isa_avx2());
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    tables.push_back(&kernel_table_isa_avx512());
#endif
  }
  for (const KernelTable* table : tables) {
    std::printf("%s\n", table->isa);
    run_table(*table, race);
  }
  std::printf(g_failures ? "FAILED: %d\n" : "clean: every kernel, 1-4 threads, bit-identical\n", g_failures);
  return g_failures ? 1 : 0;
}
