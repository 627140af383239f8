#!/usr/bin/env python3
"""A backup and a full restore of a device folder of N small files (chat
photos of about 70 bytes, a thousand a chat), for each N given: how the
restore's time grows with the number of files. A fresh account service,
host and phone under ROOT (removed at the end); a tmpfs ROOT (/dev/shm)
leaves the file system's own costs out.

    tools/bench/many-files.py BIN_DIR ROOT N...
   (PERF=1: the restores under `perf record -g`, into ROOT/../many-N.data)"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402

bindir = os.path.abspath(sys.argv[1]); root = sys.argv[2]
env = b.PeerbackEnv(bindir, root, b.free_port(), b.free_port())
env.start(fresh=True)
try:
    phone = env.add_phone("phone")
    for n in [int(x) for x in sys.argv[3:]]:
        dev = os.path.join(root, "dev%d" % n)
        for i in range(n):
            d = os.path.join(dev, "chats", "%d" % (100000000 + i // 1000), "photos")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "photo_%d@01-01-2024_00-00-00.jpg" % i), "wb") as f:
                f.write(os.urandom(64) + b"%d" % i)
        r = env.peerback(phone, "--json", "backup", "--device", dev).check("backup")
        to = os.path.join(root, "to%d" % n)
        pre = []
        if os.environ.get("PERF"):
            data = os.path.join(os.path.dirname(os.path.abspath(root)), "many-%d.data" % n)
            pre = ["perf", "record", "-q", "-g", "-o", data, "--"]
        r2 = b.run(pre + [env.pb, "--home", phone, "--json", "restore", "--to", to]).check("restore")
        print("files %6d  backup %.2f s  restore wall %.2f s cpu %.2f s" % (n, r.wall, r2.wall, r2.cpu), flush=True)
        shutil.rmtree(to); shutil.rmtree(dev)
finally:
    env.stop()
    shutil.rmtree(root, ignore_errors=True)
