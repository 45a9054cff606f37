// Execution of read requests against a database, on a reader thread.
// Pure functions of their arguments: safe from any thread (storage reads
// take their own read-only connections).
#pragma once

#include <zmq.hpp>

#include "server/request.hpp"
#include "storage/database.hpp"

namespace provdb::server {

// Runs the read `request` against `db` and sends the reply, or an error reply
// carrying the failure's code and message, on `replies`. Never throws.
void ExecuteRead(storage::Database& db, Request& request, zmq::socket_t& replies);

}  // namespace provdb::server
