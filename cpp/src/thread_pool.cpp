// The CPU kernels' threads (declared in cpu/tensor_list.hpp). A step is one job of chunks: the calling
// thread and up to threads − 1 pool workers claim chunks from one shared counter, and the caller waits
// only for the chunks that were claimed, never for a worker that has not started. An OpenMP region
// cannot do that: its closing barrier waits for every member of the team, so on a busy machine a step
// waited a whole scheduler time slice for a parked thread that had nothing left to do (issue 17,
// benchmarks/RESULTS.md). Which thread runs a chunk never changes a result.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <strings.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <system_error>
#include <thread>

#include "fusedopt/cpu/tensor_list.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FUSEDOPT_CPU_RELAX() _mm_pause()
#else
#define FUSEDOPT_CPU_RELAX() std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

namespace fusedopt {
namespace {

// The job word, which workers read and claim from in one atomic:
// | epoch (16 bits) | workers allowed (12) | chunks (18) | next unclaimed chunk (18) |.
// The epoch only makes two equal jobs in a row different words, so that waiting workers see the
// second. Claiming is a compare-and-swap of the whole word, so a worker holding a stale word can
// only ever claim a chunk of the job that is current at that moment.
constexpr int kNextBits = 18, kChunkBits = 18, kTeamBits = 12;
constexpr uint64_t kNextMask = (uint64_t(1) << kNextBits) - 1;
constexpr uint64_t kChunkMask = (uint64_t(1) << kChunkBits) - 1;
constexpr uint64_t kTeamMask = (uint64_t(1) << kTeamBits) - 1;

uint64_t next_of(uint64_t w) { return w & kNextMask; }
uint64_t chunks_of(uint64_t w) { return (w >> kNextBits) & kChunkMask; }
uint64_t allowed_of(uint64_t w) { return (w >> (kNextBits + kChunkBits)) & kTeamMask; }

// How an idle worker waits for the next job (benchmarks/bench_wait_policy.py, RESULTS.md, issue 17): it
// spins on the job word for 1 ms of its own CPU time (OpenMP counts spins, not wall time, likewise),
// yielding its core every 64 checks, then sleeps. The spin catches steps taken back to back (a woken
// worker arrives too late to share a step of 1e5 elements); the yield hands the core back to a thread
// that has work, such as the caller itself when the scheduler put both on one core of a busy machine
// (without it, a caller sharing its core with a spinning worker at times ran at half speed); 1 ms
// bounds the time a worker keeps a core from the rest of a training loop. OMP_WAIT_POLICY=passive, the
// OpenMP way of asking for no spinning, makes workers sleep at once.
int64_t initial_spin_ns() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const bool passive = policy != nullptr && strcasecmp(policy, "passive") == 0;
  return passive ? 0 : 1000000;
}
std::atomic<int64_t> g_spin_ns{initial_spin_ns()};
std::atomic<bool> g_spin_yields{true};
std::atomic<int> g_misses_before_sleeping{1 << 30};
// How many checks the caller spins on unfinished chunks before it yields its core to the worker that
// holds them (a worker the scheduler has parked mid-chunk may be waiting for exactly this core).
constexpr int kCallerSpins = 4000;

struct Pool {
  std::atomic<uint64_t> word{0};
  std::atomic<ChunkTask> task{nullptr};
  std::atomic<void*> context{nullptr};
  std::atomic<int64_t> done{0};
  std::atomic<int> sleepers{0};
  std::atomic<int> workers{0};
  uint16_t epoch = 0;        // the owner's only
  PoolStats stats;           // the owner's only
  std::mutex owner;          // one job at a time has the workers; another caller runs its job alone
#if defined(__linux__)
  std::atomic<uint32_t> wake_sequence{0};  // a futex: changes when publish() wakes sleepers
#else
  std::mutex sleep_mutex;
  std::condition_variable wake;
#endif
};

// Never destroyed: detached workers may still wait on it when the process exits.
Pool* g_pool = new Pool;

// Set on the workers and on a caller during its job: a kernel started from inside a chunk runs alone.
thread_local bool t_inside_job = false;

// Claims and runs chunks of the current job while this thread may take them; w is the word as last read.
// Returns the word last seen, with nothing left in it for this thread.
uint64_t claim_and_run(Pool& pool, uint64_t w, uint64_t id, int64_t* claimed = nullptr) {
  while (id <= allowed_of(w) && next_of(w) < chunks_of(w)) {
    if (pool.word.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      if (claimed != nullptr) ++*claimed;
      // The job cannot be replaced before this chunk is done, so its task and context are still its own.
      pool.task.load(std::memory_order_relaxed)(pool.context.load(std::memory_order_relaxed),
                                                static_cast<int64_t>(next_of(w)));
      pool.done.fetch_add(1, std::memory_order_release);
      w = pool.word.load(std::memory_order_acquire);
    }
  }
  return w;
}

int64_t thread_cpu_ns() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// Sleeps until a job may have been published (or spuriously: the caller checks the word again).
// A worker raises `sleepers`, then checks the word; publish() stores the word, then reads `sleepers`,
// all sequentially consistent, so either the worker sees the new word or publish() sees the sleeper
// and wakes it. On Linux through a futex, so that publishing never waits for a lock a parked worker
// holds; elsewhere through a condition variable.
void sleep_until_published(Pool& pool, uint64_t w) {
#if defined(__linux__)
  const uint32_t sequence = pool.wake_sequence.load();
  pool.sleepers.fetch_add(1);
  if (pool.word.load() == w)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&pool.wake_sequence), FUTEX_WAIT_PRIVATE, sequence, nullptr,
            nullptr, 0);
  pool.sleepers.fetch_sub(1);
