# Cross-compiling for Debian armhf (arm-linux-gnueabihf) on an x86-64 Debian machine:
# the crossbuild-essential-armhf compiler, the armhf builds of the dependencies
# installed through multiarch (/usr/lib/arm-linux-gnueabihf), and the tests run under
# qemu-arm (tools/run cross armhf).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)

set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(PKG_CONFIG_EXECUTABLE arm-linux-gnueabihf-pkg-config CACHE FILEPATH "pkg-config for armhf")

# Headers are shared by every architecture in /usr/include; libraries come
# only from the armhf directories.
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)

# ctest runs every test program under the emulator; the programs the tests
# start are run under it too (PB_TEST_EMULATOR, tests/util/testutil.c).
# No "-L /usr/arm-linux-gnueabihf": the programs link the multiarch libraries in
# /usr/lib/arm-linux-gnueabihf, which need the multiarch libc (libc6:armhf, in /lib) and
# not the cross toolchain's older copy under /usr/arm-linux-gnueabihf; mixing the two
# loaders made fork()ed children hang.
set(PB_EMULATOR /usr/bin/qemu-arm)
set(CMAKE_CROSSCOMPILING_EMULATOR ${PB_EMULATOR})
set(PB_GNU arm-linux-gnueabihf)
include(${CMAKE_CURRENT_LIST_DIR}/sysroot.cmake)
