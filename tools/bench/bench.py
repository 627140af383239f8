#!/usr/bin/env python3
"""peerback benchmarks: peerback, restic and Borg on the same generated data.

Called by tools/bench/run.sh (tools/run bench). Every party is a real
process: the account service, the host and the phones talk over loopback
TCP. Wall and CPU time of one-shot commands come from wait4(), their peak
resident memory from GNU time (see spawn_measured); the long-running
host's from /proc.

    bench.py --bin DIR [--quick] [--work DIR] [--out FILE] [--skip-others]
"""
import argparse
import filecmp
import glob
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PASSWORD = "bench-account-password"
RECOVERY = "bench recovery passphrase"
REPO_PASSWORD = "bench-repository-password"
SEED = 1
MIB = 1024 * 1024
MB = 1000 * 1000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("==> " + msg, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes

class Result:
    def __init__(self, argv, rc, wall, cpu, rss_kib, out, err):
        self.argv, self.rc, self.wall, self.cpu, self.rss_kib = argv, rc, wall, cpu, rss_kib
        self.out, self.err = out, err

    def check(self, what):
        if self.rc != 0:
            raise BenchError("%s failed (exit %d): %s\n%s" % (what, self.rc, " ".join(self.argv),
                                                             self.err[-2000:]))
        return self

    def json_event(self, name):
        """The last JSON line of stdout whose "event" is name."""
        found = None
        for line in self.out.splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("event") == name:
                found = obj
        return found


def base_env(extra=None):
    env = dict(os.environ)
    env["PEERBACK_PASSWORD"] = PASSWORD
    env["PEERBACK_RECOVERY_PASSPHRASE"] = RECOVERY
    if extra:
        env.update(extra)
    return env


def measured_env(home):
    """The environment of a measured command of the phone at home. Once the
    phone holds its key (HOME/master.key, made by its first backup or
    restore) it needs no recovery passphrase, and given one the CLI checks
    it against the wrapped key (Argon2id MODERATE: about a second and 256
    MiB), which no everyday command of a user pays: the passphrase is
    left out then. Logins and pairings get base_env()."""
    env = base_env()
    if os.path.exists(os.path.join(home, "master.key")):
        env.pop("PEERBACK_RECOVERY_PASSPHRASE", None)
    return env


# A child's ru_maxrss on Linux is at least its parent's peak at the fork:
# exec keeps the largest of the old address space's high-water mark (here
# the bench's own Python, which grows to hundreds of MiB reading the
# million-message store) and the new one's. GNU time forks the measured
# command from its own small process and reports that child's peak alone.
GNU_TIME = "/usr/bin/time"


def spawn_measured(argv, env=None, cwd=None, peak=True):
    """Starts argv with stdout and stderr in temporary files, under GNU
    time when it is there and peak is true (for the command's own peak
    RSS). The latency rows pass peak=False: GNU time's own process start
    (about 0.7 ms on this machine) is not the command's."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    rss = None
    if peak and os.access(GNU_TIME, os.X_OK):
        fd, rss = tempfile.mkstemp(prefix="pb-bench-rss-")
        os.close(fd)
        argv = [GNU_TIME, "-q", "-f", "%M", "-o", rss] + list(argv)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                         env=env if env is not None else base_env(), cwd=cwd)
    return (p, t0, out, err, argv, rss)


def finish_measured(handle):
    p, t0, out, err, argv, rss = handle
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    maxrss = ru.ru_maxrss
    if rss is not None:
        try:
            with open(rss) as f:
                maxrss = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
        os.unlink(rss)
        argv = argv[6:]
    out.seek(0)
    err.seek(0)
    res = Result(argv, p.returncode, wall, ru.ru_utime + ru.ru_stime, maxrss,
                 out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))
    res.minflt = ru.ru_minflt
    out.close()
    err.close()
    return res


def run(argv, env=None, cwd=None, peak=True):
    return finish_measured(spawn_measured(argv, env, cwd, peak))


def proc_cpu(pid):
    """User plus system CPU seconds of a running process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Daemon:
    """A long-running program printing JSON lines (peerback-imd serve,
    peerback host)."""

    def __init__(self, argv, env=None):
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env if env is not None else base_env())
        self.errlines = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.errlines), daemon=True).start()

    def _read(self, stream, into):
        for raw in stream:
            with self.cond:
                into.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def events(self):
        out = []
        with self.cond:
            lines = list(self.lines)
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_event(self, pred, timeout=30.0, start=0):
        """Waits for a JSON line at index >= start satisfying pred; returns
        (index, object)."""
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    try:
                        obj = json.loads(self.lines[i])
                    except ValueError:
                        obj = None
                    if obj is not None and pred(obj):
                        return i, obj
                    i += 1
                if self.p.poll() is not None:
                    raise BenchError("%s exited (%s): %s" % (self.argv[0], self.p.returncode,
                                                              "\n".join(self.errlines[-20:])))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("timed out waiting for %s: %s" % (" ".join(self.argv),
                                                                       "\n".join(self.errlines[-20:])))
                self.cond.wait(min(left, 0.5))

    def cpu(self):
        return proc_cpu(self.p.pid)

    def hwm_kib(self):
        return proc_hwm_kib(self.p.pid)

    def stop(self):
        """Stops the program; returns its peak RSS in KiB."""
        if self.p.returncode is not None:
            return 0
        hwm = 0
        try:
            hwm = self.hwm_kib()
        except OSError:
            pass
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        return hwm


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- data

def tree_bytes(root):
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            total += st.st_size
    return total


def tree_files(root):
    out = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            out.append(os.path.relpath(os.path.join(dirpath, name), root))
    out.sort()
    return out


def trees_equal(a, b):
    """True when both trees hold the same files with the same bytes."""
    fa, fb = tree_files(a), tree_files(b)
    if fa != fb:
        return False
    for rel in fa:
        if not filecmp.cmp(os.path.join(a, rel), os.path.join(b, rel), shallow=False):
            return False
    return True


def message_ids(device, limit=None):
    """Chat message item ids (chat/<chat>/msg/<id>) of a device directory."""
    ids = []
    chats = os.path.join(device, "chats")
    if not os.path.isdir(chats):
        return ids
    for chat in sorted(os.listdir(chats)):
        path = os.path.join(chats, chat, "result.json")
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b'  {"id":'):
                    mid = line[8:line.index(b",", 8)].decode()
                    ids.append("chat/%s/msg/%s" % (chat, mid))
    return ids


