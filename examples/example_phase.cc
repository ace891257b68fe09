// sluice-example-phase: a stand-in for a real build phase, used by the example
// drain and by end-to-end tests. What it does is chosen deterministically from
// its run and phase ids (see examples/README.md), so a backlog file controls
// it:
//
//   sluice-example-phase --run-id R --phase-id P [--ledger FILE] [--scale F]
//
// Environment: SLUICE_ATTEMPT (1-based attempt number, default 1),
// SLUICE_TELEMETRY_FILE + TELEMETRY_DB_ENABLED=1 (telemetry events, one JSON
// line each), SLUICE_EXAMPLE_LEDGER (ledger path when --ledger is not given).
//
// Exit codes: 0 success, 1 the phase failed, 2 usage or set-up error; "crash"
// dies of SIGSEGV and "hang" never exits on its own.
//
// Standalone on purpose: links only nlohmann_json, no sluice library.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFail = 1;
constexpr int kExitUsage = 2;

enum class Behaviour { kOk, kImportErr, kTooLong, kFlaky, kSlow, kHang, kCrash, kVaried };

struct Keyword {
  std::string_view word;
  Behaviour behaviour;
};

// Checked in this order within one id; "ok" last so that e.g. "toolong-ok"
// still means "toolong".
constexpr std::array<Keyword, 8> kKeywords = {{
    {"importerr", Behaviour::kImportErr},
    {"toolong", Behaviour::kTooLong},
    {"flaky", Behaviour::kFlaky},
    {"slow", Behaviour::kSlow},
    {"hang", Behaviour::kHang},
    {"crash", Behaviour::kCrash},
    {"varied", Behaviour::kVaried},
    {"ok", Behaviour::kOk},
}};

const char* BehaviourName(Behaviour b) {
  for (const Keyword& k : kKeywords) {
    if (k.behaviour == b) return k.word.data();
  }
  return "ok";
}

// True when `word` is one of the words of `id` (split at anything that is
// not a letter or digit).
bool HasWord(std::string_view id, std::string_view word) {
  auto is_alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  for (size_t pos = id.find(word); pos != std::string_view::npos; pos = id.find(word, pos + 1)) {
    const size_t end = pos + word.size();
    if ((pos == 0 || !is_alnum(id[pos - 1])) && (end == id.size() || !is_alnum(id[end]))) {
      return true;
    }
  }
  return false;
}

// Keywords match anywhere in the id ("p03-importerr" and "importerr3" both
// count), except "ok", which must be a word of its own so that "token" or
// "hook" do not pick it.
bool FindKeyword(std::string_view id, Behaviour* out) {
  for (const Keyword& k : kKeywords) {
    const bool found = k.behaviour == Behaviour::kOk ? HasWord(id, k.word)
                                                     : id.find(k.word) != std::string_view::npos;
    if (found) {
      *out = k.behaviour;
      return true;
    }
  }
  return false;
}

// The phase id decides first; the run id only when the phase id names none.
Behaviour ChooseBehaviour(std::string_view run_id, std::string_view phase_id) {
  Behaviour b = Behaviour::kOk;
  if (FindKeyword(phase_id, &b)) return b;
  if (FindKeyword(run_id, &b)) return b;
  return Behaviour::kOk;
}

// FNV-1a over "run\0phase": stable across platforms and runs.
uint64_t HashIds(std::string_view run_id, std::string_view phase_id) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](std::string_view s) {
    for (char c : s) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ULL;
    }
  };
  mix(run_id);
  mix(std::string_view("\0", 1));
  mix(phase_id);
  return h;
}

// A second deterministic number from the same ids (splitmix64 finaliser).
uint64_t Derive(uint64_t hash, uint64_t salt) {
  uint64_t z = hash + salt * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A value in [lo, hi] chosen by `hash` and `salt`.
int64_t Pick(uint64_t hash, uint64_t salt, int64_t lo, int64_t hi) {
  const auto span = static_cast<uint64_t>(hi - lo + 1);
  return lo + static_cast<int64_t>(Derive(hash, salt) % span);
}

struct Options {
  std::string run_id;
  std::string phase_id;
  std::string ledger;
  double scale = 1.0;
  int attempt = 1;
};

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: sluice-example-phase --run-id R --phase-id P [--ledger FILE] [--scale F]\n"
               "Behaves like a build phase; a keyword in the phase id (else the run id) picks\n"
               "the behaviour: importerr toolong flaky slow hang crash varied ok (default ok).\n");
}

