#include "cli/demo_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rlhf::cli {
namespace {

using nlohmann::json;

struct Column {
  const char* key;     // gold metric, or "rm_score" / "kl"
  const char* header;  // table header
};
const Column kColumns[] = {
    {"help_benign", "help benign"},
    {"help_borderline", "help borderline"},
    {"harmless", "harmless"},
    {"evasive_harmful", "evasive (harmful)"},
    {"refuse_borderline", "refuse borderline"},
    {"evasive_all", "evasive all"},
    {"rm_score", "RM score"},
    {"kl", "KL to ref"},
};

std::string Cell(const json& eval, const std::string& key) {
  if (key == "kl")
    return eval.contains("kl") ? absl::StrFormat("%.2f", eval["kl"].get<double>()) : "-";
  const json* m = nullptr;
  if (key == "rm_score") {
    if (eval.contains("rm_score")) m = &eval["rm_score"];
  } else if (eval.contains("gold") && eval["gold"].contains(key)) {
    m = &eval["gold"][key];
  }
  if (m == nullptr || (m->contains("n") && (*m)["n"].get<int64_t>() == 0)) return "-";
  return absl::StrFormat("%.2f ± %.2f", (*m)["mean"].get<double>(), (*m)["se"].get<double>());
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\n':
        out += "⏎";
        break;
      default:
        out += c;
    }
  }
  return out;
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

// A line chart of `field` over the RL steps of every stage that has them.
std::string LineChart(const json& stages, const std::string& field, const std::string& title) {
  const double w = 460, h = 260, l = 50, r = 10, t = 24, b = 34;
  double xmax = 1, ymin = 1e300, ymax = -1e300;
  for (const json& s : stages) {
    if (!s.contains("rl_steps")) continue;
    for (const json& p : s["rl_steps"]) {
      xmax = std::max(xmax, p["step"].get<double>());
      ymin = std::min(ymin, p[field].get<double>());
      ymax = std::max(ymax, p[field].get<double>());
    }
  }
  if (ymin > ymax) return "";
  if (ymax - ymin < 1e-9) ymax = ymin + 1;
  auto X = [&](double x) { return l + (w - l - r) * x / xmax; };
  auto Y = [&](double y) { return t + (h - t - b) * (1 - (y - ymin) / (ymax - ymin)); };
  std::string svg = absl::StrFormat(
      "<svg width=\"%.0f\" height=\"%.0f\" xmlns=\"http://www.w3.org/2000/svg\">"
      "<text x=\"%.0f\" y=\"16\" font-weight=\"bold\">%s</text>"
      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#444\"/>"
      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#444\"/>"
      "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">step</text>"
      "<text x=\"2\" y=\"%.0f\" font-size=\"11\">%.2f</text>"
      "<text x=\"2\" y=\"%.0f\" font-size=\"11\">%.2f</text>"
      "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">%.0f</text>",
      w, h, l, Escape(title), l, h - b, w - r, h - b, l, t, l, h - b, (w + l) / 2, h - 6, t + 4,
      ymax, h - b, ymin, w - r - 20, h - b + 14, xmax);
  int color = 0, legend = 0;
  for (const json& s : stages) {
    if (!s.contains("rl_steps") || s["rl_steps"].empty()) continue;
    std::string points;
    for (const json& p : s["rl_steps"]) {
      absl::StrAppendFormat(&points, "%.1f,%.1f ", X(p["step"].get<double>()),
                            Y(p[field].get<double>()));
    }
    const char* c = kColors[color++ % 6];
    absl::StrAppendFormat(&svg,
                          "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                          "points=\"%s\"/><text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" "
                          "fill=\"%s\">%s</text>",
                          c, points, l + 10, t + 14 + 13.0 * legend++, c,
                          Escape(s["label"].get<std::string>()));
  }
  return svg + "</svg>";
}

