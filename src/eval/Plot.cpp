#include "biud/eval/Plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "biud/core/Error.h"
#include "biud/core/Png.h"

namespace biud::eval::plot {

namespace detail {
std::uint8_t glyphRow(char ch, int row);
}

Color palette(std::size_t i) {
  static const Color c[] = {{0, 114, 178}, {213, 94, 0},   {0, 158, 115},   {204, 121, 167},
                            {230, 159, 0}, {86, 180, 233}, {120, 120, 120}, {240, 228, 66}};
  return c[i % 8];
}

namespace {
const Color kBlack{0, 0, 0}, kGrey{120, 120, 120}, kLightGrey{225, 225, 225}, kWhite{255, 255, 255};

double segDistance(double px, double py, double x0, double y0, double x1, double y1) {
  const double dx = x1 - x0, dy = y1 - y0, l2 = dx * dx + dy * dy;
  double t = l2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / l2 : 0.0;
  t = std::clamp(t, 0.0, 1.0);
  const double ex = x0 + t * dx - px, ey = y0 + t * dy - py;
  return std::sqrt(ex * ex + ey * ey);
}

/// Coverage buffer over a bounding box: segments take the max coverage per pixel so that joints
/// of a polyline are not blended twice; then the buffer is blended once.
struct Mask {
  int x0, y0, w, h;
  std::vector<float> a;
  Mask(int X0, int Y0, int X1, int Y1)
      : x0(X0),
        y0(Y0),
        w(std::max(0, X1 - X0 + 1)),
        h(std::max(0, Y1 - Y0 + 1)),
        a(static_cast<std::size_t>(w) * h, 0.f) {}
  void segment(double ax, double ay, double bx, double by, double hw) {
    const int lx = std::max(x0, static_cast<int>(std::floor(std::min(ax, bx) - hw - 1)));
    const int hx = std::min(x0 + w - 1, static_cast<int>(std::ceil(std::max(ax, bx) + hw + 1)));
    const int ly = std::max(y0, static_cast<int>(std::floor(std::min(ay, by) - hw - 1)));
    const int hy = std::min(y0 + h - 1, static_cast<int>(std::ceil(std::max(ay, by) + hw + 1)));
    for (int y = ly; y <= hy; ++y)
      for (int x = lx; x <= hx; ++x) {
        const double d = segDistance(x + 0.5, y + 0.5, ax, ay, bx, by);
        const float cov = static_cast<float>(std::clamp(hw + 0.5 - d, 0.0, 1.0));
        float& m = a[static_cast<std::size_t>(y - y0) * w + (x - x0)];
        m = std::max(m, cov);
      }
  }
  void apply(Canvas& c, Color col) const {
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const float v = a[static_cast<std::size_t>(y) * w + x];
        if (v > 0) c.blend(x0 + x, y0 + y, col, v);
      }
  }
};
}  // namespace

Canvas::Canvas(int width, int height, Color bg) : w_(width), h_(height) {
  BIUD_CHECK(width > 0 && height > 0 && width <= 20000 && height <= 20000, ValueError, "plot canvas {}x{} out of range",
             width, height);
  px_.resize(static_cast<std::size_t>(w_) * h_ * 3);
  for (std::size_t i = 0; i < px_.size(); i += 3) {
    px_[i] = bg.r;
    px_[i + 1] = bg.g;
    px_[i + 2] = bg.b;
  }
}

void Canvas::blend(int x, int y, Color c, double alpha) {
  if (x < 0 || y < 0 || x >= w_ || y >= h_ || alpha <= 0) return;
  alpha = std::min(alpha, 1.0);
  std::uint8_t* p = &px_[(static_cast<std::size_t>(y) * w_ + x) * 3];
  p[0] = static_cast<std::uint8_t>(std::lround(p[0] + (c.r - p[0]) * alpha));
  p[1] = static_cast<std::uint8_t>(std::lround(p[1] + (c.g - p[1]) * alpha));
  p[2] = static_cast<std::uint8_t>(std::lround(p[2] + (c.b - p[2]) * alpha));
}

Color Canvas::at(int x, int y) const {
  const std::uint8_t* p = &px_[(static_cast<std::size_t>(y) * w_ + x) * 3];
  return {p[0], p[1], p[2]};
}

