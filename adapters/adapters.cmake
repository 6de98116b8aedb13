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
endif()
