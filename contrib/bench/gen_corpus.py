#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Deterministic mail corpora for the benchmark (python3 stdlib only).

    gen_corpus.py NAME MAILDIR [--conf DOVECOT_CONF --user USER] [--owner vmail]

writes corpus NAME into the (empty or missing) Maildir++ directory MAILDIR, with a
dovecot-uidlist per folder so that UIDs, UIDVALIDITY and INTERNALDATE (the file's mtime)
are fixed by the name: the same name gives the same bytes. With --conf and --user it then
runs `doveadm force-resync`, subscribes the folders and checks the message count.

Corpora:
  tiny        50 messages, 3 folders (one nested, one non-ASCII), a few small attachments
  c5000       5,000 messages, about 300 MB, 10 folders (nested, non-ASCII, '&'),
              ~7% with 100 KB-1 MB attachments, 10 with 5-10 MB attachments
  smallN      N messages of 1-4 KB in INBOX (N: 5000, 50k, 200k...), plus an empty Archive
  big60m      one 60 MB message in INBOX, plus an empty Archive
The empty Archive folder of the one-folder corpora is where S6 moves messages to.
"""
import argparse
import base64
import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
import time

C5000_FOLDERS = ["INBOX", "Sent", "Archive", "Archive/2024", "Archive/2025", "Lists/dev",
                 "Lists/announce", "Entwürfe", "Projekte/Übersicht & Pläne", "日本語"]
DRAFT_FOLDERS = {"Drafts", "Entwürfe"}

VOCAB = ("mail server client folder message index sync journal flag seen answered draft "
         "deleted recent review release build patch branch merge test bench latency queue "
         "report meeting schedule invoice budget travel hotel flight weekend family photo "
         "the a an and or but of to in on for with from by at as is are was were be been "
         "this that these those it its we you they he she our your their new old first last "
         "next good great small large fast slow early late today tomorrow yesterday please "
         "thanks regards update change note question answer problem fix issue plan idea").split()
NAMES = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov",
         "Donald Knuth", "Frances Allen", "Ken Thompson", "Margaret Hamilton", "John Backus",
         "Jürgen Müller", "Zoë Dubois", "Søren Kierkegaard", "Ángel García", "Yuki Tanaka"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "lists.example.org"]
ATTACHMENTS = [("application/pdf", "pdf"), ("image/jpeg", "jpg"), ("image/png", "png"),
               ("application/zip", "zip"), ("application/octet-stream", "bin")]
T0 = 1672531200  # 2023-01-01 UTC: INTERNALDATEs spread over the two years after it


def spec(name):
    """The recipe of a corpus: folders, message count, size profile, seed."""
    if name == "tiny":
        return {"folders": ["INBOX", "Archive/2024", "Entwürfe"], "messages": 50,
                "profile": "tiny", "seed": 3, "empty": []}
    if name == "c5000":
        return {"folders": C5000_FOLDERS, "messages": 5000, "profile": "mixed", "seed": 1,
                "empty": []}
    if name == "big60m":
        return {"folders": ["INBOX"], "messages": 1, "profile": "big", "seed": 4,
                "empty": ["Archive"]}
    m = re.fullmatch(r"small(\d+)(k?)", name)
    if m:
        n = int(m.group(1)) * (1000 if m.group(2) else 1)
        return {"folders": ["INBOX"], "messages": n, "profile": "small", "seed": 2,
                "empty": ["Archive"]}
    raise ValueError("unknown corpus %r (tiny, c5000, smallN such as small50k, big60m)" % name)


def mutf7(name):
    """RFC 3501 section 5.1.3 modified UTF-7."""
    out, run = [], []

    def flush():
        if run:
            b64 = base64.b64encode("".join(run).encode("utf-16-be")).decode()
            out.append("&" + b64.rstrip("=").replace("/", ",") + "-")
            run.clear()
    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def folder_dir(root, name):
    """Dovecot's Maildir++ directory of a folder, with '/' as the IMAP separator."""
    if name == "INBOX":
        return root
    return os.path.join(root, "." + mutf7(name).replace("/", "."))


class Text:
    """Pseudo-text: a pool of sentences generated once; bodies are slices of it."""

    def __init__(self, seed, size=2 << 20):
        rng = random.Random(seed)
        lines, n = [], 0
        while n < size:
            words = [rng.choice(VOCAB) for _ in range(rng.randint(5, 12))]
            line = " ".join(words).capitalize() + "."
            lines.append(line)
            n += len(line) + 1
        self.lines = lines

    def take(self, rng, nbytes):
        i, out, n = rng.randrange(len(self.lines)), [], 0
        while n < nbytes:
            line = self.lines[i % len(self.lines)]
            out.append(line)
            n += len(line) + 1
            i += 1
        return "\n".join(out) + "\n"


def address(rng):
    name = rng.choice(NAMES)
    local = name.lower().replace(" ", ".").encode("ascii", "ignore").decode()
    shown = name if name.isascii() else "=?UTF-8?B?%s?=" % base64.b64encode(name.encode()).decode()
    return "%s <%s@%s>" % (shown, local, rng.choice(DOMAINS))


def rfc5322_date(ts):
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(ts))


