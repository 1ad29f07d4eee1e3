// libFuzzer: the reader of /proc/<tid>/stat behind thread_alive(), which
// tells the process-shared locks whether a holder is gone
// (detail::stat_says_alive). The input is the file's text; a process's
// name may hold any bytes, ')' and spaces too, so the state is the field
// after the last ')'. Checked against a reading of its own: gone exactly
// when that field is Z, X or x. Seeds: tests/fuzz/corpus/proc_stat/.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "concur/detail/futex.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // What the reader sees: the text up to its first NUL, as read() gives it.
  const std::string_view seen(text.c_str());
  const std::size_t paren = seen.rfind(')');
  bool alive = true;
  if (paren != std::string_view::npos && paren + 2 < seen.size()) {
    const char state = seen[paren + 2];
    alive = state != 'Z' && state != 'X' && state != 'x';
  }
  if (concur::detail::stat_says_alive(text.c_str()) != alive) __builtin_trap();
  return 0;
}
