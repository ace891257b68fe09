// RedisStateStore's streaming import: stage chunks, then one atomic script.
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/redis/redis_state_store.h"

namespace sluice {

// Stages each chunk with one RPUSH to P:import:<id>; Commit runs import.lua
// over the list. Without a Commit the destructor deletes the list (and, if
// that fails, the expiry does).
class RedisPhaseImport final : public PhaseImport {
 public:
  explicit RedisPhaseImport(RedisStateStore& store) : store_(store) {
    std::random_device random;
    id_ = absl::StrCat(absl::Hex(random(), absl::kZeroPad8), absl::Hex(random(), absl::kZeroPad8),
                       absl::Hex(random(), absl::kZeroPad8));
    key_ = absl::StrCat(store_.prefix_, "import:", id_);
  }
  ~RedisPhaseImport() override {
    if (!committed_ && chunks_ > 0) (void)store_.conn_.Command({"DEL", key_});
  }

  absl::Status Add(const std::vector<PhaseSpec>& phases) override {
    SLUICE_RETURN_IF_ERROR(failed_);
    if (phases.empty()) return absl::OkStatus();
    absl::Status s =
        store_.conn_.Command({"RPUSH", key_, RedisStateStore::EncodeImportChunk(phases)}).status();
    if (s.ok() && chunks_ == 0) s = store_.conn_.Command({"EXPIRE", key_, "3600"}).status();
    if (!s.ok()) {
      // A lost reply may or may not have staged the chunk: the count would
      // be unknown, so this import can only be dropped.
      failed_ = absl::FailedPreconditionError(absl::StrCat("import failed earlier: ", s.message()));
      return s;
    }
    ++chunks_;
    return absl::OkStatus();
  }

  absl::StatusOr<ImportResult> Commit() override {
    SLUICE_RETURN_IF_ERROR(failed_);
    if (chunks_ == 0) return ImportResult{};
    // Refresh the expiry so a slow import does not lose its first chunks.
    SLUICE_RETURN_IF_ERROR(store_.conn_.Command({"EXPIRE", key_, "3600"}).status());
    absl::StatusOr<ImportResult> result = store_.CommitStagedImport(id_, chunks_);
    if (result.ok()) committed_ = true;
    return result;
  }

 private:
  RedisStateStore& store_;
  std::string id_;
  std::string key_;
  int64_t chunks_ = 0;
  bool committed_ = false;
  absl::Status failed_;
};

absl::StatusOr<std::unique_ptr<PhaseImport>> RedisStateStore::BeginImport() {
  return std::make_unique<RedisPhaseImport>(*this);
}

absl::StatusOr<ImportResult> RedisStateStore::ImportPhases(const std::vector<PhaseSpec>& phases) {
  RedisPhaseImport import(*this);
  // Chunks bound each RPUSH (and the script's unpacking of one chunk).
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
