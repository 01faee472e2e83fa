# The allocator of biud's executables. gperftools' tcmalloc (Debian: libtcmalloc-minimal4) keeps
# freed blocks in per-thread caches: the training step's many short-lived tensors and oneDNN
# scratch buffers then cost no page faults and no trips into the kernel. On the quickstart's BIUD
# step it measured +14 % alone and +23 % with OMP_WAIT_POLICY=ACTIVE (docs/performance.md).
#
# Linked into executables only (apps and tests), never into a shared library: a library that
# brought tcmalloc into a process already running glibc's malloc (Python) would free glibc's
# blocks with tcmalloc. The SentencePiece shim, loaded with RTLD_DEEPBIND, passes no allocation
# across its C API (handles are created and deleted inside it, strings are copied into the
# caller's buffers), so the two allocators never see each other's blocks; the text tests run
# under tcmalloc and prove it.
set(BIUD_MALLOC "auto" CACHE STRING "allocator of the executables: auto (tcmalloc when found), tcmalloc, system")
set_property(CACHE BIUD_MALLOC PROPERTY STRINGS auto tcmalloc system)
add_library(biud_malloc INTERFACE)
set(BIUD_MALLOC_USED "system")
if(BIUD_SANITIZE OR BIUD_FUZZ)
  if(BIUD_MALLOC STREQUAL "tcmalloc")
    message(FATAL_ERROR "BIUD_MALLOC=tcmalloc cannot be combined with sanitizers (they replace malloc)")
  endif()
elseif(NOT BIUD_MALLOC STREQUAL "system")
  find_library(BIUD_TCMALLOC_LIBRARY NAMES tcmalloc_minimal libtcmalloc_minimal.so.4)
  if(BIUD_TCMALLOC_LIBRARY)
    target_link_libraries(biud_malloc INTERFACE "-Wl,--push-state,--no-as-needed" ${BIUD_TCMALLOC_LIBRARY}
                                                "-Wl,--pop-state")
    target_compile_definitions(biud_malloc INTERFACE BIUD_MALLOC_TCMALLOC=1)
    set(BIUD_MALLOC_USED "tcmalloc (${BIUD_TCMALLOC_LIBRARY})")
  elseif(BIUD_MALLOC STREQUAL "tcmalloc")
    message(FATAL_ERROR "BIUD_MALLOC=tcmalloc: libtcmalloc_minimal not found (Debian: apt install libtcmalloc-minimal4)")
  else()
    message(STATUS "tcmalloc not found: the executables use glibc's malloc (apt install libtcmalloc-minimal4 for ~14 % faster training)")
  endif()
endif()
