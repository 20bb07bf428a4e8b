#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tandem's benchmark: tandem and its peers, same Dovecot, same corpus, same changes.

    run.py [bench] --corpus c5000 [--tools LIST] [--rounds 3] [--scenarios S1,...,S7]
    run.py report RESULTS.jsonl...        the Markdown tables again
    run.py corpus NAME                    generate a corpus snapshot now
    run.py serve NAME                     start the server with the corpus and leave it up

`bench` starts an isolated Dovecot on 127.0.0.1 (free ports; dovecot.sh), generates the
corpus once into $BENCH_VAR/corpus/NAME (gen_corpus.py; BENCH_VAR defaults to var/ here),
then, for each round and each tool (the order rotates between rounds): restores the
server account "src" from the snapshot, empties the second account "dst" and the tool's
work directory, writes the tool's configuration and runs the scenarios in order:

  S1 first sync                       S5 1% of the messages expunged on the server
  S2 nothing changed                  S6 1% of the messages moved to another folder
  S3 1% of the flags changed          S7 1% of the flags changed in the Maildir by a client
  S4 100 new messages                    (renamed files; Maildir targets only)

The change before a sync is untimed and the same for every tool (seeded by round and
scenario). Every sync is timed (wall clock around a blocking wait4; user+sys CPU and peak
RSS of the tool and the children it waited for, which never include the tunnel's Dovecot
(started detached); busy CPU of the machine, Dovecot included) and then verified: per folder, the target (a Maildir, or the "dst" account)
must hold as many messages, and as many of them \\Seen, \\Flagged, \\Answered, \\Draft
and \\Deleted, as the server. Protocol bytes come from Dovecot's logout lines.
Raw records go to RESULTS.jsonl (--out), the tables to RESULTS.md and stdout. The exit
status is 1 when a sync failed or a verification failed, never because of a time.

A tool is tools/NAME.sh, sourced by bash, which defines
  TARGET=maildir|imap     LAYOUT=verbatim|dots (Maildir targets: $WORK/Maildir)
  tool_check              fails when the tool is not installed
  tool_version            prints the version
  tool_setup              writes the configuration under $WORK
  tool_cmd                prints the sync command, one argument per line
