// One flag vocabulary (issue 22 item 5): every app in build/bin is run with --help (and each of
// its subcommands with `SUB --help`); the flags it prints are parsed and checked:
// - the shared flags (--config, --set, --manifest, --out, --seed, --threads, --device, --quiet,
//   --run) take the same number of values, have the same short names and say the same thing
//   (a fixed key phrase of their help) wherever they appear;
// - each app has exactly the shared flags of a fixed table, derived from what it reads: a config
//   (--config/--set), a manifest (--manifest, = data.manifest), an output folder (--out), random
//   streams (--seed), CPU work (--threads), a device (--device), a trained run (--run);
// - a flag name that appears in several apps takes the same number of values in all of them
//   (the known exceptions are listed with their reason);
// - the clashes named in the issue are gone: --beam is the beam width only (biud-drr's
//   projection geometry is --geometry), --spacing always takes X Y Z (one isotropic number is
//   --iso-spacing), and an app's error names the app once.
// Apps not in the table (a new app) fail the test until they are classified here.
#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/TestUtil.h"

namespace {
using namespace biud::test;

struct Flag {
  std::vector<std::string> names;  ///< as printed: "-c", "--config"
  int arity = 0;                   ///< 0 flag, 1 one value, N fixed, -1 several ("TEXT ...")
  std::string help;
};
using Flags = std::map<std::string, Flag>;  // by long name

// Parses CLI11's help: "  -c,--config TEXT:FILE   help", wrapped help on indented lines.
Flags parseHelp(const std::string& text, std::vector<std::string>* subcommands = nullptr) {
  static const std::regex opt(
      R"(^  (-[^ ]+)(?: ([A-Z]+)(?::(?:\{[^}]*\}|[A-Z]+ in \[[^\]]*\]|[A-Z]+))?( x (\d+)| \.\.\.)?)?(?: REQUIRED)?(.*)$)");
  static const std::regex sub(R"(^  ([a-z0-9-]+)  +.*$)");
  Flags flags;
  std::istringstream in(text);
  std::string line, section, last;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != ' ') {
      section = line;
      last.clear();
      continue;
    }
    std::smatch m;
    if (section == "Options:" && std::regex_match(line, m, opt)) {
      Flag f;
      std::stringstream names(m[1].str());
      for (std::string n; std::getline(names, n, ',');) f.names.push_back(n);
      f.arity = !m[2].matched ? 0 : !m[3].matched ? 1 : m[4].matched ? std::stoi(m[4].str()) : -1;
      f.help = m[5].str();
      last = f.names.back();
      flags[last] = f;
    } else if (const auto ind = line.find_first_not_of(' ');
               section == "Options:" && !last.empty() && ind != std::string::npos && ind > 20) {
      flags[last].help += " " + line.substr(ind);
    } else if (section == "Subcommands:" && subcommands && std::regex_match(line, m, sub)) {
      subcommands->push_back(m[1].str());
    }
  }
  return flags;
}

// Every app (and "app sub") -> its flags.
std::map<std::string, Flags> helpOfAllApps() {
  std::map<std::string, Flags> all;
  for (const auto& e : stdfs::directory_iterator(binDir())) {
    const std::string name = e.path().filename().string();
    // biud-dicom-worker is internal (started by the DICOM reader); biud-bench is Google
    // Benchmark's harness, whose flags are Google Benchmark's.
    if (name.rfind("biud-", 0) != 0 || name == "biud-dicom-worker" || name == "biud-bench") continue;
    const auto r = run(quote(e.path().string()) + " --help");
    EXPECT_EQ(r.rc, 0) << name << ": " << r.out;
    std::vector<std::string> subs;
    all[name] = parseHelp(r.out, &subs);
    for (const auto& s : subs) {
      const auto rs = run(quote(e.path().string()) + " " + s + " --help");
      EXPECT_EQ(rs.rc, 0) << name << " " << s << ": " << rs.out;
      all[name + " " + s] = parseHelp(rs.out);
    }
  }
  return all;
}

const std::vector<std::string> kShared = {"--config",  "--set",    "--manifest", "--out", "--seed",
                                          "--threads", "--device", "--quiet",    "--run"};

// What every shared flag is: its names, number of values (-1: several; -2: one or several) and a
// phrase its help must contain.
struct Meaning {
  std::vector<std::string> names;
  int arity;
  std::string phrase;
};
const std::map<std::string, Meaning> kMeaning = {
    {"--config", {{"-c", "--config"}, 1, "YAML config"}},
    {"--set", {{"--set"}, -1, "override one config key"}},
    {"--manifest", {{"-m", "--manifest"}, 1, "data.manifest"}},
    {"--out", {{"-o", "--out"}, 1, "output folder"}},
    {"--seed", {{"--seed"}, 1, "seed of every random stream"}},
    {"--threads", {{"--threads"}, 1, "CPU threads"}},
    {"--device", {{"--device"}, 1, "cpu or cuda"}},
    {"--quiet", {{"-q", "--quiet"}, 0, "only warnings and errors"}},
    {"--run", {{"--run"}, -2, "run folder"}},
};

