// Checks shared by the pools' tests: an input that throws while it is read
// (CPython's test_imap_handle_iterable_exception and
// test_map_handle_iterable_exception, docs/pool.md "An input that throws").
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "test_support.hpp"

namespace concur::testing {

// imap gives the results before the chunk the input failed in, then the
// input's own exception, and the iteration ends; imap_unordered gives the
// same results in some order. Then the pool still works.
template <class Pool>
void check_imap_over_a_throwing_input(Pool& pool) {
  const auto sqr = [](int x) { return x * x; };
  auto [seen, thrown] = read_until_thrown<SayWhenError>(pool.imap(sqr, exception_throwing_input(10, 3), 1));
  EXPECT_TRUE(thrown);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 4}));
  // The chunk [6, 7] fails whole: its exception comes at its start.
  std::tie(seen, thrown) = read_until_thrown<SayWhenError>(pool.imap(sqr, exception_throwing_input(20, 7), 2));
  EXPECT_TRUE(thrown);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 4, 9, 16, 25}));
  std::tie(seen, thrown) =
      read_until_thrown<SayWhenError>(pool.imap_unordered(sqr, exception_throwing_input(20, 7), 2));
  EXPECT_TRUE(thrown);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 4, 9, 16, 25}));
  std::tie(seen, thrown) = read_until_thrown<SayWhenError>(pool.imap(sqr, exception_throwing_input(1, -1), 1));
  EXPECT_TRUE(thrown);
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(pool.map(sqr, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
}

// map raises the input's own exception (for a process Pool: not a
// RemoteError), again and again; map_async raises it itself, as it reads
// its input before it returns (Python makes a list of it). The input's
// error is its item's: the lowest failing index wins. `FError`: what an
// exception of f becomes (RemoteError from a process Pool, the very
// std::domain_error from a ThreadPool).
template <class FError, class Pool>
void check_map_over_a_throwing_input(Pool& pool) {
  const auto sqr = [](int x) { return x * x; };
  for (int round = 0; round < 2; ++round) {
    EXPECT_THROW(pool.map(sqr, exception_throwing_input(1, -1), 1), SayWhenError);
    EXPECT_THROW(pool.map(sqr, exception_throwing_input(10, 3), 1), SayWhenError);
  }
  EXPECT_THROW(pool.map(sqr, exception_throwing_input(100, 57)), SayWhenError);
  EXPECT_THROW(pool.map_async(sqr, exception_throwing_input(10, 3), 1), SayWhenError);
  const auto fails_at_2 = [](int x) {
    if (x == 2) throw std::domain_error("f at 2");
    return x;
  };
  EXPECT_THROW(pool.map(fails_at_2, exception_throwing_input(10, 5), 1), FError);
  EXPECT_THROW(pool.map(fails_at_2, exception_throwing_input(10, 1), 1), SayWhenError);
  EXPECT_EQ(pool.map(sqr, std::vector<int>{1, 2, 3}), (std::vector<int>{1, 4, 9}));
}

}  // namespace concur::testing
