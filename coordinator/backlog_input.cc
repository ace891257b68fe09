#include "coordinator/backlog_input.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sluice {
namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
constexpr size_t kReadBytes = 1 << 20;
constexpr size_t kKeyBlockBytes = 1 << 20;

}  // namespace

BacklogLineSource::BacklogLineSource(std::string_view content, std::FILE* file, std::string path,
                                     size_t max_line_bytes)
    : file_(file), path_(std::move(path)), max_line_bytes_(max_line_bytes), data_(content) {}

BacklogLineSource::~BacklogLineSource() {
  if (file_ != nullptr) std::fclose(file_);
}

std::unique_ptr<BacklogLineSource> BacklogLineSource::FromString(std::string_view content,
                                                                 size_t max_line_bytes) {
  return std::unique_ptr<BacklogLineSource>(
      new BacklogLineSource(content, nullptr, std::string(), max_line_bytes));
}

absl::StatusOr<std::unique_ptr<BacklogLineSource>> BacklogLineSource::OpenFile(
    const std::string& path, size_t max_line_bytes) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("backlog file ", path, " is a directory"));
  }
  std::FILE* file = std::fopen(path.c_str(), "rbe");
  if (file == nullptr) {
    const int err = errno;
    std::string message = absl::StrCat("cannot open backlog file ", path, ": ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    return absl::InvalidArgumentError(message);
  }
  return std::unique_ptr<BacklogLineSource>(
      new BacklogLineSource(std::string_view(), file, path, max_line_bytes));
}

absl::StatusOr<bool> BacklogLineSource::Fill() {
  if (file_ == nullptr) return false;
  buffer_.erase(0, pos_);
  pos_ = 0;
  const size_t old_size = buffer_.size();
  buffer_.resize(old_size + kReadBytes);
  const size_t n = std::fread(buffer_.data() + old_size, 1, kReadBytes, file_);
  buffer_.resize(old_size + n);
  data_ = buffer_;
  if (n == 0) {
    if (std::ferror(file_) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read backlog file ", path_, ": ", std::strerror(errno)));
    }
    return false;
  }
  return true;
}

absl::StatusOr<std::optional<BacklogLine>> BacklogLineSource::Next() {
  if (unread_) {
    unread_ = false;
    return std::optional<BacklogLine>(last_);
  }
  if (!started_) {
    started_ = true;
    while (data_.size() - pos_ < kUtf8Bom.size()) {
      absl::StatusOr<bool> more = Fill();
      if (!more.ok()) return more.status();
      if (!*more) break;
    }
    if (data_.substr(pos_).starts_with(kUtf8Bom)) pos_ += kUtf8Bom.size();
  }
  // Bytes of the current line already known to hold no '\n'.
  size_t scanned = 0;
  // Bytes of an over-long line already dropped from the buffer.
  size_t skipped = 0;
  while (true) {
    const size_t newline = data_.find('\n', pos_ + scanned);
    size_t end = newline;
    if (newline == std::string_view::npos) {
      scanned = data_.size() - pos_;
      if (scanned > max_line_bytes_ + 1 && file_ != nullptr) {
        // Too long to be accepted: count it, do not keep it.
        skipped += scanned;
        pos_ += scanned;
        scanned = 0;
      }
      absl::StatusOr<bool> more = Fill();
      if (!more.ok()) return more.status();
      if (*more) continue;
      if (pos_ == data_.size() && skipped == 0) return std::optional<BacklogLine>();
      end = data_.size();
    }
    std::string_view text = data_.substr(pos_, end - pos_);
    pos_ = newline == std::string_view::npos ? data_.size() : newline + 1;
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    last_ = BacklogLine{++number_, text, skipped + text.size()};
    if (skipped > 0) last_.text = std::string_view();
    return std::optional<BacklogLine>(last_);
  }
}

std::string_view BacklogKeyIndex::Store(std::string_view run_id, std::string_view phase_id) {
  const size_t size = run_id.size() + 1 + phase_id.size();
  if (blocks_.empty() || block_used_ + size > block_size_) {
    block_size_ = std::max(kKeyBlockBytes, size);
    blocks_.push_back(std::make_unique<char[]>(block_size_));
    block_used_ = 0;
  }
  char* at = blocks_.back().get() + block_used_;
  std::memcpy(at, run_id.data(), run_id.size());
  at[run_id.size()] = '\0';  // ids never hold NUL, so the pair is unambiguous
  std::memcpy(at + run_id.size() + 1, phase_id.data(), phase_id.size());
  block_used_ += size;
  return std::string_view(at, size);
}

std::optional<size_t> BacklogKeyIndex::Insert(std::string_view run_id, std::string_view phase_id,
                                              size_t line) {
  std::string key;
  key.reserve(run_id.size() + 1 + phase_id.size());
  key.append(run_id).push_back('\0');
  key.append(phase_id);
  if (auto it = first_line_.find(std::string_view(key)); it != first_line_.end()) {
    return it->second;
  }
  first_line_.emplace(Store(run_id, phase_id), line);
  return std::nullopt;
}

}  // namespace sluice