bool HasSpaceOrControl(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Returns false (after printing why) on a usage error.
bool ParseArgs(int argc, char** argv, Options* opts, bool* help) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return true;
    }
    std::string value;
    bool have_value = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      have_value = true;
    }
    if (arg != "--run-id" && arg != "--phase-id" && arg != "--ledger" && arg != "--scale") {
      std::fprintf(stderr, "sluice-example-phase: unknown argument '%s'\n", argv[i]);
      return false;
    }
    if (!have_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sluice-example-phase: %s needs a value\n", arg.c_str());
        return false;
      }
      value = argv[++i];
    }
    if (arg == "--run-id") {
      opts->run_id = value;
    } else if (arg == "--phase-id") {
      opts->phase_id = value;
    } else if (arg == "--ledger") {
      opts->ledger = value;
    } else {
      char* end = nullptr;
      errno = 0;
      const double scale = std::strtod(value.c_str(), &end);
      if (value.empty() || end == nullptr || *end != '\0' || errno != 0 || !(scale >= 0.0) ||
          scale > 1000.0) {
        std::fprintf(stderr,
                     "sluice-example-phase: --scale must be a number in [0, 1000], got '%s'\n",
                     value.c_str());
        return false;
      }
      opts->scale = scale;
    }
  }
  for (const auto& [name, id] :
       {std::pair<const char*, const std::string*>{"--run-id", &opts->run_id},
        {"--phase-id", &opts->phase_id}}) {
    if (id->empty()) {
      std::fprintf(stderr, "sluice-example-phase: %s is required and must not be empty\n", name);
      return false;
    }
    if (HasSpaceOrControl(*id)) {
      std::fprintf(
          stderr, "sluice-example-phase: %s must not contain spaces or control characters\n", name);
      return false;
    }
  }
  return true;
}

int AttemptFromEnv() {
  const char* text = std::getenv("SLUICE_ATTEMPT");
  if (text == nullptr || *text == '\0') return 1;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < 1 || value > 1000000) {
    std::fprintf(stderr,
                 "sluice-example-phase: ignoring SLUICE_ATTEMPT='%s' (not a positive integer)\n",
                 text);
    return 1;
  }
  return static_cast<int>(value);
}

// Appends `line` with a single write() on an O_APPEND descriptor, so lines
// from concurrent processes never interleave.
bool AppendLine(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::fprintf(stderr, "sluice-example-phase: cannot open %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return false;
  }
  ssize_t written;
  do {
    written = ::write(fd, line.data(), line.size());
  } while (written < 0 && errno == EINTR);
  const bool ok = written == static_cast<ssize_t>(line.size());
  if (!ok) {
    std::fprintf(stderr, "sluice-example-phase: cannot append to %s: %s\n", path.c_str(),
                 written < 0 ? std::strerror(errno) : "short write");
  }
  ::close(fd);
  return ok;
}

void SleepMs(double ms) {
  if (ms <= 0) return;
  std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(ms * 1000.0)));
}

