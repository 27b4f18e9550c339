#!/bin/sh
# Build a small busybox root filesystem for the demo bundles and the tests.
#
# Usage: scripts/build-rootfs.sh DEST [HOSTNAME]
#
# DEST gets a statically linked busybox with a link for every applet, the
# usual top-level directories, /etc/passwd and /etc/group naming the users the
# seed configs run as, /etc/hostname, and the probe /usr/local/bin/show-container
# (scripts/show-container.sh). The seed configs' application names
# (financial-app, microservice, web-app, data-processor) are links to the
# probe, so the seeds' process.args run unchanged.
#
# The tree is built next to DEST and renamed into place, so an interrupted
# build never leaves a half-made DEST behind. DEST/.pyruntime-rootfs marks a
# finished build (the Makefile uses it as its target).
#
# POSIX sh on purpose: callers run it as `sh build-rootfs.sh`.
set -eu

BUSYBOX=${BUSYBOX:-/bin/busybox}
here=$(cd "$(dirname "$0")" && pwd)

die() {
    echo "build-rootfs: $*" >&2
    exit 1
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    die "usage: $0 DEST [HOSTNAME]"
fi
dest=${1%/}
hostname=${2:-pyruntime}
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found: install Debian's busybox-static"
"$BUSYBOX" --list-full >/dev/null 2>&1 || die "$BUSYBOX does not look like busybox"
# A dynamically linked busybox would need the host's libc inside the rootfs.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is dynamically linked: install Debian's busybox-static"
fi

work="$dest.tmp.$$"
trap 'rm -rf "$work"' EXIT
rm -rf "$work"
mkdir -p "$work"

make_dirs() {
    for d in bin sbin usr/bin usr/sbin usr/local/bin etc proc sys dev run \
        var/log var/tmp app/config home; do
        mkdir -p "$work/$d"
    done
    install -d -m 1777 "$work/tmp"
    install -d -m 0700 "$work/root"
}

# up_from DIR: the "../" chain that leads from DIR back to the rootfs top.
up_from() {
    rest=$1
    up=
    while [ -n "$rest" ]; do
        up="../$up"
        case $rest in
        */*) rest=${rest#*/} ;;
        *) rest= ;;
        esac
    done
    echo "$up"
}

# One relative symlink per applet, at the path busybox itself suggests.
install_busybox() {
    install -m 0755 "$BUSYBOX" "$work/bin/busybox"
    "$BUSYBOX" --list-full >"$work/.applets"
    while read -r applet; do
        case $applet in
        bin/busybox | linuxrc) continue ;;
        */*) dir=${applet%/*} ;;
        *) dir= ;;
        esac
        mkdir -p "$work/$dir"
        ln -sfn "$(up_from "$dir")bin/busybox" "$work/$applet"
    done <"$work/.applets"
    rm -f "$work/.applets"
}

# Users named after the seed configs that run as them.
write_identity_files() {
    cat >"$work/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
webapp:x:1000:1000:web-app seed user:/app:/bin/sh
service:x:1001:1001:microservice seed user:/app:/bin/sh
appuser:x:10001:10001:financial seed user:/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$work/etc/group" <<'EOF'
root:x:0:
tty:x:5:
webapp:x:1000:
service:x:1001:
appuser:x:10001:
nogroup:x:65534:
EOF
    echo "$hostname" >"$work/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%s\n' "$hostname" \
        >"$work/etc/hosts"
}

install_probe() {
    install -m 0755 "$here/show-container.sh" "$work/usr/local/bin/show-container"
    for app in financial-app microservice web-app data-processor; do
        ln -sfn show-container "$work/usr/local/bin/$app"
    done
}

make_dirs
install_busybox
write_identity_files
install_probe
date -u +%Y-%m-%dT%H:%M:%SZ >"$work/.pyruntime-rootfs"

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$work" "$dest"
trap - EXIT
echo "build-rootfs: built $dest"
