#include "worker/outcome_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/bounded_file.h"
#include "common/ids.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace sluice {
namespace {

constexpr int kFormatVersion = 1;
constexpr char kSuffix[] = ".json";
constexpr size_t kSuffixSize = sizeof(kSuffix) - 1;
// Answered outcomes' files kept for reuse: DIR/.free.PID.N (List() skips
// them: they do not end in .json).
constexpr char kFreePrefix[] = ".free.";
// A spool file holds one report (tails of 4 KiB, at most 32 telemetry types):
// anything near this is not ours.
constexpr size_t kMaxSpoolFileBytes = 16 * 1024 * 1024;

std::string ErrnoText(const std::string& what, const std::string& path) {
  return absl::StrCat(what, " ", path, ": ", std::strerror(errno));
}

// Writes all of `data` to `fd`, retrying short writes and EINTR.
bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// The rename (or unlink) itself is durable only once the directory is synced.
absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(ErrnoText("cannot open spool directory", dir));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) return absl::InternalError(ErrnoText("cannot fsync spool directory", dir));
  return absl::OkStatus();
}

template <typename T>
absl::Status Get(const nlohmann::json& j, const char* field, T* out) {
  auto it = j.find(field);
  if (it == j.end())
    return absl::InvalidArgumentError(absl::StrCat("field \"", field, "\" missing"));
  try {
    *out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return absl::InvalidArgumentError(absl::StrCat("field \"", field, "\" has the wrong type"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string SerializeAttemptReport(const AttemptReport& report) {
  nlohmann::json j;
  j["version"] = kFormatVersion;
  j["lease_id"] = report.lease_id;
  j["epoch"] = report.epoch;
  j["worker_id"] = report.worker_id;
  j["outcome"] = std::string(OutcomeName(report.outcome));
  j["exit_code"] = report.exit_code;
  j["signal"] = report.signal;
  j["duration_ms"] = report.duration_ms;
  j["stdout_tail"] = report.stdout_tail;
  j["stderr_tail"] = report.stderr_tail;
  j["error_text"] = report.error_text;
  j["telemetry_events"] = report.telemetry_events;
  j["telemetry_by_type"] = report.telemetry_by_type;
  j["telemetry_unknown"] = report.telemetry_unknown;
  j["longest_silence_ms"] = report.longest_silence_ms;
  // Tails are sanitized to UTF-8 by the process runner; replace rather than
  // throw should anything else slip through.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<AttemptReport> ParseAttemptReport(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  int version = 0;
  if (absl::Status st = Get(j, "version", &version); !st.ok()) return st;
  if (version != kFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat("unknown spool format version ", version));
  }
  AttemptReport r;
  std::string outcome;
  for (absl::Status st :
       {Get(j, "lease_id", &r.lease_id), Get(j, "epoch", &r.epoch),
        Get(j, "worker_id", &r.worker_id), Get(j, "outcome", &outcome),
        Get(j, "exit_code", &r.exit_code), Get(j, "signal", &r.signal),
        Get(j, "duration_ms", &r.duration_ms), Get(j, "stdout_tail", &r.stdout_tail),
        Get(j, "stderr_tail", &r.stderr_tail), Get(j, "error_text", &r.error_text),
        Get(j, "telemetry_events", &r.telemetry_events),
        Get(j, "telemetry_by_type", &r.telemetry_by_type)}) {
    if (!st.ok()) return st;
  }
  const std::optional<Outcome> parsed = ParseOutcome(outcome);
  if (!parsed) return absl::InvalidArgumentError(absl::StrCat("unknown outcome \"", outcome, "\""));
  r.outcome = *parsed;
  // Spooled before the flag existed: counted then, so known.
  if (j.contains("telemetry_unknown")) {
    if (absl::Status st = Get(j, "telemetry_unknown", &r.telemetry_unknown); !st.ok()) return st;
  }
  // Spooled before it was measured: unknown (-1, the default).
  if (j.contains("longest_silence_ms")) {
    if (absl::Status st = Get(j, "longest_silence_ms", &r.longest_silence_ms); !st.ok()) return st;
  }
  if (absl::Status st = ValidateId("lease_id", r.lease_id); !st.ok()) return st;
  return r;
}

absl::Status OutcomeSpool::Init() const {
  std::error_code ec;
  // Outcomes carry output tails: this user's only (a directory that already
  // existed, e.g. one the operator chose, keeps its mode).
  if (std::filesystem::create_directories(dir_, ec)) {
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all, ec);
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create spool directory ", dir_, ": ", ec.message()));
  }
  // Free files of an earlier worker hold answered outcomes or half a write:
  // nothing to keep. Best effort: List() skips them anyway.
  for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    if (absl::StartsWith(it->path().filename().string(), kFreePrefix)) {
      std::error_code ignored;
      std::filesystem::remove(it->path(), ignored);
    }
  }
  return absl::OkStatus();
}

std::string OutcomeSpool::PathOf(const std::string& lease_id) const {
  return (std::filesystem::path(dir_) / absl::StrCat(lease_id, kSuffix)).string();
}

std::string OutcomeSpool::TakeFree() const {
  absl::MutexLock lock(&mu_);
  if (free_.empty()) return "";
  std::string path = std::move(free_.back());
  free_.pop_back();
  return path;
}

std::string OutcomeSpool::PromiseFreeName() const {
  absl::MutexLock lock(&mu_);
  if (free_.size() + promised_ >= max_free_files_) return "";
  ++promised_;
  // The pid keeps two workers wrongly given one directory off each other's names.
  return (std::filesystem::path(dir_) / absl::StrCat(kFreePrefix, ::getpid(), ".", names_made_++))
      .string();
}

void OutcomeSpool::GiveBackName(std::string path, bool kept) const {
  absl::MutexLock lock(&mu_);
  --promised_;
  if (kept) free_.push_back(std::move(path));
}

size_t OutcomeSpool::free_files() const {
  absl::MutexLock lock(&mu_);
  return free_.size();
}

absl::Status OutcomeSpool::Put(const AttemptReport& report) const {
  // Validated ids are safe file names ([A-Za-z0-9._:-], no "/").
  if (absl::Status st = ValidateId("lease_id", report.lease_id); !st.ok()) return st;
  const std::string path = PathOf(report.lease_id);
  const std::string data = SerializeAttemptReport(report) + "\n";
  while (true) {
    // Write over a free file when one is kept, else into a new LEASE.json.tmp.
    std::string scratch = TakeFree();
    const bool reuse = !scratch.empty();
    int fd = -1;
    if (reuse) {
      fd = ::open(scratch.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) continue;  // gone (another worker's Init): the next one, or a new file
    } else {
      scratch = path + ".tmp";
      fd = ::open(scratch.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) return absl::InternalError(ErrnoText("cannot create", scratch));
    }
    // A reused file is cut to the new length after the write, not emptied
    // before it: the blocks it has are kept, none freed and allocated again.
    if (!WriteAll(fd, data) || (reuse && ::ftruncate(fd, static_cast<off_t>(data.size())) != 0)) {
      const std::string err = ErrnoText("cannot write", scratch);
      ::close(fd);
      ::unlink(scratch.c_str());
      return absl::InternalError(err);
    }
    if (::close(fd) != 0) {
      const std::string err = ErrnoText("cannot close", scratch);
      ::unlink(scratch.c_str());
      return absl::InternalError(err);
    }
    if (::rename(scratch.c_str(), path.c_str()) != 0) {
      if (reuse && errno == ENOENT) continue;  // deleted while written: write it again
      const std::string err = ErrnoText("cannot rename to", path);
      ::unlink(scratch.c_str());
      return absl::InternalError(err);
    }
    return absl::OkStatus();  // not synced: see Sync()
  }
}

absl::Status OutcomeSpool::Sync(const std::string& lease_id) const {
  if (absl::Status st = ValidateId("lease_id", lease_id); !st.ok()) return st;
  const std::string path = PathOf(lease_id);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? absl::NotFoundError(absl::StrCat("no spooled outcome ", path))
                           : absl::InternalError(ErrnoText("cannot open", path));
  }
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) return absl::InternalError(ErrnoText("cannot fsync", path));
  return SyncDirectory(dir_);
}

