// A real gRPC server with RPC metrics and a real /metrics endpoint, scraped over HTTP.
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <ctime>
#include <string>

#include "common/grpc/server.h"
#include "common/metrics/metrics_server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "rlhf/v1/services.grpc.pb.h"

namespace rlhf::metrics {
namespace {

TEST(MetricsTest, RpcsAreCountedAndTimedAndServedOnMetrics) {
  auto registry = std::make_shared<prometheus::Registry>();
  grpc_util::ServerOptions options;
  options.metrics = registry;
  // An unimplemented service: gRPC needs one registered service to start.
  rlhf::v1::Reward::CallbackService unimplemented;
  auto server = grpc_util::Server::Start(options, {&unimplemented}, {"rlhf.v1.Reward"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto http = MetricsServer::Start(registry, "127.0.0.1", 0);
  ASSERT_TRUE(http.ok()) << http.status();

  auto stub = grpc::health::v1::Health::NewStub(grpc_util::CreateChannel((*server)->address()));
  for (const char* service : {"", "", "", "no.such.Service"}) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    (void)stub->Check(&ctx, req, &resp);
  }
  httplib::Client client("127.0.0.1", (*http)->port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  const std::string& body = res->body;
  EXPECT_NE(body.find("# TYPE rlhf_rpc_requests_total counter"), std::string::npos) << body;
  EXPECT_NE(
      body.find("rlhf_rpc_requests_total{code=\"OK\",method=\"/grpc.health.v1.Health/Check\"} 3"),
      std::string::npos)
      << body;
  EXPECT_NE(body.find("rlhf_rpc_requests_total{code=\"NOT_FOUND\",method=\"/grpc.health.v1."
                      "Health/Check\"} 1"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("rlhf_rpc_latency_seconds_count{method=\"/grpc.health.v1.Health/Check\"} 4"),
            std::string::npos)
      << body;
  EXPECT_EQ(client.Get("/other")->status, 404);
}

// Reads one unlabelled sample's value from a scrape ("name value" line), -1 when absent.
double Sample(const std::string& body, const std::string& name) {
  const size_t at = body.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(body.substr(at + name.size() + 2));
}

TEST(MetricsTest, ProcessResourceUseIsReadAtEachScrape) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto http = MetricsServer::Start(registry, "127.0.0.1", 0);
  ASSERT_TRUE(http.ok()) << http.status();
  httplib::Client client("127.0.0.1", (*http)->port());
  const std::string first = client.Get("/metrics")->body;
  EXPECT_NE(first.find("# TYPE rlhf_process_cpu_seconds_total counter"), std::string::npos);
  EXPECT_GT(Sample(first, "rlhf_process_resident_memory_bytes"), 1 << 20) << first;
  EXPECT_GT(Sample(first, "rlhf_process_virtual_memory_bytes"), 1 << 20);
  EXPECT_GE(Sample(first, "rlhf_process_threads"), 2);  // main + the HTTP thread at least
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_NEAR(Sample(first, "rlhf_process_start_time_seconds"), now, 3600);
  // Burn 0.2 s of this process's CPU (CPU time, not wall time: on a loaded machine 0.2 s of wall
  // time may be much less CPU); the counter must follow.
  const double cpu0 = Sample(first, "rlhf_process_cpu_seconds_total");
  auto process_cpu = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  volatile double x = 0;
  for (const double until = process_cpu() + 0.2; process_cpu() < until;) x = x + 1;
  const double cpu1 = Sample(client.Get("/metrics")->body, "rlhf_process_cpu_seconds_total");
  EXPECT_GE(cpu1 - cpu0, 0.1);
  // A second server on the same registry shares the series instead of adding CPU twice.
  auto second = MetricsServer::Start(registry, "127.0.0.1", 0);
  ASSERT_TRUE(second.ok());
  httplib::Client client2("127.0.0.1", (*second)->port());
  EXPECT_LT(Sample(client2.Get("/metrics")->body, "rlhf_process_cpu_seconds_total"), cpu1 + 1);
}

TEST(MetricsTest, StartsAndStopsCleanlyOnOsChosenPorts) {
  auto registry = std::make_shared<prometheus::Registry>();
  for (int i = 0; i < 3; ++i) {
    auto server = MetricsServer::Start(registry, "127.0.0.1", 0);
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_GT((*server)->port(), 0);
  }
  EXPECT_FALSE(MetricsServer::Start(registry, "not-a-host.invalid", 0).ok());
}

}  // namespace
}  // namespace rlhf::metrics
