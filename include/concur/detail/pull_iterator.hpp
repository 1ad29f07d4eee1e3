// The iterator of the lazy result ranges (imap of ThreadPool, Pool and
// mpi::Pool): an input iterator that asks its range for the current value,
// to advance, and whether it is at the end. Range provides
// Out& current(), void advance() and bool at_end() const, and befriends
// PullIterator when they are private.
#pragma once

#include <cstddef>
#include <iterator>

namespace concur::detail {

template <class Range, class Out>
class PullIterator {
 public:
  using value_type = Out;
  using difference_type = std::ptrdiff_t;
  using iterator_concept = std::input_iterator_tag;

  PullIterator() = default;
  explicit PullIterator(Range* range) : range_(range) {}

  Out& operator*() const { return range_->current(); }
  PullIterator& operator++() {
    range_->advance();
    return *this;
  }
  void operator++(int) { ++*this; }
  friend bool operator==(const PullIterator& it, std::default_sentinel_t) { return it.finished(); }

 private:
  bool finished() const { return range_ == nullptr || range_->at_end(); }
  Range* range_ = nullptr;
};

}  // namespace concur::detail
