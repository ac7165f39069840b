#!/bin/sh
# What CI runs for the real-kernel test bed (.ci/run can call this). On a fresh Debian/Ubuntu
# machine it installs its prerequisites (as root, or with passwordless sudo).
set -eu
cd "$(dirname "$0")/.."
# Every scenario against the real pitcrew binary, plus the timing table. Last line: N passed, N failed.
cargo xtask vm-test
# The checks themselves: each behaviour broken in the shell double must make its scenario fail.
cargo xtask mutants