with IMAP_PORT IMAPS_PORT CERT FINGERPRINT PASS SRC_USER DST_USER TUNNEL_DST WORK TANDEM
in the environment.
"""
import argparse
import base64
import imaplib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_corpus  # noqa: E402

VAR = os.path.abspath(os.environ.get("BENCH_VAR") or os.path.join(HERE, "var"))
PASS = os.environ.get("BENCH_PASS", "benchpass")
SRC, DST = "src", "dst"
SCENARIOS = {
    "S1": "first sync",
    "S2": "nothing changed",
    "S3": "flags changed on the server",
    "S4": "new messages",
    "S5": "messages expunged",
    "S6": "messages moved between folders",
    "S7": "flags changed in the Maildir",
}
DEFAULT_TOOLS = ["tandem-maildir", "tandem-maildir-tls", "tandem-imap", "mbsync-maildir",
                 "mbsync-imap", "offlineimap-maildir", "interimap", "interimap-nocompress"]
# Which tandem run a peer is compared with.
BASELINE = {"maildir": "tandem-maildir", "imap": "tandem-imap"}
FLAGS = [("\\Seen", "S"), ("\\Flagged", "F"), ("\\Answered", "R"), ("\\Draft", "D"),
         ("\\Deleted", "T")]


def log(*a, **kw):
    print(*a, flush=True, **kw)


# ---------------------------------------------------------------------------- the server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, var):
        self.dir = os.path.join(var, "srv")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.cert = os.path.join(self.dir, "ssl", "cert.pem")
        self.logs = [os.path.join(self.dir, "log", "dovecot.log"),
                     os.path.join(self.dir, "log", "tunnel.log")]
        self.owner = "vmail" if os.geteuid() == 0 else None
        self.port = self.sport = None

    def up(self):
        self.down()
        self.port, self.sport = free_port(), free_port()
        while self.sport == self.port:
            self.sport = free_port()
        subprocess.run([os.path.join(HERE, "dovecot.sh"), "up", self.dir, str(self.port),
                        str(self.sport)], check=True, env=dict(os.environ, BENCH_PASS=PASS))

    def down(self):
        if os.path.isdir(self.dir):
            subprocess.run([os.path.join(HERE, "dovecot.sh"), "down", self.dir], check=False)

    def tunnel(self, user):
        # setsid -f: the tunnel's imap is no tool's child, so its CPU and memory count in
        # no tool's figures. wait4 adds a reaped child's usage to its parent's, and the
        # tools differ: tandem reaps its tunnel, interimap leaves it to exit on its own.
        # The machine's busy CPU still counts it, for every tool alike.
        return "setsid -f %s tunnel %s %s" % (os.path.join(HERE, "dovecot.sh"), self.dir, user)

    def fingerprint(self):
        out = subprocess.run(["openssl", "x509", "-in", self.cert, "-noout", "-fingerprint",
                              "-sha256"], check=True, capture_output=True, text=True).stdout
        return "sha256:" + out.strip().split("=", 1)[1].replace(":", "").lower()

    def home(self, user):
        return os.path.join(self.dir, "mail", user)

    def doveadm(self, *args):
        return subprocess.run(["doveadm", "-c", self.conf] + list(args), check=True,
                              capture_output=True, text=True).stdout

    def chown(self, path):
        if self.owner:
            shutil.chown(path, self.owner, self.owner)

    def log_offsets(self):
        return [os.path.getsize(p) if os.path.exists(p) else 0 for p in self.logs]

    def log_since(self, offsets):
        text = ""
        for p, off in zip(self.logs, offsets):
            if os.path.exists(p):
                with open(p, "rb") as f:
                    f.seek(off)
                    text += f.read().decode("utf-8", "replace")
        return text


RE_LOGIN = re.compile(r"imap-login: Info: Login: user=<([^>]*)>")
RE_LOGOUT = re.compile(r"imap\(([^)]*)\)[^\n]*?Disconnected[^\n]*? in=(\d+) out=(\d+)"
                       r"(?: body_count=(\d+) body_bytes=(\d+))?")


def session_bytes(server, offsets, want_dst, wait=5.0):
    """Protocol bytes per user of the sessions that ended after `offsets`; waits for
    every login to log out (the log lines come a moment after the client exits)."""
    deadline = time.monotonic() + wait
    while True:
        text = server.log_since(offsets)
        logins = RE_LOGIN.findall(text)
        outs = RE_LOGOUT.findall(text)
        done = sum(1 for o in outs if o[0] != DST) >= len(logins)
        if done and (not want_dst or any(o[0] == DST for o in outs)):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    res = {}
    for user, i, o, bc, bb in outs:
        r = res.setdefault(user, {"in": 0, "out": 0, "sessions": 0, "bodies": 0, "body_bytes": 0})
        r["in"] += int(i)
        r["out"] += int(o)
        r["sessions"] += 1
        r["bodies"] += int(bc or 0)
        r["body_bytes"] += int(bb or 0)
    return res


# ------------------------------------------------------------------- corpora and restore

def clone_tree(src, dst, owner):
    """Copy an account: message files (never written in place by Dovecot) are hard links,
    the indexes and uidlists real copies; directory mtimes are kept, so Dovecot does not
    rescan the restored folders."""
    dirs = []
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(target, exist_ok=True)
        dirs.append((dirpath, target))
        linkable = os.path.basename(dirpath) in ("cur", "new")
        for fn in filenames:
            s, d = os.path.join(dirpath, fn), os.path.join(target, fn)
            if linkable:
                os.link(s, d)
            else:
                shutil.copy2(s, d)
                if owner:
                    shutil.chown(d, owner, owner)
        if owner:
            shutil.chown(target, owner, owner)
    for s, d in reversed(dirs):
        shutil.copystat(s, d)


def discard(path):
    """Set a tree aside; the trash is emptied when the run ends. ext4 skips recently freed
    inodes when it allocates new ones, and after a large delete every file created in
    the next minutes pays for that search: whichever tool ran right after the delete of
    another's 50,000 files would be timed on a slower file system."""
    if not os.path.exists(path):
        return
    trash = os.path.join(VAR, "trash")
    os.makedirs(trash, exist_ok=True)
    os.rename(path, os.path.join(trash, "%d-%d" % (os.getpid(), len(os.listdir(trash)))))


def empty_trash():
    shutil.rmtree(os.path.join(VAR, "trash"), ignore_errors=True)


def make_room(messages):
    """Empties the trash now, between two timed syncs, when the file system of VAR may run
    out of inodes during the next tool's round (a tmpfs has a fixed number: three rounds of
    two tools at 200,000 messages filled /dev/shm's 3 million, and Dovecot failed with
    "No space left on device"); stops with a clear message when even that leaves too few."""
    need = 3 * messages + 10000  # the target's files, the new account's, some to spare
    st = os.statvfs(VAR)
    if st.f_files == 0 or st.f_favail >= need:  # no inode limit, or room enough
        return
    empty_trash()
    st = os.statvfs(VAR)
    if st.f_favail < need:
        raise SystemExit("%s has %d free inodes; a round of %d messages needs about %d: free "
                         "some, or give the file system more (a tmpfs: mount -o remount,"
                         "nr_inodes=%d ...)" % (VAR, st.f_favail, messages, need,
                                                 st.f_files + 2 * need))


