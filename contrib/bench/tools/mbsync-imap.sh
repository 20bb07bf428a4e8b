# SPDX-License-Identifier: MIT
# mbsync (isync): the server account over plain TCP <-> the second account over the
# preauth tunnel, two-way.
TARGET=imap
tool_check() { command -v mbsync; }
tool_version() { mbsync --version; }
tool_setup() {
    mkdir -p "$WORK/state"
    cat >"$WORK/mbsyncrc" <<EOT
IMAPAccount server
Host 127.0.0.1
Port $IMAP_PORT
User $SRC_USER
Pass $PASS
SSLType None
AuthMechs LOGIN

IMAPAccount second
Tunnel "$TUNNEL_DST"

IMAPStore server
Account server

IMAPStore second
Account second

Channel bench
Far :server:
Near :second:
Patterns *
Create Both
Expunge Both
Sync All
SyncState $WORK/state/
EOT
}
tool_cmd() { printf '%s\n' mbsync -c "$WORK/mbsyncrc" -q -a; }