def change_one_percent(device, seed=SEED):
    """Changes about 1% of the items of a device directory in place: every
    100th message of each chat gets a different text, and every 100th chat
    attachment (in path order) is rewritten with new bytes of the same size.
    Returns (items changed, bytes of the changed items)."""
    rng = random.Random(seed)
    changed = 0
    changed_bytes = 0
    opaque = []
    for rel in tree_files(device):
        path = os.path.join(device, rel)
        if rel.startswith("chats/") and rel.endswith("/result.json"):
            with open(path, "rb") as f:
                lines = f.readlines()
            n = 0
            for i, line in enumerate(lines):
                if not line.startswith(b'  {"id":'):
                    continue
                n += 1
                if n % 100 != 50:
                    continue
                key = b'"text":"'
                at = line.find(key)
                if at < 0:
                    continue
                at += len(key)
                # Insert ASCII words at the start of the text string; the
                # line stays valid JSON and canonical.
                lines[i] = line[:at] + b"edited " + line[at:]
                changed += 1
                changed_bytes += len(lines[i])
            tmp = path + ".bench"
            with open(tmp, "wb") as f:
                f.writelines(lines)
            os.rename(tmp, path)
        elif rel.startswith("chats/") and "/" in rel[len("chats/"):]:
            opaque.append(rel)
    for k, rel in enumerate(opaque):
        if k % 100 != 50:
            continue
        path = os.path.join(device, rel)
        size = os.path.getsize(path)
        with open(path, "wb") as f:
            left = size
            while left > 0:
                n = min(left, MIB)
                f.write(rng.randbytes(n))
                left -= n
        changed += 1
        changed_bytes += size
    return changed, changed_bytes


# ---------------------------------------------------------------- peerback

