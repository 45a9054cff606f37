// A small pool of threads that answer reads (fetch, filter, query, status),
// so that a slow query neither holds up the IO thread nor waits behind a
// database's writer: storage reads use read-only connections of their own.
//
// Threads: TryPush and Close are called by the IO thread; each pool thread
// owns a PUSH socket for its replies and runs tasks taken from a bounded
// queue shared under a mutex.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <zmq.hpp>

namespace provdb::server {

class ReaderPool {
 public:
  // A task answers one request on the given reply socket.
  using Task = std::function<void(zmq::socket_t& replies)>;

  ReaderPool(std::size_t threads, std::size_t capacity, zmq::context_t& context);
  ~ReaderPool();

  ReaderPool(const ReaderPool&) = delete;
  ReaderPool& operator=(const ReaderPool&) = delete;

  // Queues `task` and returns true, or returns false when the queue is full.
  bool TryPush(Task& task);
  // No more tasks: the threads finish the queue, each sends its done marker.
  void Close();
  void Join();

  std::size_t threads() const { return threads_.size(); }
  std::size_t queued() const;

 private:
  void Run();

  const std::size_t capacity_;
  zmq::context_t& context_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;
  bool closed_ = false;

  std::vector<std::thread> threads_;
};

}  // namespace provdb::server
