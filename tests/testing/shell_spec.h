// A ProcessSpec that runs `script` under /bin/sh -c with its logs in `dir`:
// the process runner tests build misbehaving process trees this way.
#pragma once

#include <string>

#include "tests/testing/test_env.h"
#include "worker/process_runner.h"

namespace sluice::testing {

inline ProcessSpec ShellSpec(const ScratchDir& dir, const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.stdout_path = dir.File("stdout.log");
  spec.stderr_path = dir.File("stderr.log");
  return spec;
}

}  // namespace sluice::testing
