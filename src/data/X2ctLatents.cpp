#include "biud/data/X2ctLatents.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "biud/core/Error.h"
#include "biud/tensor/Safetensors.h"

namespace biud::data {

namespace stdfs = std::filesystem;

std::int64_t X2ctLatents::row(const std::string& id) const {
  auto it = index.find(id);
  return it == index.end() ? -1 : it->second;
}

X2ctLatents readX2ctLatents(const std::string& path) {
  std::map<std::string, std::string> meta;
  auto t = tensor::readSafetensors(path, &meta);
  BIUD_CHECK(t.count("ct") && t.count("report") && meta.count("ids"), DataError,
             "`{}` is not an x2ct latent cache (needs tensors `ct`, `report` and metadata `ids`); delete it to rebuild",
             path);
  X2ctLatents l;
  l.ct = t.at("ct").to(torch::kFloat32);
  l.report = t.at("report").to(torch::kFloat32);
  l.key = meta.count("key") ? meta.at("key") : "";
  try {
    l.ids = nlohmann::json::parse(meta.at("ids")).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    BIUD_THROW(DataError, "`{}`: metadata `ids` is not a JSON list of strings ({}); delete the file to rebuild", path,
               e.what());
  }
  BIUD_CHECK(l.ct.dim() == 2 && l.report.dim() == 2 && l.ct.size(0) == static_cast<std::int64_t>(l.ids.size()) &&
                 l.report.size(0) == l.ct.size(0),
             DataError, "`{}`: {} ids but `ct` {} and `report` {}; delete the file to rebuild", path, l.ids.size(),
             tensor::shapeStr(l.ct.sizes()), tensor::shapeStr(l.report.sizes()));
  for (size_t i = 0; i < l.ids.size(); ++i) l.index[l.ids[i]] = static_cast<std::int64_t>(i);
  return l;
}

void writeX2ctLatents(const std::string& path, const X2ctLatents& l) {
  tensor::writeSafetensors(path, {{"ct", l.ct.contiguous()}, {"report", l.report.contiguous()}},
                           {{"ids", nlohmann::json(l.ids).dump()}, {"key", l.key}});
}

std::string x2ctScanId(const std::string& xrayId) { return xrayId.substr(0, xrayId.find('#')); }

std::string x2ctLatentPath(const Config& cfg, const std::string& runDir) {
  return cfg.x2ct.latent_cache.empty() ? (stdfs::path(runDir) / "latents.safetensors").string() : cfg.x2ct.latent_cache;
}

std::string x2ctXrayManifest(const Config& cfg) {
  return cfg.x2ct.xray_manifest.empty() ? cfg.data.xray_manifest : cfg.x2ct.xray_manifest;
}

}  // namespace biud::data