class PeerbackEnv:
    """An account service, a host and phones, each with its own home."""

    def __init__(self, bindir, root, imd_port=0, host_port=0):
        self.bin = bindir
        self.root = root
        self.pb = os.path.join(bindir, "peerback")
        self.imd = None
        self.host = None
        self.imd_port, self.host_port = imd_port, host_port
        self.imd_home = os.path.join(root, "imd")
        self.host_home = os.path.join(root, "host")

    def peerback(self, home, *args, env=None, peak=True):
        return run([self.pb, "--home", home] + list(args), env=env, peak=peak)

    def start(self, fresh=True):
        if fresh:
            shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root, exist_ok=True)
        imd = os.path.join(self.bin, "peerback-imd")
        if fresh:
            run([imd, "--home", self.imd_home, "add-account", "bench"]).check("add-account")
        self.imd = Daemon([imd, "--home", self.imd_home, "serve", "--listen",
                           "127.0.0.1:%d" % self.imd_port, "--json"])
        _, ev = self.imd.wait_event(lambda o: "listen" in o and "key" in o, 20)
        self.imd_addr, self.imd_key = ev["listen"], ev["key"]
        # A host that cannot start (its port taken, say) leaves nothing
        # running behind the error.
        try:
            if fresh:
                self.login(self.host_home, "host")
            self.host = Daemon([self.pb, "--home", self.host_home, "host", "--json", "--listen",
                                "127.0.0.1:%d" % self.host_port, "--qr-ttl", "3600",
                                "--max-failures", "100000"])
            self.host.wait_event(lambda o: o.get("event") == "listening", 20)
            self.host.wait_event(lambda o: o.get("event") == "advertise", 20)
        except BaseException:
            self.stop()
            raise

    def login(self, home, name):
        self.peerback(home, "account", "login", "--imd", self.imd_addr, "--imd-key", self.imd_key,
                      "--account", "bench", "--name", name).check("login " + name)

    def current_uri(self):
        uri = None
        for ev in self.host.events():
            if ev.get("event") == "advertise":
                uri = ev["uri"]
        return uri

    def next_uri(self, used, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            uri = self.current_uri()
            if uri is not None and uri != used:
                return uri
            time.sleep(0.005)
        raise BenchError("the host showed no new pairing code")

    def add_phone(self, name, key=True):
        """A logged-in, paired phone. With key, its recovery passphrase is
        set up too, by a backup of an empty device directory: that once-only
        step wraps the phone's key with Argon2id MODERATE (about a second and
        256 MiB) and is kept out of the measured steps (self.key_setup)."""
        home = os.path.join(self.root, name)
        self.login(home, name)
        uri = self.current_uri()
        self.peerback(home, "pair", uri).check("pair " + name)
        self.next_uri(uri)
        if key:
            empty = os.path.join(self.root, name + "-empty")
            os.makedirs(empty, exist_ok=True)
            res = self.peerback(home, "--json", "backup", "--device", empty).check("key setup of " + name)
            self.key_setup = {"key_setup_s": res.wall, "key_setup_rss_mib": res.rss_kib / 1024}
        return home

    def stop(self):
        hwm = 0
        if self.host is not None:
            hwm = self.host.stop()
            self.host = None
        if self.imd is not None:
            self.imd.stop()
            self.imd = None
        return hwm


def pb_backup(env, phone, device):
    """One measured backup; returns a dict."""
    cpu0 = env.host.cpu()
    res = env.peerback(phone, "--json", "backup", "--device", device,
                       env=measured_env(phone)).check("peerback backup")
    host_cpu = env.host.cpu() - cpu0
    done = res.json_event("backup-done")
    if done is None:
        raise BenchError("peerback backup printed no backup-done event:\n" + res.out[-2000:])
    return {"wall": res.wall, "phone_cpu": res.cpu, "host_cpu": host_cpu, "rss_kib": res.rss_kib,
            "done": done}


def pb_restore(env, phone, to, *extra, peak=True):
    res = env.peerback(phone, "--json", "restore", "--to", to, *extra,
                       env=measured_env(phone), peak=peak).check("peerback restore")
    done = res.json_event("restore-done")
    if done is None:
        raise BenchError("peerback restore printed no restore-done event:\n" + res.out[-2000:])
    return {"wall": res.wall, "cpu": res.cpu, "rss_kib": res.rss_kib, "done": done}


def host_verify(env, r, step):
    """`peerback host verify` on the host's store after a step (it reads
    the store while the host runs); r["host_verify"][step] says clean."""
    res = env.peerback(env.host_home, "--json", "host", "verify")
    ev = res.json_event("verify")
    clean = res.rc == 0 and ev is not None and ev.get("clean") is True
    r.setdefault("host_verify", {})[step] = clean
    if not clean:
        log("host verify after %s: NOT clean (exit %d): %s" % (step, res.rc, (res.out + res.err)[-800:]))
    return clean


def file_digest(path):
    """SHA-256 of a file, hex: which build a kept store was written by."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def percentile(values, pct):
    v = sorted(values)
    rank = max(1, (len(v) * pct + 99) // 100)
    return v[rank - 1]


def pairing_latency(env, n):
    """Remembered-pairing sessions (IK + account challenge/response) and
    first pairings (ticket + NKpsk0 + challenge/response), n of each, in one
    process each, without process start or password hashing."""
    tool = os.path.join(env.bin, "bench-pair")
    phone = env.add_phone("pairing-phone")
    res = run([tool, "connect", phone, str(n)]).check("bench-pair connect")
    ik = res.json_event("latency")

    # First pairings: the host shows a new code after each one.
    fresh = os.path.join(env.root, "first-pair-phone")
    env.login(fresh, "first-pair-phone")
    p = subprocess.Popen([tool, "pair", fresh, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=base_env())
    uri = env.current_uri()
    first = None
    for _ in range(n):
        p.stdin.write((uri + "\n").encode())
        p.stdin.flush()
        line = p.stdout.readline()
        if not line:
            break
        uri = env.next_uri(uri)
    # Read the rest through the same buffered reader as the lines above.
    p.stdin.close()
    out = p.stdout.read()
    err = p.stderr.read()
    p.wait(timeout=60)
    for line in out.decode().splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("event") == "latency":
            first = obj
    if p.returncode != 0 or first is None:
        raise BenchError("bench-pair pair failed (exit %s): %s %s" % (p.returncode, out.decode()[-500:],
                                                                    err.decode()[-2000:]))
    return ik, first


def bench_peerback(args, size, data, dbytes):
    """Backup, re-backups, restore, pairing and memory on one dataset."""
    root = os.path.join(args.work, "peerback-" + size)
    env = PeerbackEnv(args.bin, root)
    r = {"dataset_bytes": dbytes}
    log("peerback %s: account service, host and phone" % size)
    env.start()
    try:
        phone = env.add_phone("phone")
        r.update(env.key_setup)
        device = os.path.join(root, "device")
        shutil.copytree(data, device, symlinks=True)

        log("peerback %s: pairing latency (%d sessions, %d first pairings)" % (size, args.pair_n, args.pair_n))
        ik, first = pairing_latency(env, args.pair_n)
        r["pairing_ms_p50"] = ik["p50_ms"]
        r["pairing_ms_p99"] = ik["p99_ms"]
        r["first_pairing_ms_p50"] = first["p50_ms"]
        r["first_pairing_ms_p99"] = first["p99_ms"]

        log("peerback %s: full backup" % size)
        b = pb_backup(env, phone, device)
        r["backup_s"] = b["wall"]
        r["backup_mb_s"] = dbytes / MB / b["wall"]
        r["backup_cpu_s"] = b["phone_cpu"] + b["host_cpu"]
        r["backup_phone_cpu_s"] = b["phone_cpu"]
        r["backup_host_cpu_s"] = b["host_cpu"]
        r["backup_items"] = b["done"].get("items")
        r["backup_bytes_sent"] = b["done"].get("bytes_sent")
        phone_rss = b["rss_kib"]
        r["backup_phone_peak_rss_mib"] = b["rss_kib"] / 1024
        host_verify(env, r, size + "_backup")

        log("peerback %s: re-backup, nothing changed" % size)
        b = pb_backup(env, phone, device)
        r["rebackup_unchanged_s"] = b["wall"]
        r["rebackup_unchanged_bytes_sent"] = b["done"].get("bytes_sent")
        phone_rss = max(phone_rss, b["rss_kib"])
        host_verify(env, r, size + "_unchanged")

        log("peerback %s: full restore onto a fresh device directory" % size)
        to = os.path.join(root, "restored")
        x = pb_restore(env, phone, to)
        r["restore_s"] = x["wall"]
        r["restore_mb_s"] = dbytes / MB / x["wall"]
        r["restore_cpu_s"] = x["cpu"]
        r["restore_identical"] = trees_equal(device, to)
        r["restore_peak_rss_mib"] = x["rss_kib"] / 1024
        phone_rss = max(phone_rss, x["rss_kib"])
        shutil.rmtree(to, ignore_errors=True)

        log("peerback %s: re-backup with 1%% of the items changed" % size)
        nchanged, changed_bytes = change_one_percent(device)
        b = pb_backup(env, phone, device)
        r["rebackup_1pct_s"] = b["wall"]
        r["rebackup_1pct_items_changed"] = nchanged
        r["rebackup_1pct_changed_item_bytes"] = changed_bytes
        r["rebackup_1pct_bytes_sent"] = b["done"].get("bytes_sent")
        r["rebackup_1pct_sent_fraction"] = (b["done"].get("bytes_sent") or 0) / dbytes
        phone_rss = max(phone_rss, b["rss_kib"])
        host_verify(env, r, size + "_1pct")

        if args.single_from == size:
            ids = message_ids(device)
            single_restore(env, phone, ids, r, args)
            newphone_single_restore(env, "phone", ids, r, args)

        nfc_fallback(env, phone, device, r, args)

        r["phone_peak_rss_mib"] = phone_rss / 1024
        r["host_peak_rss_mib"] = env.host.hwm_kib() / 1024
    finally:
        env.stop()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return r


def nfc_fallback(env, phone, device, r, args):
    """NFC fallback: during a transaction the phone cannot read a credential
    (its device directory here is empty), fetches it from the paired host,
    checks it and uses it. Each call is a fresh `peerback nfc use` command;
    the latency is the command's own fetch_ms (request to usable
    credential: IK session, account check, item lookup, decrypt, checks),
    the command's wall time is kept beside it."""
    creds = sorted(f[:-len(".json")] for f in os.listdir(os.path.join(device, "credentials"))
                   if f.endswith(".json"))
    empty = os.path.join(env.root, "nfc-device")
    os.makedirs(empty, exist_ok=True)

    def use(cid):
        x = env.peerback(phone, "--json", "nfc", "use", cid, "--transaction", "--device", empty,
                         env=measured_env(phone), peak=False)
        ev = x.json_event("nfc-used")
        if x.rc != 0 or ev is None or ev.get("source") != "host":
            return None, x
        return ev, x

    # Generated credentials include expired ones, which the phone rightly
    # refuses to use; time the usable ones.
    usable = [c for c in creds if use(c)[0] is not None]
    if not usable:
        raise BenchError("no credential of the dataset could be used through the NFC fallback")
    log("NFC fallback: %d fresh commands over %d credentials" % (args.nfc_n, len(usable)))
    fetch, wall = [], []
    for i in range(args.nfc_n):
        ev, x = use(usable[i % len(usable)])
        if ev is None:
            raise BenchError("nfc use %s failed: %s" % (usable[i % len(usable)], x.err[-500:]))
        fetch.append(ev["fetch_ms"])
        wall.append(x.wall * 1000)
    r["nfc_fallback_ms_p50"] = percentile(fetch, 50)
    r["nfc_fallback_ms_p99"] = percentile(fetch, 99)
    r["nfc_fallback_command_ms_p50"] = percentile(wall, 50)


