#!/bin/bash
# Starts a throw-away Dovecot on 127.0.0.1 for the demo (or a benchmark) under DIR:
# config, run/, log/, mail/. Any user name logs in with the password in $DEMO_PASS.
#   contrib/demo/dovecot-demo.sh start DIR PORT     prints nothing; waits until it listens
#   contrib/demo/dovecot-demo.sh stop DIR
set -euo pipefail
cmd=${1:?usage: dovecot-demo.sh start|stop DIR [PORT]}
DIR=${2:?usage: dovecot-demo.sh start|stop DIR [PORT]}
PORT=${3:-10143}
DEMO_PASS=${DEMO_PASS:-demo-password}

if [ "$cmd" = stop ]; then
    [ -f "$DIR/run/master.pid" ] && kill "$(cat "$DIR/run/master.pid")" 2>/dev/null || true
    exit 0
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
mkdir -p "$DIR/run" "$DIR/log" "$DIR/mail" "$DIR/ssl"
if [ "$(id -u)" = 0 ]; then
    MAIL_USER=tandemdemo
    id "$MAIL_USER" >/dev/null 2>&1 ||
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$MAIL_USER"
    chown "$MAIL_USER:$MAIL_USER" "$DIR/mail"
    chmod 755 "$DIR" "$DIR/mail"
    USERS="default_internal_user = dovecot
default_login_user = dovenull"
else
    MAIL_USER=$(id -un)
    USERS="default_internal_user = $MAIL_USER
default_login_user = $MAIL_USER"
fi
if [ ! -s "$DIR/ssl/key.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$DIR/ssl/key.pem" -out "$DIR/ssl/cert.pem" >/dev/null 2>&1
    openssl genpkey -genparam -algorithm DH -pkeyopt dh_param:ffdhe2048 -out "$DIR/ssl/dh.pem" 2>/dev/null
fi
cat > "$DIR/dovecot.conf" <<CONF
instance_name = tandem-demo-$PORT
base_dir = $DIR/run
state_dir = $DIR/run
protocols = imap
listen = 127.0.0.1
log_path = $DIR/log/dovecot.log
$USERS
ssl = yes
ssl_cert = <$DIR/ssl/cert.pem
ssl_key = <$DIR/ssl/key.pem
ssl_dh = <$DIR/ssl/dh.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = static
  args = password=$DEMO_PASS
}
userdb {
  driver = static
  args = uid=$MAIL_USER gid=$MAIL_USER home=$DIR/mail/%u
}
first_valid_uid = 1
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
imap_logout_format = in=%i out=%o
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
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
CONF
/usr/sbin/dovecot -c "$DIR/dovecot.conf"
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && exit 0
    sleep 0.1
done
echo "dovecot did not start; see $DIR/log/dovecot.log" >&2
exit 1
