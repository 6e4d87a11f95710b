#include "common/log.h"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace cyrsync {

std::shared_ptr<spdlog::logger> MakeLogger(const std::string& name) {
  if (auto l = spdlog::get(name)) return l;
  auto l = spdlog::stderr_logger_mt(name);
  l->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %n %v", spdlog::pattern_time_type::utc);
  return l;
}

void SetLogLevel(const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); }

std::shared_ptr<spdlog::logger> NullLogger() {
  static auto l = std::make_shared<spdlog::logger>("null",
                                                   std::make_shared<spdlog::sinks::null_sink_mt>());
  return l;
}

}  // namespace cyrsync