def single_restore(env, phone, ids, r, args, prefix="single_restore", extra=()):
    """Restores single messages by id, each a fresh command (process start,
    IK session, account check, lookup, decrypt, write). extra: more
    arguments of restore (--from DEVICE for a new phone); the figures go
    to r[prefix + "_ms_p50"] and so on."""
    if not ids:
        raise BenchError("no chat messages to restore")
    rng = random.Random(SEED)
    pick = [ids[rng.randrange(len(ids))] for _ in range(args.single_n)]
    times = []
    base = os.path.join(env.root, "single")
    log("single-message restore: %d fresh commands against a store of %d messages" % (len(pick), len(ids)))
    # What the previous step wrote is flushed first: a fresh store's
    # writeback would otherwise sit in the restores' fsyncs.
    os.sync()
    time.sleep(1)
    lookups = {}
    for i, mid in enumerate(pick):
        to = os.path.join(base, str(i))
        x = pb_restore(env, phone, to, "--id", mid, *extra, peak=False)
        # The message comes back inside its chat's result.json (with the
        # chat's frame, which the file needs).
        chat, num = mid.split("/")[1], mid.split("/")[3]
        restored = os.path.join(to, "chats", chat, "result.json")
        with open(restored, "rb") as f:
            body = f.read()
        if ('{"id":%s,' % num).encode() not in body or not x["done"].get("items"):
            raise BenchError("restore --id %s did not restore that message" % mid)
        times.append(x["wall"] * 1000)
        how = x["done"].get("lookup", "?")
        lookups[how] = lookups.get(how, 0) + 1
        shutil.rmtree(to, ignore_errors=True)
    r[prefix + "_ms_p50"] = percentile(times, 50)
    r[prefix + "_ms_p99"] = percentile(times, 99)
    # Every command's time in the order run, to tell a slow start from
    # scattered outliers.
    r[prefix + "_ms_each"] = [round(t, 2) for t in times]
    r[prefix + "_store_messages"] = len(ids)
    # How each was found: "state" (one request) or "manifest" (the walk).
    r[prefix + "_lookups"] = lookups


def newphone_single_restore(env, owner, ids, r, args):
    """single_restore on a new phone: a fresh home logged in and paired,
    with no backup state, restoring the owner's messages (--from)."""
    res = env.peerback(env.host_home, "--json", "host", "devices").check("host devices")
    dev = None
    for line in res.out.splitlines():
        if line.startswith("{"):
            obj = json.loads(line)
            if obj.get("name") == owner:
                dev = obj.get("device")
    if dev is None:
        raise BenchError("host devices lists no device named %s" % owner)
    name = "newphone-%d" % int(time.time() * 1000)
    home = env.add_phone(name, key=False)
    try:
        single_restore(env, home, ids, r, args, "newphone_single_restore", ("--from", dev))
    finally:
        shutil.rmtree(home, ignore_errors=True)


def message_device(args):
    """A device directory of four chats holding args.messages messages or a
    few more, from a synthetic Telegram export; kept for later runs."""
    device = os.path.join(args.work, "data", "messages-seed%d-%d" % (SEED, args.messages))
    mark = device + ".done"
    if os.path.exists(mark):
        # restic and Borg store a symlink given as the folder itself, not
        # what it points to: every tool gets the real path.
        return os.path.realpath(device)
    shutil.rmtree(device, ignore_errors=True)
    os.makedirs(os.path.dirname(device), exist_ok=True)
    export = device + ".export.json"
    # The synthetic export holds about 2,235 messages a MiB.
    mib = args.messages // 2200 + 1
    log("message store: writing a Telegram export of %d MiB" % mib)
    tool = os.path.join(args.bin, "telegram-bigfile")
    run([tool, "write", export, str(mib), "4"]).check("telegram-bigfile write")
    log("message store: importing it")
    run([tool, "import", device, export]).check("telegram-bigfile import")
    os.unlink(export)
    with open(mark, "w") as f:
        f.write("ok\n")
    return device


def bench_message_store(args):
    """Single-message restore from a store holding at least a million
    messages. The store is built once and kept under the work directory
    (keyed by seed and message count) so that later runs start at once."""
    root = os.path.join(args.work, "msgstore-seed%d-%d" % (SEED, args.messages))
    state_file = os.path.join(root, "bench-state.json")
    r = {}
    env = None
    built_by = file_digest(os.path.join(args.bin, "peerback"))
    if os.path.isfile(state_file):
        with open(state_file) as f:
            state = json.load(f)
    else:
        state = None
    if state is not None and state.get("built_by") != built_by:
        # Written by another build: its snapshot format (the id index's
        # chunking, say) may not be this build's, so the lookups would
        # time the old format. Built again.
        log("message store: written by another build; building it again")
        state = None
    if state is not None:
        env = PeerbackEnv(args.bin, root, state["imd_port"], state["host_port"])
        try:
            log("message store: reusing %s" % root)
            env.start(fresh=False)
        except BenchError as e:
            log("message store: cannot reuse it (%s); building it again" % e)
            env.stop()
            env = None
    try:
        if env is None:
            device = message_device(args)
            ids = message_ids(device)
            if len(ids) < args.messages:
                raise BenchError("the message store holds %d messages, fewer than %d" % (len(ids), args.messages))
            env = PeerbackEnv(args.bin, root, free_port(), free_port())
            env.start(fresh=True)
            phone = env.add_phone("phone")
            log("message store: backing up %d messages" % len(ids))
            b = pb_backup(env, phone, device)
            r["message_store_backup_s"] = b["wall"]
            with open(os.path.join(root, "ids.json"), "w") as f:
                json.dump(ids, f)
            with open(state_file, "w") as f:
                json.dump({"imd_port": env.imd_port, "host_port": env.host_port,
                           "built_by": built_by}, f)
        with open(os.path.join(root, "ids.json")) as f:
            ids = json.load(f)
        single_restore(env, os.path.join(root, "phone"), ids, r, args)
        newphone_single_restore(env, "phone", ids, r, args)
    finally:
        if env is not None:
            env.stop()
    return r


