// docs/bad-inputs.md lists the catalogue: one table row per case id, and no other ids. A row is a
// line "| `<id>` | <surface> | <input> | <answer> |"; this test fails when an id is in the tables
// and not in the doc, or the other way round, so the doc cannot drift from the tests.
#include <fstream>
#include <set>
#include <string>

#include "tests/bad_inputs/catalogue.h"

namespace rlhf::bad_inputs {
namespace {

// The ids of the doc's table rows.
std::set<std::string> DocIds(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::set<std::string> ids;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    const size_t end = line.find('`', 3);
    if (end == std::string::npos) continue;
    EXPECT_TRUE(ids.insert(line.substr(3, end - 3)).second) << "listed twice: " << line;
  }
  return ids;
}

TEST(BadInputsDocTest, TheDocListsExactlyTheCatalogue) {
  EXPECT_THAT(DuplicateIds(), ::testing::IsEmpty()) << "ids used by two rows";
  std::set<std::string> catalogue;
  for (const auto& [id, surface] : CatalogueIds()) catalogue.insert(id);
  EXPECT_GE(catalogue.size(), 60u);
  const std::set<std::string> doc = DocIds(std::string(RLHF_SOURCE_DIR) + "/docs/bad-inputs.md");
  std::set<std::string> missing, extra;
  for (const std::string& id : catalogue) {
    if (doc.count(id) == 0) missing.insert(id);
  }
  for (const std::string& id : doc) {
    if (catalogue.count(id) == 0) extra.insert(id);
  }
  EXPECT_THAT(missing, ::testing::IsEmpty()) << "in the catalogue, not in docs/bad-inputs.md";
  EXPECT_THAT(extra, ::testing::IsEmpty()) << "in docs/bad-inputs.md, not in the catalogue";
}

// Ids are stable kebab-case names: lower-case letters, digits and single dashes.
TEST(BadInputsDocTest, IdsAreKebabCase) {
  for (const auto& [id, surface] : CatalogueIds()) {
    bool ok = !id.empty() && id.front() != '-' && id.back() != '-' &&
              id.find("--") == std::string::npos;
    for (char c : id) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
    EXPECT_TRUE(ok) << id;
  }
}

}  // namespace
}  // namespace rlhf::bad_inputs
