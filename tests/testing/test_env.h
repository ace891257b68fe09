// Helpers for tests: where the built binaries are, and scratch directories.
#pragma once

#include <filesystem>
#include <string>

namespace sluice::testing {

// build/bin/NAME (from $SLUICE_BIN_DIR, set by ctest). Fails the test loudly
// (abort with a message) when the variable is missing or the file is absent.
std::string BinPath(const std::string& name);

// The source tree root ($SLUICE_SOURCE_DIR, else the one this was built from).
std::string SourceDir();

// A fresh directory under $TMPDIR, removed when the object goes away.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Writes `content` to `path`, replacing it.
void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);

}  // namespace sluice::testing