#else
  std::unique_lock<std::mutex> lock(pool.sleep_mutex);
  pool.sleepers.fetch_add(1);
  pool.wake.wait(lock, [&] { return pool.word.load() != w; });
  pool.sleepers.fetch_sub(1);
#endif
}

// Returns once the job word differs from w: spins for a while, then sleeps until a job is published.
void wait_for_job(Pool& pool, uint64_t w, bool spin) {
  const int64_t spin_until = thread_cpu_ns() + (spin ? g_spin_ns.load(std::memory_order_relaxed) : 0);
  const bool yields = g_spin_yields.load(std::memory_order_relaxed);
  for (int spins = 1; pool.word.load(std::memory_order_acquire) == w; ++spins) {
    FUSEDOPT_CPU_RELAX();
    if (yields && spins % 64 == 0) sched_yield();
    if (spins % 256 == 0 && thread_cpu_ns() > spin_until) {
      while (pool.word.load(std::memory_order_acquire) == w) sleep_until_published(pool, w);
      return;
    }
  }
}

void worker_main(Pool* pool, uint64_t id) {
  t_inside_job = true;
  sigset_t all;  // signals go to the application's threads, never to a kernel worker
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  int missed = 0;  // jobs in a row whose chunks were all claimed before this worker got to them
  uint64_t w = pool->word.load(std::memory_order_acquire);
  for (;;) {
    int64_t claimed = 0;
    const uint64_t last = claim_and_run(*pool, w, id, &claimed);
    if (id <= allowed_of(w) && chunks_of(w) > 1) missed = claimed > 0 ? 0 : missed + 1;
    wait_for_job(*pool, last, missed < g_misses_before_sleeping.load(std::memory_order_relaxed));
    w = pool->word.load(std::memory_order_acquire);
  }
}

// Starts workers until there are `wanted` (fewer if the system refuses threads: the caller then runs
// more of each job itself). Only the job's owner calls this.
int grow_to(Pool& pool, int wanted) {
  int have = pool.workers.load(std::memory_order_relaxed);
  for (; have < wanted; ++have) {
    try {
      std::thread(worker_main, &pool, static_cast<uint64_t>(have + 1)).detach();
    } catch (const std::system_error&) {
      break;
    }
    pool.workers.store(have + 1, std::memory_order_relaxed);
  }
  return have;
}

// Publishes a job: stores the word, then wakes the workers that sleep (see sleep_until_published).
void publish(Pool& pool, uint64_t w) {
  pool.word.store(w);
  if (pool.sleepers.load() > 0) {
#if defined(__linux__)
    pool.wake_sequence.fetch_add(1);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&pool.wake_sequence), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
            nullptr, 0);
#else
    { std::lock_guard<std::mutex> lock(pool.sleep_mutex); }
    pool.wake.notify_all();
#endif
  }
}

void run_serial(int64_t n_chunks, ChunkTask task, void* context) {
  for (int64_t c = 0; c < n_chunks; ++c) task(context, c);
}

