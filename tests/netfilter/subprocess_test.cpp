#include "netfilter/subprocess.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>

namespace finwave::nf {

TEST_SUITE("netfilter") {
  TEST_CASE("subprocess: feeds stdin and collects stdout and stderr and the exit status") {
    const auto sh = find_executable("sh");
    REQUIRE(sh);
    const SubprocessResult result =
        run_subprocess({*sh, "-c", "cat; echo oops >&2; exit 3"}, "line one\nline two\n");
    CHECK(result.exit_status == 3);
    CHECK(!result.timed_out);
    CHECK(!result.ok());
    CHECK(result.out == "line one\nline two\n");
    CHECK(result.err == "oops\n");
  }

  TEST_CASE("subprocess: moves megabytes both ways without deadlock") {
    const auto sh = find_executable("sh");
    REQUIRE(sh);
    const std::string input(4 << 20, 'x');
    // The child writes its copy back while we are still writing: both pipes fill up.
    const SubprocessResult result = run_subprocess({*sh, "-c", "cat; cat /dev/null >&2"}, input);
    CHECK(result.ok());
    CHECK(result.out.size() == input.size());
    CHECK(result.out == input);
  }

  TEST_CASE("subprocess: a child that ignores its stdin does not kill us with SIGPIPE") {
    const auto sh = find_executable("sh");
    REQUIRE(sh);
    const SubprocessResult result =
        run_subprocess({*sh, "-c", "exec 0<&-; echo done"}, std::string(1 << 20, 'y'));
    CHECK(result.ok());
    CHECK(result.out == "done\n");
  }

  TEST_CASE("subprocess: the child inherits no descriptor beyond the standard three") {
    const auto sh = find_executable("sh");
    REQUIRE(sh);
    // A descriptor opened without O_CLOEXEC, as C libraries sometimes do.
    const int leaky = ::fcntl(STDERR_FILENO, F_DUPFD, 100);
    REQUIRE(leaky >= 100);
    const SubprocessResult result = run_subprocess({*sh, "-c", "ls /proc/$$/fd"});
    ::close(leaky);
    CHECK(result.ok());
    CHECK(result.out == "0\n1\n2\n");
  }

  TEST_CASE("subprocess: reports a program that cannot run as exit status 127") {
    const SubprocessResult result = run_subprocess({"/nonexistent/finwave-no-such-tool"});
    CHECK(result.exit_status == 127);
    CHECK(result.err.find("cannot execute /nonexistent/finwave-no-such-tool") == 0);
  }

  TEST_CASE("subprocess: kills a child that outlives its timeout") {
    const auto sh = find_executable("sh");
    REQUIRE(sh);
    const auto start = std::chrono::steady_clock::now();
    const SubprocessResult result =
        run_subprocess({*sh, "-c", "exec sleep 10"}, {}, std::chrono::milliseconds(200));
    CHECK(result.timed_out);
    CHECK(result.exit_status == 128 + 9);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  }

  TEST_CASE("subprocess: a signal shows as 128 + its number") {
    const auto sh = find_executable("sh");
    REQUIRE(sh);
    CHECK(run_subprocess({*sh, "-c", "kill -TERM $$"}).exit_status == 128 + 15);
  }

  TEST_CASE("subprocess: finds executables and names the package of a missing one") {
    CHECK(find_executable("sh").value_or("").find("/sh") != std::string::npos);
    CHECK(!find_executable("finwave-no-such-tool"));
    CHECK(!find_executable(""));
    CHECK_THROWS_WITH_AS(require_executable("finwave-no-such-tool", "finwave-tools"),
                         doctest::Contains("install the Debian package 'finwave-tools'"),
                         std::runtime_error);
    CHECK_THROWS_AS(run_subprocess({}), std::invalid_argument);
  }
}

}  // namespace finwave::nf
