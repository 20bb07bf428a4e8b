# SPDX-License-Identifier: MIT
# interimap: the server account over plain TCP (remote; COMPRESS on, its default) <-> the
# second account over the preauth tunnel (local). QRESYNC.
TARGET=imap
tool_check() { command -v interimap; }
tool_version() { interimap --version 2>&1 | head -1; }
tool_setup() {
    mkdir -p "$WORK"
    cat >"$WORK/interimap.conf" <<EOT
database = $WORK/interimap.db

[local]
type = tunnel
command = $TUNNEL_DST

[remote]
type = imap
host = 127.0.0.1
port = $IMAP_PORT
STARTTLS = NO
username = $SRC_USER
password = $PASS
compress = ${INTERIMAP_COMPRESS:-YES}
EOT
}
tool_cmd() { printf '%s\n' interimap --config="$WORK/interimap.conf" -q; }
