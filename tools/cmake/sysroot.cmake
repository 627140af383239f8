# A cross build from a sysroot of unpacked Debian packages (tools/run's
# cross_sysroot, used when multiarch cannot install the target's libraries):
# compiler, linker and pkg-config look only inside it, and the emulator
# loads the target's C library and dependencies from it.
# Included by the architecture's toolchain file after it set PB_GNU and
# PB_EMULATOR; does nothing when PB_CROSS_SYSROOT is empty.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PB_CROSS_SYSROOT)
if(PB_CROSS_SYSROOT)
  set(CMAKE_SYSROOT ${PB_CROSS_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH ${PB_CROSS_SYSROOT})
  set(PKG_CONFIG_EXECUTABLE pkg-config CACHE FILEPATH "pkg-config" FORCE)
  set(ENV{PKG_CONFIG_SYSROOT_DIR} ${PB_CROSS_SYSROOT})
  set(ENV{PKG_CONFIG_LIBDIR}
    "${PB_CROSS_SYSROOT}/usr/lib/${PB_GNU}/pkgconfig:${PB_CROSS_SYSROOT}/usr/share/pkgconfig")
  set(ENV{PKG_CONFIG_PATH} "")
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PB_EMULATOR} -L ${PB_CROSS_SYSROOT})
endif()
