# SPDX-License-Identifier: MIT
# tandem: the server account over plain TCP <-> the second account over the preauth
# tunnel, two-way.
TARGET=imap
tool_check() { [ -x "$TANDEM" ]; }
tool_version() { "$TANDEM" --version; }
tool_setup() {
    mkdir -p "$WORK/state"
    cat >"$WORK/tandem.conf" <<EOT
[general]
state-dir = $WORK/state

[store.server]
${TANDEM_CONNECTIONS:+connections = $TANDEM_CONNECTIONS}
type = imap
host = 127.0.0.1
port = $IMAP_PORT
tls = none
allow-plaintext = yes
user = $SRC_USER
password-file = $WORK/password

[store.second]
${TANDEM_CONNECTIONS:+connections = $TANDEM_CONNECTIONS}
type = imap
tunnel = $TUNNEL_DST

[channel.bench]
a = server
b = second
EOT
    (umask 077 && echo "$PASS" >"$WORK/password")
}
tool_cmd() { printf '%s\n' "$TANDEM" sync -c "$WORK/tandem.conf"; }
