// Weight sync benchmark: bytes/s of a policy version moved by the learner's GetWeights stream
// over real gRPC on loopback (learner::LearnerService over a learner::WeightStore, served by
// grpc_util::Server; the client reassembles with codec::WeightAssembler as a rollout worker
// does, and the assembly is timed), beside a plain loopback TCP transfer of the same bytes in
// the same run (large writes, receiver reading into a buffer of the same size: the best case
// for moving those bytes). Goal: gRPC >= 70% of TCP.
//
// For each model (random Llama weights: "15M" is llama2.c stories15M's shape, "110M" a 12-layer
// 768-wide Llama, both float32 with tied embeddings) and each --chunk_kib (the learner's
// weight_chunk_bytes), one warm-up transfer, then --repeats rounds; each round runs the TCP
// transfer and then one GetWeights per chunk size, so that a change in machine load hits every
// transport alike.
//
// The process is set up as the services set theirs up (runtime::InitTorchRuntime, whose malloc
// tuning lets a worker's new tensors reuse the heap of the version before). --breakdown adds
// the in-process share of a transfer (chunking with CRC32C, protobuf serialize and parse,
// assembly with the CRC check), timed without gRPC.
//
// Output: one JSON line per transport and chunk size (best and median bytes/s), then per model
// a summary line with the best chunk size, the ratio gRPC/TCP of the best transfers (and of the
// medians) and whether the goal is met. Exit status 1 when a transfer fails.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/registry.h>
#include <torch/torch.h>

#include "bench/bench_util.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/codec/crc32c.h"
#include "common/codec/weight_chunks.h"
#include "common/grpc/server.h"
#include "common/grpc/status_util.h"
#include "common/logging/logging.h"
#include "common/model/llama.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "nlohmann/json.hpp"
#include "services/learner/learner_metrics.h"
#include "services/learner/learner_service.h"
#include "services/learner/prompt_pool.h"
#include "services/learner/trajectory_queue.h"
#include "services/learner/weight_store.h"

ABSL_FLAG(std::string, models, "15M,110M", "comma-separated model sizes: 15M, 110M");
ABSL_FLAG(std::string, chunk_kib, "256,1024,4096", "comma-separated weight_chunk_bytes in KiB");
ABSL_FLAG(int, repeats, 5, "timed rounds per model (after one warm-up round)");
ABSL_FLAG(double, goal, 0.7, "goal for gRPC bytes/s over TCP bytes/s");
ABSL_FLAG(int, threads, 0, "torch intra-op threads (0 = from CPU affinity), as the services set");
ABSL_FLAG(bool, breakdown, false,
          "also time the in-process parts of a transfer per chunk size (chunking with CRC, "
          "protobuf serialize and parse, assembly with CRC check) without gRPC");

namespace rlhf::bench {
namespace {

using nlohmann::json;


absl::StatusOr<model::LlamaConfig> ConfigFor(const std::string& name) {
  model::LlamaConfig c;
  c.vocab_size = 32000;
  c.max_seq_len = 1024;
  c.tie_embeddings = true;
  if (name == "15M") {
    c.dim = 288, c.hidden_dim = 768, c.n_layers = 6, c.n_heads = 6, c.n_kv_heads = 6;
  } else if (name == "110M") {
    c.dim = 768, c.hidden_dim = 2048, c.n_layers = 12, c.n_heads = 12, c.n_kv_heads = 12;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown model '", name, "'"));
  }
  return c;
}

// ---- The gRPC side: a LearnerService serving `store` with one chunk size, and a client.
class GrpcEndpoint {
 public:
  // Publishes `tensors` as version 0 in the endpoint's own store (chunked at `chunk_bytes`, as
  // the learner does once per version) and serves it.
  static absl::StatusOr<std::unique_ptr<GrpcEndpoint>> Start(const codec::NamedTensors& tensors,
                                                             const model::LlamaConfig& c,
                                                             int64_t chunk_bytes) {
    std::unique_ptr<GrpcEndpoint> e(new GrpcEndpoint(chunk_bytes));
    e->store_ = std::make_unique<learner::WeightStore>(/*keep=*/1, chunk_bytes);
    RLHF_RETURN_IF_ERROR(e->store_->Publish(0, tensors));
    learner::WeightStore* store = e->store_.get();
    rlhf::v1::Prompt prompt;
    prompt.add_tokens(c.bos_id);
    std::vector<rlhf::v1::Prompt> prompts = {prompt};
    RLHF_ASSIGN_OR_RETURN(e->pool_, learner::PromptPool::Create(prompts, {}));
    learner::TrajectoryQueueOptions queue;
    queue.vocab_size = c.vocab_size;
    queue.max_seq_len = c.max_seq_len;
    RLHF_ASSIGN_OR_RETURN(e->queue_, learner::TrajectoryQueue::Create(queue));
    learner::LearnerServiceOptions service;
    service.sampling.set_max_new_tokens(1);
    RLHF_RETURN_IF_ERROR(learner::Validate(service));
    e->service_ = std::make_unique<learner::LearnerService>(service, e->pool_.get(),
                                                            e->queue_.get(), store, &e->metrics_);
    grpc_util::ServerOptions server;
    // Room for a chunk plus its header, and never below the services' default.
    server.max_message_bytes = static_cast<int>(std::max<int64_t>(64 << 20, 2 * chunk_bytes));
    server.shutdown_grace = absl::Seconds(1);
    RLHF_ASSIGN_OR_RETURN(
        e->server_, grpc_util::Server::Start(server, {e->service_.get()}, {"rlhf.v1.Learner"}));
    auto channel = grpc_util::CreateChannel(e->server_->address(), server.max_message_bytes);
    RLHF_RETURN_IF_ERROR(
        grpc_util::WaitForServing(channel, "rlhf.v1.Learner", absl::Now() + absl::Seconds(10)));
    e->stub_ = rlhf::v1::Learner::NewStub(channel);
    return e;
  }

