#!/bin/sh
# Installs every build and test dependency of tandem from Debian 12's archive.
# Safe to run twice; needs root (or sudo) and no network but Debian's mirrors.
set -eu
if [ "$(id -u)" -ne 0 ]; then
    exec sudo "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    ca-certificates g++ make cmake pkg-config git \
    libboost1.81-dev libboost-program-options1.81-dev libboost-json1.81-dev \
    libboost-url1.81-dev libboost-system1.81-dev \
    libssl-dev liblmdb-dev lmdb-utils zlib1g-dev \
    libgtest-dev libgmock-dev \
    clang libclang-rt-14-dev lld lld-16 \
    dovecot-core dovecot-imapd openssl util-linux procps python3 \
    systemd groff-base man-db zsh \
    isync offlineimap3 interimap time
# Debian starts the system Dovecot on install where it can; tandem's tests run their
# own isolated instances and never need the system one.
