#include "netfilter/netns.hpp"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace finwave::nf {
namespace {

[[noreturn]] void fail(const std::string& spec, const std::string& what) {
  throw std::runtime_error("--netns " + spec + ": " + what);
}

bool all_digits(const std::string& text) {
  return !text.empty() && text.size() <= 10 &&
         std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

}  // namespace

UniqueFd open_netns(const std::string& spec) {
  if (spec.empty()) fail("''", "give a namespace file such as /run/netns/NAME or a PID");
  const bool pid = all_digits(spec);
  const std::string path = pid ? "/proc/" + spec + "/ns/net" : spec;
  if (pid) {
    struct stat process {};
    if (::stat(("/proc/" + spec).c_str(), &process) != 0) fail(spec, "no process " + spec);
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail(spec, "cannot open " + path + ": " + std::strerror(errno));
  // NS_GET_NSTYPE (Linux 4.11) tells a namespace file from any other file, and a network
  // namespace from the others (/proc/PID/ns/mnt, a regular file, a directory).
  const int type = ::ioctl(fd.get(), NS_GET_NSTYPE);
  if (type < 0) fail(spec, path + " is not a namespace file");
  if (type != CLONE_NEWNET) fail(spec, path + " is a namespace, but not a network namespace");
  return fd;
}

void enter_netns(const UniqueFd& netns, const std::string& spec) {
  if (::setns(netns.get(), CLONE_NEWNET) != 0) {
    const int error = errno;
    fail(spec, std::string("cannot enter it: ") + std::strerror(error) +
                   (error == EPERM ? " (entering a network namespace needs CAP_SYS_ADMIN)" : ""));
  }
}

}  // namespace finwave::nf
