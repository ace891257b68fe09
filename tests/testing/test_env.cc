#include "tests/testing/test_env.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sluice::testing {
namespace {

std::string RequiredEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    std::fprintf(stderr, "test environment: $%s is not set (run the tests through ctest)\n", name);
    std::abort();
  }
  return value;
}

}  // namespace

std::string BinPath(const std::string& name) {
  std::string path = RequiredEnv("SLUICE_BIN_DIR") + "/" + name;
  if (!std::filesystem::exists(path)) {
    std::fprintf(stderr, "test environment: %s was not built\n", path.c_str());
    std::abort();
  }
  return path;
}

std::string SourceDir() {
  // gtest_discover_tests (CMake 3.25) keeps only the first variable of the
  // ENVIRONMENT list given in cmake/SluiceTesting.cmake, so the source root
  // is also compiled in; the variable still wins when set.
  const char* value = std::getenv("SLUICE_SOURCE_DIR");
  if (value != nullptr && *value != '\0') return value;
#ifdef SLUICE_SOURCE_DIR_DEFAULT
  return SLUICE_SOURCE_DIR_DEFAULT;
#else
  return RequiredEnv("SLUICE_SOURCE_DIR");
#endif
}

ScratchDir::ScratchDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace sluice::testing
