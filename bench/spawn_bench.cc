// The spawn limit of this machine: how many `/bin/true` (or any command)
// processes per second posix_spawn + waitpid can start and reap from T
// threads. bench/compare.sh uses it as the ceiling a dispatcher is measured
// against.
//
//   spawn_bench N THREADS CMD [ARGS...]   ->  prints "<processes> <seconds> <per_second>"
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s N THREADS CMD [ARGS...]\n", argv[0]);
    return 2;
  }
  const long total = std::strtol(argv[1], nullptr, 10);
  const int threads = std::atoi(argv[2]);
  if (total <= 0 || threads <= 0) {
    std::fprintf(stderr, "spawn_bench: N and THREADS must be positive\n");
    return 2;
  }
  char** cmd = argv + 3;
  std::atomic<long> next{0};
  std::atomic<long> failures{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      while (next.fetch_add(1) < total) {
        pid_t pid = 0;
        if (posix_spawn(&pid, cmd[0], nullptr, nullptr, cmd, environ) != 0) {
          ++failures;
          continue;
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
      }
    });
  }
  for (auto& t : pool) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failures.load() > 0) {
    std::fprintf(stderr, "spawn_bench: %ld of %ld processes failed\n", failures.load(), total);
    return 1;
  }
  std::printf("%ld %.4f %.1f\n", total, seconds, static_cast<double>(total) / seconds);
  return 0;
}