def reset_account(server, user, snapshot=None):
    home = server.home(user)
    discard(home)
    if snapshot:
        clone_tree(snapshot, home, server.owner)
    else:
        os.makedirs(home)
        server.chown(home)
        os.chmod(home, 0o700)


def ensure_corpus(server, name):
    snap = os.path.join(VAR, "corpus", name)
    if os.path.isdir(os.path.join(snap, "src")):
        return snap
    log("generating corpus %s ..." % name)
    t = time.time()
    reset_account(server, SRC)
    info = gen_corpus.generate(name, os.path.join(server.home(SRC), "Maildir"), server.owner)
    gen_corpus.load_into_dovecot(server.conf, SRC, list(info["folders"]), info["messages"])
    tmp = snap + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    clone_tree(server.home(SRC), os.path.join(tmp, "src"), server.owner)
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(info, f, ensure_ascii=False, indent=1)
    os.rename(tmp, snap)
    log("corpus %s: %d messages, %.1f MB, %d folders, %.0f s" % (
        name, info["messages"], info["bytes"] / 1e6, len(info["folders"]), time.time() - t))
    return snap


# ------------------------------------------------------------------------- verification

def mutf7_decode(s):
    """Modified UTF-7 to Unicode; None when s is not valid modified UTF-7."""
    out, i = [], 0
    while i < len(s):
        if s[i] != "&":
            out.append(s[i])
            i += 1
            continue
        j = s.find("-", i)
        if j < 0:
            return None
        if j == i + 1:
            out.append("&")
        else:
            b = s[i + 1:j]
            if not re.fullmatch(r"[A-Za-z0-9+,]+", b):
                return None
            try:
                b = b.replace(",", "/")
                out.append(base64.b64decode(b + "=" * (-len(b) % 4)).decode("utf-16-be"))
            except ValueError:
                return None
        i = j + 1
    return "".join(out)


def norm_name(name):
    decoded = mutf7_decode(name)
    name = decoded if decoded is not None else name
    return "INBOX" if name.upper() == "INBOX" else name


def counts_imap(server, user):
    out = server.doveadm("-f", "tab", "fetch", "-u", user, "mailbox flags", "all")
    res = {}
    for line in out.splitlines()[1:]:
        if not line:
            continue
        mailbox, flags = line.split("\t", 1)
        flags = flags.split()
        c = res.setdefault(norm_name(mailbox), [0] * (1 + len(FLAGS)))
        c[0] += 1
        for k, (f, _) in enumerate(FLAGS):
            c[k + 1] += f in flags
    return res


