// LineReader: getline() over a FILE*, which is a pipe from `xz -dc` for
// compressed files so that provdb needs no compression library.
#include "cli/line_reader.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

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

// A fresh file for xz's standard error, or an empty path when none can be
// made (xz's messages then go to this process's standard error).
std::filesystem::path ErrorFile() {
  std::error_code ec;
  std::string name = (std::filesystem::temp_directory_path(ec) / "provdb-xz-XXXXXX").string();
  if (ec) return {};
  const int fd = ::mkstemp(name.data());
  if (fd < 0) return {};
  ::close(fd);
  return name;
}

std::string ReadTrimmed(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Exit status of a shell that could not find the command.
constexpr int kCommandNotFound = 127;

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
    xz_errors_ = ErrorFile();
    std::string command = "xz -dc -- " + ShellQuote(path.string());
    if (!xz_errors_.empty()) command += " 2>" + ShellQuote(xz_errors_.string());
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
  std::error_code ec;
  if (!xz_errors_.empty()) std::filesystem::remove(xz_errors_, ec);
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
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return;

  const int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == kCommandNotFound) {
    throw Error(ErrorCode::kStorage, "cannot decompress '" + path_.string() +
                                         "': xz is not installed; install it (package xz-utils "
                                         "or xz) or decompress the file first");
  }
  const std::string said = xz_errors_.empty() ? "" : ReadTrimmed(xz_errors_);
  damage_ = "'" + path_.string() + "' is truncated or corrupt: xz could not decompress it (" +
            (said.empty() ? "exit status " + std::to_string(code) : said) +
            "); use a complete copy of the file";
  throw Error(ErrorCode::kBadDocument, damage_);
}

void LineReader::drain() {
  if (!is_pipe_) return;
  try {
    std::string line;
    while (next(line)) {
    }
  } catch (const Error&) {
    // damage() says what went wrong, if anything did.
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
