// A minimal fork-join parallel_for on std::thread.
// Why not OpenMP: the torch wheel ships its own OpenMP runtime, and two runtimes in one
// process is a known source of hangs and oversubscription; plain threads avoid the question.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace uc {

inline int default_num_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Calls body(begin, end) on contiguous slices of [0, n) from up to num_threads threads.
// The first exception thrown by any slice is rethrown on the calling thread.
template <typename Body>
void parallel_for(int64_t n, int num_threads, Body body) {
  if (n <= 0) return;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(num_threads, n));
  if (workers == 1) {
    body(int64_t(0), n);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers - 1));
  auto run = [&](int64_t w) {
    const int64_t begin = n * w / workers, end = n * (w + 1) / workers;
    try {
      body(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  for (int64_t w = 1; w < workers; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace uc
