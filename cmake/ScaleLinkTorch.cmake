# Locate libtorch inside the torch wheel of the build's Python.
#
# torch's own TorchConfig.cmake insists on a CUDA toolkit when the wheel is a CUDA build,
# which the machines running CPU inference do not have; only the headers and three shared
# libraries are needed, so they are declared by hand.
#
# Defines:
#   ScaleLink::torch         libtorch + libtorch_cpu + libc10, include folders, C++ ABI flag;
#                            with SCALELINK_WITH_CUDA also libtorch_cuda + libc10_cuda and the
#                            compile definition SCALELINK_TORCH_CUDA=1
#   SCALELINK_TORCH_LIB_DIR
#
# Option SCALELINK_WITH_CUDA (default ON): use the CUDA libraries of a CUDA build of torch for
# `pair_style scalelink device cuda`. It turns itself off for a CPU-only torch wheel; the
# plugin then builds and runs on CPU only. No CUDA toolkit is needed either way.

include_guard(GLOBAL)
include(ScaleLinkPython)

scalelink_python_query(_torch_info
  "import importlib.util as u, os; d = u.find_spec('torch').submodule_search_locations[0]; import torch; print(d, int(torch.compiled_with_cxx11_abi()), torch.__version__, sep=';')"
  "install torch into this environment (pip install 'torch==2.15.*') and, with pip, build with --no-build-isolation so the plugin links the torch that will run it")
list(GET _torch_info 0 _torch_dir)
list(GET _torch_info 1 _torch_cxx11_abi)
list(GET _torch_info 2 _torch_version)

set(SCALELINK_TORCH_LIB_DIR "${_torch_dir}/lib")
set(_torch_includes "${_torch_dir}/include" "${_torch_dir}/include/torch/csrc/api/include")
if(NOT EXISTS "${_torch_dir}/include/torch/script.h")
  message(FATAL_ERROR
    "ScaleLink: the torch wheel at ${_torch_dir} has no C++ headers (torch/script.h).\n"
    "Fix: install the official torch wheel: pip install 'torch==2.15.*'")
endif()

add_library(ScaleLink::torch INTERFACE IMPORTED)
foreach(_name IN ITEMS torch torch_cpu c10)
  set(_lib "${SCALELINK_TORCH_LIB_DIR}/lib${_name}.so")
  if(NOT EXISTS "${_lib}")
    message(FATAL_ERROR
      "ScaleLink: ${_lib} not found in the torch wheel.\n"
      "Fix: reinstall torch: pip install --force-reinstall 'torch==2.15.*'")
  endif()
  add_library(ScaleLink::torch_${_name} SHARED IMPORTED)
  set_target_properties(ScaleLink::torch_${_name} PROPERTIES IMPORTED_LOCATION "${_lib}")
  target_link_libraries(ScaleLink::torch INTERFACE ScaleLink::torch_${_name})
endforeach()

set_target_properties(ScaleLink::torch PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${_torch_includes}"
  # the torch 2.x headers use C++20 features; the ABI flag must match the wheel's libraries
  INTERFACE_COMPILE_FEATURES cxx_std_20
  INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=${_torch_cxx11_abi}")

option(SCALELINK_WITH_CUDA "Use the CUDA libraries of the torch wheel when it has them" ON)
set(_cuda_libs "${SCALELINK_TORCH_LIB_DIR}/libtorch_cuda.so" "${SCALELINK_TORCH_LIB_DIR}/libc10_cuda.so")
set(_torch_cuda OFF)
if(SCALELINK_WITH_CUDA)
  set(_torch_cuda ON)
  foreach(_lib IN LISTS _cuda_libs)
    if(NOT EXISTS "${_lib}")
      set(_torch_cuda OFF)
    endif()
  endforeach()
endif()
if(_torch_cuda)
  # Nothing in the plugin calls into these libraries directly: torch finds its CUDA backend
  # through hooks that libtorch_cuda registers when it is loaded, so they are linked even
  # where the linker would drop unreferenced libraries.
  target_link_libraries(ScaleLink::torch INTERFACE
    "-Wl,--push-state,--no-as-needed" ${_cuda_libs} "-Wl,--pop-state")
  target_compile_definitions(ScaleLink::torch INTERFACE SCALELINK_TORCH_CUDA=1)
  message(STATUS "ScaleLink: CUDA support from the torch wheel (libtorch_cuda, libc10_cuda)")
else()
  message(STATUS "ScaleLink: CPU-only build (no CUDA libraries in the torch wheel, or SCALELINK_WITH_CUDA=OFF)")
endif()

message(STATUS "ScaleLink: torch ${_torch_version} from ${_torch_dir}")
