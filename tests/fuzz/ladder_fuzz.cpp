// Fuzzes the ladder renderers (proxy/ladder.cpp) with every outcome the JSON reader accepts.
// The first input byte picks the ASCII options (bit 7: Unicode; bits 0-6: width 20..147, below
// the minimum too), the rest is an outcome JSON line. The ASCII ladder keeps to its width, has no
// trailing spaces or control characters and is UTF-8; the SVG is well-formed XML (libxml2) with
// one arrow per timeline entry, as ladder.hpp promises.

#include <libxml/parser.h>
#include <libxml/xpath.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "proxy/report/ladder.hpp"
#include "proxy/report/outcome_json.hpp"

namespace {

using finwave::proxy::Outcome;
using finwave::proxy::Verdict;

struct XmlFree {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
  void operator()(xmlXPathContext* context) const { xmlXPathFreeContext(context); }
  void operator()(xmlXPathObject* object) const { xmlXPathFreeObject(object); }
};

// Code points, as ladder.cpp counts columns; false when `line` is not UTF-8.
bool utf8_columns(std::string_view line, std::size_t& columns) {
  columns = 0;
  for (std::size_t i = 0; i < line.size();) {
    const auto byte = static_cast<unsigned char>(line[i]);
    const std::size_t length = byte < 0x80         ? 1
                               : (byte >> 5) == 6  ? 2
                               : (byte >> 4) == 14 ? 3
                               : (byte >> 3) == 30 ? 4
                                                   : 0;
    if (length == 0 || i + length > line.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(line[i + k]) & 0xc0) != 0x80) return false;
    }
    i += length;
    ++columns;
  }
  return true;
}

void check_ascii(const Outcome& outcome, const finwave::proxy::LadderOptions& options) {
  const std::string ladder = render_ladder(outcome, options);
  const std::size_t width = std::max(options.width, finwave::proxy::kMinLadderWidth);
  std::string_view rest = ladder;
  while (!rest.empty()) {
    const std::size_t newline = rest.find('\n');
    const std::string_view line = rest.substr(0, newline);
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    std::size_t columns = 0;
    FUZZ_CHECK(utf8_columns(line, columns), "the ladder is UTF-8");
    FUZZ_CHECK(columns <= width, "no line wider than asked");
    FUZZ_CHECK(line.empty() || line.back() != ' ', "no trailing spaces");
    FUZZ_CHECK(
        std::none_of(line.begin(), line.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }),
        "no control characters");
  }
}

std::size_t xpath_count(xmlDoc* doc, const char* expression) {
  const std::unique_ptr<xmlXPathContext, XmlFree> context(xmlXPathNewContext(doc));
  const std::unique_ptr<xmlXPathObject, XmlFree> result(
      xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(expression), context.get()));
  FUZZ_CHECK(result != nullptr && result->type == XPATH_NODESET, "an XPath node set");
  return result->nodesetval == nullptr ? 0 : static_cast<std::size_t>(result->nodesetval->nodeNr);
}

std::size_t entries_with(const Outcome& outcome, Verdict verdict) {
  return static_cast<std::size_t>(
      std::count_if(outcome.timeline.begin(), outcome.timeline.end(),
                    [verdict](const auto& entry) { return entry.verdict == verdict; }));
}

void check_svg(const Outcome& outcome) {
  const std::string svg = render_ladder_svg(outcome);
  const std::unique_ptr<xmlDoc, XmlFree> doc(
      xmlReadMemory(svg.data(), static_cast<int>(svg.size()), "ladder.svg", nullptr,
                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  FUZZ_CHECK(doc != nullptr, "the SVG is well-formed XML");
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  FUZZ_CHECK(
      root != nullptr && std::string_view(reinterpret_cast<const char*>(root->name)) == "svg",
      "the root element is <svg>");
  FUZZ_CHECK(xpath_count(doc.get(), "//*[@data-role]") == outcome.timeline.size(),
             "one arrow per timeline entry, and nothing else carries data-role");
  FUZZ_CHECK(
      xpath_count(doc.get(), "//*[@data-verdict='drop']") == entries_with(outcome, Verdict::kDrop),
      "one dropped arrow per dropped entry");
  FUZZ_CHECK(xpath_count(doc.get(), "//*[@data-verdict='delay']") ==
                 entries_with(outcome, Verdict::kDelay),
             "one delayed arrow per delayed entry");
  FUZZ_CHECK(xpath_count(doc.get(), "//*[@data-verdict='reset']") ==
                 entries_with(outcome, Verdict::kReset),
             "one reset arrow per reset entry");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  xmlInitParser();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  finwave::proxy::LadderOptions options;
  options.unicode = (data[0] & 0x80) != 0;
  options.width = 20 + (data[0] & 0x7f);
  Outcome outcome;
  try {
    outcome = finwave::proxy::outcome_from_json_line(
        std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  } catch (const std::invalid_argument&) {
    return 0;  // The reader's own target checks its refusals.
  }
  check_ascii(outcome, options);
  check_svg(outcome);
  return 0;
}
