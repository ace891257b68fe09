#include "coordinator/web/web_history.h"

#include <algorithm>

namespace sluice {

WebHistory::WebHistory(size_t capacity, int64_t min_step_ms)
    : capacity_(std::max<size_t>(capacity, 4)), min_step_ms_(min_step_ms) {}

void WebHistory::Add(const WebSample& sample) {
  absl::MutexLock lock(&mu_);
  if (!samples_.empty() && sample.at_ms < samples_.back().at_ms) return;  // clock went back
  // Two samples close together would make the rate jumpy: the newer wins.
  if (samples_.size() >= 2 && sample.at_ms - samples_[samples_.size() - 2].at_ms < min_step_ms_) {
    samples_.back() = sample;
    return;
  }
  if (samples_.size() >= capacity_) {
    // Halve the resolution of the whole series, keeping the first and last.
    std::vector<WebSample> kept;
    kept.reserve(capacity_ / 2 + 2);
    for (size_t i = 0; i < samples_.size(); i += 2) kept.push_back(samples_[i]);
    if (samples_.size() % 2 == 0) kept.push_back(samples_.back());
    samples_ = std::move(kept);
  }
  samples_.push_back(sample);
}

std::vector<WebSample> WebHistory::Samples() const {
  absl::MutexLock lock(&mu_);
  return samples_;
}

double WebHistory::DonePerMinute(int64_t window_ms) const {
  absl::MutexLock lock(&mu_);
  if (samples_.size() < 2) return 0;
  const WebSample& last = samples_.back();
  auto first = std::find_if(samples_.begin(), samples_.end(),
                            [&](const WebSample& s) { return last.at_ms - s.at_ms <= window_ms; });
  if (first == samples_.end() || first->at_ms >= last.at_ms) first = samples_.end() - 2;
  const int64_t dt = last.at_ms - first->at_ms;
  if (dt <= 0) return 0;
  return static_cast<double>(last.done - first->done) * 60000.0 / static_cast<double>(dt);
}

}  // namespace sluice
