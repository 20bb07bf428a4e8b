#!/bin/bash
# Installs what tandem needs, builds it, and runs a real sync:
#   - with your configuration (~/.config/tandem/tandem.conf, or the file in $TANDEM_CONFIG):
#     `tandem sync` of every channel in it;
#   - without one: a demo. A throw-away Dovecot on 127.0.0.1 gets an account with mail in a
#     few folders, tandem syncs it both ways with a Maildir under /tmp/tandem-demo, and
#     shows the result.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
contrib/setup-debian.sh >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target tandem
TANDEM=$ROOT/build/src/tandem

config=${TANDEM_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/tandem/tandem.conf}
if [ -f "$config" ]; then
    exec "$TANDEM" sync -c "$config" "$@"
fi

DEMO=${TANDEM_DEMO_DIR:-/tmp/tandem-demo}
PORT=${TANDEM_DEMO_PORT:-10143}
export DEMO_PASS=demo-password
contrib/demo/dovecot-demo.sh stop "$DEMO/dovecot"
rm -rf "$DEMO"
mkdir -p "$DEMO"
contrib/demo/dovecot-demo.sh start "$DEMO/dovecot" "$PORT"
trap 'contrib/demo/dovecot-demo.sh stop "$DEMO/dovecot"' EXIT

# Mail on the server, put there through Dovecot's own preauthenticated imap process.
imap() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=tandemdemo --regid=tandemdemo --clear-groups \
            /usr/lib/dovecot/imap -c "$DEMO/dovecot/dovecot.conf" -u demo 2>/dev/null
    else
        /usr/lib/dovecot/imap -c "$DEMO/dovecot/dovecot.conf" -u demo 2>/dev/null
    fi
}
{
    printf 'c1 CREATE Archive\r\nc2 CREATE Lists/dev\r\nc3 CREATE "Entw&APw-rfe"\r\n'
    n=0
    for box in INBOX INBOX INBOX Archive Lists/dev "Entw&APw-rfe"; do
        for flags in '\Seen' '' '\Seen \Flagged' '$Forwarded'; do
            n=$((n + 1))
            msg=$(printf 'From: Demo Sender <sender@example.org>\r\nTo: demo@example.org\r\nSubject: demo message %d\r\nMessage-ID: <demo-%d@example.org>\r\nDate: Mon, 23 Nov 2026 10:%02d:00 +0000\r\n\r\nThis is demo message %d.\r\n' "$n" "$n" "$n" "$n")
            printf 'a%d APPEND "%s" (%s) {%d+}\r\n%s\r\n' "$n" "$box" "$flags" "${#msg}" "$msg"
        done
    done
    printf 'z LOGOUT\r\n'
} | imap >/dev/null

cat > "$DEMO/tandem.conf" <<CONF
[general]
state-dir = $DEMO/state

[store.server]
type = imap
host = 127.0.0.1
port = $PORT
tls = none                 ; loopback demo only: real servers use tls = implicit
allow-plaintext = yes
user = demo
password-command = echo $DEMO_PASS

[store.local]
type = maildir
path = $DEMO/Maildir

[channel.demo]
a = server
b = local
mailboxes = *
CONF

echo "== first sync: the server's mail comes down into $DEMO/Maildir"
"$TANDEM" sync -c "$DEMO/tandem.conf"
echo
echo "== the Maildir now holds:"
(cd "$DEMO/Maildir" && find . -path '*/cur/*' -type f | sort | sed 's/^/   /')
echo
echo "== a mail client marks a message flagged and writes a draft in the Maildir; the next sync sends both up"
first=$(ls "$DEMO/Maildir/INBOX/cur" | head -1)
mv "$DEMO/Maildir/INBOX/cur/$first" "$DEMO/Maildir/INBOX/cur/${first%%:2,*}:2,FS"
printf 'From: demo@example.org\r\nSubject: written locally\r\nMessage-ID: <local-1@example.org>\r\n\r\nHello from the Maildir.\r\n' \
    > "$DEMO/Maildir/INBOX/cur/$(date +%s).local-1.demo:2,S"
"$TANDEM" sync -c "$DEMO/tandem.conf"
echo
echo "== a second sync right after: nothing to do"
"$TANDEM" sync -c "$DEMO/tandem.conf"
echo
echo "== what the journal knows (no network): tandem status"
"$TANDEM" status -c "$DEMO/tandem.conf"
echo
echo "The demo's Maildir, journal and config stay in $DEMO; its Dovecot stops now."
echo "Your own: copy contrib/tandem.conf.example to ~/.config/tandem/tandem.conf, then: $TANDEM check-config --connect"
