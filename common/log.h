// Logging setup. Libraries receive a named spdlog logger from main; sinks are set up only here.
// Message shape: a fixed event phrase, then key=value fields.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace cyrsync {

// Creates (or returns) the named logger writing to stderr. Level from "trace".."off".
std::shared_ptr<spdlog::logger> MakeLogger(const std::string& name);
void SetLogLevel(const std::string& level);
// A logger that drops everything, for tests and library defaults.
std::shared_ptr<spdlog::logger> NullLogger();

}  // namespace cyrsync
