#include "biud/evaluate/Embed.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/core/Progress.h"
#include "biud/data/TextBatch.h"
#include "biud/evaluate/LoadRun.h"
#include "biud/image/Preprocess.h"
#include "biud/image/VolumeIO.h"
#include "biud/models/Registry.h"
#include "biud/tensor/Npy.h"
#include "biud/tensor/Safetensors.h"
#include "biud/text/WordPiece.h"
#include "biud/train/Optim.h"
#include "biud/train/Precision.h"

namespace biud::evaluate {

namespace stdfs = std::filesystem;

namespace {

torch::Tensor readTensorFile(const std::string& path, const std::string& key) {
  if (path.size() > 4 && path.substr(path.size() - 4) == ".npy") return tensor::readNpy(path);
  auto m = tensor::readSafetensors(path);
  BIUD_CHECK(!m.empty(), DataError, "{}: no tensors in the file", path);
  if (!key.empty()) {
    auto it = m.find(key);
    BIUD_CHECK(it != m.end(), DataError, "{}: no tensor `{}` (use --tensor-key with one of the file's names)", path,
               key);
    return it->second;
  }
  BIUD_CHECK(m.size() == 1, DataError, "{}: {} tensors in the file; choose one with --tensor-key", path, m.size());
  return m.begin()->second;
}

/// Milliseconds of each of `iters` calls of `f` after `warmup` untimed ones.
std::vector<double> timeEach(const std::function<void()>& f, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> out;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    out.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return out;
}

/// Peak resident memory of this process so far (MiB).
double peakRssMb() {
  struct rusage u {};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace

std::vector<std::string> readTextLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);)
    if (l.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(l);
  return lines;
}

nlohmann::json benchNetwork(const BenchOptions& opt, Config& cfg, const c10::Device& device) {
  std::vector<int> input = opt.input;
  nlohmann::json r;
  std::function<void()> step;
  std::shared_ptr<torch::nn::Module> mod;
  torch::Tensor x, mask;
  if (opt.net == "text") {
    auto m = models::makeTextEncoder(cfg.model.text_encoder);
    m->to(device);
    m->train();
    x = torch::randint(1000, m->opt.vocab_size, {opt.batch, opt.seq},
                       torch::TensorOptions().dtype(torch::kLong).device(device));
    mask = torch::ones_like(x);
    step = [m, x, mask]() mutable {
      m->zero_grad();
      m->encode(x, mask).pooled.pow(2).sum().backward();
    };
    mod = m.ptr();
    r["arch"] = "bert";
    r["preset"] = cfg.model.text_encoder.preset;
  } else {
    auto& nc = opt.net == "ct" ? cfg.model.ct_encoder : cfg.model.xray_encoder;
    auto enc = models::makeVisualEncoder(nc);
    enc->to(device);
    enc->train();
    std::vector<std::int64_t> shape{opt.batch, nc.in_channels ? nc.in_channels : (enc->spatialDims() == 3 ? 1 : 3)};
    if (input.empty()) {
      if (enc->spatialDims() == 3)
        input = nc.preset == "tiny" ? std::vector<int>{32, 64, 64} : std::vector<int>{96, 224, 224};
      else
        input = nc.preset == "tiny" ? std::vector<int>{64, 64} : std::vector<int>{224, 224};
    }
    BIUD_CHECK(static_cast<int>(input.size()) == enc->spatialDims(), ConfigError,
               "--bench-input needs {} sizes for `{}`", enc->spatialDims(), nc.arch);
    for (int s : input) shape.push_back(s);
    x = torch::randn(shape, torch::TensorOptions().device(device));
    step = [enc, x]() {
      enc->zero_grad();
      enc->encode(x).pooled.pow(2).sum().backward();
    };
    mod = enc;
    r["arch"] = nc.arch;
    r["preset"] = nc.preset;
  }
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  std::unique_ptr<torch::optim::Optimizer> optim;
  if (opt.optimizer == "adamw") {
    cfg.optimizer.name = "adamw";
    optim = train::buildOptimizer(*mod, cfg.optimizer);
  }
  const auto each = timeEach(
      [&] {
        {
          train::AutocastScope autocast(opt.precision, device);
          step();
        }
        if (optim) optim->step();
        sync();
      },
      opt.warmup, opt.iters);
  double ms = 0;
  for (double v : each) ms += v;
  ms /= static_cast<double>(each.size());
  auto sorted = each;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  r["ms_each"] = each;
  r["ms_median"] = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  r["optimizer"] = optim ? (train::fusedAdamW() ? "adamw-fused" : "adamw-loop") : "none";
  r["peak_rss_mb"] = peakRssMb();
  r["precision"] = opt.precision;
  std::int64_t params = 0;
  for (auto& p : mod->parameters()) params += p.numel();
  r["input"] = std::vector<std::int64_t>(x.sizes().begin(), x.sizes().end());
  r["params"] = params;
  r["threads"] = at::get_num_threads();
  r["device"] = device.str();
  r["ms_fwd_bwd"] = ms;  // mean over the timed iterations (with --bench-optimizer adamw: the whole step)
  return r;
}

EmbedResult embed(const EmbedOptions& opt, const Config& cfg, const c10::Device& device) {
  std::string texts = opt.texts;
  std::vector<std::string> volumes = opt.volumes;
  const auto& xrays = opt.xrays;
  BIUD_CHECK(!texts.empty() || !volumes.empty() || !xrays.empty(), ConfigError,
             "nothing to embed: give --texts FILE, --volumes FILE... or --xrays FILE... (or --bench)");
  const auto out = opt.prepareOut ? opt.prepareOut() : std::string(".");
  // A volume that cannot be read or has the wrong shape is skipped and listed, not fatal:
  // `volume_index` in the output names the inputs that were embedded (rows in that order).
  const std::size_t nVolumes = volumes.size();
  std::vector<nlohmann::json> failures;
  auto guarded = [&](std::size_t i, const std::function<void()>& read) {
    try {
      read();
      return true;
    } catch (const Error& e) {
      log::warn("embed", "volume {} (`{}`) skipped: {}", i, volumes[i], e.what());
      failures.push_back({{"index", i}, {"file", volumes[i]}, {"error", e.what()}});
      return false;
    }
  };
  tensor::TensorMap result;
  nlohmann::json summary;
  torch::NoGradGuard ng;
  if (!opt.run.empty()) {
    // A trained run: everything in its shared embedding space (L2-normalised).
    auto run = loadRun(opt.run, device);
    auto& model = *run.model;
    summary["run"] = run.checkpoint;
    if (!texts.empty()) {
      const auto lines = readTextLines(texts);
      BIUD_CHECK(model.can(Capability::kText), ConfigError,
                 "--texts with --run needs a biud or clip2d run (a text encoder in the shared space); `{}` is a {} run",
                 opt.run, model.task());
      BIUD_CHECK(!lines.empty(), DataError, "{}: no non-blank lines to embed", texts);
      std::vector<torch::Tensor> parts;
      for (std::size_t s = 0; s < lines.size(); s += static_cast<std::size_t>(opt.batch)) {
        const std::vector<std::string> part(lines.begin() + static_cast<long>(s),
                                            lines.begin() + static_cast<long>(std::min(lines.size(), s + opt.batch)));
        auto tb = data::tokenizeBatch(*run.tokenizer, part, run.cfg.text.max_length);
        parts.push_back(model.encodeText(tb.ids.to(device), tb.mask.to(device)).cpu());
      }
      result["text_embedding"] = torch::cat(parts);
    }
    if (!volumes.empty()) {
      // The shared space when the run has one (biud, CT-CLIP), else its CT backbone alone
      // (finetune/report: their head or decoder is not an embedding).
      const bool shared = model.can(Capability::kCt);
      BIUD_CHECK(shared || model.can(Capability::kCtEncoder), ConfigError,
                 "--volumes with --run needs a biud, finetune or report run (a CT encoder); `{}` is a {} run", opt.run,
                 model.task());
      std::vector<torch::Tensor> emb, adapted;
      std::vector<std::int64_t> done;
      Progress bar("embed volumes", volumes.size(), "volumes");
      for (std::size_t i = 0; i < volumes.size() && !app::stopRequested(); ++i) {
        torch::Tensor v;
        const auto ext = stdfs::path(volumes[i]).extension().string();
        const bool ok = guarded(i, [&] {
          if (ext == ".npy" || ext == ".safetensors") {
            v = readTensorFile(volumes[i], opt.tensorKey).to(torch::kFloat32);
            if (v.dim() == 3) v = v.unsqueeze(0);
          } else {
            auto pre = image::preprocessCt(image::readVolume(volumes[i], image::VolumeReadOptions::withSpacingRange(
                                                                             run.cfg.data.ct.spacing_range)),
                                           run.cfg.data.ct);
            v = torch::from_blob(pre.data.data(), {1, pre.size[2], pre.size[1], pre.size[0]}, torch::kFloat32).clone();
          }
        });
        bar.advance();
        if (!ok) continue;
        done.push_back(static_cast<std::int64_t>(i));
        if (shared) {
          auto o = model.encodeCt(v.unsqueeze(0).to(device));
          emb.push_back(o.ct.cpu());
          if (o.adapted.defined()) adapted.push_back(o.adapted.cpu());
          if (opt.saveTokens && o.tokens.defined())
            result["volume_tokens_" + std::to_string(i)] = o.tokens.squeeze(0).cpu();
        } else {
          auto o = model.ctEncoder()->encode(v.unsqueeze(0).to(device));
          emb.push_back(o.pooled.cpu());
          if (opt.saveTokens && o.tokens.defined())
            result["volume_tokens_" + std::to_string(i)] = o.tokens.squeeze(0).cpu();
        }
      }
      bar.finish();
      BIUD_CHECK(!emb.empty(), DataError, "none of the {} volumes could be read; see {}/failures.jsonl", volumes.size(),
                 out);
      result["volume_embedding"] = torch::cat(emb);
      if (!adapted.empty()) result["volume_adapted"] = torch::cat(adapted);
      result["volume_index"] = torch::tensor(done, torch::kInt64);
    }
    if (!xrays.empty()) {
      BIUD_CHECK(model.can(Capability::kXray), ConfigError, "--xrays needs a clip2d run; `{}` is a {} run", opt.run,
                 model.task());
      std::vector<torch::Tensor> emb;
      for (const auto& x : xrays) {
        auto img = image::preprocessXray(image::readImage2D(x), run.cfg.data.xray);
        auto t = torch::from_blob(img.data.data(), {1, 1, img.size[1], img.size[0]}, torch::kFloat32).clone();
        emb.push_back(model.encodeXray(t.to(device)).cpu());
      }
      result["xray_embedding"] = torch::cat(emb);
    }
    summary["inputs"] = {{"texts", texts}, {"volumes", volumes}, {"xrays", xrays}};
    for (auto& [k, t] : result) summary["outputs"][k] = tensor::shapeStr(t.sizes());
    texts.clear();
    volumes.clear();
  }
  if (!texts.empty()) {
    auto& tc = cfg.model.text_encoder;
    BIUD_CHECK(!tc.weights.empty() && stdfs::is_directory(tc.weights), ConfigError,
               "--texts needs an HF BERT folder with vocab.txt: --text-model DIR (or model.text_encoder.weights)");
    auto ck = models::findHfCheckpoint(tc.weights);
    BIUD_CHECK(!ck.vocab.empty(), IoError, "{}: no vocab.txt for tokenising the texts", tc.weights);
    text::WordPiece wp(ck.vocab);  // HF-exact; reads tokenizer_config.json beside the vocab
    auto m = models::makeTextEncoder(tc);
    m->to(device);
    m->eval();
    const auto lines = readTextLines(texts);
    BIUD_CHECK(!lines.empty(), DataError, "{}: no non-blank lines to embed", texts);
    std::vector<torch::Tensor> pooled;
    Progress bar("embed texts", lines.size(), "texts");
    for (std::size_t s = 0; s < lines.size() && !app::stopRequested(); s += static_cast<std::size_t>(opt.batch)) {
      const auto e = std::min(lines.size(), s + static_cast<std::size_t>(opt.batch));
      const std::vector<std::string> part(lines.begin() + static_cast<long>(s), lines.begin() + static_cast<long>(e));
      const auto tb = data::tokenizeBatch(
          wp, part, static_cast<int>(std::min<std::int64_t>(opt.maxLen, m->opt.max_position_embeddings)));
      const auto& idT = tb.ids;
      const auto& mk = tb.mask;
      pooled.push_back(m->encode(idT.to(device), mk.to(device)).pooled.cpu());
      bar.advance(e - s);
    }
    bar.finish();
    result["text_pooled"] = torch::cat(pooled);
    summary["texts"] = {{"file", texts},
                        {"count", result["text_pooled"].size(0)},
                        {"dim", m->dim()},
                        {"pool", m->opt.pool},
                        {"model", tc.weights}};
  }
  if (!volumes.empty()) {
    auto enc = models::makeVisualEncoder(cfg.model.ct_encoder);
    enc->to(device);
    enc->eval();
    std::vector<torch::Tensor> pooled;
    std::vector<std::int64_t> done;
    Progress bar("embed volumes", volumes.size(), "volumes");
    for (std::size_t i = 0; i < volumes.size() && !app::stopRequested(); ++i) {
      torch::Tensor v;
      const bool ok = guarded(i, [&] {
        v = readTensorFile(volumes[i], opt.tensorKey).to(torch::kFloat32);
        if (v.dim() == 3) v = v.unsqueeze(0);
        BIUD_CHECK(v.dim() == 4, DataError, "{}: expected [C,D,H,W] or [D,H,W], got {}", volumes[i],
                   tensor::shapeStr(v.sizes()));
      });
      bar.advance();
      if (!ok) continue;
      done.push_back(static_cast<std::int64_t>(i));
      auto o = enc->encode(v.unsqueeze(0).to(device));
      pooled.push_back(o.pooled.cpu());
      if (opt.saveTokens) result["volume_tokens_" + std::to_string(i)] = o.tokens.squeeze(0).cpu();
    }
    bar.finish();
    BIUD_CHECK(!pooled.empty(), DataError, "none of the {} volumes could be read; see {}/failures.jsonl",
               volumes.size(), out);
    result["volume_pooled"] = torch::cat(pooled);
    result["volume_index"] = torch::tensor(done, torch::kInt64);
    summary["volumes"] = {{"files", volumes},
                          {"count", result["volume_pooled"].size(0)},
                          {"dim", enc->dim()},
                          {"arch", cfg.model.ct_encoder.arch},
                          {"preset", cfg.model.ct_encoder.preset},
                          {"weights", cfg.model.ct_encoder.weights}};
  }
  const auto emb = (stdfs::path(out) / "embeddings.safetensors").string();
  tensor::writeSafetensors(emb, result, {{"producer", "biud-embed"}});
  std::string fl;
  for (const auto& f : failures) fl += f.dump() + "\n";
  fs::atomicWrite(stdfs::path(out) / "failures.jsonl", fl);
  summary["failed"] = failures.size();
  summary["embeddings"] = emb;
  summary["version"] = app::versionString();
  fs::atomicWrite(stdfs::path(out) / "biud-embed.json", summary.dump(2) + "\n");
  log::info("embed", "wrote {}", emb);
  if (!failures.empty())
    log::warn("embed",
              "{} of {} volumes could not be read and were skipped (volume_index lists the embedded ones); "
              "see {}/failures.jsonl",
              failures.size(), nVolumes, out);
  log::info("embed", "wrote {}", emb);
  if (!failures.empty())
    log::warn("embed",
              "{} of {} volumes could not be read and were skipped (volume_index lists the embedded ones); "
              "see {}/failures.jsonl",
              failures.size(), nVolumes, out);
  EmbedResult res;
  res.out = out;
  res.embeddings = emb;
  res.summary = std::move(summary);
  res.failures = std::move(failures);
  res.volumes = nVolumes;
  return res;
}

}  // namespace biud::evaluate
