#!/bin/bash
# SPDX-License-Identifier: MIT
# An isolated Dovecot for the benchmark: everything under one directory, 127.0.0.1 only,
# nothing from /etc/dovecot, no systemd.
#
#   dovecot.sh up DIR IMAP_PORT IMAPS_PORT   start (writes DIR/dovecot.conf, DIR/ssl/cert.pem)
#   dovecot.sh down DIR                      stop
#   dovecot.sh tunnel DIR USER               a preauthenticated IMAP session on stdin/stdout
#
# Any user name logs in with the password $BENCH_PASS (default "benchpass"); mail lives in
# DIR/mail/USER/Maildir (Maildir++). Each session's logout line in DIR/log/dovecot.log
# (tunnels: DIR/log/tunnel.log) carries in=/out= (protocol bytes, before COMPRESS and TLS)
# and the number and bytes of message bodies fetched.
set -euo pipefail

# Root runs the mail processes as "vmail" (created if missing); anyone else as themselves.
mail_user() {
    if [ "$(id -u)" = 0 ]; then
        id vmail >/dev/null 2>&1 ||
            useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vmail
        echo vmail
    else
        id -un
    fi
}

up() {
    local dir=$1 port=$2 sport=$3 user pass=${BENCH_PASS:-benchpass}
    user=$(mail_user)
    mkdir -p "$dir"/{run,state,log,ssl,mail}
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/run/master.pid" ] && kill -0 "$(cat "$dir/run/master.pid")" 2>/dev/null; then
        echo "dovecot.sh: already running in $dir" >&2
        return 1
    fi
    # Dovecot's unprivileged processes must traverse every parent of the mail.
    chmod 755 "$dir" "$dir/mail"
    [ "$(id -u)" = 0 ] && chown "$user:" "$dir/mail"
    touch "$dir/log/tunnel.log" && chmod 666 "$dir/log/tunnel.log"
    if [ ! -s "$dir/ssl/cert.pem" ]; then
        # DNS:127.0.0.1 as well as the IP: isync 1.4 checks the host against DNS names only.
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
            -addext "subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1" \
            -keyout "$dir/ssl/key.pem" -out "$dir/ssl/cert.pem" >/dev/null 2>&1
        chmod 600 "$dir/ssl/key.pem"
    fi
    local dh=/usr/share/dovecot/dh.pem
    if [ ! -s "$dh" ]; then
        dh=$dir/ssl/dh.pem
        [ -s "$dh" ] || openssl dhparam -out "$dh" 2048 >/dev/null 2>&1
    fi
    local nonroot=""
    if [ "$(id -u)" != 0 ]; then
        nonroot="default_login_user = $user
default_internal_user = $user
service auth-worker {
  user = \$default_internal_user
}"
    fi
    cat >"$dir/dovecot.conf" <<EOF
# Written by contrib/bench/dovecot.sh: an isolated instance for the benchmark.
instance_name = tandem-bench-$port
base_dir = $dir/run
state_dir = $dir/state
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes
log_path = $dir/log/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "
imap_logout_format = in=%i out=%o body_count=%{fetch_body_count} body_bytes=%{fetch_body_bytes}

ssl = yes
ssl_cert = <$dir/ssl/cert.pem
ssl_key = <$dir/ssl/key.pem
ssl_dh = <$dh
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = static
  args = password=$pass
}
userdb {
  driver = static
  args = uid=$user gid=$user home=$dir/mail/%u
}
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = optimized
namespace inbox {
  inbox = yes
  separator = /
  prefix =
}
mail_plugins = \$mail_plugins zlib
protocol imap {
  mail_plugins = \$mail_plugins imap_zlib
  mail_max_userip_connections = 200
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $sport
    ssl = yes
  }
  # long-lived login processes, so that no run pays for a fork
  service_count = 0
  process_min_avail = 1
}
service imap {
  process_limit = 200
}
# the tunnel's imap, running as the mail user, reports its stats here
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
service doveadm {
  inet_listener {
    port = 0
  }
}
$nonroot
EOF
    # not our stdout: whoever reads it (a pipe) would wait for the daemon to exit
    if ! /usr/sbin/dovecot -c "$dir/dovecot.conf" </dev/null >"$dir/log/start.log" 2>&1; then
        cat "$dir/log/start.log" >&2
        return 1
    fi
    local i
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "dovecot.sh: no listener on 127.0.0.1:$port; see $dir/log/dovecot.log" >&2
    return 1
}

down() {
    local dir=$1 pid i
    [ -f "$dir/run/master.pid" ] || return 0
    pid=$(cat "$dir/run/master.pid")
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
}

tunnel() {
    local dir=$1 user=$2
    # Dovecot's imap will not run as root with a socket on stdin ("must not be started
    # from inetd"), and the tools talk to tunnels over socketpairs: drop to the mail user.
    if [ "$(id -u)" = 0 ]; then
        exec setpriv --reuid=vmail --regid=vmail --clear-groups \
            /usr/lib/dovecot/imap -c "$dir/dovecot.conf" -u "$user" 2>>"$dir/log/tunnel.log"
    fi
    exec /usr/lib/dovecot/imap -c "$dir/dovecot.conf" -u "$user" 2>>"$dir/log/tunnel.log"
}

case ${1:-} in
up) up "${2:?DIR}" "${3:?IMAP_PORT}" "${4:?IMAPS_PORT}" ;;
down) down "${2:?DIR}" ;;
tunnel) tunnel "${2:?DIR}" "${3:?USER}" ;;
*)
    echo "usage: dovecot.sh up DIR IMAP_PORT IMAPS_PORT | down DIR | tunnel DIR USER" >&2
    exit 2
    ;;
esac
