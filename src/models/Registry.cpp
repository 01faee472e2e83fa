#include "biud/models/Registry.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <mutex>

#include <fmt/ranges.h>
#include <torch/script.h>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Schema.h"
#include "biud/models/ResNet.h"
#include "biud/models/ViT2D.h"
#include "biud/models/ViT3D.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

namespace stdfs = std::filesystem;

namespace {

std::vector<std::int64_t> toI64(const std::vector<int>& v) { return {v.begin(), v.end()}; }

ViT3DOptions vit3dPreset(const std::string& p) {
  ViT3DOptions o;
  if (p == "tiny") return o;  // dim 64, depth 2, 4 heads, 32x64x64 volumes, 8x16x16 patches
  o.image_size = {96, 224, 224};
  o.patch = {16, 16, 16};
  if (p == "small") {
    o.dim = 384, o.depth = 12, o.heads = 6;
  } else if (p == "base") {
    o.dim = 768, o.depth = 12, o.heads = 12;
  } else if (p == "large") {
    o.dim = 1024, o.depth = 24, o.heads = 16;
  } else {
    BIUD_THROW(ConfigError, "vit3d: unknown preset `{}` (tiny, small, base, large)", p);
  }
  return o;
}

std::shared_ptr<VisualEncoderImpl> buildVit3d(const NetConfig& c) {
  auto o = vit3dPreset(c.preset);
  if (c.dim) o.dim = c.dim;
  if (c.depth) o.depth = c.depth;
  if (c.heads) o.heads = c.heads;
  if (!c.patch.empty()) {
    BIUD_CHECK(c.patch.size() == 3 || c.patch.size() == 1, ConfigError,
               "model: vit3d patch needs 1 or 3 values (D,H,W), got {}", c.patch.size());
    o.patch = c.patch.size() == 3 ? toI64(c.patch) : std::vector<std::int64_t>(3, c.patch[0]);
  }
  if (!c.image_size.empty()) {
    BIUD_CHECK(c.image_size.size() == 3, ConfigError, "model: vit3d image_size needs 3 values (D,H,W), got {}",
               c.image_size.size());
    o.image_size = toI64(c.image_size);
  }
  if (c.in_channels) o.in_channels = c.in_channels;
  if (!c.pool.empty()) o.pool = c.pool;
  if (!c.pos_embedding.empty()) o.pos = c.pos_embedding;
  o.dropout = c.dropout;
  o.token_dropout = c.token_dropout;
  o.checkpointing = c.checkpointing;
  return ViT3D(o).ptr();
}

VisualFactory buildResnet(const std::string& depth, int dims) {
  return [depth, dims](const NetConfig& c) -> std::shared_ptr<VisualEncoderImpl> {
    auto o = resnetPreset(depth, dims);
    o.in_channels = c.in_channels ? c.in_channels : (dims == 3 ? 1 : 3);
    if (!c.pool.empty()) o.pool = c.pool;
    if (c.stem_kernel_depth) {
      BIUD_CHECK(dims == 3, ConfigError, "model: stem_kernel_depth is for 3D ResNets; {} is 2D", depth);
      o.stem_kernel_depth = c.stem_kernel_depth;
    }
    if (c.preset == "tiny")
      o.width = 8;
    else if (c.preset == "small")
      o.width = 32;
    else if (c.preset == "large")
      o.width = 128;
    if (c.dim) {
      // `dim` is the output width: stem width * 8 (basic) or * 32 (bottleneck).
      const int mult = o.block == "basic" ? 8 : 32;
      BIUD_CHECK(c.dim % mult == 0, ConfigError, "model: {} output width {} must be a multiple of {}", depth, c.dim,
                 mult);
      o.width = c.dim / mult;
    }
    return ResNet(o).ptr();
  };
}

std::shared_ptr<VisualEncoderImpl> buildVit2d(const NetConfig& c, bool fixedB16) {
  auto o = vit2dPreset(fixedB16 ? "vit_b_16" : (c.preset == "base" ? "vit_b_16" : c.preset));
  if (fixedB16 && c.preset == "tiny") o = vit2dPreset("tiny");
  if (c.dim) o.dim = c.dim, o.mlp_dim = 4 * c.dim;
  if (c.depth) o.depth = c.depth;
  if (c.heads) o.heads = c.heads;
  if (!c.patch.empty()) o.patch = c.patch[0];
  if (!c.image_size.empty()) o.image_size = c.image_size[0];
  if (c.in_channels) o.in_channels = c.in_channels;
  o.dropout = c.dropout;
  return ViT2D(o).ptr();
}

std::map<std::string, VisualFactory>& registry() {
  static std::map<std::string, VisualFactory> r = {
      {"vit3d", buildVit3d},
      {"resnet3d18", buildResnet("resnet18", 3)},
      {"resnet3d34", buildResnet("resnet34", 3)},
      {"resnet3d50", buildResnet("resnet50", 3)},
      {"resnet18", buildResnet("resnet18", 2)},
      {"resnet50", buildResnet("resnet50", 2)},
      {"vit_b16", [](const NetConfig& c) { return buildVit2d(c, true); }},
      {"vit2d", [](const NetConfig& c) { return buildVit2d(c, false); }},
  };
  return r;
}
std::mutex& registryMutex() {
  static std::mutex m;
  return m;
}

/// A biud run folder (checkpoints/latest) or checkpoint folder (state.json + model.safetensors)
/// means its model.safetensors; anything else is returned as given.
std::string resolveWeights(const std::string& w) {
  if (w.empty() || !stdfs::is_directory(w)) return w;
  const stdfs::path p(w);
  // `latest` is a link to the newest checkpoint folder (train/Checkpoint.h); older runs hold a text file naming it.
  if (stdfs::is_directory(p / "checkpoints" / "latest")) {
    const auto file = p / "checkpoints" / "latest" / "model.safetensors";
    BIUD_CHECK(stdfs::exists(file), IoError, "weights `{}`: checkpoints/latest has no model.safetensors", w);
    return file.string();
  }
  if (stdfs::exists(p / "checkpoints" / "latest")) {
    auto name = fs::readFile((p / "checkpoints" / "latest").string());
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    const auto file = p / "checkpoints" / name / "model.safetensors";
    BIUD_CHECK(stdfs::exists(file), IoError,
               "weights `{}`: checkpoints/latest names `{}`, which has no model.safetensors", w, name);
    return file.string();
  }
  if (stdfs::exists(p / "state.json") && stdfs::exists(p / "model.safetensors"))
    return (p / "model.safetensors").string();
  return w;
}

/// `cfg` with `weights` resolved to a file when it names a biud run or checkpoint folder.
NetConfig resolved(const NetConfig& cfg) {
  NetConfig c = cfg;
  c.weights = resolveWeights(cfg.weights);
  return c;
}

bool isPrefixOfAll(const torch::nn::Module& m, const std::string& prefix) {
  for (const auto& p : m.named_parameters(true))
    if (p.key().rfind(prefix, 0) != 0) return false;
  return true;
}

}  // namespace

