// biud-report: report generation from CT volumes with a pretrained BIUD CT encoder — trains the
// report decoder (encoder frozen or fine-tuned), generates the reports of the test split with
// beam search and scores them (BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, clinical efficacy).
#include <filesystem>

#include <fmt/ranges.h>
#include <torch/torch.h>

#include "biud/app/App.h"
#include "biud/core/Csv.h"
#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/evaluate/CtEval.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/tensor/Runtime.h"
#include "biud/train/ReportTask.h"

using namespace biud;
namespace stdfs = std::filesystem;

namespace {
std::string joinSet(const std::set<std::string>& s) { return fmt::format("{}", fmt::join(s, ";")); }
}  // namespace

int main(int argc, char** argv) {
  app::App app("biud-report",
               "Train a report decoder on the CT tokens of a pretrained BIUD encoder (report.freeze_encoder: frozen,\n"
               "or fine-tuned with layer-wise lr decay), generate the reports of the test split with beam search\n"
               "(eval.beam, eval.length_penalty, eval.max_new_tokens) and score them against the references:\n"
               "BLEU-1..4, METEOR, ROUGE-L, CIDEr-D and clinical efficacy (precision/recall/F1 of the findings the\n"
               "entity extractor of text.lexicon finds in both). Writes into --out: the run (config.resolved.yaml,\n"
               "log.txt, metrics.jsonl, checkpoints/), report.json (nlg.*, clinical.micro|macro|per_finding),\n"
               "reports.csv (id, reference, generated and their findings side by side) and reports.txt.\n"
               "Config section report: (see --help-config); recipe: configs/report.yaml.");
  app.addCommon(app::kAll);
  std::string run, resume, split;
  int beam = 0;
  bool finetuneEncoder = false;
  app.cli().add_option("--run", run,
                       "pretrained BIUD run folder (or checkpoint folder) whose CT encoder is used "
                       "(default: report.run)");
  app.cli().add_flag("--finetune-encoder", finetuneEncoder, "train the CT encoder too (report.freeze_encoder=false)");
  app.cli()
      .add_option("--beam", beam, "beam size for generation; 1 = greedy (default: eval.beam)")
      ->check(CLI::PositiveNumber);
  app.cli().add_option("--split", split, "split whose reports are generated and scored (default: data.test_split)");
  std::string protocol;
  app.cli()
      .add_option(
          "--protocol", protocol,
          "report metrics: biud, or ct2rep = CT2Rep's report cleaning with pycocoevalcap BLEU/ROUGE-L (default: "
          "eval.nlg_protocol; docs/eval.md)")
      ->check(CLI::IsMember({"biud", "ct2rep"}));
  app.cli().add_option("--resume", resume, "continue the run in --out: a checkpoint folder, or `latest`");
  return app.run(argc, argv, [&] {
    auto& cfg = app.config();
    cfg.task = "report";
    if (!run.empty()) cfg.report.run = run;
    if (finetuneEncoder) cfg.report.freeze_encoder = false;
    if (beam > 0) cfg.eval.beam = beam;
    if (!protocol.empty()) cfg.eval.nlg_protocol = protocol;
    if (!app.manifest().empty()) cfg.data.manifest = app.manifest();
    if (!resume.empty()) cfg.trainer.resume = resume;
    evaluate::checkPretrainedRun(cfg.report.run);
    cfg.report.run = stdfs::absolute(cfg.report.run).lexically_normal().string();
    evaluate::absolutizePaths(cfg);
    if (split.empty()) split = cfg.data.test_split;
    runtime::setThreads(cfg.threads);
    runtime::seedTorch(static_cast<std::uint64_t>(cfg.seed));
    const auto dev = runtime::selectDevice(cfg.device);
    const std::string out = app.prepareOutDir("report", biud::app::App::OutKind::kTrainingRun);
    log::info("report", "{} | run folder {} | {}", app::versionString(), out, runtime::describe());

    // Read from a cache (data.cache_dir, or one built in <out>/cache); unreadable CTs are left
    // out and listed in <out>/failures.jsonl (exit code 3).
    const size_t failed = evaluate::useEvalCache(cfg, out, {cfg.data.train_split, cfg.data.val_split, split});
    auto [trainer, taskPtr] = train::makeReportTrainer(cfg, out, dev);
    const int rc = trainer->train();
    if (rc != app::kExitOk) return rc;
    auto& task = *taskPtr;
    train::GenerateOptions go;
    go.beams = cfg.eval.beam;
    go.lengthPenalty = cfg.eval.length_penalty;
    go.maxNewTokens = cfg.eval.max_new_tokens;
    const auto g = task.generate(split, go);
    const auto s = train::scoreReports(g.generated, g.references, task.extractor(), cfg.eval.nlg_protocol);

    std::vector<std::vector<std::string>> rows;
    std::string side;
    for (size_t i = 0; i < g.ids.size(); ++i) {
      rows.push_back({g.ids[i], g.references[i], g.generated[i], joinSet(s.referenceFindings[i]),
                      joinSet(s.generatedFindings[i])});
      side += fmt::format("=== {}\nreference [{}]:\n  {}\ngenerated [{}]:\n  {}\n\n", g.ids[i],
                          joinSet(s.referenceFindings[i]), g.references[i], joinSet(s.generatedFindings[i]),
                          g.generated[i]);
    }
    csv::write((stdfs::path(out) / "reports.csv").string(),
               {"id", "reference", "generated", "reference_findings", "generated_findings"}, rows);
    fs::atomicWrite(stdfs::path(out) / "reports.txt", side);
    auto j = s.json;
    j["split"] = split;
    j["manifest"] = cfg.data.manifest;
    j["failed"] = failed;
    j["pretrained"] = task.pretrainedCheckpoint();
    j["freeze_encoder"] = cfg.report.freeze_encoder;
    j["beam"] = cfg.eval.beam;
    j["length_penalty"] = cfg.eval.length_penalty;
    j["max_new_tokens"] = cfg.eval.max_new_tokens;
    j["steps"] = trainer->step();
    fs::atomicWrite(stdfs::path(out) / "report.json", j.dump(2));
    const auto& n = j["nlg"];
    const auto& c = j["clinical"]["micro"];
    log::info(
        "report",
        "{} reports of split `{}`: BLEU-1 {:.3f} BLEU-4 {:.3f} METEOR {:.3f} ROUGE-L {:.3f} CIDEr-D {:.3f} | clinical "
        "efficacy (micro) P {:.3f} R {:.3f} F1 {:.3f}",
        g.ids.size(), split, n["bleu1"].get<double>(), n["bleu4"].get<double>(), n["meteor"].get<double>(),
        n["rouge_l"].get<double>(), n["cider"].get<double>(), c["precision"].get<double>(), c["recall"].get<double>(),
        c["f1"].get<double>());
    log::info("report", "wrote {}/report.json, reports.csv, reports.txt", out);
    if (failed > 0) {
      log::warn("report", "{} CT(s) could not be read and were left out; see {}/failures.jsonl", failed, out);
      return app::kExitPartial;
    }
    return app::kExitOk;
  });
}
