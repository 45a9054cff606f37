// Reading record files line by line: plain files, files compressed with xz
// (decompressed by running `xz -dc`), or standard input ("-").
// A LineReader belongs to one thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace provdb::cli {

class LineReader {
 public:
  // Throws Error(kNotFound) when the file does not exist and Error(kStorage)
  // when it cannot be opened or xz cannot be started.
  explicit LineReader(const std::filesystem::path& path);
  ~LineReader();

  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Reads the next line without its end of line; false at the end of the
  // file. Throws Error(kBadDocument) with damage() when xz reports a
  // truncated or corrupt file, and Error(kStorage) when xz is missing.
  bool next(std::string& line);

  // Reads and drops the rest of the file, without throwing, so that damage()
  // is known. A damaged compressed file yields garbled lines before xz
  // reports the damage; a caller that finds a bad line calls this to learn
  // whether the damage is the real cause.
  void drain();

  // What xz said of a truncated or corrupt file, as a message for the user;
  // empty while none is known (always for files that are not compressed).
  const std::string& damage() const { return damage_; }

  // The number of the line last returned, counting from 1.
  int64_t line_number() const { return line_number_; }
  // Bytes read so far from the underlying stream (uncompressed bytes for xz).
  uint64_t bytes_read() const { return bytes_read_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void close();

  std::filesystem::path path_;
  // Where xz's complaints go, to be quoted in damage(); empty if none.
  std::filesystem::path xz_errors_;
  std::string damage_;
  std::FILE* file_ = nullptr;
  bool is_pipe_ = false;
  char* buffer_ = nullptr;
  std::size_t capacity_ = 0;
  int64_t line_number_ = 0;
  uint64_t bytes_read_ = 0;
};

// Whether a path names an xz-compressed file (by its extension).
bool IsXzFile(const std::filesystem::path& path);

}  // namespace provdb::cli