// Harmlessness (harmful prompts) against helpfulness (benign prompts), one point per stage with
// its standard errors.
std::string Scatter(const json& stages) {
  const double w = 460, h = 360, l = 50, r = 20, t = 24, b = 40;
  auto X = [&](double x) { return l + (w - l - r) * x; };
  auto Y = [&](double y) { return t + (h - t - b) * (1 - y); };
  std::string svg = absl::StrFormat(
      "<svg width=\"%.0f\" height=\"%.0f\" xmlns=\"http://www.w3.org/2000/svg\">"
      "<text x=\"%.0f\" y=\"16\" font-weight=\"bold\">harmlessness vs helpfulness (gold)</text>"
      "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>"
      "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">helpfulness on benign prompts (0..1)</text>"
      "<text x=\"4\" y=\"%.0f\" font-size=\"11\">1</text><text x=\"4\" y=\"%.0f\" "
      "font-size=\"11\">0</text><text x=\"4\" y=\"%.0f\" font-size=\"11\">harmless</text>",
      w, h, l, l, t, w - l - r, h - t - b, l + 60, h - 8, t + 4, h - b, (h - b + t) / 2);
  int color = 0;
  for (const json& s : stages) {
    const json& g = s["eval"]["gold"];
    const double x = g["help_benign"]["mean"], y = g["harmless"]["mean"];
    const double xe = g["help_benign"]["se"], ye = g["harmless"]["se"];
    const char* c = kColors[color++ % 6];
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>"
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>"
                          "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"%s\">%s</text>",
                          X(x - xe), Y(y), X(x + xe), Y(y), c, X(x), Y(y - ye), X(x), Y(y + ye), c,
                          X(x), Y(y), c, X(x) + 7, Y(y) - 6, c,
                          Escape(s["label"].get<std::string>()));
  }
  return svg + "</svg>";
}

struct Stat {
  double mean = 0, se = 0;
};

std::optional<Stat> Gold(const json& report, const std::string& stage, const std::string& key) {
  for (const json& s : report["stages"]) {
    if (s["stage"] != stage || !s["eval"]["gold"].contains(key)) continue;
    const json& m = s["eval"]["gold"][key];
    return Stat{m["mean"].get<double>(), m["se"].get<double>()};
  }
  return std::nullopt;
}

}  // namespace

json DemoClaims(const json& report) {
  json out = json::array();
  // "a > b" beyond the combined standard error (or, with `similar`, a >= b - that margin).
  auto claim = [&](const std::string& text, const std::string& key, const std::string& a,
                   const std::string& b, bool higher, bool similar = false) {
    const std::optional<Stat> x = Gold(report, a, key), y = Gold(report, b, key);
    if (!x || !y) return;
    const double margin = std::sqrt(x->se * x->se + y->se * y->se);
    const double d = higher ? x->mean - y->mean : y->mean - x->mean;
    const bool holds = similar ? d >= -margin : d > margin;
    out.push_back({{"claim", text},
                   {"holds", holds},
                   {"detail", absl::StrFormat("%s %s: %.2f ± %.2f vs %.2f ± %.2f", key, a, x->mean,
                                              x->se, y->mean, y->se)}});
  };
  claim("RL raises helpfulness over SFT (benign prompts)", "help_benign", "rlhf_help", "sft", true);
  claim("SL-CAI is more harmless than helpful-only RLHF", "harmless", "sl_cai", "rlhf_help", true);
  claim("RL-CAI is more harmless than helpful-only RLHF", "harmless", "rl_cai", "rlhf_help", true);
  claim("RL-CAI is less evasive than RLHF-HH (all prompts)", "evasive_all", "rl_cai", "rlhf_hh",
        false);
  claim("... at similar or better harmlessness", "harmless", "rl_cai", "rlhf_hh", true,
        /*similar=*/true);
  return out;
}

