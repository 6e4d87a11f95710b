// Running a helper program (Cyrus's own tools: ctl_mboxlist, reconstruct) and collecting what it
// printed. No shell is involved: argv is passed as given.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/status.h"

namespace cyrsync {

struct ProcessResult {
  int exit_code = -1;    // -1 when it was killed by a signal
  int term_signal = 0;   // the signal that killed it, else 0
  std::string output;    // stdout and stderr interleaved, the first max_output bytes
  bool ok() const { return exit_code == 0; }
  std::string Describe() const;  // "exit 3" / "signal 9"
};

// Runs argv[0] (an absolute path) with stdin read from stdin_path ("" = /dev/null) and waits for
// it. kInvalidArgument for an empty argv; an error when it cannot be started. A non-zero exit is
// not an error here: the caller reads exit_code.
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 const std::string& stdin_path = "",
                                 size_t max_output = 64 * 1024);

}  // namespace cyrsync