class DesktopClient:
    """The desktop web app's HTTP API as its page uses it: the session
    cookie from the printed address, the CSRF value, same-origin POSTs."""

    def __init__(self, url):
        import http.client
        import urllib.parse
        u = urllib.parse.urlsplit(url)
        self.origin = "%s://%s" % (u.scheme, u.netloc)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        status, _, headers = self.request("GET", u.path + "?" + u.query)
        cookie = headers.get("Set-Cookie", "")
        if not cookie:
            raise BenchError("desktop: no session cookie (HTTP %d)" % status)
        self.cookie = cookie.split(";")[0]
        self.csrf = self.get("/api/session")["csrf"]

    def request(self, method, path, body=None):
        headers = {"Origin": self.origin}
        if getattr(self, "cookie", None):
            headers["Cookie"] = self.cookie
        if getattr(self, "csrf", None):
            headers["X-PB-CSRF"] = self.csrf
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read(), r.headers

    def get(self, path):
        status, data, _ = self.request("GET", path)
        if status != 200:
            raise BenchError("desktop: GET %s: HTTP %d %s" % (path, status, data[:200]))
        return json.loads(data)

    def post(self, path, obj):
        status, data, _ = self.request("POST", path, json.dumps(obj))
        if status != 200:
            raise BenchError("desktop: POST %s: HTTP %d %s" % (path, status, data[:200]))
        return json.loads(data)


def bench_desktop_search(args, n=20):
    """Searching a million-message backup in the desktop app: the message
    store's host home opened by `peerback desktop`, the backup opened with
    the recovery passphrase over HTTP as the page does, then n searches,
    each for a fresh word that a few messages hold (a message's link,
    https://example.org/ID, with an ID so large that only its own message
    and few others hold it), and one that none holds."""
    import urllib.parse
    root = os.path.join(args.work, "msgstore-seed%d-%d" % (SEED, args.messages))
    state_file = os.path.join(root, "bench-state.json")
    if not os.path.isfile(state_file):
        raise BenchError("desktop search: no message store at %s" % root)
    with open(state_file) as f:
        state = json.load(f)
    with open(os.path.join(root, "ids.json")) as f:
        ids = json.load(f)
    env = PeerbackEnv(args.bin, root, state["imd_port"], state["host_port"])
    imd = os.path.join(args.bin, "peerback-imd")
    env.imd = Daemon([imd, "--home", env.imd_home, "serve", "--listen", "127.0.0.1:%d" % env.imd_port, "--json"])
    env.imd.wait_event(lambda o: "listen" in o and "key" in o, 20)
    desk = Daemon([env.pb, "--home", env.host_home, "desktop", "--listen", "127.0.0.1:0", "--no-announce"])
    r = {}
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None:
            for line in list(desk.lines):
                at = line.find("http://127.0.0.1:")
                if at >= 0 and "token=" in line:
                    url = line[at:].split()[0]
            if url is None:
                if desk.p.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("desktop: printed no address: %s" % "\n".join(desk.errlines[-20:]))
                time.sleep(0.05)
        c = DesktopClient(url)
        devices = [d for d in c.get("/api/devices") if d.get("snapshots")]
        if not devices:
            raise BenchError("desktop: no device with a snapshot")
        log("desktop: opening the backup of %d messages" % len(ids))
        cpu0 = desk.cpu()
        t0 = time.monotonic()
        opened = c.post("/api/open", {"device": devices[0]["device"], "passphrase": RECOVERY})
        r["desktop_open_s"] = time.monotonic() - t0
        r["desktop_open_cpu_s"] = desk.cpu() - cpu0
        r["desktop_messages"] = opened.get("messages", 0)
        if r["desktop_messages"] < len(ids):
            raise BenchError("desktop: the open backup shows %d messages, the store holds %d" %
                             (r["desktop_messages"], len(ids)))
        # The links the messages really carry (https://example.org/N), read
        # from the export itself; above a tenth of the largest N, no longer
        # link starts with another.
        links = set()
        for dirpath, _, files in os.walk(message_device(args)):
            for name in files:
                if name.endswith(".json"):
                    with open(os.path.join(dirpath, name), "rb") as f:
                        links.update(int(x) for x in re.findall(rb'https://example\.org/(\d+)"', f.read()))
        nums = sorted(links)
        if len(nums) < n:
            raise BenchError("desktop: the message store holds %d links, fewer than %d" % (len(nums), n))
        top = nums[-1]
        cands = [x for x in nums if x * 10 > top]
        rng = random.Random(SEED)
        words = ["example.org/%d" % x for x in rng.sample(cands, n)]
        times, hits = [], []
        for w in words:
            t = time.monotonic()
            res = c.get("/api/messages?q=" + urllib.parse.quote(w))
            times.append((time.monotonic() - t) * 1000)
            hits.append(res["total"])
            if res["total"] < 1 or not any(w in m["text"] for m in res["messages"]):
                raise BenchError("desktop: a search for %s found no message holding it" % w)
        t = time.monotonic()
        none = c.get("/api/messages?q=" + urllib.parse.quote("zebra lighthouse 4711"))
        r["desktop_search_none_ms"] = (time.monotonic() - t) * 1000
        if none["total"] != 0:
            raise BenchError("desktop: a word no message holds found %d" % none["total"])
        r["desktop_search_ms_p50"] = percentile(times, 50)
        r["desktop_search_ms_p99"] = percentile(times, 99)
        r["desktop_search_hits"] = "%d-%d" % (min(hits), max(hits))
        r["desktop_rss_kib"] = desk.hwm_kib()
        log("desktop: open %.1f s; search p50 %.1f ms, p99 %.1f ms (%s hits), none %.1f ms" %
            (r["desktop_open_s"], r["desktop_search_ms_p50"], r["desktop_search_ms_p99"],
             r["desktop_search_hits"], r["desktop_search_none_ms"]))
    finally:
        desk.stop()
        env.stop()
    return r


def bench_concurrent(args, data, dbytes, nphones=16):
    root = os.path.join(args.work, "peerback-concurrent")
    env = PeerbackEnv(args.bin, root)
    log("peerback: %d phones backing up at once to one host" % nphones)
    env.start()
    r = {}
    try:
        phones = [env.add_phone("phone-%02d" % i) for i in range(nphones)]
        cpu0 = env.host.cpu()
        t0 = time.monotonic()
        handles = [spawn_measured([env.pb, "--home", p, "--json", "backup", "--device", data], measured_env(p))
                   for p in phones]
        results = [finish_measured(h) for h in handles]
        wall = time.monotonic() - t0
        for res in results:
            res.check("concurrent backup")
            if res.json_event("backup-done") is None:
                raise BenchError("a concurrent backup printed no backup-done event")
        r["concurrent16_mb_s"] = nphones * dbytes / MB / wall
        r["concurrent16_s"] = wall
        r["concurrent16_host_cpu_s"] = env.host.cpu() - cpu0
        r["concurrent16_phone_peak_rss_mib"] = max(x.rss_kib for x in results) / 1024
        r["concurrent16_host_peak_rss_mib"] = env.host.hwm_kib() / 1024
        r["concurrent16_dataset_bytes"] = dbytes
        host_verify(env, r, "concurrent16")
    finally:
        env.stop()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return r


