#!/usr/bin/env bash
# The three packages from this tree, checked: the .deb (`cargo xtask dist --deb`, then lintian),
# the Arch package (Debian's makepkg, as an unprivileged user: makepkg refuses root) and the RPM
# (Debian's rpmbuild, then rpmlint). Neither makepkg nor rpmbuild reaches the network: the crates
# are vendored from cargo's cache first. Each package's files must be what `cargo xtask dist
# --list` says, so every file of the .deb is in the other two. Runs as root; installs its tools.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

tools=()
for pair in lintian:lintian makepkg:makepkg pacman:pacman-package-manager bsdtar:libarchive-tools \
    fakeroot:fakeroot rpmbuild:rpm rpmlint:rpmlint; do
    command -v "${pair%%:*}" >/dev/null || tools+=("${pair#*:}")
done
if ((${#tools[@]})); then
    apt-get update -qq
    apt-get install -y -qq "${tools[@]}" >/dev/null
fi
command -v cargo-deb >/dev/null || cargo install --locked --quiet cargo-deb

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
builder=pitcrew-build
id "$builder" >/dev/null 2>&1 || useradd --system --create-home --shell /usr/sbin/nologin "$builder"
# Outside the checkout, which may sit where the builder cannot read; kept between runs so that a
# second run builds incrementally.
work=/var/tmp/pitcrew-packages
mkdir -p "$work"
log=$work/log
failed() {
    echo "$1 failed; the end of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
}

# The .deb.
deb=$(cargo xtask dist --deb | tail -n1)
lintian --fail-on error,warning "$deb"
echo "lintian: no error, no warning on $(basename "$deb")"

# The sources both other tools build from: the tree as committed plus what is changed in it.
tree=$(git -c user.name=packages -c user.email=packages@localhost stash create)
git archive --format=tar.gz --prefix="pitcrew-$version/" -o "$work/pitcrew-$version.tar.gz" "${tree:-HEAD}"
rm -rf "$work/vendor"
cargo vendor --quiet --locked "$work/vendor" >/dev/null
tar -czf "$work/pitcrew-$version-vendor.tar.gz" -C "$work" vendor

# Arch: the builder runs this machine's toolchain with the vendored crates standing in for
# crates.io, so the PKGBUILD's `cargo fetch --locked` needs no network. The toolchain is linked
# (hard links, no copy) where the builder can reach it; it stays root's: a chown of a hard link
# would hand the builder root's own compiler.
toolchain=/var/tmp/pitcrew-packages-toolchain
rm -rf "$toolchain"
sysroot=$(rustc --print sysroot)
cp -al "$sysroot" "$toolchain" 2>/dev/null || { rm -rf "$toolchain" && cp -a "$sysroot" "$toolchain"; }
arch=$work/arch
mkdir -p "$arch" "$work/cargo-home"
cat >"$work/cargo-home/config.toml" <<EOF
[source.crates-io]
replace-with = "vendored"

[source.vendored]
directory = "$work/vendor"

[net]
offline = true
EOF
cp dist/arch/PKGBUILD dist/arch/pitcrew.install "$work/pitcrew-$version.tar.gz" "$arch/"
rm -f "$arch"/*.pkg.tar.*
chown -R "$builder:" "$work"
as_builder() {
    (cd "$arch" && runuser -u "$builder" -- env -i HOME="/home/$builder" \
        PATH="$toolchain/bin:/usr/bin:/bin" CARGO_HOME="$work/cargo-home" "$@")
}
as_builder makepkg --printsrcinfo | diff -u dist/arch/.SRCINFO - ||
    { echo "dist/arch/.SRCINFO is stale: regenerate it with makepkg --printsrcinfo" >&2; exit 1; }
# --nodeps: pacman's database on Debian is empty, so no dependency would be found.
as_builder makepkg --nodeps --noconfirm --force >"$log" 2>&1 || failed makepkg
pkg=$(ls "$arch"/pitcrew-"$version"-*.pkg.tar.*)
echo "makepkg: built $(basename "$pkg") (check() passed)"

# RPM: Debian's rpm has no systemd-rpm-macros and runs brp scripts under dash
# (debian-host.macros), no database holding the BuildRequires (--nodeps), no Fedora Rust flags
# that emit the debug info a debuginfo package is made of, and no build system that names the
# packager. %check is the command check() just ran on the same tree (--nocheck saves CI a build).
rpmtop=$work/rpm
mkdir -p "$rpmtop/SOURCES"
cp "$work/pitcrew-$version.tar.gz" "$work/pitcrew-$version-vendor.tar.gz" "$rpmtop/SOURCES/"
rpmbuild -bb --nodeps --nocheck --define "_topdir $rpmtop" --define "debug_package %{nil}" \
    --define "packager $(sed -n 's/^maintainer = "\(.*\)"/\1/p' Cargo.toml)" \
    --load dist/rpm/debian-host.macros dist/rpm/pitcrew.spec >"$log" 2>&1 || failed rpmbuild
rpm=$(ls "$rpmtop"/RPMS/x86_64/pitcrew-"$version"-*.rpm)
echo "rpmbuild: built $(basename "$rpm")"
rpmlint --rpmlintrc dist/rpm/pitcrew-rpmlintrc dist/rpm/pitcrew.spec "$rpm"

# The file lists: files and links, not directories, as each package manager lists them.
deb_files() { dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|' | grep -v '/$'; }
arch_files() { pacman -Qlp "$pkg" | cut -d' ' -f2- | grep -v '/$'; }
# rpm links every ELF file by its build ID under /usr/lib/.build-id, in every package it builds.
rpm_files() {
    rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" | grep -v '^d' | cut -d' ' -f2- |
        grep -v '^/usr/lib/\.build-id/'
}
deb_links() { dpkg-deb -c "$deb" | awk '/^l/ {print substr($6, 2) " -> " $8}'; }
arch_links() { bsdtar -tvf "$pkg" | awk '/^l/ {print "/" $9 " -> " $11}'; }
rpm_links() {
    rpm -qp --qf '[%{FILENAMES} -> %{FILELINKTOS}\n]' "$rpm" | grep -v -e ' -> $' -e '^/usr/lib/\.build-id/'
}
deb_config() { dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles; }
arch_config() { bsdtar -xOf "$pkg" .PKGINFO | sed -n 's|^backup = |/|p'; }
rpm_config() { rpm -qcp "$rpm"; }

table=$(cargo xtask dist --list)
status=0
for column in 2:deb 3:arch 4:rpm; do
    n=${column%%:*} name=${column#*:}
    expected=$(cut -f"$n" <<<"$table" | grep -vx -- - | sort)
    diff -u --label "cargo xtask dist --list ($name)" --label "the $name package" \
        <(echo "$expected") <("${name}_files" | sort) || status=1
    diff -u --label "links ($name)" --label "the $name package's links" \
        <(awk -F'\t' -v n="$n" '$1 ~ /^link:/ {print $n " -> " substr($1, 6)}' <<<"$table" | sort) \
        <("${name}_links" | sort) || status=1
    diff -u --label "config ($name)" --label "the $name package's kept files" \
        <(awk -F'\t' -v n="$n" '$1 == "config" {print $n}' <<<"$table" | sort) \
        <("${name}_config" | sort) || status=1
done
((status == 0)) || { echo "the packages' files disagree with cargo xtask dist --list" >&2; exit 1; }
echo "packages: each holds what cargo xtask dist --list says (same files; zsh completions where each distribution looks; Debian's own 3 files only in the .deb):"
awk -F'\t' 'BEGIN {printf "%-22s %-46s %-46s %s\n", "kind", ".deb", "Arch", "RPM"}
    {printf "%-22s %-46s %-46s %s\n", $1, $2, $3, $4}' <<<"$table"