void Out(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

void Err(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Phase {
 public:
  Phase(Options opts, Behaviour behaviour)
      : opts_(std::move(opts)),
        behaviour_(behaviour),
        hash_(HashIds(opts_.run_id, opts_.phase_id)),
        tag_("[" + opts_.run_id + "/" + opts_.phase_id + "#" + std::to_string(opts_.attempt) +
             "]") {}

  int Run() {
    if (!opts_.ledger.empty() &&
        !AppendLine(opts_.ledger, "start " + opts_.run_id + " " + opts_.phase_id + " " +
                                      std::to_string(opts_.attempt) + " " +
                                      std::to_string(::getpid()) + "\n")) {
      return kExitUsage;
    }
    Out(tag_ + " phase starting (behaviour=" + BehaviourName(behaviour_) + ")");
    switch (behaviour_) {
      case Behaviour::kOk:
        return Succeed(static_cast<double>(Pick(hash_, 1, 50, 400)));
      case Behaviour::kSlow:
        return Succeed(static_cast<double>(Pick(hash_, 1, 1500, 3000)));
      case Behaviour::kImportErr:
        return ImportError();
      case Behaviour::kTooLong:
        return PromptTooLong();
      case Behaviour::kFlaky:
        return opts_.attempt <= 1 ? FlakyFailure()
                                  : Succeed(static_cast<double>(Pick(hash_, 1, 50, 300)));
      case Behaviour::kHang:
        return Hang();
      case Behaviour::kCrash:
        return Crash();
      case Behaviour::kVaried:
        return VariedFailure();
    }
    return kExitFail;
  }

 private:
  void Work(double base_ms, int steps) {
    const double step_ms = base_ms * opts_.scale / steps;
    for (int i = 1; i <= steps; ++i) {
      SleepMs(step_ms);
      Out(tag_ + " step " + std::to_string(i) + "/" + std::to_string(steps) + " done");
    }
  }

  // Writes the phase's telemetry events when telemetry is enabled; returns how
  // many were written. With TELEMETRY_DB_ENABLED unset the real phases
  // silently recorded nothing, and so does this one.
  int64_t WriteTelemetry(int64_t count) {
    const char* file = std::getenv("SLUICE_TELEMETRY_FILE");
    const char* enabled = std::getenv("TELEMETRY_DB_ENABLED");
    if (file == nullptr || *file == '\0' || enabled == nullptr ||
        std::string_view(enabled) != "1") {
      Out(tag_ + " telemetry disabled; no events recorded");
      return 0;
    }
    int64_t written = 0;
    for (int64_t i = 0; i < count; ++i) {
      nlohmann::json event;
      const auto salt = static_cast<uint64_t>(100 + i);
      switch (i % 3) {
        case 0: {
          const int64_t estimated = Pick(hash_, salt, 2000, 60000);
          event = {{"type", "token_estimation"},
                   {"estimated_tokens", estimated},
                   {"actual_tokens", estimated + Pick(hash_, salt + 50, -1500, 4000)}};
          break;
        }
        case 1:
          event = {{"type", "llm_call"},
                   {"model", "claude-sonnet-4-5"},
                   {"latency_ms", Pick(hash_, salt, 400, 9000)}};
          break;
        default:
          event = {{"type", "patch_applied"}, {"files_changed", Pick(hash_, salt, 1, 12)}};
          break;
      }
      event["run_id"] = opts_.run_id;
      event["phase_id"] = opts_.phase_id;
      event["attempt"] = opts_.attempt;
      event["ts_ms"] = NowMs();
      if (!AppendLine(file, event.dump() + "\n")) break;
      ++written;
    }
    Out(tag_ + " recorded " + std::to_string(written) + " telemetry event(s)");
    return written;
  }

  int Finish(bool ok, int64_t events) {
    if (!opts_.ledger.empty()) {
      AppendLine(opts_.ledger, "end " + opts_.run_id + " " + opts_.phase_id + " " +
                                   std::to_string(opts_.attempt) + " " + (ok ? "ok" : "fail") +
                                   " " + std::to_string(events) + "\n");
    }
    return ok ? kExitOk : kExitFail;
  }

  int Succeed(double base_ms) {
    Work(base_ms, 2);
    const int64_t events = WriteTelemetry(Pick(hash_, 2, 1, 3));
    Out(tag_ + " phase complete");
    return Finish(true, events);
  }

  std::string TestModule() const {
    std::string name = opts_.phase_id;
    for (char& c : name) {
      const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      if (!word) c = '_';
    }
    return "test_" + name + ".py";
  }

  int ImportError() {
    Out(tag_ + " running CI checks: pytest tests/autopack/workflow");
    Work(static_cast<double>(Pick(hash_, 1, 100, 300)), 1);
    const std::string module = TestModule();
    const std::string win_path = "c:\\dev\\Autopack\\tests\\autopack\\workflow\\" + module;
    Err("Traceback (most recent call last):");
    Err("  File \"c:\\dev\\Autopack\\src\\autopack\\autonomous_executor.py\", line " +
        std::to_string(Pick(hash_, 3, 3900, 4400)) + ", in _run_ci_checks");
    Err("    result = self._collect_tests(phase_spec)");
    Err("  File \"c:\\dev\\Autopack\\src\\autopack\\ci\\collector.py\", line " +
        std::to_string(Pick(hash_, 4, 180, 260)) + ", in _collect_tests");
    Err("    module = importlib.import_module(module_name)");
    Err("  File \"C:\\Python312\\Lib\\importlib\\__init__.py\", line 90, in import_module");
    Err("    return _bootstrap._gcd_import(name[level:], package, level)");
    Err("  File \"" + win_path + "\", line " + std::to_string(Pick(hash_, 5, 8, 40)) +
        ", in <module>");
    Err("    from autopack.research.system import ResearchOrchestrator");
    Err("ImportError: cannot import name 'ResearchOrchestrator' from 'autopack.research.system' "
        "(c:\\dev\\Autopack\\src\\autopack\\research\\system\\__init__.py)");
    Err("CI collection/import error: tests/autopack/workflow/" + module +
        " (ImportError while importing test module '" + win_path + "'.)");
    return Finish(false, 0);
  }

  int PromptTooLong() {
    Out(tag_ + " assembling builder prompt from " + std::to_string(Pick(hash_, 6, 40, 180)) +
        " files");
    Work(static_cast<double>(Pick(hash_, 1, 100, 300)), 1);
    const int64_t events = WriteTelemetry(1);  // the token estimate is recorded before the call
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::string request_id = "req_011CW";
    for (uint64_t i = 0; i < 15; ++i) {
      request_id.push_back(kAlphabet[Derive(hash_, 200 + i) % kAlphabet.size()]);
    }
    Err("anthropic.BadRequestError: Error code: 400 - prompt is too long: " +
        std::to_string(Pick(hash_, 7, 203400, 203499)) +
        " tokens > 200000 maximum, 'request_id': '" + request_id + "'");
    return Finish(false, events);
  }

  int FlakyFailure() {
    Work(static_cast<double>(Pick(hash_, 1, 50, 200)), 1);
    switch (Derive(hash_, 8) % 3) {
      case 0:
        Err("ConnectionResetError: [Errno 104] Connection reset by peer");
        break;
      case 1:
        Err("httpx.ReadTimeout: timeout reading from server after 60.0s");
        break;
      default:
        Err("anthropic.InternalServerError: Error code: 503 - Service Unavailable");
        break;
    }
    return Finish(false, 0);
  }

  int Hang() {
    Out(tag_ + " waiting for the builder lock...");
    const pid_t child = ::fork();
    if (child == 0) {
      // The grandchild keeps the inherited stdout/stderr open: a runner that
      // waits for EOF hangs unless it kills the whole process group.
      while (true) ::pause();
    }
    if (child < 0) {
      Err("fork failed: " + std::string(std::strerror(errno)));
    } else {
      Out(tag_ + " spawned helper pid " + std::to_string(child));
    }
    while (true) ::pause();
  }

  int Crash() {
    Work(static_cast<double>(Pick(hash_, 1, 100, 200)), 1);
    Err("Fatal Python error: Segmentation fault");
    const struct rlimit no_core = {0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);  // no core files in the caller's directory
    std::raise(SIGSEGV);
    return kExitFail;  // not reached
  }

  int VariedFailure() {
    Work(static_cast<double>(Pick(hash_, 1, 50, 300)), 1);
    std::random_device device;
    std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ static_cast<uint64_t>(NowMs()) ^
                        static_cast<uint64_t>(::getpid()));
    auto n = [&rng](int lo, int hi) {
      return std::to_string(std::uniform_int_distribution<int>(lo, hi)(rng));
    };
    static constexpr std::array<std::string_view, 5> kModules = {"planner", "builder", "auditor",
                                                                 "doctor", "governor"};
    const std::string module(kModules[std::uniform_int_distribution<size_t>(0, 4)(rng)]);
    switch (std::uniform_int_distribution<int>(0, 4)(rng)) {
      case 0:
        Err("RuntimeError: patch hunk #" + n(1, 40) + " failed to apply to src/autopack/" + module +
            ".py at line " + n(10, 2000));
        break;
      case 1:
        Err("AssertionError: expected " + n(1, 20) + " files changed by " + module + ", got " +
            n(21, 60));
        break;
      case 2:
        Err("KeyError: 'step_" + n(100, 999) + "' while resolving " + module + " plan node 0x" +
            n(1000, 99999));
        break;
      case 3:
        Err("ValueError: invalid literal for int() with base 10: '" + module + n(1, 9999) + "'");
        break;
      default:
        Err("TimeoutError: " + module + " subprocess exceeded " + n(30, 600) + "s budget (pid " +
            n(2000, 60000) + ")");
        break;
    }
    return Finish(false, 0);
  }

  Options opts_;
  Behaviour behaviour_;
  uint64_t hash_;
  std::string tag_;
};

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  bool help = false;
  if (!ParseArgs(argc, argv, &opts, &help)) {
    Usage(stderr);
    return kExitUsage;
  }
  if (help) {
    Usage(stdout);
    return kExitOk;
  }
  if (opts.ledger.empty()) {
    if (const char* env = std::getenv("SLUICE_EXAMPLE_LEDGER"); env != nullptr) opts.ledger = env;
  }
  opts.attempt = AttemptFromEnv();
  const Behaviour behaviour = ChooseBehaviour(opts.run_id, opts.phase_id);
  return Phase(std::move(opts), behaviour).Run();
}
