// Bad inputs to the binary readers: the weight-chunk assembler and the tensor codec (what a peer
// sends), safetensors, llama2.c checkpoints, Hugging Face directories and the learner's journal
// (what a disk holds). Every input is built here, in a temp dir; each row's message names the
// field, the tensor or the byte offset. Tokenizer files are in tokenizer_cases_test.cc.
#include <torch/torch.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "common/checkpoint/hf.h"
#include "common/checkpoint/llama2c.h"
#include "common/checkpoint/safetensors.h"
#include "common/codec/crc32c.h"
#include "common/codec/tensor_codec.h"
#include "common/codec/weight_chunks.h"
#include "common/model/llama.h"
#include "common/testing/tiny_llama.h"
#include "services/learner/trajectory_journal.h"
#include "tests/bad_inputs/catalogue.h"

namespace rlhf::bad_inputs {
namespace {

using rlhf::v1::WeightChunk;

// ---------------------------------------------------------------------------------------------
// Weight chunks and tensors on the wire.

// The chunks of version 3 of {"a": 16 floats, "b": 4 floats}, 16 bytes a chunk: a is chunks 0..3,
// b is chunk 4 (the last).
std::vector<WeightChunk> Chunks() {
  codec::NamedTensors tensors = {{"a", torch::arange(16, torch::kFloat32)},
                                 {"b", torch::ones({2, 2})}};
  auto chunker = codec::WeightChunker::Create(tensors, /*version=*/3, /*max_chunk_bytes=*/16);
  EXPECT_TRUE(chunker.ok()) << chunker.status();
  std::vector<WeightChunk> chunks;
  while (!(*chunker)->Done()) {
    chunks.emplace_back();
    EXPECT_TRUE((*chunker)->Next(&chunks.back()).ok());
  }
  EXPECT_EQ(chunks.size(), 5u);
  return chunks;
}

void Recrc(WeightChunk* c) { c->set_crc32c(codec::Crc32c(c->data())); }

// Feeds the chunks to an assembler: the first error, else Finish's status.
Answer Assemble(const std::vector<WeightChunk>& chunks) {
  codec::WeightAssembler assembler;
  for (const WeightChunk& c : chunks) {
    if (absl::Status s = assembler.Add(c); !s.ok()) return FromStatus(s);
  }
  return FromStatus(assembler.Finish().status());
}

struct NoEnv {};
using WireCase = Case<NoEnv>;

WireCase BadChunks(std::string id, std::string input, std::string code, std::string needle,
                   std::function<void(std::vector<WeightChunk>*)> mutate) {
  return {std::move(id), std::move(input), std::move(code), std::move(needle), [mutate](NoEnv&) {
            std::vector<WeightChunk> chunks = Chunks();
            mutate(&chunks);
            return Assemble(chunks);
          }};
}

rlhf::v1::Tensor GoodTensor() {
  rlhf::v1::Tensor t;
  EXPECT_TRUE(codec::EncodeTensor(torch::ones({2, 3}), &t).ok());
  return t;
}

WireCase BadTensor(std::string id, std::string input, std::string needle,
                   std::function<void(rlhf::v1::Tensor*)> mutate) {
  return {std::move(id), std::move(input), "INVALID_ARGUMENT", std::move(needle),
          [mutate](NoEnv&) {
            rlhf::v1::Tensor t = GoodTensor();
            mutate(&t);
            return FromStatus(codec::DecodeTensor(t).status());
          }};
}

const std::vector<WireCase> kWireCases = RegisterCases<NoEnv>(
    "wire codec",
    {
        BadChunks("chunk-bad-crc", "a flipped byte in chunk 1 (CRC32C no longer matches)",
                  "DATA_LOSS", "CRC32C mismatch in the chunk at offset 16",
                  [](std::vector<WeightChunk>* c) { (*(*c)[1].mutable_data())[0] ^= 1; }),
        BadChunks("chunk-out-of-order", "chunks 1 and 2 swapped", "INVALID_ARGUMENT",
                  "chunk at offset 32",
                  [](std::vector<WeightChunk>* c) { std::swap((*c)[1], (*c)[2]); }),
        BadChunks("chunk-repeated", "chunk 1 sent twice", "INVALID_ARGUMENT",
                  "chunk at offset 16",
                  [](std::vector<WeightChunk>* c) { c->insert(c->begin() + 2, (*c)[1]); }),
        BadChunks("chunk-version-changes", "chunk 2 of version 4 in a stream of version 3",
                  "INVALID_ARGUMENT", "version changed mid-stream from 3",
                  [](std::vector<WeightChunk>* c) { (*c)[2].set_version(4); }),
        BadChunks("chunk-stream-truncated", "the stream ends before its last chunk",
                  "FAILED_PRECONDITION", "last",
                  [](std::vector<WeightChunk>* c) { c->pop_back(); }),
        BadChunks("chunk-after-last", "a chunk after the one flagged last",
                  "FAILED_PRECONDITION", "after the last chunk",
                  [](std::vector<WeightChunk>* c) { c->push_back((*c)[0]); }),
        BadChunks("chunk-total-bytes-lie", "the last chunk claims total_bytes 999",
                  "INVALID_ARGUMENT", "says 2 tensors and 999 bytes",
                  [](std::vector<WeightChunk>* c) { c->back().set_total_bytes(999); }),
        BadChunks("chunk-total-tensors-lie", "the last chunk claims total_tensors 3",
                  "INVALID_ARGUMENT", "says 3 tensors",
                  [](std::vector<WeightChunk>* c) { c->back().set_total_tensors(3); }),
        BadChunks("chunk-shape-overflow", "tensor a announced as [2^40, 2^40] floats",
                  "INVALID_ARGUMENT", "tensor 'a'",
                  [](std::vector<WeightChunk>* c) {
                    (*c)[0].clear_shape();
                    (*c)[0].add_shape(int64_t{1} << 40);
                    (*c)[0].add_shape(int64_t{1} << 40);
                  }),
        BadChunks("chunk-data-beyond-tensor", "chunk 3 of tensor a carries 8 bytes too many",
                  "INVALID_ARGUMENT", "tensor 'a'",
                  [](std::vector<WeightChunk>* c) {
                    (*c)[3].mutable_data()->append(8, '\0');
                    Recrc(&(*c)[3]);
                  }),
        BadChunks("chunk-unnamed-tensor", "the first chunk of tensor b has no name",
                  "INVALID_ARGUMENT", "a chunk without a name continues no tensor",
                  [](std::vector<WeightChunk>* c) { (*c)[4].clear_name(); }),
        BadTensor("tensor-unspecified-dtype", "a Tensor with dtype DTYPE_UNSPECIFIED", "dtype",
                  [](rlhf::v1::Tensor* t) { t->set_dtype(rlhf::v1::DTYPE_UNSPECIFIED); }),
        BadTensor("tensor-unknown-dtype", "a Tensor with dtype 99 (from a newer peer)",
                  "dtype 99",
                  [](rlhf::v1::Tensor* t) { t->set_dtype(static_cast<rlhf::v1::DType>(99)); }),
        BadTensor("tensor-byte-count-lie", "shape [2, 3] float32 with 20 bytes of data", "20",
                  [](rlhf::v1::Tensor* t) { t->mutable_data()->resize(20); }),
        BadTensor("tensor-negative-dim", "shape [2, -3]", "-3",
                  [](rlhf::v1::Tensor* t) { t->set_shape(1, -3); }),
        BadTensor("tensor-shape-overflow", "shape [2^62, 8] (the byte count overflows int64)",
                  "overflow",
                  [](rlhf::v1::Tensor* t) {
                    t->set_shape(0, int64_t{1} << 62);
                    t->set_shape(1, 8);
                  }),
    });

class WireTest : public ::testing::TestWithParam<WireCase> {};

TEST_P(WireTest, Rejected) {
  NoEnv env;
  ExpectAnswer(GetParam(), GetParam().run(env));
}

// The table's inputs are lies about a stream that is fine untouched.
TEST(WireTest, TheUntouchedStreamAssembles) { EXPECT_EQ(Assemble(Chunks()).code, "OK"); }

INSTANTIATE_TEST_SUITE_P(Catalogue, WireTest, ::testing::ValuesIn(kWireCases), CaseName<NoEnv>);

// ---------------------------------------------------------------------------------------------
// Checkpoint files and the journal, each written into a temp dir.

// A safetensors file: 8-byte header length, then `header` as JSON, then `data`.
std::string Safetensors(const std::string& header, const std::string& data) {
  return Bytes<uint64_t>(header.size()) + header + data;
}

// {"w": F32 [2, 2], bytes [0, 16)} and its 16 bytes of data, as `header` JSON edited by `edit`.
std::string SafetensorsWith(const std::function<void(nlohmann::json*)>& edit,
                            size_t data_bytes = 16) {
  nlohmann::json h = {{"w", {{"dtype", "F32"}, {"shape", {2, 2}}, {"data_offsets", {0, 16}}}}};
  edit(&h);
  return Safetensors(h.dump(), std::string(data_bytes, '\0'));
}

// A legacy llama2.c header (7 int32) for `dims`, followed by `floats` zero floats.
std::string Llama2c(std::vector<int32_t> dims, size_t floats) {
  std::string out;
  for (int32_t d : dims) out += Bytes<int32_t>(d);
  return out + std::string(4 * floats, '\0');
}

// The float count of a legacy llama2.c file for a shared-classifier model.
size_t Llama2cFloats(int64_t dim, int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads,
                     int64_t vocab, int64_t seq) {
  const int64_t head = dim / heads, kv = kv_heads * head;
  return static_cast<size_t>(vocab * dim + layers * (2 * dim + dim * dim * 2 + 2 * dim * kv +
                                                     3 * dim * hidden) +
                             dim + seq * head);
}

// A one-record 'D' journal prefix (6 bytes), so that the bad record is at offset 6.
std::string JournalRecord(char kind, const std::string& payload) {
  return Bytes<uint32_t>(payload.size()) + std::string(1, kind) + payload;
}

Answer ParseJournal(const std::string& bytes) {
  return FromStatus(learner::ParseJournal(bytes, "journal").status());
}

// A Hugging Face directory of a tiny Llama, with config.json edited by `edit` (nullptr: removed).
Answer LoadHf(TempDir& dir, const std::string& name,
              const std::function<void(nlohmann::json*)>& edit) {
  const std::string path = dir.path() + "/" + name;
  auto model = model::CreateRandomLlama(testing::TinyLlamaConfig(), 1);
  EXPECT_TRUE(model.ok());
  EXPECT_TRUE(checkpoint::SaveHfLlama(*model, path, torch::kFloat32).ok());
  if (edit == nullptr) {
    std::filesystem::remove(path + "/config.json");
  } else {
    std::ifstream in(path + "/config.json");
    nlohmann::json config = nlohmann::json::parse(in);
    edit(&config);
    dir.Write(name + "/config.json", config.dump());
  }
  return FromStatus(checkpoint::LoadHfLlama(path).status());
}

using FileCase = Case<TempDir>;

FileCase BadSafetensors(std::string id, std::string input, std::string needle,
                        std::function<std::string()> bytes) {
  return {std::move(id), std::move(input), "INVALID_ARGUMENT", std::move(needle),
          [bytes](TempDir& dir) {
            return FromStatus(checkpoint::ReadSafetensors(dir.Write("x.safetensors", bytes()))
                                  .status());
          }};
}
FileCase BadLlama2c(std::string id, std::string input, std::string needle,
                    std::function<std::string()> bytes) {
  return {std::move(id), std::move(input), "INVALID_ARGUMENT", std::move(needle),
          [bytes](TempDir& dir) {
            return FromStatus(checkpoint::LoadLlama2c(dir.Write("x.bin", bytes())).status());
          }};
}
FileCase BadHf(std::string id, std::string input, std::string code, std::string needle,
               std::function<void(nlohmann::json*)> edit) {
  const std::string name = id;
  return {std::move(id), std::move(input), std::move(code), std::move(needle),
          [edit, name](TempDir& dir) { return LoadHf(dir, name, edit); }};
}
FileCase BadJournal(std::string id, std::string input, std::string needle,
                    std::function<std::string()> bytes) {
  return {std::move(id), std::move(input), "INTERNAL", std::move(needle),
          [bytes](TempDir&) { return ParseJournal(JournalRecord('D', "x") + bytes()); }};
}

const std::vector<FileCase> kFileCases = RegisterCases<TempDir>(
    "checkpoint and journal files",
    {
        BadSafetensors("safetensors-shorter-than-length", "a 5-byte file", "header",
                       [] { return std::string(5, '\0'); }),
        BadSafetensors("safetensors-header-past-eof", "a header length of 2^40 in a small file",
                       "header length 1099511627776",
                       [] { return Bytes<uint64_t>(uint64_t{1} << 40) + "{}"; }),
        BadSafetensors("safetensors-header-not-json", "the header is not JSON",
                       "header is not valid JSON", [] { return Safetensors("{\"w\": ", ""); }),
        BadSafetensors("safetensors-offsets-past-data",
                       "data_offsets [16, 32] (the right size) with 16 data bytes",
                       "tensor 'w': data_offsets [16, 32] are beyond the data region",
                       [] {
                         return SafetensorsWith(
                             [](nlohmann::json* h) { (*h)["w"]["data_offsets"] = {16, 32}; });
                       }),
        BadSafetensors("safetensors-offsets-wrong-size", "data_offsets [0, 64] for 16 bytes",
                       "tensor 'w': byte size 64",
                       [] {
                         return SafetensorsWith(
                             [](nlohmann::json* h) { (*h)["w"]["data_offsets"] = {0, 64}; });
                       }),
        BadSafetensors("safetensors-offsets-reversed", "data_offsets [16, 0]", "tensor 'w'",
                       [] {
                         return SafetensorsWith(
                             [](nlohmann::json* h) { (*h)["w"]["data_offsets"] = {16, 0}; });
                       }),
        BadSafetensors("safetensors-size-disagrees-with-shape",
                       "shape [2, 3] (24 bytes) over data_offsets [0, 16]", "tensor 'w'",
                       [] {
                         return SafetensorsWith(
                             [](nlohmann::json* h) { (*h)["w"]["shape"] = {2, 3}; });
                       }),
        BadSafetensors("safetensors-offset-overflow",
                       "data_offsets [2^64 - 8, 8] (the end wraps around)", "tensor 'w'",
                       [] {
                         return SafetensorsWith([](nlohmann::json* h) {
                           (*h)["w"]["data_offsets"] = {std::numeric_limits<uint64_t>::max() - 7,
                                                        uint64_t{8}};
                         });
                       }),
        BadSafetensors("safetensors-shape-overflow", "shape [2^40, 2^40]", "tensor 'w'",
                       [] {
                         return SafetensorsWith([](nlohmann::json* h) {
                           (*h)["w"]["shape"] = {int64_t{1} << 40, int64_t{1} << 40};
                         });
                       }),
        BadSafetensors("safetensors-unknown-dtype", "dtype \"F13\"", "tensor 'w'",
                       [] {
                         return SafetensorsWith(
                             [](nlohmann::json* h) { (*h)["w"]["dtype"] = "F13"; });
                       }),
        BadSafetensors("safetensors-negative-dim", "shape [-2, 2]", "tensor 'w'",
                       [] {
                         return SafetensorsWith(
                             [](nlohmann::json* h) { (*h)["w"]["shape"] = {-2, 2}; });
                       }),
        BadLlama2c("llama2c-shorter-than-header", "a 12-byte file", "shorter than the 28-byte",
                   [] { return std::string(12, '\0'); }),
        BadLlama2c("llama2c-absurd-dims", "dim 2^30, 2^30 layers (the size overflows 64 bits)",
                   "invalid llama2.c header",
                   [] { return Llama2c({1 << 30, 1 << 30, 1 << 30, 1, 1, 32000, 1 << 30}, 0); }),
        BadLlama2c("llama2c-negative-dim", "dim -8", "invalid llama2.c header",
                   [] { return Llama2c({-8, 16, 1, 2, 2, 32, 8}, 0); }),
        BadLlama2c("llama2c-vocab-int-min", "vocab_size INT32_MIN (its sign is a flag)",
                   "vocab_size -2147483648",
                   [] {
                     return Llama2c({8, 16, 1, 2, 2, std::numeric_limits<int32_t>::min(), 8}, 0);
                   }),
        BadLlama2c("llama2c-truncated", "a valid header with one float missing",
                   "(truncated)",
                   [] {
                     return Llama2c({8, 16, 1, 2, 2, 32, 8},
                                    Llama2cFloats(8, 16, 1, 2, 2, 32, 8) - 1);
                   }),
        BadLlama2c("llama2c-trailing-bytes", "a valid file with 4 bytes appended",
                   "4 trailing bytes",
                   [] {
                     return Llama2c({8, 16, 1, 2, 2, 32, 8},
                                    Llama2cFloats(8, 16, 1, 2, 2, 32, 8) + 1);
                   }),
        BadLlama2c("llama2c-unsupported-version", "magic \"ak42\" with version 2 (int8)",
                   "unsupported llama2.c version 2",
                   [] {
                     return Bytes<uint32_t>(0x616b3432) + Bytes<int32_t>(2) +
                            std::string(248, '\0');
                   }),
        {"hf-missing-config", "a model directory without config.json", "NOT_FOUND",
         "config.json", [](TempDir& dir) { return LoadHf(dir, "hf-missing-config", nullptr); }},
        BadHf("hf-config-not-object", "config.json holds a JSON array", "INVALID_ARGUMENT",
              "config.json", [](nlohmann::json* c) { *c = nlohmann::json::array({1, 2}); }),
        BadHf("hf-config-missing-field", "config.json without hidden_size", "INVALID_ARGUMENT",
              "hidden_size", [](nlohmann::json* c) { c->erase("hidden_size"); }),
        BadHf("hf-config-wrong-type", "hidden_size is the string \"32\"", "INVALID_ARGUMENT",
              "hidden_size", [](nlohmann::json* c) { (*c)["hidden_size"] = "32"; }),
        BadHf("hf-config-heads-do-not-divide", "num_attention_heads 5 for hidden_size 32",
              "INVALID_ARGUMENT", "heads",
              [](nlohmann::json* c) { (*c)["num_attention_heads"] = 5; }),
        BadHf("hf-config-more-layers-than-weights", "num_hidden_layers 3 over weights of 2",
              "INVALID_ARGUMENT", "layers.2",
              [](nlohmann::json* c) { (*c)["num_hidden_layers"] = 3; }),
        BadHf("hf-config-contradicts-weights", "intermediate_size 48 over weights of 64",
              "INVALID_ARGUMENT", "mlp",
              [](nlohmann::json* c) { (*c)["intermediate_size"] = 48; }),
        BadHf("hf-config-rope-scaling", "rope_scaling set (not supported)", "INVALID_ARGUMENT",
              "rope_scaling",
              [](nlohmann::json* c) { (*c)["rope_scaling"] = {{"type", "linear"}, {"factor", 2}}; }),
        BadJournal("journal-unknown-kind", "a record of kind 'Z' at offset 6",
                   "corrupt record at offset 6", [] { return JournalRecord('Z', "id"); }),
        BadJournal("journal-accepted-not-a-trajectory",
                   "an 'A' record whose payload is not a Trajectory", "corrupt record at offset 6",
                   [] { return JournalRecord('A', std::string(8, '\xff')); }),
        BadJournal("journal-summary-wrong-size", "a 'U' summary of 5 bytes instead of 24",
                   "corrupt record at offset 6", [] { return JournalRecord('U', "12345"); }),
        BadJournal("journal-consumed-ids-overrun",
                   "a 'C' record whose id length runs past the record",
                   "corrupt record at offset 6",
                   [] { return JournalRecord('C', Bytes<uint64_t>(1) + Bytes<uint32_t>(99) + "x"); }),
        BadJournal("journal-huge-length", "a record announcing 2^31 payload bytes",
                   "corrupt record at offset 6",
                   [] { return Bytes<uint32_t>(1u << 31) + "D" + "x"; }),
    });

class FileTest : public RowsWith<FileCase, SuiteTempDir> {};

TEST_P(FileTest, Rejected) { ExpectAnswer(GetParam(), GetParam().run(env())); }

INSTANTIATE_TEST_SUITE_P(Catalogue, FileTest, ::testing::ValuesIn(kFileCases), CaseName<TempDir>);

// The builders make valid files when nothing is wrong (else a row could pass for a wrong reason).
TEST(FileTest, TheBuildersMakeValidFiles) {
  TempDir dir("valid_files");
  EXPECT_TRUE(checkpoint::ReadSafetensors(
                  dir.Write("ok.safetensors", SafetensorsWith([](nlohmann::json*) {})))
                  .ok());
  auto llama = checkpoint::LoadLlama2c(
      dir.Write("ok.bin", Llama2c({8, 16, 1, 2, 2, 32, 8}, Llama2cFloats(8, 16, 1, 2, 2, 32, 8))));
  EXPECT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ(LoadHf(dir, "ok", [](nlohmann::json*) {}).code, "OK");
  EXPECT_EQ(ParseJournal(JournalRecord('D', "x")).code, "OK");
}

}  // namespace
}  // namespace rlhf::bad_inputs
