# The Debian package: `make deb` configures a build with prefix /usr and the SDK
# in Debian's dist-packages, then runs `cpack -G DEB`. One package carries the
# library, header, pkg-config/CMake files, programs, Python SDK, docs and examples.
# The version is project(VERSION); the shared-library dependencies come from
# dpkg-shlibdeps (dpkg-dev).
set(SP_DEB_MAINTAINER "Snakepit maintainers <maintainers@snakepit.invalid>" CACHE STRING
    "Maintainer field of the Debian package")

set(CPACK_PACKAGE_NAME snakepit)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${SP_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "pools of Python workers callable from C and the shell")
set(CPACK_PACKAGE_DESCRIPTION
    "Snakepit runs pools of Python worker processes (one call at a time, or many\n"
    "calls at once on native threads) and lets programs call Python tools on them:\n"
    "from C through libsnakepit, from the shell through the snakepit command, and\n"
    "over HTTP through snakepit serve. Includes the Python SDK (snakepit_bridge).")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
# The SDK needs Python; the built-in pools' showcase adapter imports NumPy.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "python3, python3-numpy")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR "")
include(CPack)
