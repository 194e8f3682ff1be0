// Tests of UniqueFd (netfilter/unique_fd.hpp): the descriptor is closed exactly when its owner
// lets go of it, and never twice.

#include "netfilter/unique_fd.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace finwave::nf {
namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

int open_null() {
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  return fd;
}

TEST_SUITE("netfilter") {
  TEST_CASE("unique_fd: closes its descriptor when destroyed; none held is -1 and false") {
    const int fd = open_null();
    {
      const UniqueFd owner(fd);
      CHECK(owner.get() == fd);
      CHECK(static_cast<bool>(owner));
    }
    CHECK_FALSE(is_open(fd));
    const UniqueFd none;
    CHECK(none.get() == -1);
    CHECK_FALSE(static_cast<bool>(none));
  }

  TEST_CASE("unique_fd: a move hands the descriptor over; the moved-from owner closes nothing") {
    const int fd = open_null();
    UniqueFd first(fd);
    UniqueFd second(std::move(first));
    CHECK(first.get() == -1);  // NOLINT(bugprone-use-after-move): checking the moved-from state
    CHECK(second.get() == fd);
    const int other = open_null();
    UniqueFd third(other);
    third = std::move(second);  // closes `other`, takes `fd`
    CHECK_FALSE(is_open(other));
    CHECK(third.get() == fd);
    CHECK(is_open(fd));
  }

  TEST_CASE("unique_fd: release gives the descriptor up open; reset closes and takes another") {
    const int fd = open_null();
    UniqueFd owner(fd);
    CHECK(owner.release() == fd);
    CHECK(owner.get() == -1);
    CHECK(is_open(fd));
    owner.reset(fd);
    const int other = open_null();
    owner.reset(other);
    CHECK_FALSE(is_open(fd));
    CHECK(owner.get() == other);
    owner.reset();
    CHECK_FALSE(is_open(other));
  }
}

}  // namespace
}  // namespace finwave::nf
