# shellcheck shell=sh
# machine: split-slot
# The GPU's slot holds a third function (00:03.2, e1000e) in an IOMMU group of its own: status
# shows it under the GPU, detach moves it to vfio-pci with the GPU and its audio, reattach gives
# it back to e1000e.
g_gpu=$(group_of "$GPU")
g_nic=$(group_of "$NIC")
{ [ -n "$g_nic" ] && [ "$g_nic" != "$g_gpu" ]; } ||
	fail "precondition: $NIC is in group '$g_nic', the GPU in '$g_gpu' (the topology needs two groups)"
expect_driver "$NIC" e1000e "precondition"

pc_ok status
echo "$PC_OUT" | grep -q "^  $NIC .*e1000e  \[IOMMU group $g_nic\]" ||
	fail "status does not show $NIC (group $g_nic) under the GPU"
pc_ok detach 00:03.0
expect_driver "$GPU" vfio-pci "after detach"
expect_driver "$AUDIO" vfio-pci "after detach"
expect_driver "$NIC" vfio-pci "after detach (the slot companion in group $g_nic)"
[ -c "/dev/vfio/$g_nic" ] || fail "no /dev/vfio/$g_nic for the companion's group"

pc_ok reattach 00:03.0
expect_driver "$NIC" e1000e "after reattach"
expect_driver "$GPU" bochs-drm "after reattach"
expect_driver "$AUDIO" snd_hda_intel "after reattach"
pass "$NIC (group $g_nic, the GPU's group $g_gpu) listed by status, moved with the GPU to vfio-pci and back to e1000e"
