# SPDX-License-Identifier: MIT
# mbsync (isync): the server account over plain TCP <-> a Maildir, two-way, defaults
# (FSync yes, COMPRESS when offered).
TARGET=maildir
LAYOUT=verbatim
tool_check() { command -v mbsync; }
tool_version() { mbsync --version; }
tool_setup() {
    mkdir -p "$WORK/Maildir"
    cat >"$WORK/mbsyncrc" <<EOT
IMAPAccount server
Host 127.0.0.1
Port $IMAP_PORT
User $SRC_USER
Pass $PASS
SSLType None
AuthMechs LOGIN

IMAPStore server
Account server

MaildirStore local
Path $WORK/Maildir/
Inbox $WORK/Maildir/INBOX
SubFolders Verbatim

Channel bench
Far :server:
Near :local:
Patterns *
Create Both
Expunge Both
Sync All
SyncState *
EOT
}
tool_cmd() { printf '%s\n' mbsync -c "$WORK/mbsyncrc" -q -a; }
