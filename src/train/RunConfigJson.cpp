#include "biud/train/RunConfigJson.h"

#include <filesystem>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Log.h"
#include "biud/core/Process.h"
#include "biud/image/Preprocess.h"
#include "biud/models/Bert.h"
#include "biud/models/Fusion.h"
#include "biud/models/Heads.h"
#include "biud/models/Registry.h"
#include "biud/models/ReportDecoder.h"
#include "biud/models/ResNet.h"
#include "biud/models/ViT2D.h"
#include "biud/models/ViT3D.h"
#include "biud/text/WordPiece.h"
#include "biud/train/Checkpoint.h"

namespace biud::train {

namespace stdfs = std::filesystem;

namespace {

using nlohmann::json;

std::string resnetArch(const models::ResNetOptions& o) {
  std::string depth;
  const bool basic = o.block == "basic";
  if (basic && o.layers == std::vector<std::int64_t>{2, 2, 2, 2})
    depth = "18";
  else if (basic && o.layers == std::vector<std::int64_t>{3, 4, 6, 3})
    depth = "34";
  else if (!basic && o.layers == std::vector<std::int64_t>{3, 4, 6, 3})
    depth = "50";
  else if (!basic && o.layers == std::vector<std::int64_t>{3, 4, 23, 3})
    depth = "101";
  else
    return "resnet";
  return (o.spatial_dims == 3 ? "resnet3d" : "resnet") + depth;
}

json describeBert(const models::BertOptions& o) {
  return {{"type", "bert"},
          {"arch", "bert"},
          {"vocab_size", o.vocab_size},
          {"hidden_size", o.hidden_size},
          {"num_hidden_layers", o.num_hidden_layers},
          {"num_attention_heads", o.num_attention_heads},
          {"intermediate_size", o.intermediate_size},
          {"max_position_embeddings", o.max_position_embeddings},
          {"type_vocab_size", o.type_vocab_size},
          {"pad_token_id", o.pad_token_id},
          {"layer_norm_eps", o.layer_norm_eps},
          {"hidden_act", o.hidden_act},
          {"pool", o.pool},
          {"add_pooler", o.add_pooler},
          {"add_cross_attention", o.add_cross_attention},
          {"normalization", "post-layernorm"},
          {"out_dim", o.hidden_size}};
}

/// The networks of a run's config by child name (for the registry name and preset).
const NetConfig* netConfigOf(const Config& cfg, const std::string& child) {
  if (child == "ct_encoder") return &cfg.model.ct_encoder;
  if (child == "image_encoder") return &cfg.model.xray_encoder;
  if (child == "text_encoder") return &cfg.model.text_encoder;
  return nullptr;
}

/// One network, with every size the Python twin needs (models/*.h are the definitions).
json describeModule(const std::string& name, torch::nn::Module& m, const Config& cfg) {
  const NetConfig* net = netConfigOf(cfg, name);
  json j;
  if (auto* r = dynamic_cast<models::ResNetImpl*>(&m)) {
    const auto& o = r->opt;
    j = {{"type", "resnet"},
         {"arch", resnetArch(o)},
         {"spatial_dims", o.spatial_dims},
         {"block", o.block},
         {"layers", o.layers},
         {"width", o.width},
         {"in_channels", o.in_channels},
         {"num_classes", o.num_classes},
         {"stem_kernel_depth", o.stem_kernel_depth},
         {"pool", o.pool},
         {"normalization", "batchnorm"},
         {"out_dim", r->dim()}};
  } else if (auto* v = dynamic_cast<models::ViT3DImpl*>(&m)) {
    const auto& o = v->opt;
    j = {{"type", "vit3d"},
         {"arch", "vit3d"},
         {"in_channels", o.in_channels},
         {"image_size", o.image_size},
         {"patch", o.patch},
         {"dim", o.dim},
         {"depth", o.depth},
         {"heads", o.heads},
         {"mlp_ratio", o.mlp_ratio},
         {"pos_embedding", o.pos},
         {"pool", o.pool},
         {"normalization", "pre-layernorm"},
         {"layer_norm_eps", 1e-6},
         {"out_dim", o.dim}};
  } else if (auto* v2 = dynamic_cast<models::ViT2DImpl*>(&m)) {
    const auto& o = v2->opt;
    j = {{"type", "vit2d"},
         {"arch", net && net->arch == "vit_b16" ? "vit_b16" : "vit2d"},
         {"image_size", o.image_size},
         {"patch", o.patch},
         {"in_channels", o.in_channels},
         {"dim", o.dim},
         {"depth", o.depth},
         {"heads", o.heads},
         {"mlp_dim", o.mlp_dim},
         {"num_classes", o.num_classes},
         {"pool", "cls"},
         {"normalization", "pre-layernorm"},
         {"layer_norm_eps", 1e-6},
         {"out_dim", o.dim}};
  } else if (auto* b = dynamic_cast<models::BertModelImpl*>(&m)) {
    j = describeBert(b->opt);
  } else if (auto* p = dynamic_cast<models::ProjectionHeadImpl*>(&m)) {
    const bool linear = !p->proj.is_empty();
    const auto& first = linear ? p->proj : p->fc1;
    j = {{"type", "projection"},
         {"in", first->weight.size(1)},
         {"out", (linear ? p->proj : p->fc2)->weight.size(0)},
         {"hidden", linear ? 0 : p->fc1->weight.size(0)},
         {"normalize", p->normalize}};
  } else if (auto* a = dynamic_cast<models::DistillAdapterImpl*>(&m)) {
    j = {{"type", "adapter"}, {"in", a->proj->weight.size(1)}, {"out", a->proj->weight.size(0)}, {"normalize", true}};
  } else if (auto* t = dynamic_cast<models::TemperatureImpl*>(&m)) {
    j = {{"type", "temperature"}, {"min", t->minTau}, {"max", t->maxTau}, {"learnable", t->log_tau.requires_grad()}};
  } else if (auto* l = dynamic_cast<torch::nn::LinearImpl*>(&m)) {
    j = {{"type", "linear"}, {"in", l->weight.size(1)}, {"out", l->weight.size(0)}, {"bias", l->bias.defined()}};
  } else if (auto* f = dynamic_cast<models::FusionEncoderImpl*>(&m)) {
    j = {{"type", "fusion"}, {"bert", describeBert(f->opt.bert)}, {"ct_dim", f->opt.ct_dim}};
  } else if (auto* d = dynamic_cast<models::ReportDecoderImpl*>(&m)) {
    const auto& o = d->opt;
    j = {{"type", "report_decoder"},   {"vocab_size", o.vocab_size}, {"dim", o.dim},
         {"depth", o.depth},           {"heads", o.heads},           {"max_len", o.max_len},
         {"memory_dim", o.memory_dim}, {"mlp_ratio", o.mlp_ratio},   {"bos_id", o.bos_id},
         {"eos_id", o.eos_id},         {"pad_id", o.pad_id}};
  } else if (dynamic_cast<models::TorchScriptEncoderImpl*>(&m)) {
    j = {{"type", "torchscript"}};
  } else {
    j = {{"type", "unknown"}};
  }
  if (net && net->arch == j.value("arch", std::string())) j["preset"] = net->preset;
  return j;
}

json describeCt(const CtPreprocessConfig& c) {
  return {{"spacing", c.spacing},
          {"size", c.size},
          {"hu_min", c.hu_min},
          {"hu_max", c.hu_max},
          {"scale", c.scale},
          {"pad_value", c.pad_value},
          {"crop", c.crop},
          {"body_threshold", c.body_threshold},
          {"window", c.window},
          {"grid", c.grid},
          {"clip_before_resample", c.clip_before_resample},
          {"storage", c.storage},
          {"hash", image::preprocessHash(c)},
          {"description", image::describePreprocess(c)},
          // What the encoder is fed: one channel, z slowest and x fastest (the cache's layout).
          {"layout", "[1, z, y, x] (size is x, y, z)"}};
}

/// finetune/report: the BIUD run the model started from decides the encoder's input grid and
/// the tokenizer (LoadRun.cpp reads it the same way). The config of this run otherwise.
struct Inputs {
  CtPreprocessConfig ct;
  TextConfig text;
  std::string from;  ///< the pretrained run's config file, when it was read
};
Inputs inputsOf(const Config& cfg) {
  Inputs in{cfg.data.ct, cfg.text, ""};
  const std::string& pre = cfg.task == "finetune" ? cfg.finetune.run : cfg.task == "report" ? cfg.report.run : "";
  if (pre.empty()) return in;
  try {
    stdfs::path root(pre);
    if (stdfs::exists(root / "state.json")) root = root.parent_path().parent_path();
    const auto file = root / "config.resolved.yaml";
    if (!stdfs::exists(file)) return in;
    const auto pc = config::parse<Config>(config::Document::fromFile(file.string()));
    in.ct = pc.data.ct;
    in.text = pc.text;
    in.from = file.string();
  } catch (const std::exception& e) {
    log::warn("train", "config.json: cannot read the pretrained run `{}` ({}); describing this run's data.ct", pre,
              e.what());
  }
  return in;
}

}  // namespace

std::map<std::string, std::string> checkpointMetadata(const Config& cfg, std::int64_t step) {
  return {{"format", "pt"},
          {"biud_checkpoint_format", std::to_string(kCheckpointFormatVersion)},
          {"task", cfg.task},
          {"step", std::to_string(step)}};
}

json describeCheckpoint(const Config& cfg, torch::nn::Module& module, std::int64_t step,
                        std::map<std::string, std::string>* tokenizerFiles) {
  json j;
  j["format"] = "biud-checkpoint";
  j["format_version"] = kCheckpointFormatVersion;
  j["producer"] = app::versionString();
  j["task"] = cfg.task;
  j["step"] = step;
  j["embed_dim"] = cfg.model.embed_dim;
  j["weights"] = {{"model", "model.safetensors"}, {"ema", cfg.trainer.ema > 0 ? json("ema.safetensors") : json()}};
  json mods = json::object();
  for (const auto& c : module.named_children()) mods[c.key()] = describeModule(c.key(), *c.value(), cfg);
  j["modules"] = mods;

  // How the embeddings biud-embed writes are formed from the modules.
  json emb = json::object();
  auto has = [&](const char* k) { return mods.contains(k); };
  if (has("ct_encoder")) {
    emb["ct"] = {{"encoder", "ct_encoder"}, {"head", has("ct_proj") ? json("ct_proj") : json()}, {"input", "ct"}};
    if (has("adapter")) emb["ct_adapted"] = {{"from", "ct"}, {"head", "adapter"}, {"normalize", true}};
  }
  if (has("image_encoder")) {
    const auto& n = cfg.model.xray_encoder;
    const auto dims = mods["image_encoder"].value("spatial_dims", 2);
    emb["image"] = {{"encoder", "image_encoder"},
                    {"head", "image_proj"},
                    {"input", "xray"},
                    {"channels", n.in_channels > 0 ? n.in_channels : (dims == 3 ? 1 : 3)}};
  }
  if (has("text_encoder") && has("text_proj")) emb["text"] = {{"encoder", "text_encoder"}, {"head", "text_proj"}};
  j["embeddings"] = emb;

  const Inputs in = inputsOf(cfg);
  j["preprocessing"] = {{"ct", describeCt(in.ct)},
                        {"xray", {{"size", cfg.data.xray.size}, {"pad_square", cfg.data.xray.pad_square}}}};
  if (!in.from.empty()) j["preprocessing"]["ct"]["from"] = in.from;

  // The tokenizer: runs with a report tower or a report decoder.
  j["tokenizer"] = nullptr;
  if (has("text_encoder") || has("decoder")) {
    try {
      const auto tok = text::makeTokenizer(in.text);
      const auto sp = tok->specialIds();
      json t = {
          {"kind", tok->kind()},
          {"vocab_size", tok->vocabSize()},
          {"max_length", in.text.max_length},
          {"padding", "longest"},
          {"truncation", "end, before the closing special token"},
          {"special_ids", {{"pad", sp.pad}, {"unk", sp.unk}, {"cls", sp.cls}, {"sep", sp.sep}, {"mask", sp.mask}}}};
      if (const auto* wp = dynamic_cast<const text::WordPiece*>(tok.get())) {
        const auto& o = wp->options();
        t["vocab"] = "vocab.txt";
        t["config"] = "tokenizer_config.json";
        t["lowercase"] = o.lowercase;
        t["strip_accents"] = o.stripAccents < 0 ? json() : json(o.stripAccents != 0);
        t["tokenize_chinese_chars"] = o.tokenizeChineseChars;
        t["max_input_chars_per_word"] = o.maxInputCharsPerWord;
        t["tokens"] = {
            {"unk", o.unkToken}, {"cls", o.clsToken}, {"sep", o.sepToken}, {"pad", o.padToken}, {"mask", o.maskToken}};
        if (tokenizerFiles) (*tokenizerFiles)["vocab.txt"] = in.text.vocab;
      } else {
        t["model"] = "spm.model";
        if (tokenizerFiles) (*tokenizerFiles)["spm.model"] = in.text.spm_model;
      }
      j["tokenizer"] = t;
    } catch (const Error& e) {
      log::warn("train",
                "config.json: the tokenizer of text.* cannot be described ({}); a reader needs the run's "
                "config.resolved.yaml for it",
                e.what());
    }
  }
  return j;
}

void writeCheckpointConfig(const stdfs::path& dir, const Config& cfg, torch::nn::Module& module, std::int64_t step) {
  std::map<std::string, std::string> files;
  const auto j = describeCheckpoint(cfg, module, step, &files);
  for (const auto& [name, src] : files) fs::atomicWrite(dir / name, fs::readFile(src));
  if (j["tokenizer"].is_object() && j["tokenizer"]["kind"] == "wordpiece") {
    // The effective options (HF's names), so that the copied vocab tokenises the same anywhere:
    // HF's BertTokenizer(Fast).from_pretrained(<checkpoint>) reads this file too.
    const auto& t = j["tokenizer"];
    json tc = {{"tokenizer_class", "BertTokenizer"},
               {"do_lower_case", t["lowercase"]},
               {"strip_accents", t["strip_accents"]},
               {"tokenize_chinese_chars", t["tokenize_chinese_chars"]},
               {"max_input_chars_per_word", t["max_input_chars_per_word"]},
               {"model_max_length", t["max_length"]},
               {"unk_token", t["tokens"]["unk"]},
               {"cls_token", t["tokens"]["cls"]},
               {"sep_token", t["tokens"]["sep"]},
               {"pad_token", t["tokens"]["pad"]},
               {"mask_token", t["tokens"]["mask"]}};
    fs::atomicWrite(dir / "tokenizer_config.json", tc.dump(2) + "\n");
  }
  fs::atomicWrite(dir / "config.json", j.dump(2) + "\n");
}

}  // namespace biud::train
