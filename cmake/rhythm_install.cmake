# Install rules and the package config: find_package(rhythm CONFIG) gives rhythm::rhythm.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/rhythm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS rhythm EXPORT rhythmTargets)
install(EXPORT rhythmTargets NAMESPACE rhythm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/rhythm)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/rhythmConfig.cmake.in
  ${PROJECT_BINARY_DIR}/rhythmConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/rhythm)
# A header-only library: any architecture may use it.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/rhythmConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/rhythmConfig.cmake ${PROJECT_BINARY_DIR}/rhythmConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/rhythm)