// Which shared flags each app has, from what it reads and writes.
const std::string C = "--config --set ", M = "--manifest ", O = "--out ", S = "--seed ", T = "--threads ",
                  D = "--device ", Q = "--quiet ", R = "--run ";
const std::map<std::string, std::string> kTable = {
    // Reads a config and a manifest of cases, trains a run folder.
    {"biud-train", C + M + O + S + T + D + Q},
    {"biud-finetune", C + M + O + S + T + D + Q + R},
    {"biud-report", C + M + O + S + T + D + Q + R},
    // Evaluates trained runs on a manifest's split.
    {"biud-zeroshot", C + M + O + S + T + D + Q + R},
    {"biud-x2ct-eval", C + M + O + S + T + D + Q + R},
    // Reads data.manifest (CT reports) and the teacher run's networks.
    {"biud-retrieve", C + M + O + T + D + Q},
    // Embeds the files it is given (--texts, --volumes, --xrays), not a manifest's cases.
    {"biud-embed", C + O + S + T + D + Q + R},
    // Metrics from prediction/label files: no manifest, no model.
    {"biud-eval", C + O + S + Q},
    // CT manifest -> cache / X-rays.
    {"biud-preprocess", C + M + O + T + Q},
    {"biud-drr", C + M + O + T + Q},
    // Generates a data set: no manifest to read.
    {"biud-synth", C + O + S + T + Q},
    // Corpus from --input files or a manifest's reports; text.* keys from the config.
    {"biud-tokenizer", C + M + O + S + Q},
    // Release folders -> manifest (no config: the subcommand flags are the settings).
    {"biud-import", O + Q},
    // Released weights -> run folder with its config.
    {"biud-import-weights", C + O + Q},
    // Collectives check: no config, no files.
    {"biud-dist-selftest", T + D + Q},
    // Starts other programs; their flags follow `--`.
    {"biud-launch", Q},
};

std::set<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::set<std::string> w;
  for (std::string x; in >> x;) w.insert(x);
  return w;
}

class FlagVocabulary : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { help_ = new std::map<std::string, Flags>(helpOfAllApps()); }
  static void TearDownTestSuite() { delete help_; }
  static std::map<std::string, Flags>* help_;
};
std::map<std::string, Flags>* FlagVocabulary::help_ = nullptr;

TEST(FlagVocabularyParser, ReadsCli11Help) {
  // The parser on a hand-written help text, so that the checks below cannot pass by reading nothing.
  const auto f = parseHelp(
      "Usage: x [OPTIONS]\n\nOptions:\n"
      "  -c,--config TEXT:FILE           YAML config\n"
      "  --set TEXT ...                  override\n"
      "  --spacing FLOAT x 3             X Y Z\n"
      "  --iters INT:INT in [1 - 100000] timed iterations\n"
      "  --device TEXT:{auto,cpu,cuda}   auto (CUDA when available), cpu or cuda\n"
      "  --run TEXT ... REQUIRED         x2ct run folder;\n"
      "  --bench                         also measure\n"
      "  --source-distance FLOAT:POSITIVE\n"
      "                                  cone beam: source to volume centre\n");
  ASSERT_EQ(f.size(), 8u);
  EXPECT_EQ(f.at("--config").names, (std::vector<std::string>{"-c", "--config"}));
  EXPECT_EQ(f.at("--config").arity, 1);
  EXPECT_EQ(f.at("--set").arity, -1);
  EXPECT_EQ(f.at("--spacing").arity, 3);
  EXPECT_EQ(f.at("--iters").arity, 1);
  EXPECT_EQ(f.at("--device").arity, 1);
  EXPECT_EQ(f.at("--run").arity, -1);
  EXPECT_EQ(f.at("--bench").arity, 0);
  EXPECT_NE(f.at("--source-distance").help.find("cone beam: source to volume centre"), std::string::npos);
  EXPECT_NE(f.at("--iters").help.find("timed iterations"), std::string::npos);
}

