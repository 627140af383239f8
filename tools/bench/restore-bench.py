#!/usr/bin/env python3
"""Full restores alone, against one backup (the restore rows of bench.py,
narrower: to compare builds in the same minute).

    restore-bench.py BIN ROOT setup DATA   # account service, host, phone, one backup
    restore-bench.py BIN ROOT restore N    # N full restores, each compared with DATA
    restore-bench.py BIN ROOT restore N aside  # the same, each earlier restore moved
                                               # to ROOT/aside, not removed

BIN holds peerback and peerback-imd; the same ROOT can be restored with
another BIN (the host is restarted with it). Each restore: wall, MB/s,
phone CPU, host CPU (from /proc), phone peak RSS, byte-identical or not.
Ports: PB_BENCH_IMD_PORT, PB_BENCH_HOST_PORT (47311, 47312).

aside: a file system without a journal (ext4 here) skips the inodes freed
in the last minutes when it allocates new ones, reading each one's table
block: a restore made right after the last one was removed pays for that
on every file and folder it creates (a second of the phone's CPU for the
standard dataset, when runs follow each other). Moving the last restore
aside keeps runs comparable; remove ROOT/aside afterwards.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    binp, root, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    env = bench.PeerbackEnv(os.path.abspath(binp), root,
                            imd_port=int(os.environ.get("PB_BENCH_IMD_PORT", "47311")),
                            host_port=int(os.environ.get("PB_BENCH_HOST_PORT", "47312")))
    if mode == "setup":
        env.start(fresh=True)
        phone = env.add_phone("phone")
        dev = os.path.join(root, "device")
        shutil.copytree(sys.argv[4], dev, symlinks=True)
        b = bench.pb_backup(env, phone, dev)
        print("backup wall %.2f s, phone CPU %.2f s, host CPU %.2f s" % (b["wall"], b["phone_cpu"], b["host_cpu"]))
        env.stop()
        return
    env.start(fresh=False)
    try:
        restores(env, root, int(sys.argv[4]), len(sys.argv) > 5 and sys.argv[5] == "aside")
    except BaseException:
        env.stop()
        raise
    print("host peak RSS %.1f MiB" % (env.stop() / 1024))


def restores(env, root, n, aside):
    """n full restores into ROOT/restored, each compared with ROOT/device."""
    phone = os.path.join(root, "phone")
    dev = os.path.join(root, "device")
    dbytes = bench.tree_bytes(dev)
    for _ in range(n):
        to = os.path.join(root, "restored")
        if aside and os.path.exists(to):
            os.makedirs(os.path.join(root, "aside"), exist_ok=True)
            os.rename(to, os.path.join(root, "aside", "%d" % len(os.listdir(os.path.join(root, "aside")))))
        shutil.rmtree(to, ignore_errors=True)
        os.sync()
        cpu0 = env.host.cpu()
        x = bench.pb_restore(env, phone, to)
        host_cpu = env.host.cpu() - cpu0
        print("restore wall %.2f s, %.1f MB/s, phone CPU %.2f s, host CPU %.2f s, phone peak RSS %.1f MiB, "
              "identical %s" % (x["wall"], dbytes / bench.MB / x["wall"], x["cpu"], host_cpu, x["rss_kib"] / 1024,
                                bench.trees_equal(dev, to)), flush=True)


if __name__ == "__main__":
    main()
