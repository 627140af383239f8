"""The physical limits of this machine (tools/bench-limits.c): per-core
throughput of what a backup does to every byte, and loopback TCP, printed
beside peerback's figures so that the distance to the limit shows."""
import json
import os

import bench as b


def bench_limits(args):
    tool = os.path.join(args.bin, "bench-limits")
    if not os.path.exists(tool):
        b.log("limits: skipped (%s is not built)" % tool)
        return []
    b.log("limits: hashing, sealing, compression and loopback TCP, one core each")
    res = b.run([tool, "--json", "--seconds", "0.5"]).check("bench-limits")
    return json.loads(res.out)


def print_limits(rows, pb=None):
    """rows from bench_limits; pb (the main dataset's peerback results) puts
    peerback's own backup and restore rates under them."""
    if not rows:
        return
    head = "%-30s %-11s %9s %12s" % ("limit of this machine (1 core)", "op", "buffer", "MB/s")
    print()
    print(head)
    print("-" * len(head))
    for x in rows:
        print("%-30s %-11s %6d KiB %12.0f" % (x["what"], x["op"], x["size"] // 1024, x["mb_s"]))
    if pb:
        for label, key in (("peerback full backup", "backup_mb_s"), ("peerback full restore", "restore_mb_s")):
            if pb.get(key) is not None:
                print("%-30s %-11s %9s %12.0f" % (label, "wall", "", pb[key]))
    print("(MB/s per second of the measuring thread's CPU time; TCP per wall second)")