TEST_F(FlagVocabulary, EveryAppIsClassifiedAndHasItsSharedFlags) {
  std::set<std::string> apps;
  for (const auto& [name, flags] : *help_)
    if (name.find(' ') == std::string::npos) apps.insert(name);
  for (const auto& [name, want] : kTable)
    EXPECT_TRUE(apps.count(name)) << name << " is in the table but not in build/bin";
  for (const auto& name : apps) {
    const auto it = kTable.find(name);
    if (it == kTable.end()) {
      ADD_FAILURE() << name << " is not in kTable: say which shared flags it takes";
      continue;
    }
    std::set<std::string> have;
    for (const auto& [key, flags] : *help_)
      if (key == name || key.rfind(name + " ", 0) == 0)
        for (const auto& s : kShared)
          if (flags.count(s)) have.insert(s);
    EXPECT_EQ(have, words(it->second)) << name;
  }
  EXPECT_GE(apps.size(), kTable.size());
}

TEST_F(FlagVocabulary, SharedFlagsMeanTheSameEverywhere) {
  int seen = 0;
  for (const auto& [app, flags] : *help_) {
    for (const auto& [name, f] : flags) {
      for (const auto& [shared, m] : kMeaning) {
        // A short name of a shared flag is that flag everywhere.
        for (const auto& n : f.names)
          if (n.size() == 2 && std::find(m.names.begin(), m.names.end(), n) != m.names.end())
            EXPECT_EQ(name, shared) << app << ": " << n << " is " << shared << " elsewhere";
      }
      const auto it = kMeaning.find(name);
      if (it == kMeaning.end()) continue;
      ++seen;
      const Meaning& m = it->second;
      EXPECT_EQ(f.names, m.names) << app << " " << name;
      if (m.arity == -2)
        EXPECT_NE(f.arity, 0) << app << " " << name;
      else
        EXPECT_EQ(f.arity, m.arity) << app << " " << name;
      EXPECT_NE(f.help.find(m.phrase), std::string::npos) << app << " " << name << ": `" << f.help << "`";
    }
  }
  EXPECT_GT(seen, 60);
}

TEST_F(FlagVocabulary, AFlagTakesTheSameNumberOfValuesInEveryApp) {
  // name -> arity -> where
  std::map<std::string, std::map<int, std::vector<std::string>>> arities;
  for (const auto& [app, flags] : *help_)
    for (const auto& [name, f] : flags) arities[name][f.arity].push_back(app);
  // Known differences, each with its reason. Repeatable in some apps, one value in others, with
  // the same meaning per value: --run (NAME=DIR where runs are compared), --pred (several models
  // in biud-eval classification), --input (several text files in biud-tokenizer, one folder of
  // CTs in biud-drr: what is read instead of a manifest).
  const std::set<std::string> known = {"--run", "--pred", "--input"};
  for (const auto& name : known)
    EXPECT_GT(arities[name].size(), 1u) << name << " no longer differs: take it off the known list";
  for (const auto& [name, byArity] : arities) {
    if (byArity.size() <= 1 || known.count(name)) continue;
    std::string where;
    for (const auto& [a, apps] : byArity)
      for (const auto& x : apps) where += " [" + x + ": " + std::to_string(a) + "]";
    ADD_FAILURE() << name << " takes different numbers of values:" << where;
  }
  // The clash of the issue: --spacing took one number in biud-drr and rad-chestct, three elsewhere.
  ASSERT_TRUE(arities.count("--spacing"));
  EXPECT_EQ(arities.at("--spacing").size(), 1u);
  EXPECT_TRUE(arities.at("--spacing").count(3));
  // --prefix is biud-launch's flag; the tokenizer's SentencePiece file prefix is --model-prefix.
  EXPECT_EQ(arities.at("--prefix").size(), 1u);
  EXPECT_TRUE(arities.at("--prefix").count(0));
  EXPECT_EQ(help_->at("biud-tokenizer train").at("--model-prefix").arity, 1);
  // --volumes are biud-embed's tensor files; the importers' folder of volumes is --volume-dir.
  EXPECT_EQ(arities.at("--volumes").size(), 1u);
  EXPECT_TRUE(arities.at("--volumes").count(-1));
  EXPECT_EQ(help_->at("biud-import ct-rate").at("--volume-dir").arity, 1);
  EXPECT_EQ(help_->at("biud-import rad-chestct").at("--volume-dir").arity, 1);
  // --size is synth's CT grid X Y Z; biud-drr's X-ray side is --xray-size, as in biud-synth.
  EXPECT_EQ(arities.at("--size").size(), 1u);
  EXPECT_TRUE(arities.at("--size").count(3));
  EXPECT_FALSE(help_->at("biud-drr").count("--size"));
  ASSERT_TRUE(help_->at("biud-drr").count("--xray-size"));
  EXPECT_NE(help_->at("biud-synth").at("--xray-size").help.find("X-ray side length in pixels"), std::string::npos);
  EXPECT_NE(help_->at("biud-drr").at("--xray-size").help.find("X-ray side length in pixels"), std::string::npos);
  EXPECT_EQ(arities.at("--iso-spacing").size(), 1u);
  EXPECT_TRUE(arities.at("--iso-spacing").count(1));
}