void Canvas::polyline(const std::vector<double>& xs, const std::vector<double>& ys, Color c, double width,
                      double dash) {
  if (xs.size() < 2 || xs.size() != ys.size()) return;
  const double hw = width / 2.0;
  double lx = xs[0], hx = xs[0], ly = ys[0], hy = ys[0];
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (!std::isfinite(xs[i]) || !std::isfinite(ys[i])) return;
    lx = std::min(lx, xs[i]);
    hx = std::max(hx, xs[i]);
    ly = std::min(ly, ys[i]);
    hy = std::max(hy, ys[i]);
  }
  Mask m(std::max(0, static_cast<int>(lx - hw - 2)), std::max(0, static_cast<int>(ly - hw - 2)),
         std::min(w_ - 1, static_cast<int>(hx + hw + 2)), std::min(h_ - 1, static_cast<int>(hy + hw + 2)));
  if (dash <= 0) {
    for (std::size_t i = 0; i + 1 < xs.size(); ++i) m.segment(xs[i], ys[i], xs[i + 1], ys[i + 1], hw);
  } else {
    // Walk the arc length; draw while inside an "on" interval of length `dash`.
    double pos = 0;
    for (std::size_t i = 0; i + 1 < xs.size(); ++i) {
      const double dx = xs[i + 1] - xs[i], dy = ys[i + 1] - ys[i], len = std::sqrt(dx * dx + dy * dy);
      double t = 0;
      while (t < len) {
        const double phase = std::fmod(pos + t, 2 * dash);
        const double step = std::min(len - t, (phase < dash ? dash : 2 * dash) - phase);
        if (phase < dash) {
          const double a = t / len, b = (t + step) / len;
          m.segment(xs[i] + a * dx, ys[i] + a * dy, xs[i] + b * dx, ys[i] + b * dy, hw);
        }
        t += step;
      }
      pos += len;
    }
  }
  m.apply(*this, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, Color c, double width, double dash) {
  polyline({x0, x1}, {y0, y1}, c, width, dash);
}

void Canvas::fillRect(int x, int y, int w, int h, Color c, double alpha) {
  for (int j = std::max(0, y); j < std::min(h_, y + h); ++j)
    for (int i = std::max(0, x); i < std::min(w_, x + w); ++i) blend(i, j, c, alpha);
}

void Canvas::rect(int x, int y, int w, int h, Color c) {
  fillRect(x, y, w, 1, c);
  fillRect(x, y + h - 1, w, 1, c);
  fillRect(x, y, 1, h, c);
  fillRect(x + w - 1, y, 1, h, c);
}

void Canvas::disc(double cx, double cy, double r, Color c) {
  for (int y = static_cast<int>(cy - r - 2); y <= static_cast<int>(cy + r + 2); ++y)
    for (int x = static_cast<int>(cx - r - 2); x <= static_cast<int>(cx + r + 2); ++x) {
      const double d = std::hypot(x + 0.5 - cx, y + 0.5 - cy);
      blend(x, y, c, std::clamp(r + 0.5 - d, 0.0, 1.0));
    }
}

void Canvas::marker(double cx, double cy, char kind, double s, Color c) {
  switch (kind) {
    case 's':
      fillPolygon({cx - s, cx + s, cx + s, cx - s}, {cy - s, cy - s, cy + s, cy + s}, c);
      break;
    case '^':
      fillPolygon({cx, cx + s * 1.15, cx - s * 1.15}, {cy - s * 1.2, cy + s * 0.8, cy + s * 0.8}, c);
      break;
    case 'd':
      fillPolygon({cx, cx + s * 1.2, cx, cx - s * 1.2}, {cy - s * 1.3, cy, cy + s * 1.3, cy}, c);
      break;
    case 'x':
      line(cx - s, cy - s, cx + s, cy + s, c, 2.5);
      line(cx - s, cy + s, cx + s, cy - s, c, 2.5);
      break;
    case '*':
      line(cx - s, cy, cx + s, cy, c, 2.0);
      line(cx, cy - s, cx, cy + s, c, 2.0);
      line(cx - s * 0.7, cy - s * 0.7, cx + s * 0.7, cy + s * 0.7, c, 2.0);
      line(cx - s * 0.7, cy + s * 0.7, cx + s * 0.7, cy - s * 0.7, c, 2.0);
      break;
    default:
      disc(cx, cy, s, c);
  }
}

