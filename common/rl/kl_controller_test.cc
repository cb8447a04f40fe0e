#include "common/rl/kl_controller.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/testing/shared_data.h"

namespace rlhf::rl {
namespace {

TEST(KlControllerTest, AdaptiveUpdatesMatchGolden) {
  const nlohmann::json golden = rlhf::testing::LoadSharedJson("golden/ppo_math.json");
  const nlohmann::json& c = golden.at("cases").at("adaptive_kl_controller");
  KlControllerOptions options;
  options.init_kl_coef = c.at("init_kl_coef");
  options.target = c.at("target").get<double>();
  options.horizon = c.at("horizon");
  auto controller = KlController::Create(options);
  ASSERT_TRUE(controller.ok()) << controller.status();
  EXPECT_TRUE(controller->adaptive());
  EXPECT_EQ(controller->value(), 0.2);
  ASSERT_EQ(c.at("updates").size(), 5u);
  for (const nlohmann::json& update : c.at("updates")) {
    controller->Update(update.at("current_kl").get<double>(), update.at("n_steps").get<int64_t>());
    EXPECT_NEAR(controller->value(), update.at("value_after").get<double>(), 1e-12);
  }
}

// The comparison can fail: without the error clip the first update overshoots.
TEST(KlControllerTest, UnclippedErrorDoesNotMatchGolden) {
  KlControllerOptions options;
  options.max_error = 10;
  auto controller = KlController::Create(options);
  ASSERT_TRUE(controller.ok());
  controller->Update(12.0, 512);
  EXPECT_GT(std::abs(controller->value() - 0.202048), 1e-6);
}

TEST(KlControllerTest, FixedControllerIgnoresUpdates) {
  KlControllerOptions options;
  options.init_kl_coef = 0.05;
  options.target = std::nullopt;
  auto controller = KlController::Create(options);
  ASSERT_TRUE(controller.ok());
  EXPECT_FALSE(controller->adaptive());
  controller->Update(100.0, 1000);
  EXPECT_EQ(controller->value(), 0.05);
}

TEST(KlControllerTest, CreateRejectsInvalidOptions) {
  KlControllerOptions options;
  options.horizon = 0;
  EXPECT_EQ(KlController::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = KlControllerOptions{};
  options.target = -1.0;
  EXPECT_EQ(Validate(options).code(), absl::StatusCode::kInvalidArgument);
  options = KlControllerOptions{};
  options.init_kl_coef = -0.1;
  EXPECT_EQ(Validate(options).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rlhf::rl
