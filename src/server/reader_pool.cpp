// The reader threads of a server instance.
#include "server/reader_pool.hpp"

#include <utility>

#include "server/request.hpp"

namespace provdb::server {

ReaderPool::ReaderPool(std::size_t threads, std::size_t capacity, zmq::context_t& context)
    : capacity_(capacity), context_(context) {
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

ReaderPool::~ReaderPool() {
  Close();
  Join();
}

bool ReaderPool::TryPush(Task& task) {
  {
    std::lock_guard lock(mutex_);
    if (closed_ || queue_.size() >= capacity_) return false;
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
  return true;
}

void ReaderPool::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  wake_.notify_all();
}

void ReaderPool::Join() {
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

std::size_t ReaderPool::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void ReaderPool::Run() {
  zmq::socket_t replies = ConnectReplySocket(context_);

  while (true) {
    Task task;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return closed_ || !queue_.empty(); });
      if (queue_.empty()) break;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    // Tasks answer their own errors; see ExecuteRead.
    task(replies);
  }

  SendWorkerDone(replies);
}

}  // namespace provdb::server
