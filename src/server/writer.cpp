// The per-database writer thread: folds queued stores into one transaction.
#include "server/writer.hpp"

#include <string_view>
#include <utility>

namespace provdb::server {

using protocol::Op;

namespace {

// Bytes of queued requests folded into one transaction at most. Smaller than
// the queue, so that a writer always has work queued behind the transaction
// it runs, and the IO thread rarely finds the queue full; large enough that
// the commit costs little beside the inserts.
constexpr std::size_t kMaxFoldBytes = 4u << 20;

nlohmann::json BoolArray(const std::vector<bool>& values) {
  nlohmann::json array = nlohmann::json::array();
  for (bool v : values) array.push_back(v);
  return array;
}

}  // namespace

Writer::Writer(std::string name, storage::Database& db, zmq::context_t& context,
               std::size_t capacity_bytes)
    : name_(std::move(name)), db_(db), context_(context), capacity_bytes_(capacity_bytes) {
  thread_ = std::thread([this] { Run(); });
}

Writer::~Writer() {
  Close();
  Join();
}

bool Writer::TryPush(Request& request) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    if (queued_bytes_ > 0 && queued_bytes_ + request.bytes > capacity_bytes_) return false;
    queued_bytes_ += request.bytes;
    queue_.push_back(std::move(request));
  }
  wake_.notify_one();
  return true;
}

void Writer::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  wake_.notify_one();
}

void Writer::Join() {
  if (thread_.joinable()) thread_.join();
}

std::size_t Writer::queued_requests() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

std::size_t Writer::queued_bytes() const {
  std::lock_guard lock(mutex_);
  return queued_bytes_;
}

void Writer::Run() {
  zmq::socket_t replies = ConnectReplySocket(context_);
  replies_ = &replies;

  while (true) {
    // Take what is queued, up to one fold's worth (at least one request), so
    // that the IO thread can refill the queue while this transaction runs.
    std::vector<Request> taken;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return closed_ || !queue_.empty(); });
      if (queue_.empty()) break;

      std::size_t bytes = 0;
      while (!queue_.empty() &&
             (taken.empty() || bytes + queue_.front().bytes <= kMaxFoldBytes)) {
        bytes += queue_.front().bytes;
        taken.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_bytes_ -= bytes;
    }

    // Runs of stores fold into one transaction; any other write is applied
    // alone, in its place, so that the order of a client's writes holds.
    std::vector<Request*> stores;
    for (Request& request : taken) {
      if (request.op == Op::kStore) {
        stores.push_back(&request);
        continue;
      }
      ApplyStores(stores);
      ApplyOther(request);
    }
    ApplyStores(stores);
  }

  SendWorkerDone(replies);
  replies_ = nullptr;
}

const std::vector<std::string>& Writer::IndexedFields(const std::string& collection) {
  auto it = fields_cache_.find(collection);
  if (it == fields_cache_.end()) {
    it = fields_cache_.emplace(collection, db_.indexed_fields(collection)).first;
  }
  return it->second;
}

void Writer::ApplyStores(std::vector<Request*>& stores) {
  if (stores.empty()) return;

  // Prepare (parse and validate) each request; a refused one is answered at
  // once and left out, so that one bad document fails only its own batch.
  std::vector<storage::PreparedBatch> batches;
  std::vector<Request*> included;
  std::size_t bytes = 0;
  for (Request* request : stores) {
    try {
      std::string collection = HeaderString(request->header, "coll");
      std::vector<std::string_view> docs;
      docs.reserve(request->payload.size());
      for (const auto& frame : request->payload) docs.push_back(frame.to_string_view());

      auto prepared = storage::PrepareBatch(docs, IndexedFields(collection),
                                            db_.options().max_document_bytes);
      for (const auto& frame : request->payload) bytes += frame.size();
      request->payload.clear();  // the prepared copy is all that is needed now
      batches.push_back({std::move(collection), std::move(prepared)});
      included.push_back(request);
    } catch (const Error& e) {
      SendError(*replies_, *request, e);
    }
  }
  stores.clear();
  if (batches.empty()) return;

  // One transaction for all of them; acknowledge only after it committed.
  std::size_t records = 0;
  for (const auto& batch : batches) records += batch.docs.size();
  try {
    auto ids = db_.store_batches(std::move(batches));
    records_stored_.fetch_add(records, std::memory_order_relaxed);
    bytes_stored_.fetch_add(bytes, std::memory_order_relaxed);
    for (std::size_t i = 0; i < included.size(); ++i) {
      nlohmann::json header = protocol::OkHeader(included[i]->id);
      header["ids"] = std::move(ids[i]);
      SendReply(*replies_, *included[i], header);
    }
  } catch (const Error& e) {
    for (Request* request : included) SendError(*replies_, *request, e);
  } catch (const std::exception& e) {
    const Error error(ErrorCode::kInternal, std::string("store failed: ") + e.what());
    for (Request* request : included) SendError(*replies_, *request, error);
  }
}

void Writer::ApplyOther(Request& request) {
  try {
    nlohmann::json header = protocol::OkHeader(request.id);
    const std::string collection = HeaderString(request.header, "coll");

    switch (request.op) {
      case Op::kUpdate: {
        const auto ids = HeaderIds(request.header);
        if (ids.size() != request.payload.size()) {
          throw Error(ErrorCode::kProtocol, "update carries " + std::to_string(ids.size()) +
                                                " ids but " +
                                                std::to_string(request.payload.size()) +
                                                " documents");
        }
        std::vector<std::pair<int64_t, std::string_view>> docs;
        for (std::size_t i = 0; i < ids.size(); ++i) {
          docs.emplace_back(ids[i], request.payload[i].to_string_view());
        }
        header["updated"] = BoolArray(db_.update_multi(collection, docs));
        break;
      }
      case Op::kErase:
        header["erased"] = BoolArray(db_.erase_multi(collection, HeaderIds(request.header)));
        break;
      case Op::kCreateCollection:
        fields_cache_.clear();
        db_.create_collection(collection, request.header.value("if_missing", false));
        break;
      case Op::kDropCollection:
        fields_cache_.clear();
        db_.drop_collection(collection);
        break;
      default:
        throw Error(ErrorCode::kInternal, "writer got a request that is not a write");
    }
    SendReply(*replies_, request, header);
  } catch (const Error& e) {
    SendError(*replies_, request, e);
  } catch (const nlohmann::json::exception& e) {
    SendError(*replies_, request,
              Error(ErrorCode::kProtocol, std::string("malformed request header: ") + e.what()));
  } catch (const std::exception& e) {
    SendError(*replies_, request,
              Error(ErrorCode::kInternal, std::string(protocol::OpName(request.op)) +
                                              " failed: " + e.what()));
  }
}

}  // namespace provdb::server
