// Small text helpers of the `strata` command line.
#pragma once

#include <string>
#include <vector>

namespace strata::cli {

// "a,b,,c" -> {"a", "b", "c"}: the non-empty comma-separated items of `s`.
inline std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    if (comma > pos) out.push_back(s.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

}  // namespace strata::cli
