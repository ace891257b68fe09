// RedisStateStore's cache of the latest session (issue #12): the lease broker
// and every report ask for it, and a read per call was two of the five round
// trips of a lease+report cycle.
//
// Why it is safe without a read per call: every script that writes a session
// bumps the session generation (`P:session_gen`, prelude.lua), and the lease
// and report scripts answer the generation as it was when they ran. A cached
// session is served only while the last reply confirmed its generation and
// that confirmation is younger than `max_age`. So a session written by
// another process (a new leader, `sluice start --store`) is seen at this
// store's next lease or report, and within `max_age` while it makes neither
// (an idle coordinator). A mismatch drops the entry whatever its direction,
// so a namespace deleted and rebuilt (the generation starts again) is safe
// too. Alternatives not taken: a read per call (the round trips this saves),
// keyspace notifications (need server configuration and a second
// connection, and lose events while disconnected).
//
// Thread-safe. Replies may be observed out of order by concurrent callers: an
// older generation after a newer one only drops the entry (one extra read),
// never keeps a stale one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model.h"

namespace sluice {

class LatestSessionCache {
 public:
  // `max_age` zero: nothing is served from the cache.
  explicit LatestSessionCache(absl::Duration max_age) : max_age_(max_age) {}

  // The cached answer (which may be "no session") when a reply confirmed it
  // less than max_age before `now`; nullopt when the caller must read.
  std::optional<std::optional<SessionRecord>> Get(absl::Time now) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (!entry_ || now - entry_->confirmed_at >= max_age_) return std::nullopt;
    return entry_->session;
  }

  // Call before sending a read; pass the ticket to Store.
  uint64_t BeginRead() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return drops_;
  }

  // A read sent at `sent` answered `session` at generation `gen`. Kept
  // unless the entry was dropped since BeginRead: a write seen meanwhile may
  // be newer than what the read returned.
  void Store(uint64_t ticket, const std::string& gen, std::optional<SessionRecord> session,
             absl::Time sent) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (ticket != drops_) return;
    last_gen_ = gen;
    entry_ = Entry{std::move(session), sent};
  }

  // A script sent at `sent` ran while the generation was `gen`.
  void Observe(const std::string& gen, absl::Time sent) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (gen != last_gen_) {
      last_gen_ = gen;
      DropLocked();
      return;
    }
    if (entry_) entry_->confirmed_at = std::max(entry_->confirmed_at, sent);
  }

  // This process wrote a session, or the store's leadership term changed.
  void Drop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    DropLocked();
  }

 private:
  struct Entry {
    std::optional<SessionRecord> session;
    // When the request of the last read or reply that confirmed it was sent:
    // the script ran at this time or later.
    absl::Time confirmed_at;
  };

  void DropLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    entry_.reset();
    ++drops_;
  }

  const absl::Duration max_age_;
  mutable absl::Mutex mu_;
  std::optional<Entry> entry_ ABSL_GUARDED_BY(mu_);
  std::string last_gen_ ABSL_GUARDED_BY(mu_);  // the generation most recently seen
  uint64_t drops_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sluice