TEST_F(FlagVocabulary, LabelsIsALabelsCsvEverywhere) {
  int seen = 0;
  for (const auto& [app, flags] : *help_)
    if (flags.count("--labels") && ++seen)
      EXPECT_NE(flags.at("--labels").help.find("labels CSV"), std::string::npos) << app;
  EXPECT_GE(seen, 4);  // biud-eval classification, delong, readers; biud-import folder
  EXPECT_EQ(help_->at("biud-finetune").at("--label-columns").arity, -1);
  EXPECT_TRUE(help_->at("biud-import mimic-cxr").count("--label-table"));
  EXPECT_TRUE(help_->at("biud-import rad-chestct").count("--label-names"));
}

TEST_F(FlagVocabulary, BeamIsTheBeamWidthAndDrrGeometryHasItsOwnName) {
  const auto& drr = help_->at("biud-drr");
  EXPECT_FALSE(drr.count("--beam")) << "biud-drr shows --beam again";
  ASSERT_TRUE(drr.count("--geometry"));
  EXPECT_NE(drr.at("--geometry").help.find("parallel or cone"), std::string::npos);
  EXPECT_FALSE(drr.count("--spacing"));
  ASSERT_TRUE(drr.count("--iso-spacing"));
  for (const auto& [app, flags] : *help_)
    if (flags.count("--beam")) EXPECT_NE(flags.at("--beam").help.find("beam size"), std::string::npos) << app;
  ASSERT_TRUE(help_->at("biud-report").count("--beam"));
  EXPECT_EQ(help_->at("biud-report").at("--beam").arity, 1);
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(FlagVocabularyApps, DrrsOldNamesStillWorkWithAWarning) {
  TempDir t("flags-drr");
  // No CT in the folder: the run stops after reading the flags; the warning comes first.
  stdfs::create_directories(t / "in");
  const auto r = run(quote(app("biud-drr")) + " --input " + quote((t / "in").string()) +
                     " --beam cone --size 8 --out " + quote((t / "out").string()));
  EXPECT_NE(r.out.find("--beam is deprecated here: use --geometry cone"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--size is deprecated here: use --xray-size 8"), std::string::npos) << r.out;
  const auto g = run(quote(app("biud-drr")) + " --input " + quote((t / "in").string()) + " --geometry cone --out " +
                     quote((t / "out2").string()));
  EXPECT_EQ(g.out.find("deprecated"), std::string::npos) << g.out;
  // The error from the library (no volume in the folder) names the app once too.
  EXPECT_NE(g.out.find("biud-drr: error: --input `"), std::string::npos) << g.out;
  EXPECT_EQ(count(g.out, "biud-drr"), 1u) << g.out;
}

TEST(FlagVocabularyApps, AnErrorNamesItsAppOnce) {
  TempDir t("flags-err");
  stdfs::create_directories(t / "in");
  writeText(t / "m.csv", "id,image\n");
  auto r = run(quote(app("biud-drr")) + " --input " + quote((t / "in").string()));
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("biud-drr: error: --out DIR (the output folder) is required"), std::string::npos) << r.out;
  EXPECT_EQ(count(r.out, "biud-drr"), 1u) << r.out;
  r = run(quote(app("biud-preprocess")) + " --manifest " + quote((t / "m.csv").string()));
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_EQ(count(r.out, "biud-preprocess"), 1u) << r.out;
  r = run(quote(app("biud-import")) + " --out " + quote((t / "o").string()) + " rad-chestct --root " +
          quote((t / "in").string()) + " --iso-spacing -1");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("biud-import: error: rad-chestct: --iso-spacing -1 mm"), std::string::npos) << r.out;
  EXPECT_EQ(count(r.out, "biud-import"), 1u) << r.out;
}

TEST(FlagVocabularyApps, ManifestIsDataManifest) {
  // biud-retrieve stops without data.manifest; --manifest FILE gets it past that check (to the
  // next missing input, the teacher), as --set data.manifest=FILE does.
  TempDir t("flags-manifest");
  writeText(t / "m.csv", "id,image,report\n");
  const std::string base = quote(app("biud-retrieve")) + " --set data.xray_manifest=" + quote((t / "m.csv").string()) +
                           " --out " + quote((t / "o").string());
  auto r = run(base);
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("biud-retrieve needs data.manifest"), std::string::npos) << r.out;
  for (const std::string flag : {" --manifest ", " --set data.manifest="}) {
    r = run(base + flag + quote((t / "m.csv").string()));
    EXPECT_EQ(r.out.find("needs data.manifest"), std::string::npos) << flag << r.out;
    EXPECT_NE(r.out.find("no teacher to embed the reports"), std::string::npos) << flag << r.out;
  }
}

}  // namespace
