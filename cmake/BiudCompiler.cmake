# Warnings, sanitizers and ccache.
find_program(BIUD_CCACHE ccache)
if(BIUD_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_C_COMPILER_LAUNCHER ${BIUD_CCACHE})
  # Precompiled headers are built without ccache (see the script).
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_SOURCE_DIR}/cmake/ccache-launcher.sh)
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${BIUD_CCACHE})
endif()

add_library(biud_warnings INTERFACE)
target_compile_options(biud_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${BIUD_WERROR}>>:-Werror>)

if(BIUD_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# Executables reuse the library's precompiled LibTorch header. GCC refuses a PCH built with
# -fPIC in a -fPIE compile, so such executables are compiled with -fPIC as well.
function(biud_reuse_pch target)
  if(BIUD_USE_PCH)
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${target} PRIVATE -fPIC)
    target_precompile_headers(${target} REUSE_FROM biud)
  endif()
endfunction()
