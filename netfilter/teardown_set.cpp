#include "netfilter/teardown_set.hpp"

#include <stdexcept>
#include <string_view>
#include <vector>

#include "netfilter/ipset_entries.hpp"
#include "netfilter/subprocess.hpp"

namespace finwave::nf {
namespace {

constexpr const char* kDebianPackage = "ipset";

std::string failure(const std::string& what, const SubprocessResult& result) {
  std::string message = what + (result.timed_out ? " timed out"
                                                  : " failed (exit status " +
                                                        std::to_string(result.exit_status) + ")");
  std::string err = result.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (!err.empty()) message += ": " + err;
  return message;
}

// Whether `name` is one of the lines of `ipset list -name`.
bool listed(const std::string& names, const std::string& name) {
  std::size_t begin = 0;
  while (begin < names.size()) {
    std::size_t end = names.find('\n', begin);
    if (end == std::string::npos) end = names.size();
    if (std::string_view(names).substr(begin, end - begin) == name) return true;
    begin = end + 1;
  }
  return false;
}

}  // namespace

std::string teardown_set_name(std::uint16_t queue_num, int family) {
  return "finwave-q" + std::to_string(queue_num) + (family == 6 ? "-v6" : "-v4");
}

void create_teardown_set(std::uint16_t queue_num, int family) {
  const std::string ipset = require_executable("ipset", kDebianPackage);
  const std::string name = teardown_set_name(queue_num, family);
  // -exist: a set left with the same parameters is reused, one with others is an error.
  const SubprocessResult result = run_subprocess(
      {ipset, "create", name, "hash:ip,port,ip", "family", family == 6 ? "inet6" : "inet",
       "timeout", std::to_string(kTeardownSetTimeoutSeconds), "maxelem",
       std::to_string(kTeardownSetMaxEntries), "forceadd", "-exist"});
  if (!result.ok()) throw std::runtime_error(failure("ipset create " + name, result));
}

std::optional<std::uint64_t> teardown_set_entries(std::uint16_t queue_num, int family) noexcept {
  try {
    return ipset_entries(teardown_set_name(queue_num, family));
  } catch (...) {  // Building the name can only fail to allocate.
    return std::nullopt;
  }
}

bool destroy_teardown_set(std::uint16_t queue_num, int family) {
  const auto ipset = find_executable("ipset");
  if (!ipset) return false;
  const std::string name = teardown_set_name(queue_num, family);
  const SubprocessResult names = run_subprocess({*ipset, "list", "-name"});
  if (!names.ok()) throw std::runtime_error(failure("ipset list -name", names));
  if (!listed(names.out, name)) return false;
  const SubprocessResult result = run_subprocess({*ipset, "destroy", name});
  if (!result.ok()) throw std::runtime_error(failure("ipset destroy " + name, result));
  return true;
}

}  // namespace finwave::nf
