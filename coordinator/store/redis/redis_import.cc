// RedisStateStore's streaming import: stage chunks, then apply them in
// bounded slices, one script each.
#include <algorithm>
#include <random>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/leadership/not_leader.h"
#include "coordinator/store/redis/redis_state_store.h"

namespace sluice {
namespace {

// How long a staged list (and the totals of its commit) outlives the last
// chunk or slice written to it when its importer died.
constexpr int64_t kStagingTtlSeconds = 3600;
// Retries of a slice that failed with Unavailable (reply lost, connection
// dropped, BUSY): safe, since a slice consumes its chunks in the script that
// applies them; the connection's reconnect backoff paces them.
constexpr int kSliceRetries = 3;

// `s` (code and payloads kept: callers test IsNotLeader) telling the user
// what a commit that stopped part-way left behind and what to do.
absl::Status PartlyApplied(const absl::Status& s) {
  absl::Status out(s.code(), absl::StrCat(s.message(),
                                          " (the import stopped part-way: the slices applied "
                                          "before stay applied; import the same phases again to "
                                          "complete it)"));
  s.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

}  // namespace

// Stages each chunk with one RPUSH to P:import:<id>, cut into pieces of at
// most import_slice_phases phases so that one piece always fits a slice.
// Commit runs import.lua until the list is empty. Without a successful Commit
// the destructor deletes the list and the totals (and, if that fails, their
// expiry does).
class RedisPhaseImport final : public PhaseImport {
 public:
  explicit RedisPhaseImport(RedisStateStore& store) : store_(store) {
    std::random_device random;
    id_ = absl::StrCat(absl::Hex(random(), absl::kZeroPad8), absl::Hex(random(), absl::kZeroPad8),
                       absl::Hex(random(), absl::kZeroPad8));
    key_ = absl::StrCat(store_.prefix_, "import:", id_);
    totals_key_ = absl::StrCat(key_, ":totals");
  }
  ~RedisPhaseImport() override {
    if (!committed_ && chunks_ > 0) (void)store_.conn_.Command({"DEL", key_, totals_key_});
  }

  absl::Status Add(const std::vector<PhaseSpec>& phases) override {
    SLUICE_RETURN_IF_ERROR(failed_);
    if (phases.empty()) return absl::OkStatus();
    const size_t piece = static_cast<size_t>(store_.conn_.options().import_slice_phases);
    std::vector<std::string> argv = {"RPUSH", key_};
    for (size_t i = 0; i < phases.size(); i += piece) {
      const auto first = phases.begin() + static_cast<std::ptrdiff_t>(i);
      const auto last =
          phases.begin() + static_cast<std::ptrdiff_t>(std::min(phases.size(), i + piece));
      argv.push_back(RedisStateStore::EncodeImportChunk(std::vector<PhaseSpec>(first, last)));
    }
    const int64_t pieces = static_cast<int64_t>(argv.size()) - 2;
    absl::Status s = store_.conn_.Command(argv).status();
    if (s.ok() && chunks_ == 0) {
      s = store_.conn_.Command({"EXPIRE", key_, std::to_string(kStagingTtlSeconds)}).status();
    }
    if (!s.ok()) {
      // A lost reply may or may not have staged the chunk: the count would
      // be unknown, so this import can only be dropped.
      failed_ = absl::FailedPreconditionError(absl::StrCat("import failed earlier: ", s.message()));
      return s;
    }
    chunks_ += pieces;
    return absl::OkStatus();
  }

  absl::StatusOr<ImportResult> Commit() override {
    SLUICE_RETURN_IF_ERROR(failed_);
    if (chunks_ == 0) return ImportResult{};
    // Refresh the expiry so a slow import does not lose its first chunks.
    SLUICE_RETURN_IF_ERROR(
        store_.conn_.Command({"EXPIRE", key_, std::to_string(kStagingTtlSeconds)}).status());
    int retries = 0;
    bool applied_any = false;
    while (true) {
      absl::StatusOr<RedisStateStore::ImportSlice> slice =
          store_.ApplyImportSlice(id_, chunks_, kStagingTtlSeconds);
      if (!slice.ok()) {
        const absl::Status& s = slice.status();
        // A stale leader stays one; anything but Unavailable is no blip.
        if (!absl::IsUnavailable(s) || IsNotLeader(s) || ++retries > kSliceRetries) {
          return applied_any || absl::IsUnavailable(s) ? PartlyApplied(s) : s;
        }
        continue;
      }
      retries = 0;
      applied_any = true;
      if (slice->chunks_left == 0) {
        committed_ = true;
        // The totals would expire anyway; this is tidiness, not correctness.
        (void)store_.conn_.Command({"DEL", totals_key_});
        return slice->total;
      }
    }
  }

 private:
  RedisStateStore& store_;
  std::string id_;
  std::string key_;
  std::string totals_key_;
  int64_t chunks_ = 0;  // pieces staged, as RPUSHed
  bool committed_ = false;
  absl::Status failed_;
};

absl::StatusOr<std::unique_ptr<PhaseImport>> RedisStateStore::BeginImport() {
  return std::make_unique<RedisPhaseImport>(*this);
}

absl::StatusOr<ImportResult> RedisStateStore::ImportPhases(const std::vector<PhaseSpec>& phases) {
  RedisPhaseImport import(*this);
  // Chunks bound the size of each RPUSH.
  constexpr size_t kChunk = 2000;
  for (size_t i = 0; i < phases.size(); i += kChunk) {
    const size_t end = std::min(phases.size(), i + kChunk);
    SLUICE_RETURN_IF_ERROR(
        import.Add(std::vector<PhaseSpec>(phases.begin() + static_cast<std::ptrdiff_t>(i),
                                          phases.begin() + static_cast<std::ptrdiff_t>(end))));
  }
  return import.Commit();
}

}  // namespace sluice
