#include "biud/models/ResNet.h"

#include <cstdlib>
#include <cstring>

#include "biud/core/Error.h"
#include "biud/models/SyncBatchNorm.h"
#include "biud/tensor/Safetensors.h"

namespace biud::models {

namespace {

/// False when the environment sets BIUD_CHANNELS_LAST=0 (for comparisons: docs/performance.md).
/// On by default again after d251181 had turned it off: EvalApps.FinetuneWithAllLabelsBeatsZeroShot
/// (fresh chain each run) gives, with this code, zero-shot / fine-tuned macro AUROC 0.481 / 0.598
/// channels-last (three runs, identical) and 0.436 / 0.584 without (the 0.46 seen then did not
/// reproduce); both pass. Results move within the test's run-to-run spread of other arithmetic-only
/// changes, never beyond float rounding per step (ModelsTest ResNet.ChannelsLast...).
bool channelsLastConvs() {
  const char* v = std::getenv("BIUD_CHANNELS_LAST");
  return !(v && std::strcmp(v, "0") == 0);
}

/// True when the environment sets BIUD_STEM=phases: the 1-channel 3D stem then runs over the
/// input's phases (conv3dStride2ByPhases; ~11 % faster BIUD step on AVX2). Off by default: over
/// seeds 0-2 of the quickstart it gave macro AUROC 0.819 / 0.799 / 0.802 against 0.804 / 0.818 /
/// 0.817 with the strided convolution (docs/STATUS.md), so it waits for more seeds.
bool stemByPhases() {
  static const bool on = [] {
    const char* v = std::getenv("BIUD_STEM");
    return v && std::strcmp(v, "phases") == 0;
  }();
  return on;
}

torch::nn::AnyModule conv(int dims, std::int64_t in, std::int64_t out, std::vector<std::int64_t> k, std::int64_t stride,
                          std::vector<std::int64_t> pad, std::vector<std::int64_t> strides = {}) {
  if (strides.empty()) strides.assign(k.size(), stride);
  if (dims == 2)
    return torch::nn::AnyModule(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, {k[0], k[1]})
                                                      .stride({strides[0], strides[1]})
                                                      .padding({pad[0], pad[1]})
                                                      .bias(false)));
  return torch::nn::AnyModule(torch::nn::Conv3d(torch::nn::Conv3dOptions(in, out, {k[0], k[1], k[2]})
                                                    .stride({strides[0], strides[1], strides[2]})
                                                    .padding({pad[0], pad[1], pad[2]})
                                                    .bias(false)));
}
torch::nn::AnyModule convK(int dims, std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride) {
  return conv(dims, in, out, std::vector<std::int64_t>(static_cast<std::size_t>(dims), k), stride,
              std::vector<std::int64_t>(static_cast<std::size_t>(dims), k / 2));
}
/// torch's BatchNorm until a data-parallel job attaches its ranks (SyncBatchNorm.h).
torch::nn::AnyModule bn(int dims, std::int64_t c) {
  if (dims == 2) return torch::nn::AnyModule(SyncBatchNorm2d(c));
  return torch::nn::AnyModule(SyncBatchNorm3d(c));
}

}  // namespace

ResNetOptions resnetPreset(const std::string& name, int spatialDims) {
  ResNetOptions o;
  o.spatial_dims = spatialDims;
  if (name == "resnet18") {
    o.block = "basic";
    o.layers = {2, 2, 2, 2};
  } else if (name == "resnet34") {
    o.block = "basic";
    o.layers = {3, 4, 6, 3};
  } else if (name == "resnet50") {
    o.block = "bottleneck";
    o.layers = {3, 4, 6, 3};
  } else if (name == "resnet101") {
    o.block = "bottleneck";
    o.layers = {3, 4, 23, 3};
  } else {
    BIUD_THROW(ConfigError, "resnet: unknown depth `{}` (use resnet18, resnet34, resnet50 or resnet101)", name);
  }
  return o;
}

ResBlockImpl::ResBlockImpl(int dims, bool bottleneck, std::int64_t in, std::int64_t planes, std::int64_t stride,
                           bool down) {
  const std::int64_t expansion = bottleneck ? 4 : 1;
  if (bottleneck) {
    convs = {convK(dims, in, planes, 1, 1), convK(dims, planes, planes, 3, stride),
             convK(dims, planes, planes * 4, 1, 1)};
    bns = {bn(dims, planes), bn(dims, planes), bn(dims, planes * 4)};
  } else {
    convs = {convK(dims, in, planes, 3, stride), convK(dims, planes, planes, 3, 1)};
    bns = {bn(dims, planes), bn(dims, planes)};
  }
  for (std::size_t i = 0; i < convs.size(); ++i) {
    register_module("conv" + std::to_string(i + 1), convs[i].ptr());
    register_module("bn" + std::to_string(i + 1), bns[i].ptr());
  }
  if (down) {
    downsample = torch::nn::Sequential();
    auto c = convK(dims, in, planes * expansion, 1, stride);
    auto b = bn(dims, planes * expansion);
    downsample->push_back(std::move(c));
    downsample->push_back(std::move(b));
    register_module("downsample", downsample);
  }
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x) {
  auto h = x;
  for (std::size_t i = 0; i < convs.size(); ++i) {
    h = bns[i].forward(convs[i].forward(h));
    if (i + 1 < convs.size()) h = torch::relu(h);
  }
  return torch::relu(h + (downsample ? downsample->forward(x) : x));
}

