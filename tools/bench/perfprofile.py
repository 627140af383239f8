"""The profiles of tools/bench/profile.sh: a full backup and a full restore,
the phone's command under perf record and the running host attached by
perf record -p for the length of each."""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402

PERF = ["perf", "record", "-q", "-e", "cpu-clock", "-g"]


def report(data, top):
    res = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol", "--stdio"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = [x for x in res.stdout.splitlines() if x.strip() and not x.startswith("#") and "%" in x
             and not x.lstrip().startswith(("|", "-", "--"))]
    # Call-chain columns ("-") left out; the library names the symbols of
    # a stripped shared library.
    return [" ".join(x.split()).rstrip(" -") for x in lines[:top]]


def threads(data, top):
    """Samples by thread, most first, with each thread's top symbols (self
    time): which thread is busy, and with what. perf's cpu-clock samples
    at 4 kHz by default, so 4,000 samples are a second of CPU."""
    res = subprocess.run(["perf", "script", "-i", data, "-F", "tid,ip,sym"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    per, tid, first = {}, None, False
    for line in res.stdout.splitlines():
        f = line.split()
        if len(f) == 1 and f[0].isdigit():
            tid, first = f[0], True
            per.setdefault(tid, {})
        elif f and first and tid is not None:
            sym = f[1] if len(f) > 1 else f[0]
            per[tid][sym] = per[tid].get(sym, 0) + 1
            first = False
    total = sum(sum(c.values()) for c in per.values()) or 1
    lines = []
    for t, c in sorted(per.items(), key=lambda kv: -sum(kv[1].values()))[:top]:
        n = sum(c.values())
        syms = ", ".join("%s %.0f%%" % (k, 100.0 * v / n) for k, v in sorted(c.items(), key=lambda kv: -kv[1])[:4])
        lines.append("thread %s: %d samples (%.1f%%): %s" % (t, n, 100.0 * n / total, syms))
    return lines


def profiled(env, out, name, argv):
    """Runs argv (a phone command) under perf, with the host sampled too."""
    host = subprocess.Popen(PERF + ["-o", os.path.join(out, "host-%s.data" % name), "-p",
                                    str(env.host.p.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    res = b.run(PERF + ["-o", os.path.join(out, "phone-%s.data" % name), "--"] + argv, env=b.measured_env(argv[2]))
    host.send_signal(signal.SIGINT)
    host.wait(timeout=60)
    res.check(name)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--size", default="standard")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    topdir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args.work = os.path.join(topdir, "bench", "work")
    out = os.path.join(args.work, "profile")
    os.makedirs(out, exist_ok=True)
    data, dbytes = b.install_dataset(args, args.size)
    env = b.PeerbackEnv(args.bin, os.path.join(args.work, "profile-run"))
    env.start()
    try:
        phone = env.add_phone("phone")
        pb = [env.pb, "--home", phone, "--json"]
        x = profiled(env, out, "backup", pb + ["backup", "--device", data])
        b.log("backup of %.0f MB: %.1f s, phone CPU %.1f s" % (dbytes / b.MB, x.wall, x.cpu))
        to = os.path.join(env.root, "restored")
        x = profiled(env, out, "restore", pb + ["restore", "--to", to])
        b.log("restore: %.1f s, phone CPU %.1f s" % (x.wall, x.cpu))
        shutil.rmtree(to, ignore_errors=True)
    finally:
        env.stop()
        shutil.rmtree(env.root, ignore_errors=True)
    for name in ("phone-backup", "host-backup", "phone-restore", "host-restore"):
        print("\n%s (%s dataset): top %d symbols, self time" % (name, args.size, args.top))
        for line in report(os.path.join(out, name + ".data"), args.top):
            print("  " + line.strip())
        print("%s: by thread" % name)
        for line in threads(os.path.join(out, name + ".data"), 8):
            print("  " + line)


if __name__ == "__main__":
    try:
        main()
    except b.BenchError as e:
        print("profile: %s" % e, file=sys.stderr)
        sys.exit(1)
