// One of a phase's two log files (stdout or stderr), created only when the
// phase has written something to it.
//
// A drain of a million phases that mostly print nothing would otherwise
// leave two empty files per attempt: millions of inodes and directory
// entries that say nothing, and a create per file on the dispatch path
// (issue #12). So the phase writes into an unnamed file (O_TMPFILE in the
// log's directory), and the runner links it under its path as soon as it
// sees output (it looks every kSilenceCheckMs, and once more at the exit).
// `tail -f` of a running phase's log works from its first output on.
//
// Where the filesystem has no O_TMPFILE (NFS, some FUSE ones), or when
// appending, the file is created at its path up front, as before.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace sluice {

class PhaseLogFile {
 public:
  PhaseLogFile() = default;
  ~PhaseLogFile();
  PhaseLogFile(const PhaseLogFile&) = delete;
  PhaseLogFile& operator=(const PhaseLogFile&) = delete;

  // Opens the log for `path`. An empty path is /dev/null. `append` opens
  // (creating) the named file for appending; otherwise a file already at
  // `path` is replaced once the phase writes, and left alone if it never does.
  absl::Status Open(const std::string& path, bool append);

  // The descriptor the phase writes to (close-on-exec; the spawn dup2s it).
  int fd() const { return fd_; }

  // Links the file under its path if it holds output and has no name yet.
  // Cheap when named (no syscall) or still empty (one fstat). Returns an
  // error only when the file has output and cannot be named; the output is
  // still readable through ReadEnd.
  absl::Status NameIfWritten();

  // Whether the file is at its path (false while unnamed, and for /dev/null).
  bool named() const { return named_; }

  // At most `max_bytes` from the end of the file; `*from_start` tells
  // whether that window begins at offset 0. Read through the descriptor:
  // whatever the phase put at the path meanwhile (a FIFO, a symlink) is
  // never opened.
  std::string ReadEnd(size_t max_bytes, bool* from_start) const;

 private:
  int fd_ = -1;
  std::string path_;
  bool named_ = false;
  bool nameable_ = false;  // false for /dev/null, and once naming failed
};

}  // namespace sluice
