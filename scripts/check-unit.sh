#!/bin/sh
# Stage `pitcrew install --root` and check the staged unit with systemd-analyze (verify must pass;
# security prints the exposure score). systemd's own units are copied into a scratch copy of the
# staged root because `verify --root` resolves sysinit.target & co. inside that root.
# Usage: scripts/check-unit.sh [path/to/pitcrew]
set -eu
bin=${1:-target/debug/pitcrew}
stage=$(mktemp -d)
scratch=$(mktemp -d)
trap 'rm -rf "$stage" "$scratch"' EXIT
"$bin" --root "$stage" install --vm win11 >/dev/null
cp -a "$stage/." "$scratch/"
mkdir -p "$scratch/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$scratch/usr/lib/systemd/"
for unit in 'pitcrew@win11.service' 'pitcrew@my\x2dvm.service'; do
    systemd-analyze verify --man=no --root="$scratch" "$unit"
    echo "verify $unit: ok"
done
systemd-analyze security --offline=yes --root="$scratch" 'pitcrew@win11.service' | tail -n 1
