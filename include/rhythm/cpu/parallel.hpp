#pragma once
/// Fork-join helper of the CPU backends: the only place rhythm starts threads.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#include "../core/execution.hpp"

namespace rhythm::cpu {

inline int thread_count(exec::seq) { return 1; }
inline int thread_count(exec::par p) {
  if (p.threads > 0) return p.threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

/// Calls `body(item, worker)` for every item in [0, items), spread dynamically over up to
/// `threads` workers (worker in [0, threads)); the calling thread is worker 0. Rethrows the first
/// exception a body threw, after all workers have joined.
template <class Body>
void parallel_for(int threads, std::int64_t items, Body&& body) {
  const int workers = static_cast<int>(std::min<std::int64_t>(std::max(threads, 1), items));
  if (workers <= 1) {
    for (std::int64_t i = 0; i < items; ++i) body(i, 0);
    return;
  }
  std::atomic<std::int64_t> next{0};
  std::exception_ptr first_error;
  std::atomic<bool> failed{false};
  auto run = [&](int worker) {
    try {
      for (std::int64_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < items;) body(i, worker);
    } catch (...) {
      if (!failed.exchange(true)) first_error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (int w = 1; w < workers; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& t : pool) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

/// Number of workers parallel_for will use for `items` items.
inline int worker_count(int threads, std::int64_t items) {
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(std::max(threads, 1), items)));
}

}  // namespace rhythm::cpu
