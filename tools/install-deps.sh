#!/bin/sh
# Installs the Debian packages sarn needs to build and run; with --test, also what the test
# suites, sanitizer builds and fuzzers use. Idempotent: does nothing when all are installed.
set -e
PKGS="meson ninja-build pkg-config gcc libsqlite3-dev libssl-dev libcrypt-dev libinih-dev
libutf8proc-dev zlib1g-dev libcmocka-dev openssl libunbound-dev"
[ "${1:-}" = --test ] && PKGS="$PKGS clang libclang-rt-14-dev python3 python3-pytest curl swaks
fetchmail getmail6 sqlite3 dovecot-imapd isync offlineimap3 neomutt bsdutils
python3-dkim python3-nacl python3-aiosmtpd python3-dnslib"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# dovecot is only a reference for tests; keep its service from starting on install.
$SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
$SUDO apt-get install -y -q --no-install-recommends $missing
$SUDO rm -f /usr/sbin/policy-rc.d