# ---------------------------------------------------------------- restic, Borg

def bench_restic(args, size, data, dbytes):
    root = os.path.join(args.work, "restic-" + size)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    env = base_env({"RESTIC_PASSWORD": REPO_PASSWORD, "RESTIC_REPOSITORY": os.path.join(root, "repo"),
                    "RESTIC_CACHE_DIR": os.path.join(root, "cache")})
    restic = shutil.which("restic")
    r = {"dataset_bytes": dbytes}
    log("restic %s: init, backup, re-backup, restore" % size)
    run([restic, "init"], env=env).check("restic init")
    b = run([restic, "backup", "--quiet", data], env=env).check("restic backup")
    r["backup_s"], r["backup_cpu_s"] = b.wall, b.cpu
    r["backup_mb_s"] = dbytes / MB / b.wall
    b2 = run([restic, "backup", "--quiet", data], env=env).check("restic backup (unchanged)")
    r["rebackup_unchanged_s"] = b2.wall
    to = os.path.join(root, "restored")
    x = run([restic, "restore", "latest", "--target", to], env=env).check("restic restore")
    r["restore_s"] = x.wall
    r["restore_cpu_s"] = x.cpu
    r["restore_mb_s"] = dbytes / MB / x.wall
    r["restore_identical"] = trees_equal(data, os.path.join(to, os.path.relpath(data, "/")))
    r["backup_peak_rss_mib"] = max(b.rss_kib, b2.rss_kib) / 1024
    r["restore_peak_rss_mib"] = x.rss_kib / 1024
    r["host_peak_rss_mib"] = max(b.rss_kib, b2.rss_kib, x.rss_kib) / 1024
    r["version"] = run([restic, "version"], env=env).out.strip()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return r


def bench_borg(args, size, data, dbytes):
    root = os.path.join(args.work, "borg-" + size)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    repo = os.path.join(root, "repo")
    env = base_env({"BORG_PASSPHRASE": REPO_PASSWORD, "BORG_BASE_DIR": os.path.join(root, "base"),
                    "BORG_DISPLAY_PASSPHRASE": "no", "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"})
    borg = shutil.which("borg")
    parent, name = os.path.split(data.rstrip("/"))
    r = {"dataset_bytes": dbytes}
    log("borg %s: init, create, create again, extract" % size)
    run([borg, "init", "--encryption=repokey", repo], env=env).check("borg init")
    b = run([borg, "create", repo + "::first", name], env=env, cwd=parent).check("borg create")
    r["backup_s"], r["backup_cpu_s"] = b.wall, b.cpu
    r["backup_mb_s"] = dbytes / MB / b.wall
    b2 = run([borg, "create", repo + "::second", name], env=env, cwd=parent).check("borg create (unchanged)")
    r["rebackup_unchanged_s"] = b2.wall
    to = os.path.join(root, "restored")
    os.makedirs(to)
    x = run([borg, "extract", repo + "::first"], env=env, cwd=to).check("borg extract")
    r["restore_s"] = x.wall
    r["restore_cpu_s"] = x.cpu
    r["restore_mb_s"] = dbytes / MB / x.wall
    r["restore_identical"] = trees_equal(data, os.path.join(to, name))
    r["backup_peak_rss_mib"] = max(b.rss_kib, b2.rss_kib) / 1024
    r["restore_peak_rss_mib"] = x.rss_kib / 1024
    r["host_peak_rss_mib"] = max(b.rss_kib, b2.rss_kib, x.rss_kib) / 1024
    r["version"] = run([borg, "--version"], env=env).out.strip()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return r


# ---------------------------------------------------------------- report

def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int):
        if v >= MIB:
            return "%.1f MiB" % (v / MIB)
        return "%d%s" % (v, unit)
    if v >= 100:
        return "%.0f%s" % (v, unit)
    if v >= 10:
        return "%.1f%s" % (v, unit)
    return "%.2f%s" % (v, unit)


def ratio(a, b, higher_better=True):
    if a is None or b is None or a == 0 or b == 0:
        return "n/a"
    return "%.2fx" % (a / b if higher_better else b / a)


