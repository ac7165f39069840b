#!/bin/sh
# Time the libvirt hook on the path it takes for almost every call (an op it ignores) and for an
# unmanaged VM at prepare (reads the config only), against /bin/true.
# Usage: scripts/bench-hook.sh [path/to/pitcrew]   (default: target/release/pitcrew)
# Needs hyperfine (apt-get install hyperfine).
set -eu
bin=${1:-target/release/pitcrew}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/pitcrew"
chmod 755 "$root" "$root/etc" "$root/etc/pitcrew"
printf 'auto = false\n[vm.win11]\ndevices = ["01:00.0"]\n' > "$root/etc/pitcrew/pitcrew.toml"
chmod 644 "$root/etc/pitcrew/pitcrew.toml"
hyperfine -N --warmup 20 --runs 500 \
    -n true '/bin/true' \
    -n 'hook other start begin' "$bin --root $root hook other start begin -" \
    -n 'hook other prepare begin (config read)' "$bin --root $root hook other prepare begin -"