  ~GrpcEndpoint() {
    if (server_) server_->Shutdown();
  }

  // Fetches the newest version as a worker does and returns the seconds it took; the bytes
  // received must be `expected_bytes`.
  absl::StatusOr<double> Fetch(int64_t expected_bytes) {
    const Clock::time_point start = Clock::now();
    ::grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    rlhf::v1::GetWeightsRequest request;  // version 0 = the newest
    auto reader = stub_->GetWeights(&context, request);
    codec::WeightAssembler assembler;
    absl::Status assembled;
    rlhf::v1::WeightChunk chunk;
    while (reader->Read(&chunk)) {
      if (assembled.ok()) assembled = assembler.Add(chunk);
    }
    RLHF_RETURN_IF_ERROR(grpc_util::FromGrpcStatus(reader->Finish()));
    RLHF_RETURN_IF_ERROR(assembled);
    RLHF_ASSIGN_OR_RETURN(codec::NamedTensors tensors, assembler.Finish());
    const double seconds = Seconds(start);
    int64_t bytes = 0;
    for (const auto& t : tensors) bytes += static_cast<int64_t>(t.second.nbytes());
    if (bytes != expected_bytes) {
      return absl::InternalError(absl::StrCat("got ", bytes, " bytes, expected ", expected_bytes));
    }
    return seconds;
  }

  int64_t chunk_bytes() const { return chunk_bytes_; }

 private:
  explicit GrpcEndpoint(int64_t chunk_bytes) : chunk_bytes_(chunk_bytes), metrics_(registry_) {}

