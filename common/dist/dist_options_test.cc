#include "common/dist/dist_options.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace rlhf::dist {
namespace {

absl::StatusOr<DistOptions> FromVars(const std::map<std::string, std::string>& vars) {
  return DistOptionsFromEnv([&vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

// The message of a failed parse, or "ok".
std::string Error(const std::map<std::string, std::string>& vars) {
  auto o = FromVars(vars);
  if (o.ok()) return "ok";
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << o.status();
  return std::string(o.status().message());
}

TEST(DistOptionsTest, NoVariablesIsASingleProcess) {
  auto o = FromVars({});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->rank, 0);
  EXPECT_EQ(o->world_size, 1);
  EXPECT_EQ(o->timeout, absl::Seconds(60));
  EXPECT_TRUE(Validate(*o).ok());
}

TEST(DistOptionsTest, TorchrunVariables) {
  auto o = FromVars({{"RANK", "3"},
                     {"WORLD_SIZE", "4"},
                     {"LOCAL_RANK", "1"},
                     {"MASTER_ADDR", "node0.cluster"},
                     {"MASTER_PORT", "29400"},
                     {"GLOO_SOCKET_IFNAME", "eth1"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->rank, 3);
  EXPECT_EQ(o->world_size, 4);
  EXPECT_EQ(o->local_rank, 1);
  EXPECT_EQ(o->master_addr, "node0.cluster");
  EXPECT_EQ(o->master_port, 29400);
  EXPECT_EQ(o->gloo_interface, "eth1");
  // One process launched by torchrun needs no rendezvous address.
  auto single = FromVars({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->world_size, 1);
}

TEST(DistOptionsTest, MalformedOrInconsistentVariablesAreInvalidArguments) {
  const std::map<std::string, std::string> good = {
      {"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}};
  auto with = [&good](const std::string& name, const std::string& value) {
    auto vars = good;
    vars[name] = value;
    return vars;
  };
  auto without = [&good](const std::string& name) {
    auto vars = good;
    vars.erase(name);
    return vars;
  };
  EXPECT_EQ(Error(good), "ok");
  EXPECT_NE(Error(with("RANK", "one")).find("RANK=\"one\""), std::string::npos);
  EXPECT_NE(Error(with("RANK", "-1")).find("RANK"), std::string::npos);
  EXPECT_NE(Error(with("RANK", "2")).find("not below WORLD_SIZE=2"), std::string::npos);
  EXPECT_NE(Error(with("WORLD_SIZE", "0")).find("WORLD_SIZE"), std::string::npos);
  EXPECT_NE(Error(with("WORLD_SIZE", "2x")).find("WORLD_SIZE"), std::string::npos);
  EXPECT_NE(Error(with("MASTER_PORT", "70000")).find("MASTER_PORT"), std::string::npos);
  EXPECT_NE(Error(with("MASTER_PORT", "")).find("MASTER_PORT"), std::string::npos);
  EXPECT_NE(Error(with("MASTER_ADDR", "")).find("MASTER_ADDR"), std::string::npos);
  EXPECT_NE(Error(with("LOCAL_RANK", "x")).find("LOCAL_RANK"), std::string::npos);
  EXPECT_NE(Error(without("RANK")).find("RANK unset"), std::string::npos);
  EXPECT_NE(Error(without("MASTER_PORT")).find("needs MASTER_PORT"), std::string::npos);
  EXPECT_NE(Error({{"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}).find("RANK and WORLD_SIZE"),
            std::string::npos);
}

TEST(DistOptionsTest, Validate) {
  DistOptions o;
  o.world_size = 2;
  o.rank = 1;
  EXPECT_TRUE(Validate(o).ok());
  o.master_port = 0;
  EXPECT_FALSE(Validate(o).ok());
  o.master_port = 1234;
  o.timeout = absl::ZeroDuration();
  EXPECT_FALSE(Validate(o).ok());
  o.timeout = absl::Seconds(1);
  o.rank = 2;
  EXPECT_FALSE(Validate(o).ok());
}

}  // namespace
}  // namespace rlhf::dist
