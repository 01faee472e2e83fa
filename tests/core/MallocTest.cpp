// The executables' allocator (cmake/BiudMalloc.cmake): a build that links tcmalloc runs it as the
// process's malloc, not merely loads it; a build without it runs glibc's.
#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace {

/// The shared object that defines the `malloc` this process calls.
std::string mallocOwner() {
  void* sym = ::dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info{};
  if (sym == nullptr || ::dladdr(sym, &info) == 0 || info.dli_fname == nullptr) return "?";
  return info.dli_fname;
}

TEST(Malloc, TheConfiguredAllocatorServesMalloc) {
  const std::string owner = mallocOwner();
#ifdef BIUD_MALLOC_TCMALLOC
  EXPECT_NE(owner.find("tcmalloc"), std::string::npos) << "malloc comes from " << owner;
  // tcmalloc's own entry point answers for a block from malloc(): it owns the block.
  using OwnershipFn = int (*)(const void*);
  auto ownership = reinterpret_cast<OwnershipFn>(::dlsym(RTLD_DEFAULT, "MallocExtension_GetOwnership"));
  ASSERT_NE(ownership, nullptr);
  void* p = std::malloc(1000);
  EXPECT_EQ(ownership(p), 1);  // kOwned
  std::free(p);
#else
  EXPECT_NE(owner.find("libc"), std::string::npos) << "malloc comes from " << owner;
#endif
}

}  // namespace
