# Installation: `cmake --install` (or `make install PREFIX=... DESTDIR=...`) puts
#   include/snakepit.h, lib*/libsnakepit.so{,.0,.0.x.y}, lib*/pkgconfig/snakepit.pc,
#   lib*/cmake/Snakepit/ (find_package(Snakepit), target Snakepit::snakepit),
#   bin/snakepit, libexec/snakepit/snakepit-worker, the Python SDK, docs and examples.
# The library finds the worker and the SDK relative to its own file, so an
# installed tree needs no environment variables and can be relocated (DESTDIR,
# --prefix at install time); a build-tree library keeps using the build tree.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SP_INSTALL_PYTHONDIR "${CMAKE_INSTALL_DATADIR}/snakepit/python" CACHE STRING
    "Where the Python SDK (snakepit_bridge) is installed, relative to the prefix")
set(SP_INSTALL_WORKERDIR "${CMAKE_INSTALL_LIBEXECDIR}/snakepit")
set(SP_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/Snakepit")

# The version comes from include/snakepit.h (CMakeLists.txt reads it).

# Relative paths from the installed library (and from the installed program to
# the library), computed from absolute install paths under a stand-in prefix.
set(sp_root "/sp-prefix")
foreach(v CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_BINDIR SP_INSTALL_WORKERDIR SP_INSTALL_PYTHONDIR)
  if(IS_ABSOLUTE "${${v}}")
    set(sp_abs_${v} "${${v}}")
  else()
    set(sp_abs_${v} "${sp_root}/${${v}}")
  endif()
endforeach()
file(RELATIVE_PATH sp_rel_worker "${sp_abs_CMAKE_INSTALL_LIBDIR}" "${sp_abs_SP_INSTALL_WORKERDIR}/snakepit-worker")
file(RELATIVE_PATH sp_rel_sdk "${sp_abs_CMAKE_INSTALL_LIBDIR}" "${sp_abs_SP_INSTALL_PYTHONDIR}")
file(RELATIVE_PATH sp_rel_bin_lib "${sp_abs_CMAKE_INSTALL_BINDIR}" "${sp_abs_CMAKE_INSTALL_LIBDIR}")

target_compile_definitions(sp_core_obj PRIVATE
  SP_LIB_BUILD_DIR="$<TARGET_FILE_DIR:snakepit>"
  SP_REL_WORKER="${sp_rel_worker}" SP_REL_SDK="${sp_rel_sdk}")

# The installed program finds the installed library wherever the prefix is.
set_target_properties(snakepit-cli PROPERTIES INSTALL_RPATH "$ORIGIN/${sp_rel_bin_lib}")

target_include_directories(snakepit INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
install(TARGETS snakepit EXPORT SnakepitTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime
                NAMELINK_COMPONENT development)
install(FILES include/snakepit.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT development)
install(TARGETS snakepit-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(TARGETS snakepit-worker RUNTIME DESTINATION ${SP_INSTALL_WORKERDIR} COMPONENT runtime)
install(DIRECTORY python/snakepit_bridge DESTINATION ${SP_INSTALL_PYTHONDIR} COMPONENT runtime
        PATTERN "__pycache__" EXCLUDE PATTERN "*.pyc" EXCLUDE)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime FILES_MATCHING PATTERN "*.md")
install(FILES examples/quickstart.c examples/callbacks.c examples/pools.yaml examples/CMakeLists.txt examples/Makefile
              examples/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT runtime)

# pkg-config: `cc app.c $(pkg-config --cflags --libs snakepit)`.
file(RELATIVE_PATH SP_PC_TO_PREFIX "${sp_abs_CMAKE_INSTALL_LIBDIR}/pkgconfig" "${sp_root}")
string(REGEX REPLACE "/$" "" SP_PC_TO_PREFIX "${SP_PC_TO_PREFIX}")
# Relocatable by default (the prefix given to `cmake --install --prefix` need not be
# the configured one); a distribution package, whose prefix is fixed, says so plainly.
option(SP_PC_RELOCATABLE "snakepit.pc finds its prefix relative to itself" ON)
if(SP_PC_RELOCATABLE)
  set(SP_PC_PREFIX "\${pcfiledir}/${SP_PC_TO_PREFIX}")
else()
  set(SP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
endif()
configure_file(cmake/snakepit.pc.in "${CMAKE_BINARY_DIR}/snakepit.pc" @ONLY)
install(FILES "${CMAKE_BINARY_DIR}/snakepit.pc" DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT development)

# CMake: find_package(Snakepit 0.1 REQUIRED) + target_link_libraries(app Snakepit::snakepit).
install(EXPORT SnakepitTargets NAMESPACE Snakepit:: DESTINATION ${SP_INSTALL_CMAKEDIR}
        COMPONENT development)
configure_package_config_file(cmake/SnakepitConfig.cmake.in
  "${CMAKE_BINARY_DIR}/SnakepitConfig.cmake" INSTALL_DESTINATION ${SP_INSTALL_CMAKEDIR})
# 0.x: a minor release may change the API, so only the same minor version matches.
write_basic_package_version_file("${CMAKE_BINARY_DIR}/SnakepitConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_BINARY_DIR}/SnakepitConfig.cmake" "${CMAKE_BINARY_DIR}/SnakepitConfigVersion.cmake"
        DESTINATION ${SP_INSTALL_CMAKEDIR} COMPONENT development)