torch::Tensor conv3dStride2ByPhases(const torch::Tensor& x, const torch::Tensor& w,
                                    const std::vector<std::int64_t>& pad) {
  BIUD_CHECK(x.dim() == 5 && w.dim() == 5 && pad.size() == 3 && x.size(1) == w.size(1), ValueError,
             "conv3dStride2ByPhases: input [B, C, D, H, W], weight [O, C, kD, kH, kW] and 3 paddings, got {} and {}",
             tensor::shapeStr(x.sizes()), tensor::shapeStr(w.sizes()));
  std::vector<std::int64_t> xPad(6), wPad(6), phases(3), half(3);  // constant_pad_nd: last dimension first
  for (int d = 0; d < 3; ++d) {
    const std::int64_t n = x.size(2 + d), k = w.size(2 + d), p = pad[static_cast<std::size_t>(d)];
    const std::int64_t out = (n + 2 * p - k) / 2 + 1;
    BIUD_CHECK(out >= 1, ValueError, "conv3dStride2ByPhases: input {} too small for kernel {}",
               tensor::shapeStr(x.sizes()), tensor::shapeStr(w.sizes()));
    half[d] = (k + 1) / 2;          // kernel taps per phase
    phases[d] = out + half[d] - 1;  // input positions per phase
    const int j = 2 * (2 - d);
    xPad[j] = p;
    xPad[j + 1] = 2 * phases[d] - n - p;  // negative: the strided conv never reads those
    wPad[j] = 0;
    wPad[j + 1] = 2 * half[d] - k;
  }
  const auto fmt = channelsLastConvs() ? torch::MemoryFormat::ChannelsLast3d : torch::MemoryFormat::Contiguous;
  // Pad, then [N, C, 2P0, 2P1, 2P2] -> [N, C, P0, 2, P1, 2, P2, 2] -> [N, C * 8, P0, P1, P2]: channel
  // c * 8 + 4bd + 2bh + bw, the same order for the input and the kernel.
  const auto byPhases = [&fmt](const torch::Tensor& t, const std::vector<std::int64_t>& padding,
                               const std::vector<std::int64_t>& p) {
    const std::int64_t n = t.size(0), c = t.size(1);
    return at::constant_pad_nd(t, padding, 0)
        .view({n, c, p[0], 2, p[1], 2, p[2], 2})
        .permute({0, 1, 3, 5, 7, 2, 4, 6})
        .reshape({n, c * 8, p[0], p[1], p[2]})
        .contiguous(fmt);
  };
  return torch::conv3d(byPhases(x, xPad, phases), byPhases(w, wPad, half));
}

