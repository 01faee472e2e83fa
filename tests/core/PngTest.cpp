// The PNG writer, checked by decoding with Pillow (an independent decoder).
#include <gtest/gtest.h>

#include "biud/core/Png.h"
#include "common/TestUtil.h"

TEST(Png, PillowDecodesSameSamples) {
  biud::test::TempDir d;
  std::vector<std::uint8_t> g(5 * 3);
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<std::uint8_t>(i * 17);
  std::vector<std::uint16_t> g16(4 * 2);
  for (size_t i = 0; i < g16.size(); ++i) g16[i] = static_cast<std::uint16_t>(i * 9000 + 1);
  std::vector<std::uint8_t> rgb(2 * 2 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<std::uint8_t>(255 - i * 20);
  biud::png::write8((d / "g.png").string(), 5, 3, 1, g.data());
  biud::png::write16((d / "g16.png").string(), 4, 2, 1, g16.data());
  biud::png::write8((d / "rgb.png").string(), 2, 2, 3, rgb.data());
  const std::string script =
      "import sys, numpy as np\nfrom PIL import Image\n"
      "for f in sys.argv[1:]:\n  a = np.array(Image.open(f)); print(a.shape, a.dtype, a.flatten().tolist())\n";
  biud::test::writeText(d / "dump.py", script);
  auto r = biud::test::run(biud::test::quote(biud::test::python()) + " " + (d / "dump.py").string() + " " +
                           (d / "g.png").string() + " " + (d / "g16.png").string() + " " + (d / "rgb.png").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("(3, 5) uint8 [0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 170, 187, 204, 221, 238]"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("(2, 4) uint16 [1, 9001, 18001, 27001, 36001, 45001, 54001, 63001]"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("(2, 2, 3) uint8 [255, 235, 215, 195, 175, 155, 135, 115, 95, 75, 55, 35]"), std::string::npos)
      << r.out;
}
