#pragma once

// The assertion of the fuzz targets: on failure it prints what did not hold and traps, and
// libFuzzer saves the input as a crash artifact. Unlike assert() it stays on in every build.

#include <cstdio>
#include <cstdlib>

/// Traps with "<file>:<line>: <message>" on stderr when `condition` is false.
#define FUZZ_CHECK(condition, message)                                                         \
  do {                                                                                         \
    if (!(condition)) {                                                                        \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s (%s)\n", __FILE__, __LINE__, message, \
                   #condition);                                                                \
      __builtin_trap();                                                                        \
    }                                                                                          \
  } while (false)