def maildir_folders(root, layout):
    """(folder name, directory) of every folder of a Maildir tree."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if not os.path.isdir(os.path.join(dirpath, "cur")):
            continue
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            name = "INBOX"
        elif layout == "dots":
            name = rel.lstrip(".").replace(".", "/")
        else:
            name = rel.replace(os.sep, "/")
        yield norm_name(name), dirpath


def maildir_messages(folder_dir):
    for sub in ("cur", "new"):
        d = os.path.join(folder_dir, sub)
        for fn in sorted(os.listdir(d)):
            if not fn.startswith("."):
                yield sub, fn


def info_flags(fn):
    return fn.rsplit(":2,", 1)[1] if ":2," in fn else ""


def counts_maildir(root, layout):
    res = {}
    for name, d in maildir_folders(root, layout):
        c = res.setdefault(name, [0] * (1 + len(FLAGS)))
        for _, fn in maildir_messages(d):
            c[0] += 1
            fl = info_flags(fn)
            for k, (_, ch) in enumerate(FLAGS):
                c[k + 1] += ch in fl
    return res


def verify(server, tool):
    """[] when the target equals the server, else one line per differing folder."""
    want = counts_imap(server, SRC)
    if tool["target"] == "imap":
        got = counts_imap(server, DST)
    else:
        got = counts_maildir(os.path.join(tool["work"], "Maildir"), tool["layout"])
    empty = [0] * (1 + len(FLAGS))
    diffs = []
    for name in sorted(set(want) | set(got)):
        a, b = want.get(name, empty), got.get(name, empty)
        if a != b:
            diffs.append("%s: server %s, target %s" % (name, a, b))
    return diffs


# ------------------------------------------------------------------------------ changes

def uid_set(uids):
    uids, parts, i = sorted(uids), [], 0
    while i < len(uids):
        j = i
        while j + 1 < len(uids) and uids[j + 1] == uids[j] + 1:
            j += 1
        parts.append(str(uids[i]) if i == j else "%d:%d" % (uids[i], uids[j]))
        i = j + 1
    return ",".join(parts)


def server_messages(server):
    out = server.doveadm("-f", "tab", "fetch", "-u", SRC, "mailbox uid flags", "all")
    res = []
    for line in out.splitlines()[1:]:
        if line:
            mailbox, uid, flags = line.split("\t")
            res.append((mailbox, int(uid), flags.split()))
    res.sort()
    return res


def how_many(total, args):
    return min(total, args.changes if args.changes else max(1, round(total * args.percent / 100)))


def by_mailbox(items):
    groups = {}
    for mailbox, uid in items:
        groups.setdefault(mailbox, []).append(uid)
    return sorted(groups.items())


def change_flags(server, rng, args):
    msgs = server_messages(server)
    chosen = sorted(rng.sample(msgs, how_many(len(msgs), args)))
    ops = {}
    for i, (mailbox, uid, flags) in enumerate(chosen):
        toggle = ["\\Flagged"] + (["\\Seen"] if i % 2 == 0 else [])
        for f in toggle:
            ops.setdefault(("remove" if f in flags else "add", f), []).append((mailbox, uid))
    for (verb, flag), items in sorted(ops.items()):
        for mailbox, uids in by_mailbox(items):
            server.doveadm("flags", verb, "-u", SRC, flag, "mailbox", mailbox, "uid", uid_set(uids))
    return len(chosen)


def expunge(server, rng, args):
    msgs = server_messages(server)
    chosen = sorted(rng.sample(msgs, how_many(len(msgs), args)))
    for mailbox, uids in by_mailbox([(m, u) for m, u, _ in chosen]):
        server.doveadm("expunge", "-u", SRC, "mailbox", mailbox, "uid", uid_set(uids))
    return len(chosen)


def move(server, rng, args, corpus):
    s = gen_corpus.spec(corpus)
    folders = s["folders"] + s["empty"]
    msgs = server_messages(server)
    chosen = sorted(rng.sample(msgs, how_many(len(msgs), args)))
    moves = {}
    for mailbox, uid, _ in chosen:
        i = folders.index(mailbox) if mailbox in folders else -1
        moves.setdefault((mailbox, folders[(i + 1) % len(folders)]), []).append(uid)
    for (frm, to), uids in sorted(moves.items()):
        server.doveadm("move", "-u", SRC, to, "mailbox", frm, "uid", uid_set(uids))
    return len(chosen)


def deliver(server, rng, args, corpus):
    s = gen_corpus.spec(corpus)
    profile = {"big": "small"}.get(s["profile"], s["profile"])
    text = gen_corpus.Text(rng.randrange(1 << 30), size=256 << 10)
    weights = [1.0 / (1 + 0.4 * i) for i in range(len(s["folders"]))]
    imap = imaplib.IMAP4("127.0.0.1", server.port)
    imap.login(SRC, PASS)
    now = int(time.time())
    for i in range(args.deliver):
        folder = rng.choices(s["folders"], weights)[0]
        attach, size = gen_corpus.body_size(rng, profile, False)
        data = gen_corpus.message(rng, text, "new-%s" % corpus, i, now, attach, size)
        typ, resp = imap.append('"%s"' % gen_corpus.mutf7(folder), None,
                                imaplib.Time2Internaldate(now), data.replace(b"\n", b"\r\n"))
        if typ != "OK":
            raise RuntimeError("APPEND failed: %r" % resp)
    imap.logout()
    return args.deliver


def client_flags(tool, rng, args):
    """A mail client changes flags in the Maildir: rename files (new/ to cur/ as it goes)."""
    files = []
    for _, d in maildir_folders(os.path.join(tool["work"], "Maildir"), tool["layout"]):
        files += [(d, sub, fn) for sub, fn in maildir_messages(d)]
    chosen = rng.sample(files, how_many(len(files), args))
    for i, (d, sub, fn) in enumerate(chosen):
        base = fn.rsplit(":2,", 1)[0]
        fl = set(info_flags(fn))
        for ch in ("F", "S") if i % 2 == 0 else ("F",):
            fl.symmetric_difference_update(ch)
        os.rename(os.path.join(d, sub, fn), os.path.join(d, "cur", base + ":2," + "".join(sorted(fl))))
    return len(chosen)


def apply_change(scen, server, tool, rng, args):
    if scen == "S3":
        return change_flags(server, rng, args)
    if scen == "S4":
        return deliver(server, rng, args, args.corpus)
    if scen == "S5":
        return expunge(server, rng, args)
    if scen == "S6":
        return move(server, rng, args, args.corpus)
    if scen == "S7":
        return client_flags(tool, rng, args)
    return 0


# --------------------------------------------------------------------------------- tools

def tool_env(server, work, tandem):
    env = dict(os.environ)
    env.update(IMAP_PORT=str(getattr(server, "tools_port", server.port)), IMAPS_PORT=str(server.sport), CERT=server.cert,
               FINGERPRINT=server.fingerprint(), PASS=PASS, SRC_USER=SRC, DST_USER=DST,
               TUNNEL_DST=server.tunnel(DST), WORK=work, TANDEM=tandem or "tandem")
    return env


def tool_bash(name, script, env):
    path = os.path.join(HERE, "tools", name + ".sh")
    if not os.path.exists(path):
        raise SystemExit("no tool %s (%s)" % (name, path))
    return subprocess.run(["bash", "-c", 'set -e; . "$0"; ' + script, path], env=env,
                          capture_output=True, text=True)


def tool_load(name, server, tandem):
    work = os.path.join(VAR, "work", name)
    env = tool_env(server, work, tandem)
    r = tool_bash(name, 'tool_check >/dev/null 2>&1 || { echo missing; exit 0; }; '
                  'echo "$TARGET"; echo "${LAYOUT:-verbatim}"; tool_version 2>&1 | head -1', env)
    out = r.stdout.split("\n")
    if r.returncode != 0 or out[0] == "missing":
        return None
    return {"name": name, "work": work, "env": env, "target": out[0], "layout": out[1],
            "version": out[2].strip()}


def tool_prepare(tool):
    discard(tool["work"])
    os.makedirs(os.path.join(tool["work"], "logs"))
    r = tool_bash(tool["name"], "tool_setup; tool_cmd", tool["env"])
    if r.returncode != 0:
        raise SystemExit("%s: tool_setup failed: %s" % (tool["name"], r.stderr))
    tool["argv"] = [a for a in r.stdout.split("\n") if a]


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


GNU_TIME = "/usr/bin/time"


def read_rss(path, fallback):
    try:
        with open(path) as f:
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return fallback


def timed_run(tool, server, logpath, timeout):
    offsets = server.log_offsets()
    busy0 = machine_busy()
    killed = []

    def kill(pid):
        killed.append(True)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    # GNU time for the peak RSS: a child forked by this Python process would inherit its
    # high-water mark (Linux keeps the larger of the pre- and post-exec ones).
    rssfile = logpath + ".rss"
    argv = tool["argv"]
    if os.access(GNU_TIME, os.X_OK):
        argv = [GNU_TIME, "-q", "-f", "%M", "-o", rssfile] + argv
    with open(logpath, "wb") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=tool["work"], env=tool["env"], stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        timer = threading.Timer(timeout, kill, (p.pid,))
        timer.start()
        # A blocking wait4: Popen.wait polls, which would round short times up.
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
    rec = {"wall": round(wall, 4), "rc": "timeout" if killed else p.returncode,
           "cpu": round(ru.ru_utime + ru.ru_stime, 3), "user": round(ru.ru_utime, 3),
           "sys": round(ru.ru_stime, 3), "maxrss_kb": read_rss(rssfile, ru.ru_maxrss),
           "machine_cpu": round(machine_busy() - busy0, 2)}
    rec["bytes"] = session_bytes(server, offsets, tool["target"] == "imap")
    return rec


# --------------------------------------------------------------------------------- bench

def find_tandem(given):
    for cand in [given, os.environ.get("TANDEM"), shutil.which("tandem")]:
        if cand and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    repo = os.path.dirname(os.path.dirname(HERE))
    for b in sorted(os.listdir(repo)):
        cand = os.path.join(repo, b, "src", "tandem")
        if b.startswith("build") and os.access(cand, os.X_OK):
            return cand
    return None


def cmd_bench(argv):
    ap = argparse.ArgumentParser(prog="run.py bench")
    ap.add_argument("--corpus", default="c5000", help="tiny, c5000, smallN (small50k...), big60m")
    ap.add_argument("--tools", default=",".join(DEFAULT_TOOLS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scenarios", default="S1,S2,S3,S4,S5,S6,S7",
                    help="in order; a scenario may repeat (S1,S2,S2,S2)")
    ap.add_argument("--tandem", help="the tandem binary (default: $TANDEM, PATH, build*/src/tandem)")
    ap.add_argument("--percent", type=float, default=1.0, help="share changed in S3, S5, S6, S7")
    ap.add_argument("--changes", type=int, help="a fixed number changed instead of --percent")
    ap.add_argument("--deliver", type=int, default=100, help="new messages in S4")
    ap.add_argument("--gap", type=float, default=1.2,
                    help="idle seconds before each sync after the last change and the last sync "
                         "(mbsync sleeps 1 s when its Maildir changed within the current second)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds, per sync")
    ap.add_argument("--delay-ms", type=float, default=0,
                    help="a round trip of this many ms between the tools and the server's plain "
                         "TCP port (delay_proxy.py); the tunnel and TLS ports stay direct")
    ap.add_argument("--rate-mbit", type=float, default=0,
                    help="with --delay-ms: that link's bandwidth each way, in megabits a second "
                         "(default: none but the proxy's own)")
    ap.add_argument("--out", help="records (JSON lines); default $BENCH_VAR/results/CORPUS-TIME.jsonl")
    ap.add_argument("--nice", type=int, default=0,
                    help="run Dovecot and the tools at this niceness (-10: a shared machine's "
                         "other work disturbs the timings less; needs root)")
    ap.add_argument("--require-all", action="store_true", help="fail when a tool is not installed")
    args = ap.parse_args(argv)
    scens = args.scenarios.split(",")
    for s in scens:
        if s not in SCENARIOS:
            raise SystemExit("unknown scenario %s" % s)
    gen_corpus.spec(args.corpus)
    tandem = find_tandem(args.tandem)
    args.commit = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"],
                                 capture_output=True, text=True).stdout.strip() or None
    out = args.out or os.path.join(VAR, "results", "%s-%s.jsonl" % (
        args.corpus, time.strftime("%Y%m%d-%H%M%S")))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    empty_trash()  # left by `serve` or an interrupted run
    server = Server(VAR)
    server.up()
    failures = []
    proxy = None
    try:
        if args.delay_ms:
            proxy = subprocess.Popen([sys.executable, os.path.join(HERE, "delay_proxy.py"),
                                      str(server.port), str(args.delay_ms / 2)] +
                                     ([str(args.rate_mbit)] if args.rate_mbit else []),
                                     stdout=subprocess.PIPE, text=True)
            server.tools_port = int(proxy.stdout.readline())
            # The tools' kernel sees the proxy's loopback round trip: tandem is told the
            # real one (its connections and compress = auto decide by it).
            os.environ["TANDEM_ROUND_TRIP_MS"] = "%g" % args.delay_ms
            log("a round trip of %g ms%s to the server's port %d through port %d" % (
                args.delay_ms, ", %g Mbit/s" % args.rate_mbit if args.rate_mbit else "",
                server.port, server.tools_port))
        snap = os.path.join(ensure_corpus(server, args.corpus), "src")
        tools = []
        for name in args.tools.split(","):
            t = tool_load(name, server, tandem)
            if t is None:
                msg = "tool %s is not available, skipped" % name
                if args.require_all:
                    raise SystemExit(msg)
                log(msg)
            else:
                tools.append(t)
        log("tandem: %s; server: 127.0.0.1:%d (TLS %d); results: %s" % (
            tandem, server.port, server.sport, out))
        for rnd in range(1, args.rounds + 1):
            k = (rnd - 1) % max(1, len(tools))
            for tool in tools[k:] + tools[:k]:
                failures += run_round(server, tool, snap, rnd, scens, args, out)
    finally:
        if proxy:
            proxy.kill()
            proxy.wait()
        server.down()
        empty_trash()
    report([out], sys.stdout, out[:-len(".jsonl")] + ".md" if out.endswith(".jsonl") else out + ".md")
    if failures:
        log("\n!!! %d FAILURE(S):" % len(failures))
        for f in failures:
            log("!!!   " + f)
        return 1
    return 0


def run_round(server, tool, snap, rnd, scens, args, out):
    make_room(gen_corpus.spec(args.corpus)["messages"])
    reset_account(server, SRC, snap)
    reset_account(server, DST)
    tool_prepare(tool)
    os.sync()
    failures = []
    last = time.monotonic()
    seen = {}
    for step, scen in enumerate(scens):
        seen[scen] = seen.get(scen, 0) + 1
        label = scen if seen[scen] == 1 else "%s#%d" % (scen, seen[scen])
        if scen == "S7" and tool["target"] != "maildir":
            continue
        rng = random.Random("%s/%d/%d/%s" % (args.corpus, rnd, step, scen))
        changed = apply_change(scen, server, tool, rng, args)
        os.sync()
        idle = time.monotonic() - last
        if idle < args.gap:
            time.sleep(args.gap - idle)
        logpath = os.path.join(tool["work"], "logs", "r%d-%d-%s.log" % (rnd, step, scen))
        rec = timed_run(tool, server, logpath, args.timeout)
        last = time.monotonic()
        diffs = verify(server, tool)
        rec.update(verify="OK" if not diffs else "; ".join(diffs[:5]) + (" ..." if len(diffs) > 5 else ""))
        rec = {"corpus": args.corpus, "tool": tool["name"], "target": tool["target"],
               "version": tool["version"], "round": rnd, "step": step, "scenario": scen, "label": label,
               "changes": changed, **rec, "loadavg": os.getloadavg()[0], "commit": args.commit,
               "delay_ms": args.delay_ms, "rate_mbit": args.rate_mbit,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with open(out, "a") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        src = rec["bytes"].get(SRC, {})
        log("r%d %-20s %-3s wall %7.3f s  cpu %6.2f s  rss %6.1f MB  out %9s  in %8s  rc %s  verify %s" % (
            rnd, tool["name"], scen, rec["wall"], rec["cpu"], rec["maxrss_kb"] / 1024,
            human(src.get("out")), human(src.get("in")), rec["rc"], rec["verify"][:70]))
        if rec["rc"] != 0 or diffs:
            what = "sync exited %s" % rec["rc"] if rec["rc"] != 0 else "VERIFY FAILED: " + rec["verify"]
            failures.append("%s r%d %s: %s (log: %s)" % (tool["name"], rnd, scen, what, logpath))
            log("!!! %s %s: %s" % (tool["name"], scen, what))
            with open(logpath, "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace")
            log("".join("!!!   | %s\n" % ln for ln in tail.splitlines()[-15:]), end="")
    return failures


# -------------------------------------------------------------------------------- report

def human(n):
    if n is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            return "%.1f %s" % (n / div, unit)
    return "%d B" % n


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_time(v):
    if v is None:
        return "-"
    return "%.3f" % v if v < 1 else "%.2f" % v if v < 100 else "%.0f" % v


def environment():
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip().split("\n")[0]
        except OSError:
            return "?"
    cpu = first("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = first("awk '/MemTotal/ {printf \"%.0f GB\", $2/1048576}' /proc/meminfo")
    return "%s, %s, %d CPUs (%s), %s RAM; Dovecot %s" % (
        first(". /etc/os-release && echo $PRETTY_NAME"), platform.release(), os.cpu_count(),
        cpu, mem, first("dovecot --version"))


def report(paths, stream, md_path=None):
    recs = []
    for p in paths:
        if os.path.exists(p):
            with open(p) as f:
                recs += [json.loads(ln) for ln in f if ln.strip()]
    text = render(recs)
    stream.write(text)
    if md_path:
        with open(md_path, "w") as f:
            f.write(text)
        stream.write("\n(tables written to %s)\n" % md_path)


def render(recs):
    lines = []
    corpora = sorted({r["corpus"] for r in recs})
    for corpus in corpora:
        rs = [r for r in recs if r["corpus"] == corpus]
        tools = list(dict.fromkeys(r["tool"] for r in rs))
        for r in rs:
            r.setdefault("label", r["scenario"])
        scens = sorted({r["label"] for r in rs}, key=lambda s: min(r["step"] for r in rs if r["label"] == s))
        rounds = max(r["round"] for r in rs)
        cell = {}
        for r in rs:
            cell.setdefault((r["tool"], r["label"]), []).append(r)
        target = {r["tool"]: r["target"] for r in rs}
        versions = {r["tool"]: r["version"] for r in rs}
        changes = {s: sorted({r["changes"] for r in rs if r["label"] == s}) for s in scens}

        def ok(t, s):
            return [r for r in cell.get((t, s), []) if r["rc"] == 0 and r["verify"] == "OK"]

        def stat(t, s, key):
            return median([key(r) for r in ok(t, s)])

        def table(title, key, fmt, ratio=True):
            lines.append("#### %s: %s\n" % (corpus, title))
            head = ["%s %s%s" % (s, SCENARIOS[s.split("#")[0]] + (" again" if "#" in s else ""),
                                 "" if changes[s] in ([0], []) else
                                 " (%s)" % "/".join(map(str, changes[s]))) for s in scens]
            lines.append("| tool | " + " | ".join(head) + " |")
            lines.append("|---|" + "---:|" * len(scens))
            for t in tools:
                row = []
                for s in scens:
                    runs = cell.get((t, s), [])
                    if not runs:
                        row.append("")
                        continue
                    good = ok(t, s)
                    if not good:
                        row.append("**FAIL**")
                        continue
                    v = stat(t, s, key)
                    txt = fmt(v)
                    base = BASELINE.get(target[t])
                    if ratio and base and base != t and not t.startswith("tandem"):
                        b = stat(base, s, key)
                        if b and v is not None:
                            txt += " (%.1fx)" % (v / b)
                    if len(good) < len(runs):
                        txt += " **%d/%d failed**" % (len(runs) - len(good), len(runs))
                    row.append(txt)
                lines.append("| %s | %s |" % (t, " | ".join(row)))
            lines.append("")

        lines.append("### %s, %d round(s), medians\n" % (corpus, rounds))
        lines.append("Ratios in parentheses: the peer's value divided by tandem's on the same "
                     "target (%s for Maildir targets, %s for IMAP-IMAP); above 1, tandem is "
                     "better.\n" % (BASELINE["maildir"], BASELINE["imap"]))
        table("wall seconds", lambda r: r["wall"], fmt_time)
        table("CPU seconds (user+sys of the tool and its children)", lambda r: r["cpu"], fmt_time)
        table("peak RSS MB", lambda r: r["maxrss_kb"] / 1024,
              lambda v: "-" if v is None else "%.1f" % v)
        table("busy CPU seconds of the whole machine (Dovecot included)",
              lambda r: r["machine_cpu"], fmt_time)
        table("bytes server to client (Dovecot out=, account src)",
              lambda r: r["bytes"].get(SRC, {}).get("out"), human)
        table("bytes client to server (Dovecot in=, account src)",
              lambda r: r["bytes"].get(SRC, {}).get("in"), human)
        table("message bodies fetched from src (count)",
              lambda r: r["bytes"].get(SRC, {}).get("bodies"),
              lambda v: "-" if v is None else "%d" % v, ratio=False)
        bad = [r for r in rs if r["rc"] != 0 or r["verify"] != "OK"]
        lines.append("Verification: %d of %d syncs exited 0 and matched the server." % (
            len(rs) - len(bad), len(rs)))
        for r in bad:
            lines.append("- **%s r%d %s**: rc %s, verify: %s" % (r["tool"], r["round"], r["scenario"],
                                                              r["rc"], r["verify"]))
        lines.append("")
        lines.append("Versions: " + "; ".join("%s: %s" % (t, versions[t]) for t in tools) + ".")
        commits = sorted({r.get("commit") or "?" for r in rs})
        loads = [r.get("loadavg") for r in rs if r.get("loadavg") is not None]
        lines.append("Checkout: %s. Load average during the syncs: median %.1f, max %.1f.\n" % (
            ", ".join(commits), median(loads) or 0, max(loads or [0])))
    lines.append("Machine: %s.\n" % environment())
    return "\n".join(lines)


def cmd_report(argv):
    report(argv, sys.stdout)
    return 0


def cmd_corpus(argv):
    ap = argparse.ArgumentParser(prog="run.py corpus")
    ap.add_argument("name")
    a = ap.parse_args(argv)
    gen_corpus.spec(a.name)
    server = Server(VAR)
    server.up()
    try:
        log(ensure_corpus(server, a.name))
    finally:
        server.down()
    return 0


def cmd_serve(argv):
    ap = argparse.ArgumentParser(prog="run.py serve")
    ap.add_argument("name")
    a = ap.parse_args(argv)
    gen_corpus.spec(a.name)
    server = Server(VAR)
    server.up()
    snap = ensure_corpus(server, a.name)
    reset_account(server, SRC, os.path.join(snap, "src"))
    reset_account(server, DST)
    log("IMAP_PORT=%d IMAPS_PORT=%d PASS=%s SRC_USER=%s DST_USER=%s" % (
        server.port, server.sport, PASS, SRC, DST))
    log("CONF=%s\nCERT=%s\nFINGERPRINT=%s" % (server.conf, server.cert, server.fingerprint()))
    log("TUNNEL_DST='%s'" % server.tunnel(DST))
    log("# stop: %s down %s" % (os.path.join(HERE, "dovecot.sh"), server.dir))
    return 0


def main():
    argv = sys.argv[1:]
    cmds = {"bench": cmd_bench, "report": cmd_report, "corpus": cmd_corpus, "serve": cmd_serve}
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv and argv[0] in cmds:
        return cmds[argv[0]](argv[1:])
    return cmd_bench(argv)


if __name__ == "__main__":
    sys.exit(main())
