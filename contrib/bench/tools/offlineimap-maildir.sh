# SPDX-License-Identifier: MIT
# offlineimap3: the server account over plain TCP <-> a Maildir (folders as
# "Archive.2024"), two-way, defaults (one connection, fsync, sqlite status).
TARGET=maildir
LAYOUT=dots
tool_check() { command -v offlineimap; }
tool_version() { echo "offlineimap3 $(dpkg-query -W -f '${Version}' offlineimap3 2>/dev/null)"; }
tool_setup() {
    mkdir -p "$WORK/Maildir" "$WORK/meta"
    cat >"$WORK/offlineimaprc" <<EOT
[general]
accounts = bench
metadata = $WORK/meta

[Account bench]
localrepository = local
remoterepository = server

[Repository local]
type = Maildir
localfolders = $WORK/Maildir

[Repository server]
type = IMAP
remotehost = 127.0.0.1
remoteport = $IMAP_PORT
remoteuser = $SRC_USER
remotepass = $PASS
ssl = no
starttls = no
EOT
}
tool_cmd() { printf '%s\n' offlineimap -c "$WORK/offlineimaprc" -o -u quiet; }