void registerVisualEncoder(const std::string& name, VisualFactory factory) {
  std::lock_guard<std::mutex> lock(registryMutex());
  registry()[name] = std::move(factory);
}

std::vector<std::string> visualEncoderNames() {
  std::lock_guard<std::mutex> lock(registryMutex());
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

void freeze(torch::nn::Module& module) {
  module.eval();
  for (auto& p : module.parameters(true)) p.requires_grad_(false);
}

namespace {
/// eval() on the largest submodules of `m` whose parameters are all frozen.
void evalFrozenParts(torch::nn::Module& m) {
  for (auto& child : m.children()) {
    const auto params = child->parameters(/*recurse=*/true);
    if (params.empty()) continue;  // dropout, activations: follow the parent
    const bool frozen =
        std::none_of(params.begin(), params.end(), [](const torch::Tensor& p) { return p.requires_grad(); });
    if (frozen)
      child->eval();
    else
      evalFrozenParts(*child);
  }
}
}  // namespace

void trainMode(torch::nn::Module& module) {
  module.train();
  evalFrozenParts(module);
}

std::shared_ptr<VisualEncoderImpl> makeVisualEncoder(const NetConfig& cfg0) {
  const NetConfig cfg = resolved(cfg0);
  VisualFactory f;
  {
    std::lock_guard<std::mutex> lock(registryMutex());
    auto it = registry().find(cfg.arch);
    if (it == registry().end()) {
      std::vector<std::string> names;
      for (const auto& kv : registry()) names.push_back(kv.first);
      const auto guess = config::closest(cfg.arch, names);
      BIUD_THROW(ConfigError, "model: unknown encoder arch `{}`{} (registered: {})", cfg.arch,
                 guess.empty() ? "" : fmt::format(" — did you mean `{}`?", guess), fmt::join(names, ", "));
    }
    f = it->second;
  }
  auto enc = f(cfg);
  if (!cfg.weights.empty()) {
    tensor::LoadOptions lo;
    lo.ignore = {"fc.", "heads."};  // classifier heads of ImageNet checkpoints
    lo.strict = true;
    lo.selectPrefix = cfg.weights_prefix;
    tensor::LoadReport rep;
    auto* r3 = dynamic_cast<ResNetImpl*>(enc.get());
    if (r3 && r3->spatialDims() == 3 && !stdfs::is_directory(cfg.weights)) {
      // 2D ResNet weights (torchvision layout) for a 3D ResNet are inflated (I3D / Merlin).
      auto w = tensor::readSafetensors(cfg.weights);
      auto it = w.find("conv1.weight");
      if (it != w.end() && it->second.dim() == 4) {
        log::info("models", "{}: inflating 2D weights from {}", cfg.arch, cfg.weights);
        w = inflate2dTo3d(w, *enc);
      }
      rep = tensor::loadStateDict(*enc, w, lo, cfg.weights);
    } else {
      rep = loadWeights(*enc, cfg.weights, lo);
    }
    log::info("models", "{}: {} from {}", cfg.arch, rep.summary(), cfg.weights);
  }
  if (cfg.frozen) freeze(*enc);
  return enc;
}

HfCheckpoint findHfCheckpoint(const std::string& folder) {
  BIUD_CHECK(stdfs::is_directory(folder), IoError, "{}: not a folder (expected an HF checkpoint folder)", folder);
  HfCheckpoint c;
  c.folder = folder;
  const auto p = stdfs::path(folder);
  if (stdfs::exists(p / "config.json")) c.config = (p / "config.json").string();
  if (stdfs::exists(p / "model.safetensors")) c.weights = (p / "model.safetensors").string();
  if (stdfs::exists(p / "vocab.txt")) c.vocab = (p / "vocab.txt").string();
  if (c.weights.empty()) {
    BIUD_CHECK(
        !stdfs::exists(p / "pytorch_model.bin"), IoError,
        "{}: has pytorch_model.bin but no model.safetensors. biud does not read pickled .bin files; convert "
        "once with Python:  python -c \"import torch,safetensors.torch as s; "
        "s.save_file({{k:v.contiguous() for k,v in torch.load('{}/pytorch_model.bin',map_location='cpu').items()}}, "
        "'{}/model.safetensors')\"",
        folder, folder, folder);
    BIUD_CHECK(!stdfs::exists(p / "model.safetensors.index.json"), IoError,
               "{}: sharded safetensors (model.safetensors.index.json) are not supported yet; merge the shards into "
               "model.safetensors",
               folder);
    BIUD_THROW(IoError, "{}: no model.safetensors in the folder", folder);
  }
  return c;
}

tensor::LoadReport loadWeights(torch::nn::Module& module, const std::string& weights,
                               const tensor::LoadOptions& options) {
  std::string file = weights;
  if (stdfs::is_directory(weights)) file = findHfCheckpoint(weights).weights;
  BIUD_CHECK(stdfs::exists(file), IoError, "weights `{}` do not exist (give a .safetensors file or an HF folder)",
             file);
  BIUD_CHECK(file.size() < 4 || (file.substr(file.size() - 4) != ".bin" && file.substr(file.size() - 3) != ".pt"),
             IoError,
             "weights `{}`: pickled PyTorch files are not read by biud; save them as safetensors "
             "(safetensors.torch.save_file(state_dict, 'model.safetensors'))",
             file);
  auto tensors = tensor::readSafetensors(file);
  auto opt = options;
  if (opt.stripPrefix.empty()) {
    // HF task checkpoints (BertForMaskedLM, ...) nest the backbone under `bert.` / `model.`.
    for (const char* pre : {"bert.", "model."}) {
      const bool fileHas =
          std::any_of(tensors.begin(), tensors.end(), [&](const auto& kv) { return kv.first.rfind(pre, 0) == 0; });
      if (fileHas && !isPrefixOfAll(module, pre)) {
        opt.stripPrefix = pre;
        break;
      }
    }
  }
  // Non-persistent buffers of HF (position ids) are not weights.
  opt.ignore.push_back("embeddings.position_ids");
  opt.ignore.push_back("embeddings.token_type_ids");
  return tensor::loadStateDict(module, tensors, opt, file);
}

BertModel makeTextEncoder(const NetConfig& cfg0) {
  const NetConfig cfg = resolved(cfg0);
  BertOptions o;
  const bool folder = !cfg.weights.empty() && stdfs::is_directory(cfg.weights);
  if (folder) {
    auto ck = findHfCheckpoint(cfg.weights);
    BIUD_CHECK(!ck.config.empty(), IoError, "{}: HF folder without config.json", cfg.weights);
    o = BertOptions::fromJsonFile(ck.config);
  } else {
    o = BertOptions::preset(cfg.preset);
    if (cfg.dim) o.hidden_size = cfg.dim, o.intermediate_size = 4 * cfg.dim;
    if (cfg.depth) o.num_hidden_layers = cfg.depth;
    if (cfg.heads) o.num_attention_heads = cfg.heads;
    if (cfg.vocab_size) o.vocab_size = cfg.vocab_size;
    if (cfg.max_len) o.max_position_embeddings = cfg.max_len;
  }
  if (!cfg.pool.empty()) o.pool = cfg.pool;
  o.hidden_dropout_prob = o.attention_probs_dropout_prob = cfg.dropout;
  BertModel m(o);
  if (!cfg.weights.empty()) {
    tensor::LoadOptions lo;
    lo.ignore = {"cls.", "pooler."};
    lo.selectPrefix = cfg.weights_prefix;
    if (!o.add_pooler) lo.ignore.push_back("pooler.");
    lo.allowMissing = true;  // checkpoints without a pooler (sentence-transformers) keep its init
    auto rep = loadWeights(*m, cfg.weights, lo);
    // Everything but the pooler must have been in the file.
    for (const auto& k : rep.missing)
      BIUD_CHECK(k.rfind("pooler.", 0) == 0, ValueError,
                 "{}: weight `{}` is missing from the checkpoint (is it a BERT checkpoint?)", cfg.weights, k);
    log::info("models", "text encoder: {} from {}", rep.summary(), cfg.weights);
  }
  if (cfg.frozen) freeze(*m);
  return m;
}

FusionEncoder makeFusionEncoder(const NetConfig& cfg, const BertModel& text, std::int64_t ctDim) {
  FusionOptions o;
  o.bert = text->opt;
  o.bert.num_hidden_layers = cfg.depth ? cfg.depth : (cfg.preset == "tiny" ? 2 : cfg.preset == "large" ? 6 : 4);
  if (cfg.heads) o.bert.num_attention_heads = cfg.heads;
  o.bert.hidden_dropout_prob = o.bert.attention_probs_dropout_prob = cfg.dropout;
  o.ct_dim = ctDim;
  FusionEncoder f(o, text->embeddings->word_embeddings);
  if (!cfg.weights.empty()) loadWeights(*f, cfg.weights);
  if (cfg.frozen) freeze(*f);
  return f;
}

ReportDecoder makeReportDecoder(const NetConfig& cfg, std::int64_t memoryDim, std::int64_t vocab,
                                const DecoderSpecialIds& special) {
  ReportDecoderOptions o;
  if (cfg.preset == "tiny")
    o.dim = 64, o.depth = 2, o.heads = 4;
  else if (cfg.preset == "small")
    o.dim = 384, o.depth = 4, o.heads = 6;
  else if (cfg.preset == "large")
    o.dim = 768, o.depth = 12, o.heads = 12;
  if (cfg.dim) o.dim = cfg.dim;
  if (cfg.depth) o.depth = cfg.depth;
  if (cfg.heads) o.heads = cfg.heads;
  if (cfg.max_len) o.max_len = cfg.max_len;
  if (cfg.vocab_size)
    o.vocab_size = cfg.vocab_size;
  else if (vocab)
    o.vocab_size = vocab;
  o.memory_dim = memoryDim;
  o.dropout = cfg.dropout;
  o.bos_id = special.bos, o.eos_id = special.eos, o.pad_id = special.pad;
  for (auto id : {o.bos_id, o.eos_id, o.pad_id})
    BIUD_CHECK(id >= 0 && id < o.vocab_size, ConfigError,
               "report decoder: special token ids bos/eos/pad = {}/{}/{} must lie in the vocabulary of {} tokens; pass "
               "the tokenizer's ids (DecoderSpecialIds) or set model.decoder.vocab_size",
               o.bos_id, o.eos_id, o.pad_id, o.vocab_size);
  ReportDecoder d(o);
  if (!cfg.weights.empty()) loadWeights(*d, cfg.weights);
  if (cfg.frozen) freeze(*d);
  return d;
}

TorchScriptEncoderImpl::TorchScriptEncoderImpl(const std::string& path, std::int64_t dim, int spatialDims)
    : path_(path), dim_(dim), dims_(spatialDims) {
  fs::requireFile(path, "TorchScript teacher (torch.jit.save output)");
  std::shared_ptr<torch::jit::Module> m;
  try {
    m = std::make_shared<torch::jit::Module>(torch::jit::load(path));
  } catch (const c10::Error& e) {
    BIUD_THROW(IoError,
               "{}: not a loadable TorchScript file ({}). Export it with torch.jit.save(torch.jit.script(model), path)",
               path, e.what_without_backtrace());
  }
  m->eval();
  for (auto p : m->parameters()) p.requires_grad_(false);
  module_ = m;
}

EncoderOutput TorchScriptEncoderImpl::encode(const torch::Tensor& x) {
  auto& m = *std::static_pointer_cast<torch::jit::Module>(module_);
  torch::NoGradGuard ng;
  auto r = m.forward({x});
  EncoderOutput out;
  if (r.isTensor()) {
    out.pooled = r.toTensor();
  } else if (r.isTuple()) {
    const auto& el = r.toTupleRef().elements();
    BIUD_CHECK(!el.empty() && el[0].isTensor(), ValueError, "{}: the teacher returned an empty/non-tensor tuple",
               path_);
    out.pooled = el[0].toTensor();
    if (el.size() > 1 && el[1].isTensor()) out.tokens = el[1].toTensor();
  } else if (r.isGenericDict()) {
    auto d = r.toGenericDict();
    BIUD_CHECK(d.contains("pooled"), ValueError, "{}: the teacher returned a dict without `pooled`", path_);
    out.pooled = d.at("pooled").toTensor();
    if (d.contains("tokens")) out.tokens = d.at("tokens").toTensor();
  } else {
    BIUD_THROW(ValueError, "{}: the teacher returned {}, expected a tensor, tuple or dict", path_, r.tagKind());
  }
  BIUD_CHECK(out.pooled.dim() == 2 && out.pooled.size(1) == dim_, ValueError,
             "{}: the teacher's output is {}, expected [B, {}] (set the teacher width)", path_,
             tensor::shapeStr(out.pooled.sizes()), dim_);
  return out;
}

}  // namespace biud::models
