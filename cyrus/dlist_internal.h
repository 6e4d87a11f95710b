// Private to cyrus/: dlist parsing of a slice of a larger file, so errors carry file offsets.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/status.h"
#include "cyrus/dlist.h"

namespace cyrsync::cyrus::internal {

// As ParseDlist, but error offsets are reported as base + offset within text.
Result<Dlist> ParseDlistAt(std::string_view text, size_t base);

}  // namespace cyrsync::cyrus::internal