absl::Status OutcomeSpool::Remove(const std::string& lease_id) const {
  if (absl::Status st = ValidateId("lease_id", lease_id); !st.ok()) return st;
  const std::string path = PathOf(lease_id);
  // Neither is synced: should the rename or unlink be lost in a crash, the
  // next start delivers the report again and the coordinator answers
  // `duplicate`.
  if (std::string free_name = PromiseFreeName(); !free_name.empty()) {
    const bool kept = ::rename(path.c_str(), free_name.c_str()) == 0;
    const int saved = errno;
    GiveBackName(std::move(free_name), kept);
    if (kept || saved == ENOENT) return absl::OkStatus();
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(ErrnoText("cannot remove", path));
  }
  return absl::OkStatus();
}

absl::Status OutcomeSpool::Quarantine(const std::string& lease_id,
                                      const std::string& suffix) const {
  if (absl::Status st = ValidateId("lease_id", lease_id); !st.ok()) return st;
  const std::string path = PathOf(lease_id);
  const std::string target = absl::StrCat(path, ".", suffix);
  if (::rename(path.c_str(), target.c_str()) != 0) {
    return absl::InternalError(ErrnoText("cannot rename", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AttemptReport>> OutcomeSpool::List() const {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // LEASE.json only: LEASE.json.tmp (half written) and .bad/.rejected are skipped.
    if (absl::EndsWith(name, kSuffix) && name.size() > kSuffixSize) files.push_back(it->path());
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot list spool directory ", dir_, ": ", ec.message()));
  }
  std::sort(files.begin(), files.end());
  std::vector<AttemptReport> reports;
  for (const std::filesystem::path& file : files) {
    // O_CLOEXEC: a phase started by another slot meanwhile gets nothing of it.
    absl::StatusOr<std::string> content =
        ReadBoundedRegularFile("spool file", file.string(), kMaxSpoolFileBytes);
    absl::StatusOr<AttemptReport> report =
        content.ok() ? ParseAttemptReport(*content) : content.status();
    const std::string name = file.filename().string();
    if (report.ok() && absl::StrCat(report->lease_id, kSuffix) != name) {
      report = absl::InvalidArgumentError(
          absl::StrCat("holds lease ", report->lease_id, ", not the one its name says"));
    }
    if (!report.ok()) {
      const std::string bad = file.string() + ".bad";
      spdlog::error("spool file {} is unreadable ({}); kept as {} and skipped", file.string(),
                    std::string(report.status().message()), bad);
      std::filesystem::rename(file, bad, ec);
      if (ec) spdlog::error("cannot rename {}: {}", file.string(), ec.message());
      continue;
    }
    reports.push_back(std::move(*report));
  }
  return reports;
}

}  // namespace sluice
