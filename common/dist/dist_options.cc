#include "common/dist/dist_options.h"

#include <cstdlib>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status/status_macros.h"

namespace rlhf::dist {
namespace {

// The integer value of variable `name` = `value`, within [lo, hi].
absl::StatusOr<int> ParseInt(const std::string& name, const std::string& value, int64_t lo,
                             int64_t hi) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(value, &v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "=\"", value, "\": expected an integer in [", lo, ", ", hi, "]"));
  }
  return static_cast<int>(v);
}

}  // namespace

absl::Status Validate(const DistOptions& o) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("distributed options: ", what));
  };
  if (o.world_size < 1) return bad(absl::StrCat("world_size ", o.world_size, " must be >= 1"));
  if (o.rank < 0 || o.rank >= o.world_size) {
    return bad(absl::StrCat("rank ", o.rank, " outside [0, world_size ", o.world_size, ")"));
  }
  if (o.local_rank < 0) return bad("local_rank must be >= 0");
  if (o.world_size > 1) {
    if (o.master_addr.empty()) return bad("master_addr is empty");
    if (o.master_port < 1 || o.master_port > 65535) {
      return bad(absl::StrCat("master_port ", o.master_port, " outside [1, 65535]"));
    }
  }
  if (o.timeout <= absl::ZeroDuration()) return bad("timeout must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<DistOptions> DistOptionsFromEnv(const EnvLookup& lookup) {
  const std::optional<std::string> rank = lookup("RANK");
  const std::optional<std::string> world = lookup("WORLD_SIZE");
  const std::optional<std::string> addr = lookup("MASTER_ADDR");
  const std::optional<std::string> port = lookup("MASTER_PORT");
  const std::optional<std::string> local_rank = lookup("LOCAL_RANK");
  const std::optional<std::string> ifname = lookup("GLOO_SOCKET_IFNAME");
  DistOptions o;
  if (ifname) o.gloo_interface = *ifname;
  if (!rank && !world && !addr && !port) return o;  // not launched as a group

  std::vector<std::string> missing;
  if (!rank) missing.push_back("RANK");
  if (!world) missing.push_back("WORLD_SIZE");
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "incomplete torchrun environment: ", absl::StrJoin(missing, " and "),
        " unset while other distributed variables are set (set all of RANK, WORLD_SIZE, "
        "MASTER_ADDR, MASTER_PORT, or none)"));
  }
  constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
  RLHF_ASSIGN_OR_RETURN(o.world_size, ParseInt("WORLD_SIZE", *world, 1, kMaxInt));
  RLHF_ASSIGN_OR_RETURN(o.rank, ParseInt("RANK", *rank, 0, kMaxInt));
  if (o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("RANK=", *rank, " is not below WORLD_SIZE=", *world));
  }
  if (local_rank) {
    RLHF_ASSIGN_OR_RETURN(o.local_rank, ParseInt("LOCAL_RANK", *local_rank, 0, kMaxInt));
  }
  if (addr) {
    if (addr->empty()) return absl::InvalidArgumentError("MASTER_ADDR is set but empty");
    o.master_addr = *addr;
  }
  if (port) {
    RLHF_ASSIGN_OR_RETURN(o.master_port, ParseInt("MASTER_PORT", *port, 1, 65535));
  }
  if (!addr) missing.push_back("MASTER_ADDR");
  if (!port) missing.push_back("MASTER_PORT");
  if (o.world_size > 1 && !missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("WORLD_SIZE=", o.world_size, " needs ",
                                                   absl::StrJoin(missing, " and "), " (unset)"));
  }
  RLHF_RETURN_IF_ERROR(Validate(o));
  return o;
}

absl::StatusOr<DistOptions> DistOptionsFromEnv() {
  return DistOptionsFromEnv([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace rlhf::dist
