// Waiter nodes for the process-shared scope: a pool inside a shared mapping,
// so a node sits at the same address in every process. Taken and given back
// only while the lock that guards the waiting is held.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "concur/detail/condition_queue.hpp"

namespace concur::detail {

template <std::uint32_t kCapacity>
class SharedNodePool {
 public:
  static constexpr std::uint32_t kMaxWaiters = kCapacity;

  WaitNode& take() {
    if (free_ != nullptr) {
      WaitNode* node = free_;
      free_ = node->next;
      return *node;
    }
    if (never_used_ < kCapacity) return nodes_[never_used_++];
    throw std::length_error("wait(): more threads are waiting at once than the " +
                            std::to_string(kCapacity) + " this object allows");
  }
  void give(WaitNode& node) {
    node.next = free_;
    free_ = &node;
  }

 private:
  WaitNode* free_ = nullptr;      // returned nodes, linked through next
  std::uint32_t never_used_ = 0;  // nodes_[never_used_..] were never handed out
  WaitNode nodes_[kCapacity];
};

// Takes a node for one wait and gives it back when the wait is over (both
// with the lock held).
template <class Pool>
class PooledNode {
 public:
  explicit PooledNode(Pool& pool) : pool_(pool), node_(pool.take()) {}
  ~PooledNode() { pool_.give(node_); }
  PooledNode(const PooledNode&) = delete;
  PooledNode& operator=(const PooledNode&) = delete;
  WaitNode& node() { return node_; }

 private:
  Pool& pool_;
  WaitNode& node_;
};

}  // namespace concur::detail
