option(SLUICE_BUILD_TESTS "Build the test suite" ON)
option(SLUICE_BUILD_BENCH "Build the benchmarks under bench/" OFF)
option(SLUICE_SANITIZE "Build everything with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)

find_program(SLUICE_CCACHE ccache)
if(SLUICE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${SLUICE_CCACHE})
endif()

if(SLUICE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# Warnings for our own targets only; generated protobuf code gets none.
# -Werror is for CI and our scripts (scripts/build.sh turns it on): a user's own
# build with another compiler or build type must never fail on a new warning.
option(SLUICE_WERROR "Treat compiler warnings in sluice's own code as errors" OFF)
set(SLUICE_WARNINGS -Wall -Wextra -Wshadow -Wconversion)
# GCC 12's -Wrestrict fires falsely inside libstdc++'s inlined
# `"literal" + std::string` at -O3 (GCC bug 105651, fixed in GCC 13); Debian 12
# ships GCC 12, so a Release build would warn on correct code.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND SLUICE_WARNINGS -Wno-restrict)
endif()
# Clang's -Wconversion also turns on -Wsign-conversion, which GCC's does not
# for C++; keep one warning set on both compilers, so code that is clean under
# GCC is clean under Clang too.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND SLUICE_WARNINGS -Wno-sign-conversion)
endif()
if(SLUICE_WERROR)
  list(APPEND SLUICE_WARNINGS -Werror)
endif()
function(sluice_target_warnings target)
  target_compile_options(${target} PRIVATE ${SLUICE_WARNINGS})
endfunction()
