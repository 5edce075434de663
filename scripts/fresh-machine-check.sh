#!/usr/bin/env bash
# Rehearses the README's promise on a bare Debian 12 machine: builds a minimal root with
# mmdebstrap (--variant=apt: the base image and apt, nothing else), puts a clean clone of this
# repository's HEAD (and ../shared) inside it, and runs the README's two commands there exactly
# as written: `./make.sh run ARGS="..."`, then `./make.sh test`. The root has no CUDA toolkit, so this is
# also the CPU-only build. A missing install step fails here, with the command's own error.
#
#   sudo scripts/fresh-machine-check.sh            (CI: .ci/run)
#   ACCEL_FRESH_ARGS="--epochs 1"                  the ARGS of `make run` (default: 1 epoch)
#   ACCEL_FRESH_DIR=/var/tmp                       a new folder for the root is made in it (and removed)
#   ACCEL_FRESH_KEEP=1                             keep the root, to look around in it
#   ACCEL_FRESH_CCACHE=DIR                         a compiler cache shared with the host's
#                                                  builds (default: the host's ~/.cache/ccache)
#
# The clone sits at the same absolute path inside the root as this repository outside, so the
# shared compiler cache hits for the objects the builds have in common. ccache is installed into
# the root before the README's commands (it is a cache, not a dependency: no build finds a
# package through it), and apt's lists are emptied again so `make` starts from a bare apt.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "fresh-machine-check: needs root (mmdebstrap, chroot, mounts)" >&2; exit 2; }
# Every mount below is made in a private mount namespace of this script: none propagates to the
# host's /dev (a shared mount on systemd hosts), and all vanish with the script, even if killed.
if [ -z "${ACCEL_FRESH_NAMESPACE:-}" ]; then
  exec env ACCEL_FRESH_NAMESPACE=1 unshare --mount --propagation private -- "$0" "$@"
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
args=${ACCEL_FRESH_ARGS:---epochs 1}
mkdir -p "${ACCEL_FRESH_DIR:-/var/tmp}"
work=$(mktemp -d "${ACCEL_FRESH_DIR:-/var/tmp}/accel-fresh.XXXXXX")  # never an existing folder
cache=${ACCEL_FRESH_CCACHE:-${HOME:-/root}/.cache/ccache}
root=$work/root
t0=$SECONDS

say() { echo "fresh-machine-check: $*"; }
elapsed() { echo "$((SECONDS - $1)) s"; }

for tool in mmdebstrap git; do
  if ! command -v "$tool" >/dev/null; then
    say "installing $tool on the host"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >/dev/null
  fi
done

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true; done
  if [ "${ACCEL_FRESH_KEEP:-0}" = 1 ]; then
    say "kept the root at $root"
  elif [ -n "$(findmnt -rn -o TARGET | grep -F "$work/" || true)" ]; then
    say "left $work in place: something is still mounted under it" >&2
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
bind() {  # bind SRC DEST [ro]
  mkdir -p "$2"
  mounted+=("$2")
  mount --bind "$1" "$2"
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
}

step=$SECONDS
say "building a bare Debian 12 root (mmdebstrap --variant=apt bookworm) in $root"
mkdir -p "$work"
mmdebstrap --quiet --variant=apt bookworm "$root"
say "root ready in $(elapsed "$step") ($(du -sh "$root" | cut -f1))"

# A clean clone of HEAD: what CI tests is what is committed, not the working tree.
inside=$root$repo
mkdir -p "$(dirname "$inside")"
git clone --quiet --no-hardlinks "$repo" "$inside"
git -C "$inside" checkout --quiet --detach "$(git -C "$repo" rev-parse HEAD)"
say "cloned $(git -C "$inside" log -1 --format='%h %s' | cut -c1-80)"
if [ -d "$repo/../shared" ]; then
  cp -r "$repo/../shared" "$(dirname "$inside")/shared"
fi

# What a booted machine has: /proc, /sys, /dev (with /dev/pts and /dev/shm). The root's own /tmp
# stays as it is (no tmpfs over it): the clone may itself live under /tmp.
mounted+=("$root/proc") && mount -t proc proc "$root/proc"
mounted+=("$root/sys") && mount -t sysfs sysfs "$root/sys"
bind /dev "$root/dev"
mounted+=("$root/dev/pts") && mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
mounted+=("$root/dev/shm") && mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# The network's other setting, like resolv.conf: where this network's egress re-signs TLS with
# a CA of its own (pip's config on this machine names the bundle that trusts it), pip in the
# root needs that bundle to reach PyPI (`make test` installs safetensors in build/test-venv).
# Copied to a path of its own: installing ca-certificates in the root rewrites /etc/ssl/certs.
host_bundle=$(sed -n 's/^ *cert *= *//p' /etc/pip.conf 2>/dev/null | head -1)
if [ -n "$host_bundle" ] && [ -f "$host_bundle" ]; then
  mkdir -p "$root/etc/ssl"
  cp -L "$host_bundle" "$root/etc/ssl/accel-network-ca.crt"
  printf '[global]\ncert = /etc/ssl/accel-network-ca.crt\n' >"$root/etc/pip.conf"
fi

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin CI="${CI:-}" \
    /bin/bash -c "$1"
}

mkdir -p "$cache"
bind "$cache" "$root/root/.cache/ccache"
in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ccache >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*"

status=0
step=$SECONDS
say "README command 1 in the fresh root: ./make.sh run ARGS=\"$args\""
if in_root "cd '$repo' && ./make.sh run ARGS='$args'"; then
  say "make run: passed in $(elapsed "$step")"
else
  status=$?
  say "make run: FAILED (exit $status) after $(elapsed "$step")"
fi
if [ "$status" -eq 0 ]; then
  step=$SECONDS
  say "README command 2 in the fresh root: ./make.sh test"
  if in_root "cd '$repo' && ./make.sh test"; then
    say "make test: passed in $(elapsed "$step")"
  else
    status=$?
    say "make test: FAILED (exit $status) after $(elapsed "$step")"
  fi
fi
say "$([ "$status" -eq 0 ] && echo "passed" || echo "FAILED") in $(elapsed "$t0") on $("$repo/scripts/cpu-description.sh")"
exit "$status"