std::string DemoTable(const json& report) {
  std::string out = absl::StrFormat("%-18s", "stage");
  for (const Column& c : kColumns) absl::StrAppendFormat(&out, " | %-17s", c.header);
  out += "\n";
  out += std::string(18 + std::size(kColumns) * 20, '-') + "\n";
  for (const json& s : report["stages"]) {
    absl::StrAppendFormat(&out, "%-18s", s["label"].get<std::string>());
    for (const Column& c : kColumns) {
      // ± is 2 bytes: pad by display width.
      std::string cell = Cell(s["eval"], c.key);
      const size_t extra = cell.find("±") != std::string::npos ? 1 : 0;
      absl::StrAppendFormat(&out, " | %-*s", static_cast<int>(17 + extra), cell);
    }
    out += "\n";
  }
  const json& set = report["settings"];
  absl::StrAppendFormat(
      &out,
      "gold raters on %d held-out prompts x %d samples (mean ± SE over prompts); RL: %s, %d "
      "steps, KL coefficient %.2f; RM score under the stage's own reward model\n",
      84, set.value("eval_samples", 0), set.value("advantage", std::string("?")),
      set.value("rl_steps", 0), set.value("kl_coef", 0.0));
  for (const json& c : DemoClaims(report)) {
    absl::StrAppendFormat(&out, "%-4s %s (%s)\n", c["holds"].get<bool>() ? "yes" : "NO",
                          c["claim"].get<std::string>(), c["detail"].get<std::string>());
  }
  return out;
}

absl::Status WriteDemoReport(const json& report, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  {
    std::ofstream out(dir + "/report.json", std::ios::trunc);
    out << report.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", dir, "/report.json"));
  }
  const json& stages = report["stages"];
  std::string html =
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>rlhf demo</title><style>"
      "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:"
      "left}.ex td{text-align:left;font-family:monospace;font-size:12px}</style></head><body>"
      "<h1>RLHF and Constitutional AI on the demo world</h1>"
      "<p>Every stage ran through the services as separate processes; every number comes from "
      "the world's gold raters on held-out prompts (they never fed training). Mean ± standard "
      "error over prompts.</p><table><tr><th>stage</th>";
  for (const Column& c : kColumns) absl::StrAppend(&html, "<th>", c.header, "</th>");
  html += "</tr>";
  for (const json& s : stages) {
    absl::StrAppend(&html, "<tr><td>", Escape(s["label"]), "</td>");
    for (const Column& c : kColumns)
      absl::StrAppend(&html, "<td>", Cell(s["eval"], c.key), "</td>");
    html += "</tr>";
  }
  html += "</table><h2>The seed's claims</h2><ul>";
  for (const json& c : DemoClaims(report)) {
    absl::StrAppend(&html, "<li><b>", c["holds"].get<bool>() ? "holds" : "does not hold",
                    "</b>: ", Escape(c["claim"]), " (", Escape(c["detail"]), ")</li>");
  }
  html += "</ul><h2>RL</h2><div>";
  absl::StrAppend(&html, LineChart(stages, "reward", "RM score (mean per step)"),
                  LineChart(stages, "kl", "KL to the reference (nats per sequence)"),
                  "</div><h2>Stages</h2>", Scatter(stages), "<h2>Samples</h2><table class=\"ex\">");
  for (const json& s : stages) {
    for (const json& e : s["eval"]["examples"]) {
      absl::StrAppend(&html, "<tr><td>", Escape(s["label"]), "</td><td>",
                      Escape(e.value("kind", "")), "</td><td>", Escape(e.value("prompt", "")),
                      "</td><td>", Escape(e.value("response", "")), "</td></tr>");
    }
  }
  absl::StrAppend(&html, "</table><h2>Settings</h2><pre>", Escape(report["settings"].dump(2)),
                  "</pre></body></html>\n");
  std::ofstream out(dir + "/index.html", std::ios::trunc);
  out << html;
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", dir, "/index.html"));
  return absl::OkStatus();
}

}  // namespace rlhf::cli
