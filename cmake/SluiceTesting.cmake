# sluice_add_test(NAME SOURCES a.cc b.cc LIBS x y LABELS unit)
# One executable per test file set, registered with ctest via gtest_discover_tests.
include(GoogleTest)
function(sluice_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  sluice_target_warnings(${name})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gmock GTest::gtest_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  gtest_discover_tests(${name}
    PROPERTIES LABELS "${T_LABELS}"
               ENVIRONMENT "SLUICE_BIN_DIR=${CMAKE_BINARY_DIR}/bin;SLUICE_TEST_BIN_DIR=${CMAKE_BINARY_DIR}/tests;SLUICE_SOURCE_DIR=${CMAKE_SOURCE_DIR};SLUICE_MUTEX_DEADLOCK_CHECKS=1"
    DISCOVERY_TIMEOUT 60)
endfunction()
