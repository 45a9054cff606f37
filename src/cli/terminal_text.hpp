// Text bound for a terminal: stored data may hold control characters that a
// terminal would act on (colours, cursor moves, clearing the screen), and
// columns line up only when measured in the cells a terminal draws, which
// for UTF-8 is neither bytes nor code points.
// Pure functions: safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace provdb::cli {

// `text` with nothing a terminal would act on: newlines, carriage returns
// and tabs become blanks; other control characters (C0, DEL, C1), line and
// paragraph separators and bidirectional overrides are written as escapes
// like \u001b; bytes that are not UTF-8 become U+FFFD.
std::string Printable(std::string_view text);

// The terminal cells that printable UTF-8 text takes: most characters one,
// East Asian wide and fullwidth characters and most emoji two, combining
// marks and zero-width characters none.
std::size_t DisplayWidth(std::string_view text);

// Printable text cut to at most `max_width` cells, ending in "..." when cut;
// a character is never split.
std::string Shorten(std::string_view text, std::size_t max_width);

}  // namespace provdb::cli