ResNetImpl::ResNetImpl(ResNetOptions o) : opt(std::move(o)) {
  const int d = opt.spatial_dims;
  BIUD_CHECK(d == 2 || d == 3, ConfigError, "resnet: spatial_dims must be 2 or 3, got {}", d);
  BIUD_CHECK(opt.block == "basic" || opt.block == "bottleneck", ConfigError,
             "resnet: block `{}` (use basic or bottleneck)", opt.block);
  BIUD_CHECK(opt.layers.size() == 4, ConfigError, "resnet: layers needs 4 stage counts, got {}", opt.layers.size());
  const bool bottleneck = opt.block == "bottleneck";
  const std::int64_t expansion = bottleneck ? 4 : 1;
  if (d == 2) {
    conv1 = conv(2, opt.in_channels, opt.width, {7, 7}, 2, {3, 3});
  } else {
    const auto kd = opt.stem_kernel_depth;
    conv1 = conv(3, opt.in_channels, opt.width, {kd, 7, 7}, 2, {kd / 2, 3, 3});
  }
  bn1 = bn(d, opt.width);
  register_module("conv1", conv1.ptr());
  register_module("bn1", bn1.ptr());
  std::int64_t in = opt.width;
  for (int s = 0; s < 4; ++s) {
    const std::int64_t planes = opt.width << s;
    torch::nn::Sequential stage;
    for (std::int64_t b = 0; b < opt.layers[static_cast<std::size_t>(s)]; ++b) {
      const std::int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      const bool down = b == 0 && (stride != 1 || in != planes * expansion);
      stage->push_back(ResBlock(d, bottleneck, in, planes, stride, down));
      in = planes * expansion;
    }
    stages.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  out_channels = in;
  BIUD_CHECK(opt.pool == "mean" || opt.pool == "max" || opt.pool == "gem", ConfigError,
             "resnet: pool `{}` (use mean, max or gem)", opt.pool);
  if (opt.pool == "gem") gem_p = register_parameter("gem_p", torch::full({1}, 3.0));
  if (opt.num_classes > 0) fc = register_module("fc", torch::nn::Linear(in, opt.num_classes));
  // torchvision's initialisation: He (fan_out) for convs, BN scale 1 / shift 0.
  for (auto& m : modules(false)) {
    for (auto& p : m->named_parameters(false)) {
      if (p.key() == "weight" && p.value().dim() >= 4)
        torch::nn::init::kaiming_normal_(p.value(), 0.0, torch::kFanOut, torch::kReLU);
    }
  }
  // Convolution weights in channels-last layout (NDHWC / NHWC): oneDNN then runs every
  // convolution, BatchNorm, ReLU and residual add of the network channels-last, which on CPUs is
  // 1.3-1.6x faster for forward+backward than the default NCDHW (docs/performance.md). Only the
  // memory layout changes: values, names, state dicts and checkpoints are the same (saved
  // tensors are written contiguous); sums run in another order, so results agree with the
  // default layout within float rounding. BIUD_CHANNELS_LAST=0 keeps the default layout.
  if (channelsLastConvs()) {
    const auto fmt = d == 3 ? torch::MemoryFormat::ChannelsLast3d : torch::MemoryFormat::ChannelsLast;
    torch::NoGradGuard noGrad;
    // empty_like + copy rather than contiguous(fmt): a 1-channel stem weight counts as
    // channels-last already in either layout, and only the channels-last strides make oneDNN run
    // the stem (and the max-pool after it) channels-last instead of as an im2col GEMM.
    for (auto& p : parameters())
      if (p.dim() == d + 2) p.set_data(at::empty_like(p, p.options(), fmt).copy_(p));
  }
}

EncoderOutput ResNetImpl::encode(const torch::Tensor& x) {
  BIUD_CHECK(x.dim() == opt.spatial_dims + 2 && x.size(1) == opt.in_channels, ValueError,
             "resnet: input must be [B, {}, {}], got {}", opt.in_channels, opt.spatial_dims == 2 ? "H, W" : "D, H, W",
             tensor::shapeStr(x.sizes()));
  torch::Tensor h;
  if (opt.spatial_dims == 3 && opt.in_channels == 1 && stemByPhases()) {
    const auto kd = opt.stem_kernel_depth;
    h = conv3dStride2ByPhases(x, conv1.get<torch::nn::Conv3d>()->weight, {kd / 2, 3, 3});
  } else {
    h = conv1.forward(x);
  }
  h = torch::relu(bn1.forward(h));
  if (opt.spatial_dims == 2)
    h = torch::max_pool2d(h, 3, 2, 1);
  else
    h = torch::max_pool3d(h, 3, 2, 1);
  for (auto& s : stages) h = s->forward(h);
  EncoderOutput out;
  auto flat = h.flatten(2);  // [B, C, N]
  if (opt.pool == "mean") {
    out.pooled = flat.mean(2);
  } else if (opt.pool == "max") {
    out.pooled = std::get<0>(flat.max(2));
  } else {  // gem: the last stage ends in a ReLU; the clamp keeps pow() away from 0^p gradients
    const auto p = gem_p.clamp_min(1.0);
    out.pooled = flat.clamp_min(1e-6).pow(p).mean(2).pow(1.0 / p);
  }
  out.tokens = flat.transpose(1, 2);
  return out;
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& x) {
  auto p = encode(x).pooled;
  return fc ? fc->forward(p) : p;
}

tensor::TensorMap inflate2dTo3d(const tensor::TensorMap& w2d, const torch::nn::Module& target) {
  auto tgt = tensor::stateDict(target);
  tensor::TensorMap out;
  for (const auto& [k, w] : w2d) {
    auto it = tgt.find(k);
    if (it == tgt.end()) {
      if (k.rfind("fc.", 0) == 0) continue;  // classifier of the 2D model: not wanted
      out[k] = w;                            // let loadStateDict report it
      continue;
    }
    const auto& t = it->second;
    if (w.dim() == 4 && t.dim() == 5) {
      auto v = w;
      if (v.size(1) != t.size(1)) {
        BIUD_CHECK(t.size(1) == 1, ValueError,
                   "inflate: `{}` has {} input channels in 2D and {} in 3D; only summing to 1 channel is supported", k,
                   v.size(1), t.size(1));
        v = v.sum(1, true);
      }
      const auto kt = t.size(2);
      out[k] = v.unsqueeze(2).repeat({1, 1, kt, 1, 1}) / static_cast<double>(kt);
    } else {
      out[k] = w;
    }
  }
  return out;
}

}  // namespace biud::models