void Canvas::fillPolygon(const std::vector<double>& xs, const std::vector<double>& ys, Color c, double alpha) {
  if (xs.size() < 3) return;
  const double lo = *std::min_element(ys.begin(), ys.end()), hi = *std::max_element(ys.begin(), ys.end());
  for (int y = std::max(0, static_cast<int>(std::floor(lo))); y <= std::min(h_ - 1, static_cast<int>(std::ceil(hi)));
       ++y) {
    const double sy = y + 0.5;
    std::vector<double> cross;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const std::size_t j = (i + 1) % xs.size();
      if ((ys[i] <= sy && ys[j] > sy) || (ys[j] <= sy && ys[i] > sy))
        cross.push_back(xs[i] + (sy - ys[i]) / (ys[j] - ys[i]) * (xs[j] - xs[i]));
    }
    std::sort(cross.begin(), cross.end());
    for (std::size_t k = 0; k + 1 < cross.size(); k += 2)
      for (int x = static_cast<int>(std::lround(cross[k])); x < static_cast<int>(std::lround(cross[k + 1])); ++x)
        blend(x, y, c, alpha);
  }
}

int Canvas::textWidth(const std::string& s, int scale) {
  return s.empty() ? 0 : (static_cast<int>(s.size()) * 6 - 1) * scale;
}
int Canvas::textHeight(int scale) { return 8 * scale; }

void Canvas::text(int x, int y, const std::string& s, Color c, int scale) {
  for (std::size_t k = 0; k < s.size(); ++k)
    for (int r = 0; r < 8; ++r) {
      const std::uint8_t bits = detail::glyphRow(s[k], r);
      for (int col = 0; col < 5; ++col)
        if (bits & (1u << (4 - col)))
          fillRect(x + (static_cast<int>(k) * 6 + col) * scale, y + r * scale, scale, scale, c);
    }
}

void Canvas::textVertical(int x, int y, const std::string& s, Color c, int scale) {
  const int total = textWidth(s, 1);
  for (std::size_t k = 0; k < s.size(); ++k)
    for (int r = 0; r < 8; ++r) {
      const std::uint8_t bits = detail::glyphRow(s[k], r);
      for (int col = 0; col < 5; ++col)
        if (bits & (1u << (4 - col))) {
          const int u = static_cast<int>(k) * 6 + col;  // along the text
          fillRect(x + r * scale, y + (total - 1 - u) * scale, scale, scale, c);
        }
    }
}

void Canvas::save(const std::string& path) const { png::write8(path, w_, h_, 3, px_.data()); }

