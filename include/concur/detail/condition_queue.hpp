// The condition-variable algorithm, for both scopes: a FIFO of waiter nodes,
// each with its own 32-bit futex word, linked while the caller holds the
// condition's lock.
//
// Each waiter sleeps on its own node, and notify(n) marks exactly the first n
// nodes. So there are no spurious wake-ups, notify(n) wakes exactly n waiters
// when at least n wait, and a thread that starts waiting after a notify is
// never woken by it -- the guarantees Python's deque-of-locks Condition gives.
// A waiter whose timeout expires takes its node out again once it holds the
// lock; if a notify marked it first, the wait counts as notified (true).
//
// The node lives where every party can reach it: on the waiter's stack for
// threads; in a shared arena for the process-shared scope (same virtual
// address in every process forked after the arena was made).
//
// Memory ordering: the list is only touched with the lock held; a node's
// word is set with release and read with acquire. A waiter's callers are
// ordered by the lock it retakes, so Helgrind needs no edge here, only to
// leave the node's word unchecked while the node is queued (its one plain
// store races with the waiter's loads by design; see detail/annotate.hpp).
#pragma once

#include <atomic>
#include <cstdint>

#include "concur/detail/annotate.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/spin.hpp"

namespace concur::detail {

struct WaitNode {
  static constexpr std::uint32_t kWaiting = 0;
  static constexpr std::uint32_t kNotified = 1;
  std::atomic<std::uint32_t> state{kWaiting};
  WaitNode* next = nullptr;
  WaitNode* prev = nullptr;
};

template <Scope S>
class ConditionQueue {
 public:
  constexpr ConditionQueue() = default;
  ConditionQueue(const ConditionQueue&) = delete;
  ConditionQueue& operator=(const ConditionQueue&) = delete;

  // Called with the lock held. unlock() releases it (every level of an
  // RLock), relock() takes it back. Returns false only on timeout.
  template <class Unlock, class Relock>
  bool wait(WaitNode& node, Unlock&& unlock, Relock&& relock, Deadline deadline) {
    push_back(node);
    unlock();
    auto notified = [&node] {
      return node.state.load(std::memory_order_acquire) == WaitNode::kNotified;
    };
    if (!deadline.is_now_only() && !spin_until(notified)) {
      while (!notified()) {
        if (futex_wait(node.state, WaitNode::kWaiting, S, deadline) == WaitResult::kTimedOut) {
          break;
        }
      }
    }
    relock();
    CONCUR_ATOMIC_WORD_END(&node.state);  // nobody else touches it now
    if (node.state.load(std::memory_order_acquire) == WaitNode::kNotified) return true;
    unlink(node);
    return false;
  }

  // Called with the lock held. Wakes the first min(n, waiting) waiters.
  int notify(int n) {
    int woken = 0;
    while (woken < n && tail_ != nullptr) {
      WaitNode* head = tail_->next;
      unlink(*head);
      head->state.store(WaitNode::kNotified, std::memory_order_release);
      // The waiter cannot return before it retakes the lock we hold, so its
      // node is still alive here.
      futex_wake(head->state, 1, S);
      ++woken;
    }
    return woken;
  }

  bool empty() const { return tail_ == nullptr; }

 private:
  // A circular doubly-linked list reached through its tail: one pointer.
  void push_back(WaitNode& node) {
    node.state.store(WaitNode::kWaiting, std::memory_order_relaxed);
    CONCUR_ATOMIC_WORD_BEGIN(&node.state);
    if (tail_ == nullptr) {
      node.next = node.prev = &node;
    } else {
      node.next = tail_->next;
      node.prev = tail_;
      tail_->next->prev = &node;
      tail_->next = &node;
    }
    tail_ = &node;
  }

  void unlink(WaitNode& node) {
    if (node.next == &node) {
      tail_ = nullptr;
    } else {
      node.prev->next = node.next;
      node.next->prev = node.prev;
      if (tail_ == &node) tail_ = node.prev;
    }
    node.next = node.prev = nullptr;
  }

  WaitNode* tail_ = nullptr;
};

}  // namespace concur::detail