def print_table(size, tools):
    pb, rs, bg = tools.get("peerback", {}), tools.get("restic", {}), tools.get("borg", {})
    rows = [
        # label, key, unit, higher is better, target (text), target check
        ("dataset", "dataset_bytes", "", True, "", None),
        ("full backup MB/s", "backup_mb_s", "", True, ">=1.5x restic and borg",
         lambda: (pb.get("backup_mb_s") or 0) >= 1.5 * max(rs.get("backup_mb_s") or 0, bg.get("backup_mb_s") or 0)),
        ("full backup wall s", "backup_s", "", False, "", None),
        ("full backup CPU s", "backup_cpu_s", "", False, "", None),
        ("re-backup unchanged s", "rebackup_unchanged_s", "", False, "<= restic",
         lambda: pb.get("rebackup_unchanged_s") is not None and rs.get("rebackup_unchanged_s") is not None
         and pb["rebackup_unchanged_s"] <= rs["rebackup_unchanged_s"]),
        ("re-backup unchanged sent", "rebackup_unchanged_bytes_sent", "", False, "", None),
        ("re-backup 1% changed s", "rebackup_1pct_s", "", False, "", None),
        ("re-backup 1% bytes sent", "rebackup_1pct_bytes_sent", "", False, "<=2% of dataset",
         lambda: pb.get("rebackup_1pct_bytes_sent") is not None
         and pb["rebackup_1pct_bytes_sent"] <= 0.02 * pb["dataset_bytes"]),
        ("full restore MB/s", "restore_mb_s", "", True, "", None),
        ("full restore CPU s", "restore_cpu_s", "", False, "", None),
        ("restore identical", "restore_identical", "", True, "", None),
        ("host peak RSS MiB", "host_peak_rss_mib", "", False, "<=48",
         lambda: pb.get("host_peak_rss_mib") is not None and pb["host_peak_rss_mib"] <= 48),
        ("phone peak RSS MiB", "phone_peak_rss_mib", "", False, "<=96",
         lambda: pb.get("phone_peak_rss_mib") is not None and pb["phone_peak_rss_mib"] <= 96),
        ("restore peak RSS MiB", "restore_peak_rss_mib", "", False, "", None),
        ("single restore p50 ms", "single_restore_ms_p50", "", False, "<=5",
         lambda: pb.get("single_restore_ms_p50") is not None and pb["single_restore_ms_p50"] <= 5),
        ("single restore p99 ms", "single_restore_ms_p99", "", False, "", None),
        ("  (store messages)", "single_restore_store_messages", "", True, "", None),
        ("desktop search p50 ms", "desktop_search_ms_p50", "", False, "<=500",
         lambda: pb.get("desktop_search_ms_p50") is not None and pb["desktop_search_ms_p50"] <= 500),
        ("desktop search p99 ms", "desktop_search_ms_p99", "", False, "<=500",
         lambda: pb.get("desktop_search_ms_p99") is not None and pb["desktop_search_ms_p99"] <= 500),
        ("  (open the backup, s)", "desktop_open_s", "", False, "", None),
        ("pairing (IK) p50 ms", "pairing_ms_p50", "", False, "<=10",
         lambda: pb.get("pairing_ms_p50") is not None and pb["pairing_ms_p50"] <= 10),
        ("pairing (IK) p99 ms", "pairing_ms_p99", "", False, "", None),
        ("first pairing p50 ms", "first_pairing_ms_p50", "", False, "", None),
        ("NFC fallback p50 ms", "nfc_fallback_ms_p50", "", False, "", None),
        ("NFC fallback p99 ms", "nfc_fallback_ms_p99", "", False, "", None),
        ("  (whole command p50 ms)", "nfc_fallback_command_ms_p50", "", False, "", None),
        ("16 phones aggregate MB/s", "concurrent16_mb_s", "", True, "", None),
        ("16 phones host RSS MiB", "concurrent16_host_peak_rss_mib", "", False, "", None),
    ]
    head = ("%-26s %12s %12s %12s %10s %10s  %-24s %s" %
            ("%s dataset" % size, "peerback", "restic", "borg", "vs restic", "vs borg", "target", "met"))
    print()
    print(head)
    print("-" * len(head))
    for label, key, unit, hib, target, check in rows:
        a, b, c = pb.get(key), rs.get(key), bg.get(key)
        if a is None and b is None and c is None and key not in ("nfc_fallback_ms_p50",):
            continue
        plain = isinstance(a, bool) or key == "dataset_bytes"
        rr = ratio(a, b, hib) if b is not None and not plain else ""
        rb = ratio(a, c, hib) if c is not None and not plain else ""
        met = ""
        if check is not None:
            try:
                met = "yes" if check() else "NO"
            except (TypeError, KeyError):
                met = "n/a"
        note = target
        if key == "nfc_fallback_ms_p50" and a is None:
            note = "not in this build"
        print("%-26s %12s %12s %12s %10s %10s  %-24s %s" %
              (label, fmt(a, unit), fmt(b, unit), fmt(c, unit), rr, rb, note, met))
    print("(MB = 10^6 bytes; ratios: how many times better peerback is; "
          "restic/borg RSS: their one process)")


# ---------------------------------------------------------------- account service

def pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


class PgCluster:
    """A throwaway PostgreSQL cluster on a Unix socket (as nobody when we
    are root: the server refuses root)."""

    def __init__(self, root):
        self.bin = pg_bindir()
        self.root = root
        self.data = os.path.join(root, "data")
        self.sock = os.path.join(root, "sock")
        self.port = 20000 + os.getpid() % 20000
        self.prefix = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []

    def _run(self, prog, *args):
        p = subprocess.run(self.prefix + [os.path.join(self.bin, prog)] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise BenchError("%s: %s" % (prog, p.stderr.decode()[-500:]))

    def start(self):
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.data)
        os.makedirs(self.sock)
        os.chmod(self.root, 0o755)
        if self.prefix:
            import pwd
            pw = pwd.getpwnam("nobody")
            for d in (self.data, self.sock):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", self.data, "-U", "peerback", "--auth=trust", "--no-sync")
        # Durable settings (fsync on): the figures are what a deployment gets.
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.sock, "log"), "-w", "-o",
                  "-k %s -p %d -c listen_addresses=''" % (self.sock, self.port), "start")

    def createdb(self, name):
        self._run("createdb", "-h", self.sock, "-p", str(self.port), "-U", "peerback", name)
        return "postgresql:///%s?host=%s&port=%d&user=peerback" % (name, self.sock, self.port)

    def stop(self):
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        except BenchError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def imd_config(args, name, db, instances, logins, tickets, threads):
    """Starts `instances` peerback-imd on one home (one key) and database
    db (None: SQLite), runs bench-imd against them, stops them."""
    imd = os.path.join(args.bin, "peerback-imd")
    home = os.path.join(args.work, "imd-bench", name.replace(" ", "-"))
    shutil.rmtree(home, ignore_errors=True)
    env = base_env()
    env.pop("PEERBACK_IMD_DB", None)
    dbarg = ["--db", db] if db else []
    run([imd, "--home", home] + dbarg + ["add-account", "bench"], env=env).check("add-account")
    daemons, addrs, key = [], [], None
    try:
        for _ in range(instances):
            d = Daemon([imd, "--home", home] + dbarg + ["serve", "--listen", "127.0.0.1:0", "--json"], env=env)
            daemons.append(d)
            _, ev = d.wait_event(lambda o: "listen" in o and "key" in o, 20)
            addrs.append(ev["listen"])
            key = ev["key"]
        res = run([os.path.join(args.bin, "bench-imd"), ",".join(addrs), key, "bench", PASSWORD,
                   str(logins), str(tickets), str(threads)]).check("bench-imd")
        fig = json.loads(res.out.strip().splitlines()[-1])
    finally:
        rss = [d.stop() for d in daemons]
    return {"logins_per_s": fig["logins_per_s"], "tickets_per_s": fig["tickets_per_s"],
            "peak_rss_kib": max(rss) if rss else None}