std::vector<double> niceTicks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  double step = p;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * p >= raw) {
      step = m * p;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string tickLabel(double v, double step) {
  int decimals = 0;
  while (decimals < 6 &&
         std::fabs(step * std::pow(10.0, decimals) - std::round(step * std::pow(10.0, decimals))) > 1e-6)
    ++decimals;
  return fmt::format("{:.{}f}", v, decimals);
}

void Axes::draw(Canvas& c, int x, int y, int w, int h, int s) const {
  const int th = Canvas::textHeight(s);
  const auto xt = niceTicks(xmin, xmax), yt = niceTicks(ymin, ymax);
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  int ytw = 0;
  for (double v : yt) ytw = std::max(ytw, Canvas::textWidth(tickLabel(v, ystep), s));
  const int top = y + (title.empty() ? 8 : th + 14);
  const int left = x + 8 + (ylabel.empty() ? 0 : th + 8) + ytw + 8;
  const int bottom = y + h - 8 - (xlabel.empty() ? 0 : th + 8) - th - 8;
  const int right = x + w - std::max(12, Canvas::textWidth(tickLabel(xt.back(), xstep), s) / 2 + 6);
  const int pw = right - left, ph = bottom - top;
  if (pw < 20 || ph < 20) return;
  auto X = [&](double v) { return left + (v - xmin) / (xmax - xmin) * pw; };
  auto Y = [&](double v) { return top + (1.0 - (v - ymin) / (ymax - ymin)) * ph; };
  if (!title.empty()) c.text(left + (pw - Canvas::textWidth(title, s)) / 2, y + 6, title, kBlack, s);
  if (grid) {
    for (double v : xt) c.fillRect(static_cast<int>(std::lround(X(v))), top, 1, ph, kLightGrey);
    for (double v : yt) c.fillRect(left, static_cast<int>(std::lround(Y(v))), pw, 1, kLightGrey);
  }
  if (diagonal)
    c.line(X(std::max(xmin, ymin)), Y(std::max(xmin, ymin)), X(std::min(xmax, ymax)), Y(std::min(xmax, ymax)), kGrey,
           1.2, 6);
  for (const auto& sr : series) {
    std::vector<double> px, py;
    for (std::size_t i = 0; i < sr.x.size() && i < sr.y.size(); ++i) {
      if (!std::isfinite(sr.x[i]) || !std::isfinite(sr.y[i])) continue;
      px.push_back(X(sr.x[i]));
      py.push_back(Y(sr.y[i]));
    }
    if (sr.line) c.polyline(px, py, sr.color, sr.width, sr.dash);
    if (sr.marker)
      for (std::size_t i = 0; i < px.size(); ++i) c.marker(px[i], py[i], sr.marker, sr.markerSize, sr.color);
  }
  c.rect(left, top, pw + 1, ph + 1, kBlack);
  for (double v : xt) {
    const int px = static_cast<int>(std::lround(X(v)));
    c.fillRect(px, bottom, 1, 5, kBlack);
    const auto l = tickLabel(v, xstep);
    c.text(px - Canvas::textWidth(l, s) / 2, bottom + 8, l, kBlack, s);
  }
  for (double v : yt) {
    const int py = static_cast<int>(std::lround(Y(v)));
    c.fillRect(left - 5, py, 5, 1, kBlack);
    const auto l = tickLabel(v, ystep);
    c.text(left - 8 - Canvas::textWidth(l, s), py - th / 2, l, kBlack, s);
  }
  if (!xlabel.empty()) c.text(left + (pw - Canvas::textWidth(xlabel, s)) / 2, bottom + th + 16, xlabel, kBlack, s);
  if (!ylabel.empty()) c.textVertical(x + 8, top + (ph - Canvas::textWidth(ylabel, s)) / 2, ylabel, kBlack, s);
  if (legend) {
    std::vector<const Series*> ls;
    int lw = 0;
    for (const auto& sr : series)
      if (!sr.label.empty()) {
        ls.push_back(&sr);
        lw = std::max(lw, Canvas::textWidth(sr.label, s));
      }
    if (!ls.empty()) {
      const int rowH = th + 6, boxW = lw + 44, boxH = static_cast<int>(ls.size()) * rowH + 8;
      const int bx = legendBottomRight ? right - boxW - 6 : left + 6;
      const int by = legendBottomRight ? bottom - boxH - 6 : top + 6;
      c.fillRect(bx, by, boxW, boxH, kWhite, 0.9);
      c.rect(bx, by, boxW, boxH, kGrey);
      for (std::size_t i = 0; i < ls.size(); ++i) {
        const int ry = by + 4 + static_cast<int>(i) * rowH + th / 2;
        if (ls[i]->line) c.line(bx + 6, ry, bx + 30, ry, ls[i]->color, ls[i]->width, ls[i]->dash);
        if (ls[i]->marker) c.marker(bx + 18, ry, ls[i]->marker, ls[i]->markerSize, ls[i]->color);
        c.text(bx + 36, ry - th / 2, ls[i]->label, kBlack, s);
      }
    }
  }
}

namespace {
std::string shortName(const std::string& s, std::size_t max) {
  return s.size() <= max ? s : s.substr(0, max - 2) + "..";
}
}  // namespace

void rocGrid(const std::string& path, const std::vector<std::string>& findings, const std::vector<ModelRocs>& models,
             int columns) {
  BIUD_CHECK(!findings.empty(), ValueError, "ROC plot `{}`: no findings", path);
  for (const auto& m : models)
    BIUD_CHECK(m.curves.size() == findings.size() && m.aucs.size() == findings.size(), ValueError,
               "ROC plot `{}`: model `{}` has {} curves for {} findings", path, m.name, m.curves.size(),
               findings.size());
  const int cols = std::max(1, std::min(columns, static_cast<int>(findings.size())));
  const int rows = (static_cast<int>(findings.size()) + cols - 1) / cols;
  const int pw = 440, ph = 440;
  Canvas c(cols * pw, rows * ph);
  for (std::size_t f = 0; f < findings.size(); ++f) {
    Axes a;
    a.title = shortName(findings[f], 30);
    a.xlabel = "1 - specificity";
    a.ylabel = "sensitivity";
    a.diagonal = true;
    for (std::size_t m = 0; m < models.size(); ++m) {
      Series s;
      const double auc = models[m].aucs[f];
      s.label = shortName(models[m].name, 14) + (std::isfinite(auc) ? fmt::format(" {:.3f}", auc) : " n/a");
      s.x = models[m].curves[f].fpr;
      s.y = models[m].curves[f].tpr;
      s.color = palette(m);
      s.width = 2.2;
      a.series.push_back(std::move(s));
    }
    a.draw(c, static_cast<int>(f % cols) * pw, static_cast<int>(f / cols) * ph, pw, ph, 2);
  }
  c.save(path);
}

namespace {
/// Gaussian KDE with Scott's bandwidth evaluated on `grid`.
std::vector<double> kde(const std::vector<double>& v, const std::vector<double>& grid) {
  std::vector<double> d(grid.size(), 0.0);
  if (v.empty()) return d;
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  var = v.size() > 1 ? var / static_cast<double>(v.size() - 1) : 0.0;
  double bw = std::sqrt(var) * std::pow(static_cast<double>(v.size()), -0.2);
  if (!(bw > 0)) bw = 1e-3 + 0.01 * (grid.back() - grid.front());
  for (std::size_t g = 0; g < grid.size(); ++g) {
    double s = 0;
    for (double x : v) {
      const double z = (grid[g] - x) / bw;
      s += std::exp(-0.5 * z * z);
    }
    d[g] = s / (static_cast<double>(v.size()) * bw * std::sqrt(2 * M_PI));
  }
  return d;
}
}  // namespace

void violins(const std::string& path, const std::vector<std::string>& findings,
             const std::vector<std::vector<double>>& pos, const std::vector<std::vector<double>>& neg,
             const std::string& title) {
  BIUD_CHECK(findings.size() == pos.size() && findings.size() == neg.size() && !findings.empty(), ValueError,
             "violin plot `{}`: {} findings, {} positive and {} negative groups", path, findings.size(), pos.size(),
             neg.size());
  double lo = 0, hi = 1;
  for (const auto* groups : {&pos, &neg})
    for (const auto& g : *groups)
      for (double v : g) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  std::size_t longest = 0;
  for (const auto& f : findings) longest = std::max(longest, std::min<std::size_t>(f.size(), 24));
  const int slot = 90, s = 2, th = Canvas::textHeight(s);
  const int labelH = Canvas::textWidth(std::string(longest, 'x'), s) + 16;
  const int W = std::max(640, 120 + slot * static_cast<int>(findings.size()) + 20), H = 520 + labelH;
  Canvas c(W, H);
  // Categorical x axis: the panel is drawn by hand (y ticks and grid only; names below).
  const int left = 100, top = 2 * th + 44, right = W - 20, bottom = H - labelH - 20;
  const int pw = right - left, ph = bottom - top;
  auto Y = [&](double v) { return top + (1.0 - (v - lo) / (hi - lo)) * ph; };
  c.text((W - Canvas::textWidth(title, s)) / 2, 10, title, kBlack, s);
  const auto yt = niceTicks(lo, hi);
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double v : yt) {
    const int py = static_cast<int>(std::lround(Y(v)));
    c.fillRect(left, py, pw, 1, kLightGrey);
    c.fillRect(left - 5, py, 5, 1, kBlack);
    const auto l = tickLabel(v, ystep);
    c.text(left - 8 - Canvas::textWidth(l, s), py - th / 2, l, kBlack, s);
  }
  c.textVertical(10, top + (ph - Canvas::textWidth("probability", s)) / 2, "probability", kBlack, s);
  const Color cn = palette(0), cp = palette(1);
  const double slotW = static_cast<double>(pw) / static_cast<double>(findings.size());
  std::vector<double> grid(121);
  for (std::size_t f = 0; f < findings.size(); ++f) {
    const double cx = left + (static_cast<double>(f) + 0.5) * slotW;
    double dmax = 0;
    std::vector<std::vector<double>> dens;
    std::vector<std::vector<double>> grids;
    for (const auto* g : {&neg[f], &pos[f]}) {
      std::vector<double> gr(grid.size());
      if (!g->empty()) {
        const double a0 = *std::min_element(g->begin(), g->end()), a1 = *std::max_element(g->begin(), g->end());
        for (std::size_t i = 0; i < gr.size(); ++i) gr[i] = a0 + (a1 - a0) * static_cast<double>(i) / (gr.size() - 1);
      }
      auto d = kde(*g, gr);
      for (double v : d) dmax = std::max(dmax, v);
      dens.push_back(std::move(d));
      grids.push_back(std::move(gr));
    }
    const double half = slotW * 0.45;
    for (int side = 0; side < 2; ++side) {
      const auto& g = side == 0 ? neg[f] : pos[f];
      if (g.empty()) continue;
      std::vector<double> px, py;
      const double sign = side == 0 ? -1.0 : 1.0;
      px.push_back(cx);
      py.push_back(Y(grids[side].front()));
      for (std::size_t i = 0; i < grid.size(); ++i) {
        px.push_back(cx + sign * (dmax > 0 ? dens[side][i] / dmax : 0) * half);
        py.push_back(Y(grids[side][i]));
      }
      px.push_back(cx);
      py.push_back(Y(grids[side].back()));
      const Color col = side == 0 ? cn : cp;
      c.fillPolygon(px, py, col, 0.55);
      c.polyline(px, py, col, 1.5);
      const double med = percentile(g, 0.5);
      c.line(cx, Y(med), cx + sign * half * 0.8, Y(med), kBlack, 2.0);
    }
    c.fillRect(static_cast<int>(cx), top, 1, ph, kGrey, 0.5);
    const std::string name = shortName(findings[f], 24);
    c.textVertical(static_cast<int>(cx) - th / 2, bottom + 10, name, kBlack, s);
  }
  c.rect(left, top, pw + 1, ph + 1, kBlack);
  // Legend in one row between the title and the plot, so it never covers a violin.
  const int ly = 10 + th + 12, lw = 2 * (28 + Canvas::textWidth("negatives", s)) + 24;
  int lx = (W - lw) / 2;
  c.fillRect(lx, ly, 20, th - 2, cn, 0.7);
  c.text(lx + 28, ly, "negatives", kBlack, s);
  lx += 28 + Canvas::textWidth("negatives", s) + 24;
  c.fillRect(lx, ly, 20, th - 2, cp, 0.7);
  c.text(lx + 28, ly, "positives", kBlack, s);
  c.save(path);
}

