#include "common/grpc/service_main.h"

#include <CLI/CLI.hpp>

#include "common/logging/logging.h"
#include "common/process/signals.h"

namespace rlhf::grpc_util {

int ServiceMain(int argc, char** argv, const std::string& description,
                const std::function<absl::Status(const ServiceArgs&)>& run) {
  process::BlockTerminationSignals();
  logging::Init(argv[0]);
  CLI::App app{description};
  ServiceArgs args;
  app.add_option("--config", args.config_path, "the service's config as YAML or JSON")
      ->required();
  app.add_option("--set", args.overrides, "override a config field: path.to.field=value");
  app.add_option("--port-file", args.port_file, "write the bound gRPC port here once serving");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (absl::Status s = run(args); !s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  return 0;
}

}  // namespace rlhf::grpc_util
