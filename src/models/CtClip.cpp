#include "biud/models/CtClip.h"

#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/core/Fs.h"
#include "biud/core/Json.h"

namespace biud::models {

namespace F = torch::nn::functional;
namespace stdfs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Options <-> ctclip.json

std::string CtClipOptions::toJson() const {
  nlohmann::ordered_json j;
  j["format"] = "biud-ctclip-1";
  j["source"] = "CT-CLIP (ibrahimethemhamamci/CT-CLIP), imported by biud-import-weights ct-clip";
  j["image"] = {{"dim", image.dim},
                {"codebook_size", image.codebook_size},
                {"image_size", image.image_size},
                {"patch_size", image.patch_size},
                {"temporal_patch_size", image.temporal_patch_size},
                {"spatial_depth", image.spatial_depth},
                {"temporal_depth", image.temporal_depth},
                {"dim_head", image.dim_head},
                {"heads", image.heads},
                {"channels", image.channels},
                {"ff_mult", image.ff_mult}};
  j["text"] = {{"vocab_size", text.vocab_size},
               {"hidden_size", text.hidden_size},
               {"num_hidden_layers", text.num_hidden_layers},
               {"num_attention_heads", text.num_attention_heads},
               {"intermediate_size", text.intermediate_size},
               {"max_position_embeddings", text.max_position_embeddings},
               {"type_vocab_size", text.type_vocab_size},
               {"layer_norm_eps", text.layer_norm_eps},
               {"hidden_act", text.hidden_act}};
  j["latent_dim"] = latent_dim;
  j["biud_layout"] = biud_layout;
  return j.dump(2) + "\n";
}

CtClipOptions CtClipOptions::fromJsonFile(const std::string& path) {
  const nlohmann::json j = fs::readJsonFile(path, "CT-CLIP model description");
  CtClipOptions o;
  auto need = [&](const nlohmann::json& obj, const char* section, const char* key) -> const nlohmann::json& {
    BIUD_CHECK(obj.is_object() && obj.contains(key), DataError,
               "{}: `{}{}` missing (re-run biud-import-weights ct-clip)", path, section, key);
    return obj.at(key);
  };
  try {
    BIUD_CHECK(
        j.value("format", std::string()) == "biud-ctclip-1", DataError,
        "{}: format `{}` is not biud-ctclip-1 (written by another biud version? re-run biud-import-weights ct-clip)",
        path, j.value("format", std::string()));
    const auto& im = need(j, "", "image");
    for (const auto& [k, v] : im.items())
      BIUD_CHECK(std::set<std::string>({"dim", "codebook_size", "image_size", "patch_size", "temporal_patch_size",
                                        "spatial_depth", "temporal_depth", "dim_head", "heads", "channels", "ff_mult"})
                     .count(k),
                 DataError, "{}: unknown key `image.{}`", path, k);
    o.image.dim = need(im, "image.", "dim");
    o.image.codebook_size = need(im, "image.", "codebook_size");
    o.image.image_size = need(im, "image.", "image_size");
    o.image.patch_size = need(im, "image.", "patch_size");
    o.image.temporal_patch_size = need(im, "image.", "temporal_patch_size");
    o.image.spatial_depth = need(im, "image.", "spatial_depth");
    o.image.temporal_depth = need(im, "image.", "temporal_depth");
    o.image.dim_head = need(im, "image.", "dim_head");
    o.image.heads = need(im, "image.", "heads");
    o.image.channels = need(im, "image.", "channels");
    o.image.ff_mult = need(im, "image.", "ff_mult");
    const auto& tx = need(j, "", "text");
    o.text.vocab_size = need(tx, "text.", "vocab_size");
    o.text.hidden_size = need(tx, "text.", "hidden_size");
    o.text.num_hidden_layers = need(tx, "text.", "num_hidden_layers");
    o.text.num_attention_heads = need(tx, "text.", "num_attention_heads");
    o.text.intermediate_size = need(tx, "text.", "intermediate_size");
    o.text.max_position_embeddings = need(tx, "text.", "max_position_embeddings");
    o.text.type_vocab_size = need(tx, "text.", "type_vocab_size");
    o.text.layer_norm_eps = need(tx, "text.", "layer_norm_eps");
    o.text.hidden_act = need(tx, "text.", "hidden_act");
    o.latent_dim = need(j, "", "latent_dim");
    o.biud_layout = need(j, "", "biud_layout");
  } catch (const nlohmann::json::exception& e) {
    BIUD_THROW(DataError, "{}: a value has the wrong type ({})", path, e.what());
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Model

CtClipImpl::CtClipImpl(CtClipOptions o) : opt(std::move(o)) {
  opt.text.pool = "cls";
  opt.text.add_pooler = false;  // CT-CLIP reads last_hidden_state[:, 0]; the pooler is unused
  opt.text.hidden_dropout_prob = opt.text.attention_probs_dropout_prob = 0.0;
  visual_transformer = register_module("visual_transformer", CtVit(opt.image));
  text_transformer = register_module("text_transformer", BertModel(opt.text));
  const auto g = opt.image.patchGrid();
  to_visual_latent =
      register_module("to_visual_latent",
                      torch::nn::Linear(torch::nn::LinearOptions(g * g * opt.image.dim, opt.latent_dim).bias(false)));
  to_text_latent = register_module(
      "to_text_latent", torch::nn::Linear(torch::nn::LinearOptions(opt.text.hidden_size, opt.latent_dim).bias(false)));
  temperature = register_parameter("temperature", torch::ones({}));
}

torch::Tensor CtClipImpl::imageFeatures(const torch::Tensor& volume) {
  BIUD_CHECK(volume.dim() == 5, ValueError, "ct-clip: the volume batch must be [B, 1, D, H, W], got {}",
             tensor::shapeStr(volume.sizes()));
  const auto video = opt.biud_layout ? volume.transpose(3, 4) : volume;
  auto tokens = visual_transformer->forward(video.to(torch::kFloat32));  // [B, t, h, w, dim]
  return tokens.mean(1).reshape({tokens.size(0), -1});
}

torch::Tensor CtClipImpl::encodeImage(const torch::Tensor& volume) {
  return F::normalize(to_visual_latent->forward(imageFeatures(volume)), F::NormalizeFuncOptions().p(2).dim(-1));
}

torch::Tensor CtClipImpl::encodeText(const torch::Tensor& ids, const torch::Tensor& mask) {
  auto cls = text_transformer->encode(ids, mask).hidden.select(1, 0);
  return F::normalize(to_text_latent->forward(cls), F::NormalizeFuncOptions().p(2).dim(-1));
}

double CtClipImpl::logitScale() const { return std::exp(temperature.item<double>()); }

// ---------------------------------------------------------------------------------------------
// Checkpoints

tensor::TensorMap readCtClipCheckpoint(const std::string& path) {
  BIUD_CHECK(stdfs::is_regular_file(path), IoError, "CT-CLIP checkpoint `{}` not found", path);
  const auto ext = stdfs::path(path).extension().string();
  tensor::TensorMap sd = ext == ".safetensors" ? tensor::readSafetensors(path) : readTorchStateDict(path);
  // DistributedDataParallel's wrapper prefix.
  bool allModule = !sd.empty();
  for (const auto& [k, t] : sd) allModule = allModule && k.rfind("module.", 0) == 0;
  if (allModule) {
    tensor::TensorMap s;
    for (auto& [k, t] : sd) s[k.substr(7)] = t;
    sd = std::move(s);
  }
  return sd;
}

namespace {

const torch::Tensor& need(const tensor::TensorMap& sd, const std::string& key, std::int64_t dims,
                          const std::string& source) {
  auto it = sd.find(key);
  BIUD_CHECK(it != sd.end(), ValueError,
             "{}: tensor `{}` missing: not a CT-CLIP checkpoint with a CTViT image encoder and a BERT text encoder "
             "(CT_CLIP_zeroshot.pt / CT-CLIP_v2.pt layout)",
             source, key);
  BIUD_CHECK(it->second.dim() == dims, ValueError, "{}: `{}` has shape {}, expected {} dimensions", source, key,
             tensor::shapeStr(it->second.sizes()), dims);
  return it->second;
}

std::int64_t countLayers(const tensor::TensorMap& sd, const std::string& prefix, const std::string& suffix) {
  std::int64_t n = 0;
  while (sd.count(prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

}  // namespace

CtClipOptions inferCtClipOptions(const tensor::TensorMap& sd, const CtClipHints& hints, const std::string& source) {
  CtClipOptions o;
  auto& im = o.image;
  const std::string v = "visual_transformer.";
  const auto& proj = need(sd, v + "to_patch_emb.2.weight", 2, source);  // [dim, pt * p * p * c]
  im.dim = proj.size(0);
  im.patch_size = hints.patch_size;
  im.temporal_patch_size = hints.temporal_patch_size;
  im.channels = 1;
  BIUD_CHECK(proj.size(1) == im.channels * im.patch_size * im.patch_size * im.temporal_patch_size, ValueError,
             "{}: the patch embedding reads {} values per patch, not {} x {} x {} (set --patch-size and "
             "--temporal-patch-size to the model's)",
             source, proj.size(1), im.temporal_patch_size, im.patch_size, im.patch_size);
  const auto& bias = need(sd, v + "spatial_rel_pos_bias.net.2.weight", 2, source);  // [heads, dim]
  im.heads = bias.size(0);
  const auto& q = need(sd, v + "enc_spatial_transformer.layers.0.1.to_q.weight", 2, source);  // [heads * dh, dim]
  BIUD_CHECK(q.size(0) % im.heads == 0, ValueError, "{}: to_q width {} is not a multiple of {} heads", source,
             q.size(0), im.heads);
  im.dim_head = q.size(0) / im.heads;
  im.spatial_depth = countLayers(sd, v + "enc_spatial_transformer.layers.", ".1.to_q.weight");
  im.temporal_depth = countLayers(sd, v + "enc_temporal_transformer.layers.", ".1.to_q.weight");
  const auto& ff = need(sd, v + "enc_spatial_transformer.layers.0.3.1.weight", 2, source);  // [2 * inner, dim]
  // inner = int(mult * 2/3 * dim): CT-CLIP's default mult 4.
  BIUD_CHECK(ff.size(0) == 2 * static_cast<std::int64_t>(4.0 * (2.0 / 3.0) * static_cast<double>(im.dim)), ValueError,
             "{}: feed-forward width {} is not CTViT's default (ff_mult 4)", source, ff.size(0));
  im.codebook_size = need(sd, v + "vq._codebook.embed", 3, source).size(1);
  const auto& vis = need(sd, "to_visual_latent.weight", 2, source);  // [latent, h * w * dim]
  o.latent_dim = vis.size(0);
  const auto cells = vis.size(1) / im.dim;
  const auto side = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(cells))));
  BIUD_CHECK(vis.size(1) % im.dim == 0 && side * side == cells, ValueError,
             "{}: to_visual_latent reads {} features, not h * w * {} for a square grid (a downsample_image_embeds or "
             "use_all_token_embeds model is not supported)",
             source, vis.size(1), im.dim);
  im.image_size = side * im.patch_size;

  auto& tx = o.text;
  const std::string t = "text_transformer.";
  const auto& we = need(sd, t + "embeddings.word_embeddings.weight", 2, source);
  tx.vocab_size = we.size(0);
  tx.hidden_size = we.size(1);
  tx.max_position_embeddings = need(sd, t + "embeddings.position_embeddings.weight", 2, source).size(0);
  tx.type_vocab_size = need(sd, t + "embeddings.token_type_embeddings.weight", 2, source).size(0);
  tx.num_hidden_layers = countLayers(sd, t + "encoder.layer.", ".attention.self.query.weight");
  tx.intermediate_size = need(sd, t + "encoder.layer.0.intermediate.dense.weight", 2, source).size(0);
  tx.num_attention_heads = hints.text_heads;
  tx.layer_norm_eps = hints.text_layer_norm_eps;
  BIUD_CHECK(tx.hidden_size % tx.num_attention_heads == 0, ValueError,
             "{}: text width {} is not a multiple of {} heads (--text-heads)", source, tx.hidden_size,
             tx.num_attention_heads);
  BIUD_CHECK(need(sd, "to_text_latent.weight", 2, source).size(1) == tx.hidden_size, ValueError,
             "{}: to_text_latent does not read the text width {}", source, tx.hidden_size);
  return o;
}

tensor::TensorMap selectCtClipTensors(const tensor::TensorMap& sd, CtClip& model, const std::string& source,
                                      std::vector<std::string>* dropped) {
  const auto own = tensor::stateDict(*model);
  // Parts of the checkpoint the zero-shot forward never reads.
  auto unused = [](const std::string& k, const torch::Tensor& t) {
    for (const char* p : {"visual_transformer.to_patch_emb_first_frame.", "visual_transformer.to_pixels_first_frame.",
                          "visual_transformer.to_pixels.", "visual_transformer.vq._codebook.cluster_size",
                          "visual_transformer.vq._codebook.initted", "visual_transformer.vq._codebook.embed_avg",
                          "to_text_latent_extra.", "to_visual_latent_extra.", "text_transformer.pooler.",
                          "text_transformer.embeddings.position_ids", "text_transformer.embeddings.token_type_ids"})
      if (k.rfind(p, 0) == 0) return true;
    auto ends = [&](const std::string& s) {
      return k.size() >= s.size() && k.compare(k.size() - s.size(), s.size(), s) == 0;
    };
    if (ends(".context_norm.gamma") || ends(".context_norm.beta")) return true;  // only used with cross-attention
    return ends(".null_kv") && t.numel() == 0;                                   // num_null_kv = 0
  };
  tensor::TensorMap out;
  for (const auto& [k, t] : sd) {
    auto it = own.find(k);
    if (it == own.end()) {
      BIUD_CHECK(unused(k, t), ValueError,
                 "{}: tensor `{}` {} is not part of CT-CLIP's zero-shot model as biud knows it (null key/values, "
                 "cross-attention, MLM or another image encoder are not supported)",
                 source, k, tensor::shapeStr(t.sizes()));
      if (dropped) dropped->push_back(k);
      continue;
    }
    BIUD_CHECK(it->second.sizes() == t.sizes(), ValueError, "{}: `{}` has shape {}, the model built from it expects {}",
               source, k, tensor::shapeStr(t.sizes()), tensor::shapeStr(it->second.sizes()));
    out[k] = t.to(torch::kFloat32).contiguous();
  }
  for (const auto& [k, t] : own)
    BIUD_CHECK(out.count(k), ValueError, "{}: tensor `{}` {} missing", source, k, tensor::shapeStr(t.sizes()));
  return out;
}

}  // namespace biud::models
