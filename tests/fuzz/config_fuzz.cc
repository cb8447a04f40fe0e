// Fuzz target: the config loader (common/config/config.h) on arbitrary text, as YAML and as
// JSON, into the largest config (`rlhf local`'s, which holds every service's). A config it
// loads prints as JSON that loads back to the same message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/config/config.h"
#include "rlhf/v1/config.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rlhf::config;
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (ConfigFormat format : {ConfigFormat::kYaml, ConfigFormat::kJson}) {
    rlhf::v1::LocalConfig config;
    if (!LoadConfigFromString(text, format, {}, &config).ok()) continue;
    rlhf::v1::LocalConfig again;
    if (!LoadConfigFromString(ConfigToJson(config), ConfigFormat::kJson, {}, &again).ok()) {
      std::abort();
    }
  }
  return 0;
}
