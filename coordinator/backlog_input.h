// The input side of the backlog importer, with memory bounded by the longest
// accepted line rather than by the file: physical lines read in pieces, and a
// compact index of the (run_id, phase_id) keys seen so far for the duplicate
// check. Not thread-safe (one reader each).
#pragma once

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace sluice {

// One physical line, without its "\n" or "\r\n" terminator.
struct BacklogLine {
  size_t number = 0;  // 1-based
  std::string_view text;
  // The line's real length. A line longer than the source's max_line_bytes is
  // skipped without being held: its text is empty and only length tells.
  size_t length = 0;
};

class BacklogLineSource {
 public:
  // Lines of `content` (not copied: it must outlive the source).
  static std::unique_ptr<BacklogLineSource> FromString(std::string_view content,
                                                       size_t max_line_bytes);
  // Lines of the file at `path`, read 1 MiB at a time. NotFound when it does
  // not exist; InvalidArgument when it is a directory or cannot be opened.
  static absl::StatusOr<std::unique_ptr<BacklogLineSource>> OpenFile(const std::string& path,
                                                                     size_t max_line_bytes);
  ~BacklogLineSource();
  BacklogLineSource(const BacklogLineSource&) = delete;
  BacklogLineSource& operator=(const BacklogLineSource&) = delete;

  // The next line (a leading UTF-8 byte order mark is dropped), nullopt at the
  // end. Its text stays valid until the next call. InvalidArgument on a read
  // error.
  absl::StatusOr<std::optional<BacklogLine>> Next();
  // Makes the next Next() return the last line again (once).
  void Unread() { unread_ = true; }

 private:
  BacklogLineSource(std::string_view content, std::FILE* file, std::string path,
                    size_t max_line_bytes);
  // Appends up to 1 MiB from the file after dropping consumed bytes; false at
  // the end of the file.
  absl::StatusOr<bool> Fill();

  std::FILE* file_;  // owned; null for FromString
  std::string path_;
  size_t max_line_bytes_;
  std::string buffer_;     // file mode: unconsumed bytes
  std::string_view data_;  // what is being read: buffer_ or the caller's content
  size_t pos_ = 0;         // start of the next line in data_
  size_t number_ = 0;
  bool started_ = false;
  bool unread_ = false;
  BacklogLine last_;
};

// Remembers each (run_id, phase_id) with the line it was first seen on.
// About 60 bytes per key (the key text in an arena plus one table slot),
// against ~150 for a std::map of two strings.
class BacklogKeyIndex {
 public:
  // The line `run_id`/`phase_id` was first seen on, or nullopt (and it is
  // recorded with `line`).
  std::optional<size_t> Insert(std::string_view run_id, std::string_view phase_id, size_t line);

 private:
  std::string_view Store(std::string_view run_id, std::string_view phase_id);

  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t block_used_ = 0;
  size_t block_size_ = 0;
  absl::flat_hash_map<std::string_view, size_t> first_line_;
};

}  // namespace sluice
