# shellcheck shell=sh
# machine: split-slot
# reset_method on a real kernel: a VM's per-device `reset_method` is written to the function it
# lends (the e1000e behind the root port, which lists two methods: its own list, reversed)
# between the unbind and vfio-pci's bind, and put back at reattach; doctor checks every function
# of the GPU's group and flags each one that has no method, or a bus reset alone.
methods_of() { cat "$PCI/$1/reset_method" 2>/dev/null || echo "<none>"; }
reversed() { echo "$1" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n") }'; }

for f in "$GPU" "$AUDIO" "$NIC" "$PORT_NIC"; do log "$f reset_method: $(methods_of "$f")"; done
target=$PORT_NIC
on_e1000e() { [ "$(driver_of "$target")" = e1000e ]; }
wait_until 10000 on_e1000e ||
	fail "precondition: $target is on '$(driver_of "$target")', not e1000e"
before=$(methods_of "$target")
{ [ "$(echo "$before" | wc -w)" -ge 2 ] && [ "$before" != "<none>" ]; } ||
	fail "precondition: $target lists '$before', not two reset methods"
wanted=$(reversed "$before")

mkdir -p /etc/pitcrew
printf '[vm."rm"]\ndevices = ["%s"]\n\n[vm."rm".device."%s"]\nreset_method = "%s"\n' \
	"$target" "$target" "$wanted" >/etc/pitcrew/pitcrew.toml
chmod 0644 /etc/pitcrew/pitcrew.toml

pc_ok detach --vm rm --dry-run
echo "$PC_OUT" | grep -q "set $target reset_method to \"$wanted\" (it has \"$before\")" ||
	fail "the plan does not set $target's reset_method: $(echo "$PC_OUT" | tr '\n' '|')"
pc_ok detach --vm rm
expect_driver "$target" vfio-pci "after detach"
[ "$(methods_of "$target")" = "$wanted" ] ||
	fail "after detach $target lists '$(methods_of "$target")', not '$wanted'"
pc_ok status --json
echo "$PC_OUT" | grep -q "\"restores_reset_method\": \"$before\"" ||
	fail "status --json does not show the reset methods it would restore"

pc_ok reattach --vm rm
[ "$(methods_of "$target")" = "$before" ] ||
	fail "after reattach $target lists '$(methods_of "$target")', not '$before'"
expect_driver "$target" e1000e "after reattach"

# doctor (the VM passes no GPU, so it checks every GPU): one reset and one bars line per function
# the GPU's lend takes; those without a usable method flagged.
pc doctor --json
flagged=0
for f in "$GPU" "$AUDIO" "$NIC"; do
	# Pretty JSON: a check's "level" comes on the line after its "name".
	line=$(echo "$PC_OUT" | awk -v n="\"gpu $GPU reset $f\"" 'index($0, n) { found = 1; next } found { print; exit }')
	[ -n "$line" ] || fail "doctor --json has no reset line for $f"
	echo "$PC_OUT" | grep -q "\"gpu $GPU bars $f\"" || fail "doctor --json has no bars line for $f"
	m=$(methods_of "$f")
	if [ "$m" = "<none>" ] || [ "$m" = "bus" ]; then
		echo "$line" | grep -q '"level": "warn"' ||
			fail "doctor does not flag $f (reset_method $m): $line"
		flagged=$((flagged + 1))
	fi
done
[ "$flagged" -gt 0 ] || fail "precondition: every function has a usable reset method, nothing to flag"
pass "$target reset_method '$before' -> '$wanted' for the lend, '$before' again after reattach; doctor flagged $flagged function(s) without a usable method"
