# Cross-compiling for Debian arm64 (aarch64-linux-gnu) on an x86-64 Debian machine:
# the crossbuild-essential-arm64 compiler, the arm64 builds of the dependencies
# installed through multiarch (/usr/lib/aarch64-linux-gnu), and the tests run under
# qemu-aarch64 (tools/run cross arm64).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(PKG_CONFIG_EXECUTABLE aarch64-linux-gnu-pkg-config CACHE FILEPATH "pkg-config for arm64")

# Headers are shared by every architecture in /usr/include; libraries come
# only from the arm64 directories.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)

# ctest runs every test program under the emulator; the programs the tests
# start are run under it too (PB_TEST_EMULATOR, tests/util/testutil.c).
# No "-L /usr/aarch64-linux-gnu": the programs link the multiarch libraries in
# /usr/lib/aarch64-linux-gnu, which need the multiarch libc (libc6:arm64, in /lib) and
# not the cross toolchain's older copy under /usr/aarch64-linux-gnu; mixing the two
# loaders made fork()ed children hang.
set(PB_EMULATOR /usr/bin/qemu-aarch64)
set(CMAKE_CROSSCOMPILING_EMULATOR ${PB_EMULATOR})
set(PB_GNU aarch64-linux-gnu)
include(${CMAKE_CURRENT_LIST_DIR}/sysroot.cmake)
