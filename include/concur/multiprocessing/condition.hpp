#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <variant>

#include "concur/detail/condition_api.hpp"
#include "concur/detail/condition_queue.hpp"
#include "concur/detail/node_pool.hpp"
#include "concur/detail/shared_block.hpp"
#include "concur/multiprocessing/lock.hpp"
#include "concur/multiprocessing/rlock.hpp"

namespace concur::multiprocessing {

/// Lets threads of every process forked after it was made wait, with a lock
/// held, until another notifies them.
/// - Python: multiprocessing.Condition.
/// - A cheap copyable handle: copies refer to the same condition and lock.
/// - Thread-safety, blocking, errors, quirks: exactly as
///   concur::threading::Condition (the same algorithm: a FIFO of waiter
///   nodes, each with its own futex word; here the nodes come from a pool in
///   the condition's shared memory instead of the waiter's stack).
/// - Limits: at most kMaxWaiters threads wait at once (std::length_error
///   beyond). A process killed while waiting leaves its node queued: one later
///   notify is spent on it.
class Condition : public detail::ConditionApi<Condition> {
 public:
  /// The most threads, across all processes, that may wait at once.
  static constexpr std::uint32_t kMaxWaiters = 4096;

  /// With a fresh mp::RLock of its own, as Python's Condition() makes.
  Condition() : Condition(RLock()) {}
  /// Uses `lock` (a handle to it is kept: the caller's copy may go).
  explicit Condition(const Lock& lock)
      : lock_(lock), shared_(detail::make_shared_object<Shared>()) {}
  /// Uses `lock` (a handle to it is kept: the caller's copy may go).
  explicit Condition(const RLock& lock)
      : lock_(lock), shared_(detail::make_shared_object<Shared>()) {}

 private:
  friend class detail::ConditionApi<Condition>;

  struct Shared {
    detail::ConditionQueue<detail::Scope::kShared> queue;
    detail::SharedNodePool<kMaxWaiters> nodes;
  };

  // The waiter's node comes from the pool in the condition's shared memory.
  class NodeHolder : public detail::PooledNode<detail::SharedNodePool<kMaxWaiters>> {
   public:
    explicit NodeHolder(Condition& c) : PooledNode(c.shared_->nodes) {}
  };

  RLock* rlock() const { return const_cast<RLock*>(std::get_if<RLock>(&lock_)); }
  Lock* plain() const { return const_cast<Lock*>(std::get_if<Lock>(&lock_)); }
  detail::ConditionQueue<detail::Scope::kShared>& queue() { return shared_->queue; }

  std::variant<Lock, RLock> lock_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace concur::multiprocessing
