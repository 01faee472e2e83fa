// biud-eval: metrics from files — classification (AUROC/AP/F1/... with bootstrap CIs and plots),
// report generation (BLEU/METEOR/ROUGE-L/CIDEr-D), clinical efficacy, retrieval, DeLong, readers.
// Flags only: the work is eval/EvalJob.h, one function per subcommand.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "biud/app/App.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/RunList.h"
#include "biud/eval/EvalJob.h"

namespace ev = biud::eval;
namespace stdfs = std::filesystem;
using nlohmann::json;

int main(int argc, char** argv) {
  biud::app::App app(
      "biud-eval",
      "Evaluation metrics from files. Subcommands: classification, nlg, clinical, retrieval, delong, readers.\n"
      "Each writes eval.json (and plots/ where relevant) into --out. See docs/eval.md for formats.");
  app.addCommon(biud::app::kConfig | biud::app::kOut | biud::app::kSeed);
  auto& cli = app.cli();
  cli.require_subcommand(1);

  // Flags naming an input file that must exist.
  auto input = [](CLI::Option* o) { o->required()->check(CLI::ExistingFile); };

  // classification
  std::vector<std::string> preds;
  ev::ClassificationJob job;
  job.threshold = job.protocol = "";  // empty = the config's eval.threshold / eval.zeroshot_protocol
  int bootstrap = -1;
  double ci = -1;
  bool noPlots = false;
  auto* cls = cli.add_subcommand("classification",
                                 "per-finding AUROC, AP, F1, accuracy, sensitivity, specificity with bootstrap CIs");
  cls->add_option(
         "--pred", preds,
         "predictions CSV (id + one probability column per finding); repeat for several models, optionally NAME=FILE; "
         "the first model fills per_label/macro, all models go to models.<name> and the ROC figure")
      ->required();
  input(cls->add_option("--labels", job.labels, "labels CSV (id + one column per finding: 1, 0, or empty = unknown)"));
  cls->add_option(
      "--threshold", job.threshold,
      "operating point: youden (per finding, on these data), val (Youden on --val-pred/--val-labels) or a number "
      "(default: eval.threshold)");
  cls->add_option("--val-pred", job.valPred, "validation predictions CSV (for --threshold val)")
      ->check(CLI::ExistingFile);
  cls->add_option("--val-labels", job.valLabels, "validation labels CSV (for --threshold val)")
      ->check(CLI::ExistingFile);
  cls->add_option("--bootstrap", bootstrap,
                  "bootstrap resamples for the CIs, 0 = none (default: eval.bootstrap = 1000)");
  cls->add_option("--ci", ci, "confidence level of the intervals (default: eval.ci = 0.95)");
  cls->add_flag("--no-plots", noPlots, "skip the PNG figures (default: eval.plots)");
  cls->add_option("--protocol", job.protocol,
                  "biud, or ct-clip: also CT-CLIP's metrics of the first model under `ct_clip` (its threshold rule, "
                  "weighted F1, accuracy, precision; docs/eval.md) (default: eval.zeroshot_protocol)")
      ->check(CLI::IsMember({"biud", "ct-clip"}));

  // nlg
  std::string hyp, ref;
  auto* nlg = cli.add_subcommand("nlg", "BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of generated reports");
  input(nlg->add_option("--hyp", hyp, "generated reports: CSV with id,text or a text file with one report per line"));
  input(
      nlg->add_option("--ref", ref, "reference reports, same format (a CSV may repeat an id for several references)"));
  std::string nlgProtocol;
  nlg->add_option("--protocol", nlgProtocol,
                  "biud (one punctuation-free tokenisation, nltk BLEU) or ct2rep (CT2Rep's report cleaning, "
                  "pycocoevalcap BLEU and ROUGE-L; docs/eval.md) (default: eval.nlg_protocol)")
      ->check(CLI::IsMember({"biud", "ct2rep"}));

  // clinical
  std::string cePred, ceRef;
  auto* clin =
      cli.add_subcommand("clinical", "finding-level precision/recall/F1 (micro and macro) of extracted report labels");
  input(clin->add_option("--pred", cePred, "findings of the generated reports: CSV id + one 0/1 column per finding"));
  input(clin->add_option("--ref", ceRef, "findings of the reference reports: same layout (empty = unknown, excluded)"));

  // retrieval
  std::string sim, embA, embB;
  std::vector<int> ks = {1, 5, 10};
  auto* ret = cli.add_subcommand("retrieval", "Recall@K, mAP and median rank in both directions");
  ret->add_option("--sim", sim,
                  "similarity matrix: CSV (optional id column, header = gallery ids) or .npy; row i matches the "
                  "column with the same id (or column i)")
      ->check(CLI::ExistingFile);
  ret->add_option("--emb-a", embA,
                  "embeddings of modality A (CSV id + dims, or .npy rows); cosine similarity to --emb-b")
      ->check(CLI::ExistingFile);
  ret->add_option("--emb-b", embB, "embeddings of modality B, same ids/rows as --emb-a")->check(CLI::ExistingFile);
  ret->add_option("--k", ks, "K values for Recall@K (default 1 5 10)");

  // delong
  std::string dPred1, dPred2, dLabels;
  auto* dl = cli.add_subcommand("delong", "DeLong test of two correlated AUROCs per finding (same cases, two models)");
  input(dl->add_option("--pred1", dPred1, "predictions of model 1 (CSV id + findings)"));
  input(dl->add_option("--pred2", dPred2, "predictions of model 2 (same ids and findings)"));
  input(dl->add_option("--labels", dLabels, "labels CSV (id + 1/0/empty per finding)"));

  // readers
  std::string rPred, rLabels, rReaders;
  auto* rd =
      cli.add_subcommand("readers", "reader study: model sensitivity at each reader's specificity, with a ROC figure");
  input(rd->add_option("--pred", rPred, "model predictions CSV (id + findings)"));
  input(rd->add_option("--labels", rLabels, "labels CSV (id + findings)"));
  input(rd->add_option("--readers", rReaders,
                       "readers CSV: reader, finding (optional when there is one finding), sensitivity, specificity"));

  // Common flags (--out, --config, --seed, ...) may follow the subcommand.
  for (auto* sc : {cls, nlg, clin, ret, dl, rd}) sc->fallthrough();

  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    BIUD_CHECK(app.outGiven(), biud::ConfigError, "--out DIR is required (eval.json and plots/ are written there)");
    const std::string out = app.out();
    biud::fs::makeDirs(out);
    const std::string plotDir = cfg.eval.plots && !noPlots ? (stdfs::path(out) / "plots").string() : "";
    json j;
    if (cls->parsed()) {
      job.models = biud::app::parseRunList(preds, "--pred");
      if (job.threshold.empty()) job.threshold = cfg.eval.threshold;
      job.options.bootstrap = bootstrap >= 0 ? bootstrap : cfg.eval.bootstrap;
      job.options.ci = ci > 0 ? ci : cfg.eval.ci;
      job.options.seed = static_cast<std::uint64_t>(cfg.seed);
      job.options.progress = !app.quiet();
      if (job.protocol.empty()) job.protocol = cfg.eval.zeroshot_protocol;
      job.plotDir = plotDir;
      j = ev::runClassificationEval(job);
    } else if (nlg->parsed()) {
      j = ev::runNlgEval(hyp, ref, nlgProtocol.empty() ? cfg.eval.nlg_protocol : nlgProtocol);
    } else if (clin->parsed()) {
      j = ev::runClinicalEval(cePred, ceRef);
    } else if (ret->parsed()) {
      j = ev::runRetrievalEval({sim, embA, embB, ks});
    } else if (dl->parsed()) {
      j = ev::runDeLongEval(dPred1, dPred2, dLabels, cfg.eval.ci);
    } else if (rd->parsed()) {
      j = ev::runReaderStudy(rPred, rLabels, rReaders, plotDir);
    } else {
      return biud::app::kExitUsage;
    }
    const auto path = stdfs::path(out) / "eval.json";
    biud::fs::atomicWrite(path, j.dump(2) + "\n");
    biud::log::info("eval", "wrote {}", path.string());
    return 0;
  });
}
