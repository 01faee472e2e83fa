#include "biud/losses/LossOutput.h"

#include <vector>

#include "biud/core/Error.h"

namespace biud::losses {

void LossOutput::add(const std::string& prefix, const LossOutput& sub, double weight) {
  BIUD_CHECK(sub.total.defined(), ValueError, "LossOutput::add(`{}`): the sub-loss has no total", prefix);
  BIUD_CHECK(!prefix.empty(), ValueError, "LossOutput::add: empty prefix");
  const auto weighted = weight == 1.0 ? sub.total : sub.total * weight;
  total = total.defined() ? total + weighted : weighted;
  auto put = [&](std::map<std::string, torch::Tensor>& into, const std::string& key, const torch::Tensor& v) {
    BIUD_CHECK(!terms.count(key) && !metrics.count(key), ValueError,
               "LossOutput::add: name `{}` already present; give each sub-loss its own prefix", key);
    into[key] = v;
  };
  put(terms, prefix, scalarOf(sub.total));
  for (const auto& [k, v] : sub.terms) put(terms, prefix + "/" + k, v);
  for (const auto& [k, v] : sub.metrics) put(metrics, prefix + "/" + k, v);
}

std::map<std::string, double> LossOutput::scalars() const {
  std::vector<std::string> names;
  std::vector<torch::Tensor> values;
  auto push = [&](const std::string& k, const torch::Tensor& v) {
    if (!v.defined()) return;
    names.push_back(k);
    values.push_back(v.detach().reshape({}).to(torch::kDouble));
  };
  push("loss", total);
  for (const auto& [k, v] : terms) push(k, v);
  for (const auto& [k, v] : metrics) push(k, v);
  std::map<std::string, double> out;
  if (values.empty()) return out;
  // Values may live on different devices (a CPU constant temperature next to CUDA terms).
  std::vector<torch::Tensor> cpu;
  const auto dev = values.front().device();
  bool same = true;
  for (const auto& v : values) same = same && v.device() == dev;
  torch::Tensor all;
  if (same) {
    all = torch::stack(values).cpu();
  } else {
    for (const auto& v : values) cpu.push_back(v.cpu());
    all = torch::stack(cpu);
  }
  const auto acc = all.accessor<double, 1>();
  for (size_t i = 0; i < names.size(); ++i) out[names[i]] = acc[static_cast<int64_t>(i)];
  return out;
}

}  // namespace biud::losses
