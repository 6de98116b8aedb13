# Adapters: each its own INTERFACE target and include root; the core never sees a foreign type.
# Included (not add_subdirectory) so that the found packages' imported targets are visible project-wide.
# Each is built when its library is found (or required with RHYTHM_WITH_<NAME>=ON).
set(RHYTHM_WITH_EIGEN AUTO CACHE STRING "Build rhythm::eigen (ON, OFF, AUTO)")
set(RHYTHM_WITH_XTENSOR AUTO CACHE STRING "Build rhythm::xtensor (ON, OFF, AUTO)")
set(RHYTHM_WITH_TORCH AUTO CACHE STRING "Build rhythm::torch (ON, OFF, AUTO)")

function(rhythm_adapter name dir)
  add_library(rhythm_${name} INTERFACE)
  add_library(rhythm::${name} ALIAS rhythm_${name})
  set_target_properties(rhythm_${name} PROPERTIES EXPORT_NAME ${name})
  target_include_directories(rhythm_${name} INTERFACE
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/adapters/${dir}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(rhythm_${name} INTERFACE rhythm::rhythm ${ARGN})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/adapters/${dir}/include/rhythm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(TARGETS rhythm_${name} EXPORT rhythmTargets)
  string(TOUPPER ${name} upper)
  set(RHYTHM_HAS_${upper} ON PARENT_SCOPE)  # the function's caller: the top-level scope
endfunction()

# find_package(<package> <args>) as RHYTHM_WITH_<name> asks: REQUIRED for ON, QUIET for AUTO, not at all for OFF.
macro(rhythm_find_for name package)
  if(RHYTHM_WITH_${name} STREQUAL "ON")
    find_package(${package} ${ARGN} REQUIRED)
  elseif(NOT RHYTHM_WITH_${name} STREQUAL "OFF")
    find_package(${package} ${ARGN} QUIET)
  endif()
endmacro()

rhythm_find_for(EIGEN Eigen3 3.3 CONFIG)
if(TARGET Eigen3::Eigen AND NOT RHYTHM_WITH_EIGEN STREQUAL "OFF")
  rhythm_adapter(eigen eigen Eigen3::Eigen)
endif()

rhythm_find_for(XTENSOR xtensor CONFIG)
if(TARGET xtensor AND NOT RHYTHM_WITH_XTENSOR STREQUAL "OFF")
  rhythm_adapter(xtensor xtensor xtensor)
endif()

rhythm_find_for(TORCH Torch CONFIG)
if(TORCH_FOUND AND NOT RHYTHM_WITH_TORCH STREQUAL "OFF")
  # torch's flags (e.g. the libstdc++ ABI define) reach rhythm::torch's consumers only.
  rhythm_adapter(torch libtorch torch)
  separate_arguments(rhythm_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(rhythm_torch INTERFACE ${rhythm_torch_flags})
  # The device path of credit.hpp (RHYTHM_TORCH_CUDA=1), when LibTorch has CUDA and rhythm's CUDA
  # backend is on (cmake/rhythm_cuda.cmake): the static library rhythm_torch_cuda holds the
  # launchers (src/cuda_launch.cu: nvcc, rhythm::cuda, no ATen nor c10) and the current-stream
  # lookup (src/cuda_stream.cpp: the host compiler, c10's CUDA headers), so that no header of
  # rhythm::torch includes a CUDA header and no nvcc translation unit includes ATen.
  if(RHYTHM_HAS_CUDA AND (TARGET torch_cuda OR "${TORCH_LIBRARIES}" MATCHES "torch_cuda|c10_cuda"))
    set(rhythm_torch_src ${PROJECT_SOURCE_DIR}/adapters/libtorch/src)
    add_library(rhythm_torch_cuda_stream OBJECT ${rhythm_torch_src}/cuda_stream.cpp)
    target_include_directories(rhythm_torch_cuda_stream PRIVATE ${PROJECT_SOURCE_DIR}/adapters/libtorch/include)
    target_link_libraries(rhythm_torch_cuda_stream PRIVATE rhythm::rhythm torch CUDA::cudart)
    target_compile_options(rhythm_torch_cuda_stream PRIVATE ${rhythm_torch_flags})
    set_target_properties(rhythm_torch_cuda_stream PROPERTIES POSITION_INDEPENDENT_CODE ON)

    add_library(rhythm_torch_cuda STATIC ${rhythm_torch_src}/cuda_launch.cu $<TARGET_OBJECTS:rhythm_torch_cuda_stream>)
    add_library(rhythm::torch_cuda ALIAS rhythm_torch_cuda)
    set_target_properties(rhythm_torch_cuda PROPERTIES EXPORT_NAME torch_cuda POSITION_INDEPENDENT_CODE ON)
    target_include_directories(rhythm_torch_cuda PRIVATE ${PROJECT_SOURCE_DIR}/adapters/libtorch/include)
    # torch's libraries (c10_cuda for the stream) are linked, but none of its flags reach nvcc, except
    # the libstdc++ ABI, which must match the adapter's (a rhythm::error crosses from one to the other).
    target_link_libraries(rhythm_torch_cuda PUBLIC rhythm::cuda PRIVATE $<LINK_ONLY:torch>)
    if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=([01])")
      target_compile_definitions(rhythm_torch_cuda PRIVATE _GLIBCXX_USE_CXX11_ABI=${CMAKE_MATCH_1})
    endif()
    install(TARGETS rhythm_torch_cuda EXPORT rhythmTargets)
    # rhythm_torch_cuda first: a static library before the shared ones it needs.
    set_property(TARGET rhythm_torch PROPERTY INTERFACE_LINK_LIBRARIES rhythm::torch_cuda rhythm::rhythm torch)
    target_compile_definitions(rhythm_torch INTERFACE RHYTHM_TORCH_CUDA=1)
    set(RHYTHM_HAS_TORCH_CUDA ON)
  endif()
endif()