def body_size(rng, profile, huge):
    """(has_attachment, approximate size in bytes) for one message of the profile."""
    if profile == "big":
        return True, 60 << 20
    if profile == "small":
        return False, int(math.exp(rng.uniform(math.log(1024), math.log(4096))))
    if profile == "tiny":
        if rng.random() < 0.1:
            return True, rng.randint(20 << 10, 100 << 10)
        return False, rng.randint(1 << 10, 8 << 10)
    if huge:
        return True, rng.randint(5 << 20, 10 << 20)
    if rng.random() < 0.073:
        return True, rng.randint(100 << 10, 1 << 20)
    return False, int(math.exp(rng.uniform(math.log(2 << 10), math.log(24 << 10))))


def message(rng, text, tag, n, date, attach, size):
    """One RFC 5322 message (LF line ends, as Dovecot stores them in a Maildir)."""
    sender, rcpt = address(rng), address(rng)
    subject = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(2, 7))).capitalize()
    if rng.random() < 0.25:
        subject = "Re: " + subject
    if rng.random() < 0.05:
        subject = "=?UTF-8?Q?=C3=84nderung?= " + subject
    mid = hashlib.sha1(("%s/%d" % (tag, n)).encode()).hexdigest()[:24]
    head = ["Return-Path: <%s" % sender.split("<", 1)[1],
            "Received: from relay.example.net (relay.example.net [198.51.100.%d])\n"
            "\tby mx.example.com with ESMTPS; %s" % (rng.randint(1, 254), rfc5322_date(date)),
            "Date: " + rfc5322_date(date),
            "From: " + sender,
            "To: " + rcpt,
            "Subject: " + subject,
            "Message-ID: <%s@bench.example>" % mid,
            "MIME-Version: 1.0"]
    if rng.random() < 0.3:
        head.append("In-Reply-To: <%s@bench.example>" % hashlib.sha1(mid.encode()).hexdigest()[:24])
    intro = "Message %d of corpus %s.\n\n" % (n, tag)
    if not attach:
        head += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        h = "\n".join(head) + "\n\n"
        return (h + intro + text.take(rng, max(0, size - len(h) - len(intro)))).encode()
    boundary = "bench-%016x" % rng.getrandbits(64)
    head.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
    mime, ext = rng.choice(ATTACHMENTS)
    note = intro + text.take(rng, rng.randint(200, 2000))
    raw = max(1, (size - 1500 - len(note)) * 3 // 4)
    return "".join([
        "\n".join(head), "\n\n",
        "--%s\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" % boundary,
        note,
        "\n--%s\nContent-Type: %s; name=\"file%d.%s\"\nContent-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment; filename=\"file%d.%s\"\n\n" % (boundary, mime, n, ext, n, ext),
        base64.encodebytes(rng.randbytes(raw)).decode(),
        "--%s--\n" % boundary]).encode()


def flags_for(rng, folder):
    f = set()
    if rng.random() < 0.70:
        f.add("S")
    if rng.random() < 0.10:
        f.add("R")
    if rng.random() < 0.05:
        f.add("F")
    if folder in DRAFT_FOLDERS and rng.random() < 0.5:
        f.add("D")
    return "".join(sorted(f))


def generate(name, root, owner=None):
    s = spec(name)
    root = os.path.abspath(root)
    if os.path.isdir(root) and os.listdir(root):
        raise SystemExit("gen_corpus: %s is not empty" % root)
    rng = random.Random(s["seed"])
    text = Text(s["seed"] + 1000)
    folders = s["folders"]
    weights = [1.0 / (1 + 0.4 * i) for i in range(len(folders))]
    for f in folders + s["empty"]:
        d = folder_dir(root, f)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if f != "INBOX":
            open(os.path.join(d, "maildirfolder"), "w").close()
    n = s["messages"]
    dates = sorted(T0 + rng.randrange(2 * 365 * 86400) for _ in range(n))
    huge = set(rng.sample(range(n), 10)) if s["profile"] == "mixed" and n >= 10 else set()
    placed = {f: [] for f in folders + s["empty"]}
    total = 0
    for i in range(n):
        folder = rng.choices(folders, weights)[0]
        attach, size = body_size(rng, s["profile"], i in huge)
        data = message(rng, text, name, i, dates[i], attach, size)
        total += len(data)
        base = "%d.B%dN%d.bench,S=%d" % (dates[i], s["seed"], i, len(data))
        path = os.path.join(folder_dir(root, folder), "cur", base + ":2," + flags_for(rng, folder))
        with open(path, "wb") as fh:
            fh.write(data)
        os.utime(path, (dates[i], dates[i]))
        placed[folder].append(base)
    for k, (f, bases) in enumerate(sorted(placed.items())):
        guid = hashlib.md5(("%s/%s" % (name, f)).encode()).hexdigest()
        with open(os.path.join(folder_dir(root, f), "dovecot-uidlist"), "w") as fh:
            fh.write("3 V%d N%d G%s\n" % (1700000000 + 100 * s["seed"] + k, len(bases) + 1, guid))
            for uid, base in enumerate(bases, 1):
                fh.write("%d :%s\n" % (uid, base))
    if owner:
        subprocess.run(["chown", "-R", "%s:%s" % (owner, owner), root], check=True)
    return {"name": name, "messages": n, "bytes": total,
            "folders": {f: len(b) for f, b in placed.items()}}


def load_into_dovecot(conf, user, folders, expected):
    da = ["doveadm", "-c", conf]
    subprocess.run(da + ["force-resync", "-u", user, "*"], check=True)
    subprocess.run(da + ["mailbox", "subscribe", "-u", user] + folders, check=True)
    out = subprocess.run(da + ["-f", "tab", "mailbox", "status", "-u", user, "messages", "*"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    seen = sum(int(line.split("\t")[-1]) for line in out[1:] if line)
    if seen != expected:
        raise SystemExit("gen_corpus: Dovecot sees %d messages, expected %d" % (seen, expected))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("maildir")
    ap.add_argument("--owner", help="chown the tree to this user")
    ap.add_argument("--conf", help="dovecot.conf: resync and check the account")
    ap.add_argument("--user", help="the account's user name (with --conf)")
    a = ap.parse_args()
    t = time.time()
    info = generate(a.name, a.maildir, a.owner)
    if a.conf and a.user:
        load_into_dovecot(a.conf, a.user, list(info["folders"]), info["messages"])
    info["seconds"] = round(time.time() - t, 1)
    print(json.dumps(info, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