void readerStudy(const std::string& path, const std::string& title, const RocCurve& model, double auc,
                 const std::vector<ReaderPoint>& readers) {
  Canvas c(640, 640);
  Axes a;
  a.title = title;
  a.xlabel = "1 - specificity";
  a.ylabel = "sensitivity";
  a.diagonal = true;
  Series m;
  m.label = std::isfinite(auc) ? fmt::format("model AUC {:.3f}", auc) : "model";
  m.x = model.fpr;
  m.y = model.tpr;
  m.color = palette(0);
  m.width = 2.5;
  a.series.push_back(m);
  for (std::size_t i = 0; i < readers.size(); ++i) {
    Series r;
    r.label = shortName(readers[i].reader, 20);
    r.x = {1.0 - readers[i].specificity};
    r.y = {readers[i].sensitivity};
    r.line = false;
    r.marker = "s^do*"[i % 5];
    r.markerSize = 6;
    r.color = palette(i + 1);
    a.series.push_back(r);
  }
  Series mp;
  mp.label = "model at reader spec.";
  mp.line = false;
  mp.marker = 'x';
  mp.markerSize = 6;
  mp.color = palette(0);
  for (const auto& r : readers)
    if (std::isfinite(r.modelSensitivity)) {
      mp.x.push_back(1.0 - r.specificity);
      mp.y.push_back(r.modelSensitivity);
    }
  if (!mp.x.empty()) a.series.push_back(mp);
  a.draw(c, 0, 0, 640, 640, 2);
  c.save(path);
}

}  // namespace biud::eval::plot