  const int64_t chunk_bytes_;
  prometheus::Registry registry_;
  learner::LearnerMetrics metrics_;
  std::unique_ptr<learner::WeightStore> store_;
  std::unique_ptr<learner::PromptPool> pool_;
  std::unique_ptr<learner::TrajectoryQueue> queue_;
  std::unique_ptr<learner::LearnerService> service_;
  std::unique_ptr<grpc_util::Server> server_;
  std::unique_ptr<rlhf::v1::Learner::Stub> stub_;
};

// ---- The TCP baseline.
absl::Status Errno(const char* what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Sends `src` over a fresh loopback TCP connection (one thread writing in 64 MiB calls) to a
// reader filling dst[0, size). Returns the seconds from connect() to the last byte read.
// REQUIRES: src.size() == size.
absl::StatusOr<double> TcpTransfer(const std::vector<char>& src, char* dst, int64_t size) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) return Errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const absl::Status s = Errno("bind/listen");
    close(listener);
    return s;
  }
  bool send_ok = false;
  std::thread sender([&] {
    const int fd = accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    size_t sent = 0;
    while (sent < src.size()) {
      const ssize_t n =
          send(fd, src.data() + sent, std::min<size_t>(src.size() - sent, 64 << 20), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    send_ok = sent == src.size();
    close(fd);
  });
  const Clock::time_point start = Clock::now();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  size_t got = 0;
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    while (got < static_cast<size_t>(size)) {
      const ssize_t n = recv(fd, dst + got, size - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
  }
  const double seconds = Seconds(start);
  if (fd >= 0) close(fd);
  // Unblocks accept() if connect() failed.
  if (got < static_cast<size_t>(size)) shutdown(listener, SHUT_RDWR);
  sender.join();
  close(listener);
  if (got != static_cast<size_t>(size) || !send_ok) {
    return absl::InternalError(absl::StrCat("TCP transfer moved ", got, " of ", size));
  }
  return seconds;
}

// ---- Where the time goes: the in-process work of one transfer without gRPC or sockets, chunk by
// chunk as a stream does it (one chunk and one wire buffer reused), summed per phase.
absl::StatusOr<json> Breakdown(const codec::NamedTensors& tensors, int64_t chunk_bytes) {
  RLHF_ASSIGN_OR_RETURN(auto chunker, codec::WeightChunker::Create(tensors, 0, chunk_bytes));
  rlhf::v1::WeightChunk chunk, parsed;
  std::string wire;
  codec::WeightAssembler assembler;
  double chunking = 0, crc = 0, serialize = 0, parse = 0, assemble = 0;
  uint32_t crc_xor = 0;
  int64_t chunks = 0;
  while (!chunker->Done()) {
    Clock::time_point t = Clock::now();
    RLHF_RETURN_IF_ERROR(chunker->Next(&chunk));  // copy + CRC32C (server)
    chunking += Seconds(t);
    t = Clock::now();
    crc_xor ^= codec::Crc32c(chunk.data());  // one CRC pass alone, for scale
    crc += Seconds(t);
    t = Clock::now();
    chunk.SerializeToString(&wire);  // gRPC's serialization (server)
    serialize += Seconds(t);
    t = Clock::now();
    parsed.ParseFromString(wire);  // gRPC's deserialization (client)
    parse += Seconds(t);
    t = Clock::now();
    RLHF_RETURN_IF_ERROR(assembler.Add(parsed));  // CRC32C check + copy into the tensor (client)
    assemble += Seconds(t);
    ++chunks;
  }
  const Clock::time_point t = Clock::now();
  RLHF_RETURN_IF_ERROR(assembler.Finish().status());
  assemble += Seconds(t);
  return json{{"bench", "weight_sync_breakdown"},
              {"chunk_bytes", chunk_bytes},
              {"chunks", chunks},
              {"bytes", chunker->total_bytes()},
              {"chunker_seconds", chunking},  // paid once per version at publication
              {"crc32c_seconds", crc},
              {"serialize_seconds", serialize},
              {"parse_seconds", parse},
              {"assemble_seconds", assemble},
              {"crc_xor", crc_xor}};
}

// ---- Reporting.
struct Series {
  std::vector<double> seconds;
  double Best() const { return *std::min_element(seconds.begin(), seconds.end()); }
  double Median() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    return s.size() % 2 == 1 ? s[s.size() / 2] : (s[s.size() / 2 - 1] + s[s.size() / 2]) / 2;
  }
};

json SeriesLine(const std::string& model, int64_t bytes, const std::string& transport,
                const Series& s) {
  return {{"bench", "weight_sync"},
          {"model", model},
          {"bytes", bytes},
          {"transport", transport},
          {"repeats", s.seconds.size()},
          {"best_seconds", s.Best()},
          {"median_seconds", s.Median()},
          {"best_bytes_per_s", bytes / s.Best()},
          {"median_bytes_per_s", bytes / s.Median()},
          {"seconds", s.seconds}};
}

absl::Status BenchModel(const std::string& name, const std::vector<int64_t>& chunk_sizes) {
  RLHF_ASSIGN_OR_RETURN(model::LlamaConfig c, ConfigFor(name));
  codec::NamedTensors named;
  {
    RLHF_ASSIGN_OR_RETURN(model::Llama policy, model::CreateRandomLlama(c, /*seed=*/0));
    for (const auto& p : policy->named_parameters()) {
      named.emplace_back(p.key(), p.value().detach().contiguous());
    }
  }
  int64_t bytes = 0;
  for (const auto& [tensor_name, t] : named) bytes += static_cast<int64_t>(t.nbytes());
  std::vector<char> src(static_cast<size_t>(bytes)), dst(static_cast<size_t>(bytes));
  size_t offset = 0;
  for (const auto& [tensor_name, t] : named) {
    std::memcpy(src.data() + offset, t.data_ptr(), t.nbytes());
    offset += t.nbytes();
  }

  std::vector<std::unique_ptr<GrpcEndpoint>> endpoints;
  for (int64_t chunk : chunk_sizes) {
    RLHF_ASSIGN_OR_RETURN(auto e, GrpcEndpoint::Start(named, c, chunk));
    endpoints.push_back(std::move(e));
  }
  Series tcp;
  std::vector<Series> grpc(endpoints.size());
  LOG(INFO) << name << ": " << bytes << " bytes, " << named.size() << " tensors";
  for (int round = 0; round <= absl::GetFlag(FLAGS_repeats); ++round) {  // round 0: warm-up
    RLHF_ASSIGN_OR_RETURN(double t, TcpTransfer(src, dst.data(), bytes));
    if (round > 0) tcp.seconds.push_back(t);
    for (size_t i = 0; i < endpoints.size(); ++i) {
      RLHF_ASSIGN_OR_RETURN(double g, endpoints[i]->Fetch(bytes));
      if (round > 0) grpc[i].seconds.push_back(g);
    }
  }
  if (std::memcmp(src.data(), dst.data(), src.size()) != 0) {
    return absl::InternalError("TCP baseline received different bytes");
  }

  json tcp_line = SeriesLine(name, bytes, "tcp", tcp);
  tcp_line["params"] = c.NumParameters();
  tcp_line["tensors"] = named.size();
  Print(tcp_line);
  size_t best = 0;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    json line = SeriesLine(name, bytes, "grpc", grpc[i]);
    line["chunk_bytes"] = endpoints[i]->chunk_bytes();
    line["ratio_best"] = tcp.Best() / grpc[i].Best();
    line["ratio_median"] = tcp.Median() / grpc[i].Median();
    Print(line);
    if (grpc[i].Best() < grpc[best].Best()) best = i;
  }
  if (absl::GetFlag(FLAGS_breakdown)) {
    for (int64_t chunk : chunk_sizes) {
      // The first run grows the heap (page faults); the second shows the steady state.
      RLHF_RETURN_IF_ERROR(Breakdown(named, chunk).status());
      RLHF_ASSIGN_OR_RETURN(json line, Breakdown(named, chunk));
      line["model"] = name;
      Print(line);
    }
  }
  const double ratio = tcp.Best() / grpc[best].Best();
  Print({{"bench", "weight_sync"},
         {"summary", true},
         {"model", name},
         {"bytes", bytes},
         {"best_chunk_bytes", endpoints[best]->chunk_bytes()},
         {"grpc_bytes_per_s", bytes / grpc[best].Best()},
         {"tcp_bytes_per_s", bytes / tcp.Best()},
         {"ratio", ratio},
         {"ratio_median", tcp.Median() / grpc[best].Median()},
         {"goal_ratio", absl::GetFlag(FLAGS_goal)},
         {"meets_goal", ratio >= absl::GetFlag(FLAGS_goal)}});
  return absl::OkStatus();
}

}  // namespace
}  // namespace rlhf::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  rlhf::logging::Init(argv[0]);
  // As every service's main() does: the same malloc tuning and thread count.
  if (auto s = rlhf::runtime::InitTorchRuntime(absl::GetFlag(FLAGS_threads)); !s.ok()) {
    LOG(ERROR) << s;
    return 2;
  }
  std::vector<int64_t> chunk_sizes;
  for (absl::string_view kib : absl::StrSplit(absl::GetFlag(FLAGS_chunk_kib), ',')) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(kib, &value) || value <= 0) {
      LOG(ERROR) << "--chunk_kib: bad size '" << kib << "'";
      return 2;
    }
    chunk_sizes.push_back(value << 10);
  }
  if (absl::GetFlag(FLAGS_repeats) < 1) {
    LOG(ERROR) << "--repeats must be >= 1";
    return 2;
  }
  for (absl::string_view model : absl::StrSplit(absl::GetFlag(FLAGS_models), ',')) {
    if (absl::Status s = rlhf::bench::BenchModel(std::string(model), chunk_sizes); !s.ok()) {
      LOG(ERROR) << model << ": " << s;
      return 1;
    }
  }
  return 0;
}
