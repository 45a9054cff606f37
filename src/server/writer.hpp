// The writer of one database: a bounded queue of write requests and the
// thread that applies them in arrival order. Consecutive stores are folded
// into a single storage transaction, and each is acknowledged only after
// that transaction committed.
//
// Threads: TryPush, Close and the counters are called by the IO thread; the
// queue is shared under a mutex; everything else runs on the writer's own
// thread, which is the only one to write to the database.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "server/request.hpp"
#include "storage/database.hpp"

namespace provdb::server {

class Writer {
 public:
  // `capacity_bytes` bounds the queued requests; a request larger than that
  // is still accepted into an empty queue so that it can make progress.
  Writer(std::string name, storage::Database& db, zmq::context_t& context,
         std::size_t capacity_bytes);
  ~Writer();

  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Moves `request` into the queue and returns true, or returns false and
  // leaves it alone when the queue is full.
  bool TryPush(Request& request);
  // No more pushes: the thread applies what is queued, sends its replies and
  // its done marker, then exits.
  void Close();
  void Join();

  std::size_t queued_requests() const;
  std::size_t queued_bytes() const;
  uint64_t records_stored() const { return records_stored_.load(std::memory_order_relaxed); }
  uint64_t bytes_stored() const { return bytes_stored_.load(std::memory_order_relaxed); }

 private:
  void Run();
  void ApplyStores(std::vector<Request*>& stores);
  void ApplyOther(Request& request);
  const std::vector<std::string>& IndexedFields(const std::string& collection);

  const std::string name_;
  storage::Database& db_;
  zmq::context_t& context_;
  const std::size_t capacity_bytes_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Request> queue_;
  std::size_t queued_bytes_ = 0;
  bool closed_ = false;

  // Writer thread only.
  zmq::socket_t* replies_ = nullptr;
  std::map<std::string, std::vector<std::string>> fields_cache_;

  std::atomic<uint64_t> records_stored_{0};
  std::atomic<uint64_t> bytes_stored_{0};
  std::thread thread_;
};

}  // namespace provdb::server
