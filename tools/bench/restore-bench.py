#!/usr/bin/env python3
"""Full restores alone, against one backup (the restore rows of bench.py,
narrower: to compare builds in the same minute).

    restore-bench.py BIN ROOT setup DATA   # account service, host, phone, one backup
    restore-bench.py BIN ROOT restore N    # N full restores, each compared with DATA
    restore-bench.py BIN ROOT restore N aside  # the same, each earlier restore moved
                                               # to ROOT/aside, not removed
    restore-bench.py BIN ROOT timeline N   # N restores (aside), each one's progress
                                           # events timed as they come

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
import json
import os
import shutil
import subprocess
import sys
import time

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
        if mode == "timeline":
            timelines(env, root, int(sys.argv[4]))
        else:
            restores(env, root, int(sys.argv[4]), len(sys.argv) > 5 and sys.argv[5] == "aside")
    except BaseException:
        env.stop()
        raise
    print("host peak RSS %.1f MiB" % (env.stop() / 1024))


def move_aside(root, to):
    if os.path.exists(to):
        aside = os.path.join(root, "aside")
        os.makedirs(aside, exist_ok=True)
        os.rename(to, os.path.join(aside, "%d" % len(os.listdir(aside))))


def timelines(env, root, n):
    """n full restores into ROOT/restored (each earlier one moved aside):
    when each progress event came (seconds from the command's start, items
    and MB done), then the wall time and the phone's and host's CPU. Where
    a restore's time goes: a steady rate, a slow start or a long tail."""
    phone = os.path.join(root, "phone")
    for _ in range(n):
        to = os.path.join(root, "restored")
        move_aside(root, to)
        os.sync()
        cpu0 = env.host.cpu()
        t0 = time.perf_counter()
        p = subprocess.Popen([env.pb, "--home", phone, "--json", "restore", "--to", to], stdout=subprocess.PIPE,
                             env=bench.measured_env(phone))
        for line in p.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "progress":
                print("  %.3f s: %d items, %.0f MB" % (time.perf_counter() - t0, ev.get("items_done", 0),
                                                      ev.get("bytes_done", 0) / 1e6))
        _, status, ru = os.wait4(p.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise bench.BenchError("peerback restore failed")
        print("restore wall %.3f s, phone CPU %.2f s, host CPU %.2f s" % (
            time.perf_counter() - t0, ru.ru_utime + ru.ru_stime, env.host.cpu() - cpu0), flush=True)


def restores(env, root, n, aside):
    """n full restores into ROOT/restored, each compared with ROOT/device."""
    phone = os.path.join(root, "phone")
    dev = os.path.join(root, "device")
    dbytes = bench.tree_bytes(dev)
    for _ in range(n):
        to = os.path.join(root, "restored")
        if aside:
            move_aside(root, to)
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
