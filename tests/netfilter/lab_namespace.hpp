#pragma once

// Shared by the netfilter lab tests (suite "lab"): a network namespace of the test's own, and
// the root check they start with.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "netfilter/subprocess.hpp"

namespace finwave::nf::test {

/// A named network namespace for the duration of a test; deleted by the destructor, whatever
/// happened in between.
class TestNamespace {
 public:
  TestNamespace()
      : name_("fwnf-" + std::to_string(::getpid())), ip_(require_executable("ip", "iproute2")) {
    const SubprocessResult added = run_subprocess({ip_, "netns", "add", name_});
    if (!added.ok()) {
      throw std::runtime_error("ip netns add " + name_ + " failed: " + added.err);
    }
  }
  TestNamespace(const TestNamespace&) = delete;
  TestNamespace& operator=(const TestNamespace&) = delete;
  ~TestNamespace() {
    try {
      const SubprocessResult deleted = run_subprocess({ip_, "netns", "delete", name_});
      if (!deleted.ok()) {
        std::fprintf(stderr, "ip netns delete %s failed: %s\n", name_.c_str(), deleted.err.c_str());
      }
    } catch (const std::exception& error) {
      std::fprintf(stderr, "ip netns delete %s failed: %s\n", name_.c_str(), error.what());
    }
  }

  const std::string& name() const { return name_; }

  /// Runs `body` on a fresh thread that has entered the namespace: setns() moves only the
  /// calling thread, and the processes it forks (nft) start in its namespace.
  /// Exceptions from `body` (failed REQUIREs included) are rethrown on the caller's thread.
  template <typename Body>
  void run(Body&& body) const {
    std::exception_ptr error;
    std::thread worker([&] {
      try {
        const std::string path = "/run/netns/" + name_;
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          throw std::system_error(errno, std::generic_category(), "open " + path);
        }
        const int entered = ::setns(fd, CLONE_NEWNET);
        const int saved_errno = errno;
        ::close(fd);
        if (entered != 0) {
          throw std::system_error(saved_errno, std::generic_category(), "setns " + path);
        }
        body();
      } catch (...) {
        error = std::current_exception();
      }
    });
    worker.join();
    if (error) {
      std::rethrow_exception(error);
    }
  }

 private:
  std::string name_;
  std::string ip_;
};

inline void require_root() {
  REQUIRE_MESSAGE(::geteuid() == 0,
                  "this lab test needs root (CAP_NET_ADMIN) to create a network namespace and "
                  "install nftables rules in it; run it as root, or exclude the 'lab' suite");
}

}  // namespace finwave::nf::test