// The other way to run a job (set_thread_runtime): on the OpenMP runtime's team, which a process
// shares with every library linked to the same libgomp (torch's CPU ops run on it). After each of
// their parallel ops that team's workers spin for a while (about 7 ms here); a pool worker started
// then shares a core with one of them, and a 2-thread step took 1.2-1.6x as long (RESULTS.md). On
// the same team the step reuses those threads instead. Chunks are claimed from a counter as in the
// pool, so which thread runs a chunk still changes no result; the region's closing barrier waits for
// every team member, which is what issue 17 left OpenMP for, so this is not the default.
std::atomic<bool> g_openmp{false};
std::atomic<bool> g_forked{false};  // libgomp's team is unusable in a child of fork(): the pool runs
std::atomic<int64_t> g_openmp_jobs{0};

bool on_openmp_team() {
  return g_openmp.load(std::memory_order_relaxed) && !g_forked.load(std::memory_order_relaxed);
}

void run_openmp(int64_t n_chunks, int threads, ChunkTask task, void* context) {
  std::atomic<int64_t> next{0};
  g_openmp_jobs.fetch_add(1, std::memory_order_relaxed);
#pragma omp parallel num_threads(threads)
  {
    const bool nested = t_inside_job;
    t_inside_job = true;
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < n_chunks;) task(context, c);
    t_inside_job = nested;
  }
}

// In a child of fork() only the forking thread exists: start over with a new pool and no workers.
void reset_after_fork() {
  g_pool = new Pool;
  g_forked.store(true);
}
const int g_atfork = pthread_atfork(nullptr, nullptr, reset_after_fork);

}  // namespace

void run_chunks(int64_t n_chunks, int threads, ChunkTask task, void* context) noexcept {
  (void)g_atfork;
  Pool& pool = *g_pool;
  if (threads <= 1 || n_chunks <= 1 || n_chunks > kMaxChunks || t_inside_job)
    return run_serial(n_chunks, task, context);
  if (on_openmp_team()) return run_openmp(n_chunks, threads, task, context);
  std::unique_lock<std::mutex> owner(pool.owner, std::try_to_lock);
  if (!owner.owns_lock()) return run_serial(n_chunks, task, context);  // another step has the workers
  const uint64_t allowed = static_cast<uint64_t>(grow_to(pool, std::min(threads - 1, int(kTeamMask))));
  if (allowed == 0) return run_serial(n_chunks, task, context);
  pool.task.store(task, std::memory_order_relaxed);
  pool.context.store(context, std::memory_order_relaxed);
  pool.done.store(0, std::memory_order_relaxed);
  ++pool.epoch;
  const uint64_t w = (uint64_t(pool.epoch) << (kNextBits + kChunkBits + kTeamBits)) |
                     (allowed << (kNextBits + kChunkBits)) | (uint64_t(n_chunks) << kNextBits);
  publish(pool, w);
  t_inside_job = true;
  int64_t by_caller = 0;
  claim_and_run(pool, w, 0, &by_caller);
  t_inside_job = false;
  pool.stats.jobs += 1;
  pool.stats.chunks += n_chunks;
  pool.stats.chunks_by_workers += n_chunks - by_caller;
  pool.stats.jobs_helped += by_caller < n_chunks;
  for (int spins = 1; pool.done.load(std::memory_order_acquire) < n_chunks; ++spins) {
    if (spins < kCallerSpins) FUSEDOPT_CPU_RELAX();
    else sched_yield();
  }
}

void set_worker_wait(int64_t spin_ns, bool yields, int misses) noexcept {
  g_spin_ns.store(spin_ns, std::memory_order_relaxed);
  g_spin_yields.store(yields, std::memory_order_relaxed);
  g_misses_before_sleeping.store(misses, std::memory_order_relaxed);
}

PoolStats pool_stats() noexcept {
  Pool& pool = *g_pool;
  std::lock_guard<std::mutex> owner(pool.owner);
  PoolStats stats = pool.stats;
  stats.openmp_jobs = g_openmp_jobs.load(std::memory_order_relaxed);
  return stats;
}

void set_thread_runtime(bool openmp) noexcept { g_openmp.store(openmp); }

bool thread_runtime_is_openmp() noexcept { return g_openmp.load(); }

int team_size(int threads) noexcept {
  if (threads <= 1) return 1;
  if (on_openmp_team()) return threads;
  Pool& pool = *g_pool;
  std::lock_guard<std::mutex> owner(pool.owner);
  return 1 + grow_to(pool, std::min(threads - 1, int(kTeamMask)));
}

}  // namespace fusedopt
