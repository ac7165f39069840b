# shellcheck shell=sh
# machine: one-gpu
# Bad input: an unknown address, a malformed one, a bridge, the host bridge: exit 2, a message,
# nothing changed. (A device without an IOMMU group: scenario no_iommu_group.)
# bad WHAT ARGS...: pitcrew ARGS must exit 2, say something, not panic, and change nothing.
bad() {
	what=$1
	shift
	before=$(snapshot)
	pc "$@"
	[ "$PC_RC" = 2 ] || fail "$what: pitcrew $* exited $PC_RC, expected 2"
	[ -n "$PC_OUT" ] || fail "$what: pitcrew $* printed no error"
	case "$PC_OUT" in *panicked*) fail "$what: pitcrew $* panicked" ;; esac
	[ "$(snapshot)" = "$before" ] || fail "$what: pitcrew $* changed the system"
}
bad "unknown address" detach 00:0a.0
bad "unknown address" reattach 0000:00:0a.0
bad "malformed address" detach 00:zz.9
bad "PCIe root port (bridge)" detach "${BRIDGE#0000:}"
bad "host bridge" detach "${HOSTBRIDGE#0000:}"
bad "GPU with a bridge" detach 00:03.0 "${BRIDGE#0000:}"
expect_baseline "at the end"
pass "unknown, malformed, bridge and host bridge: exit 2 with a message, nothing changed"