def bench_imd(args):
    """Logins and ticket checks per second: one SQLite instance, one
    PostgreSQL instance, two PostgreSQL instances."""
    logins, tickets, threads = (16, 200, 4) if args.quick else (64, 1000, 8)
    out = {}
    log("account service: sqlite, 1 instance")
    out["sqlite x1"] = imd_config(args, "sqlite", None, 1, logins, tickets, threads)
    if pg_bindir() is None:
        log("account service: PostgreSQL is not installed; its rows are skipped")
        return out
    pg = PgCluster(os.path.join("/tmp", "peerback-bench-pg-%d" % os.getpid()))
    pg.start()
    try:
        log("account service: postgresql, 1 instance")
        out["postgresql x1"] = imd_config(args, "pg1", pg.createdb("imd1"), 1, logins, tickets, threads)
        log("account service: postgresql, 2 instances")
        out["postgresql x2"] = imd_config(args, "pg2", pg.createdb("imd2"), 2, logins, tickets, threads)
    finally:
        pg.stop()
    return out


def print_imd_table(res):
    head = "%-26s %14s %16s %16s" % ("account service", "logins/s", "ticket checks/s", "peak RSS MiB")
    print()
    print(head)
    print("-" * len(head))
    for name in ("sqlite x1", "postgresql x1", "postgresql x2"):
        r = res.get(name)
        if r is None:
            print("%-26s %14s %16s %16s" % (name, "n/a", "n/a", "n/a"))
            continue
        print("%-26s %14.1f %16.1f %16.1f" % (name, r["logins_per_s"], r["tickets_per_s"],
                                              (r["peak_rss_kib"] or 0) / 1024.0))
    print("(bench-imd: each request a fresh connection and Noise handshake; peak RSS: the largest "
          "instance's VmHWM)")


# ---------------------------------------------------------------- main

def install_dataset(args, size):
    path = os.path.join(args.work, "data", "%s-seed%d" % (size, SEED))
    mark = path + ".done"
    if not os.path.exists(mark):
        shutil.rmtree(path, ignore_errors=True)
        log("generating the %s dataset (seed %d)" % (size, SEED))
        run([os.path.join(args.bin, "peerback"), "--home", os.path.join(args.work, "gen-home"), "gen",
             "--out", path, "--seed", str(SEED), "--size", size]).check("peerback gen")
        with open(mark, "w") as f:
            f.write("ok\n")
    path = os.path.realpath(path)
    return path, tree_bytes(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--quick", action="store_true", help="small dataset only, a few minutes")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep", action="store_true", help="keep repositories and stores")
    ap.add_argument("--skip-others", action="store_true", help="do not run restic and borg")
    ap.add_argument("--messages", type=int, default=1000000)
    ap.add_argument("--imd-only", action="store_true", help="the account service's rows only")
    ap.add_argument("--only", default=None,
                    help="comma-separated parts to run, of: " + ",".join(PARTS) + " (default: all)")
    args = ap.parse_args()
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args.bin = os.path.abspath(args.bin)
    args.work = os.path.abspath(args.work or os.path.join(top, "bench", "work"))
    args.out = os.path.abspath(args.out or os.path.join(top, "bench", "results.json"))
    args.pair_n = 100
    args.single_n = 100
    args.nfc_n = 100
    os.makedirs(args.work, exist_ok=True)
    sizes = ["small"] if args.quick else ["small", "standard"]
    # Quick runs restore single messages from the small dataset's store;
    # full runs from a store of at least a million messages.
    args.single_from = "small" if args.quick else None

    parts = set(PARTS if args.only is None else args.only.split(","))
    if not parts <= set(PARTS):
        raise BenchError("--only takes some of: " + ",".join(PARTS))

    t_start = time.monotonic()
    load_start = os.getloadavg()[0]
    if args.imd_only:
        print_imd_table(bench_imd(args))
        return
    results = {}
    for size in sizes:
        data, dbytes = install_dataset(args, size)
        tools = {"peerback": bench_peerback(args, size, data, dbytes)} if "main" in parts else {"peerback": {}}
        if size == "small" and "concurrent" in parts:
            c = bench_concurrent(args, data, dbytes)
            tools["peerback"].setdefault("host_verify", {}).update(c.pop("host_verify", {}))
            tools["peerback"].update(c)
        if not args.skip_others and "main" in parts:
            tools["restic"] = bench_restic(args, size, data, dbytes)
            tools["borg"] = bench_borg(args, size, data, dbytes)
        results[size] = tools
    if not args.quick:
        if "message-store" in parts:
            results["standard"]["peerback"].update(bench_message_store(args))
            results["standard"]["peerback"].update(bench_desktop_search(args))
        # The concurrent figure is measured once, on the small dataset.
        for k, v in results["small"]["peerback"].items():
            if k.startswith("concurrent16_"):
                results["standard"]["peerback"][k] = v
    main_size = sizes[-1]
    extra = {}
    if "million" in parts and not args.quick:
        extra["million"] = million.bench_million(args)
    if "link" in parts:
        extra["link"] = link.bench_link(args, *install_dataset(args, main_size))
    if "limits" in parts:
        extra["limits"] = limits.bench_limits(args)
    imd = bench_imd(args) if "imd" in parts else {}
    extra["targets"] = targets.compute(results, extra.get("million"), extra.get("link"))

    doc = dict(results[main_size])
    doc["account_service"] = imd
    doc["small"] = results["small"]
    doc.update(extra)
    doc["meta"] = {
        "mode": "quick" if args.quick else "full",
        "parts": sorted(parts),
        "main_dataset": main_size,
        "seed": SEED,
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "seconds": time.monotonic() - t_start,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "concurrent16_dataset": "small",
        "single_restore_store": "small dataset" if args.quick else "%d+ messages" % args.messages,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    for size in sizes:
        print_table(size, results[size])
    if "million" in extra:
        million.print_million(extra["million"])
    if "limits" in extra:
        limits.print_limits(extra["limits"], results[main_size].get("peerback"))
    if imd:
        print_imd_table(imd)
    targets.print_targets(extra["targets"])
    print("\nresults: %s (%.0f s; load average %.1f at the start, %.1f at the end, %d CPUs)" %
          (args.out, time.monotonic() - t_start, load_start, os.getloadavg()[0], os.cpu_count()))


def entry():
    try:
        main()
    except BenchError as e:
        print("peerback bench: %s" % e, file=sys.stderr)
        sys.exit(1)


# The parts of the bench that --only can name. Each row module (million.py,
# link.py, limits.py, targets.py) imports this file as the module "bench".
PARTS = ["main", "concurrent", "message-store", "million", "link", "limits", "imd"]

if __name__ == "__main__":
    # Run as the module "bench", the one the row modules import, so that
    # there is one copy of every class (BenchError above all).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench
    bench.entry()
else:
    import limits  # noqa: E402
    import link  # noqa: E402
    import million  # noqa: E402
    import targets  # noqa: E402
