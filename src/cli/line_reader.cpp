// LineReader: getline() over a FILE*, which is a pipe from `xz -dc` for
// compressed files so that provdb needs no compression library.
#include "cli/line_reader.hpp"

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>

#include "common/error.hpp"

namespace provdb::cli {
namespace {

// Quotes a path for the shell: single quotes, each inner quote closed,
// escaped and reopened.
std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

}  // namespace

bool IsXzFile(const std::filesystem::path& path) { return path.extension() == ".xz"; }

LineReader::LineReader(const std::filesystem::path& path) : path_(path) {
  if (path.string() == "-") {
    file_ = stdin;
    return;
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kNotFound,
                "cannot read '" + path.string() + "': no such file; check the path");
  }

  if (IsXzFile(path)) {
    const std::string command = "xz -dc -- " + ShellQuote(path.string());
    file_ = ::popen(command.c_str(), "r");
    is_pipe_ = true;
  } else {
    file_ = std::fopen(path.c_str(), "r");
  }
  if (file_ == nullptr) {
    throw Error(ErrorCode::kStorage, "cannot open '" + path.string() +
                                         "': " + std::strerror(errno) +
                                         (is_pipe_ ? " (is xz installed?)" : ""));
  }
}

LineReader::~LineReader() {
  if (is_pipe_ && file_ != nullptr) ::pclose(file_);
  if (!is_pipe_ && file_ != nullptr && file_ != stdin) std::fclose(file_);
  std::free(buffer_);
}

void LineReader::close() {
  if (file_ == nullptr || file_ == stdin) return;
  if (!is_pipe_) {
    std::fclose(file_);
    file_ = nullptr;
    return;
  }
  const int status = ::pclose(file_);
  file_ = nullptr;
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw Error(ErrorCode::kStorage,
                "xz could not decompress '" + path_.string() +
                    "' (exit status " + std::to_string(WEXITSTATUS(status)) +
                    "); check that the file is a complete .xz file and that xz is installed");
  }
}

bool LineReader::next(std::string& line) {
  if (file_ == nullptr) return false;
  const ssize_t n = ::getline(&buffer_, &capacity_, file_);
  if (n < 0) {
    close();
    return false;
  }
  bytes_read_ += static_cast<uint64_t>(n);
  ++line_number_;
  std::size_t len = static_cast<std::size_t>(n);
  while (len > 0 && (buffer_[len - 1] == '\n' || buffer_[len - 1] == '\r')) --len;
  line.assign(buffer_, len);
  return true;
}

}  // namespace provdb::cli
