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
set(SLUICE_WARNINGS -Wall -Wextra -Wshadow -Wconversion -Werror)
function(sluice_target_warnings target)
  target_compile_options(${target} PRIVATE ${SLUICE_WARNINGS})
endfunction()
