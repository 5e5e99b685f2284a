// Jazzer.js 4's prebuilt libFuzzer addon (fuzzer-linux-x64.node) is linked against glibc 2.38 and the
// libstdc++ of GCC 13, which Debian 12 (glibc 2.36, GCC 12) does not have. It needs only three symbols from
// them; this library provides those, and build.sh points the addon at it (see there).
#include <cstdlib>
#include <ios>

// glibc 2.38 compiles strtol/strtoul calls from C23-mode code to these names (C23 also accepts 0b prefixes,
// which nothing in the addon parses).
extern "C" long __isoc23_strtol(const char *s, char **end, int base) { return std::strtol(s, end, base); }
extern "C" unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return std::strtoul(s, end, base); }

// GCC 13 moved the initialisation of std::cout and friends out of every translation unit that includes
// <iostream>: such code calls this instead. Constructing an ios_base::Init does what it stands for.
namespace std {
void ios_base_library_init() { static ios_base::Init init; }
}
