#!/usr/bin/env bats
# Another product's bio hook beside ours. tests/helpers/ipmodify stands in for
# Veeam's bdevfilter: an IPMODIFY ftrace callback on submit_bio_noacct(), the
# one such callback ftrace allows on a function, that diverts the bios of one
# device through its own function and counts them. Whichever loads first,
# both must work: the other hook sees the device's bios, ours redirects them.
# cost: 2

load lib

setup() {
	dmi_require_guest
}

teardown() {
	dmi_cleanup
	rmmod dmi_ipmodify 2>/dev/null || true
}

seen() { cat /sys/module/dmi_ipmodify/parameters/seen; }

# Load the stand-in, watching DEV; it must hold its IPMODIFY callback.
load_other_hook() {
	local dev=$1 maj min
	IFS=: read -r maj min <<<"$(devno "$dev")"
	insmod "$(dmi_helper ipmodify)" major="$maj" minor="$min"
	# ftrace lists the function with an "I" (IPMODIFY) callback on it.
	grep -E '^submit_bio_noacct .*\<I\>' /sys/kernel/tracing/enabled_functions ||
		die "the stand-in holds no IPMODIFY callback on submit_bio_noacct"
}

# coexist ORDER: "other-first" loads the stand-in before the attach,
# "ours-first" after it. Data written before, during and after the redirect
# is verified, on the mounted fs and after an fsck. no_direct throughout:
# the redirect is busy while resumed (an idle one disarms our kprobe).
coexist() {
	local order=$1 dev=${DMI_PDISK}1 mnt s0 r0 p1
	mnt=$(mkfs_mount "$dev" ext4 co)
	write_files "$mnt" pre 4 256
	[[ $order == ours-first ]] || load_other_hook "$dev"
	lower_create low "$dev" attach no_direct
	[[ $(status_field low 3) == attached ]]
	[[ $order == other-first ]] || load_other_hook "$dev"
	s0=$(seen)
	r0=$(redirected low)
	write_files "$mnt" during 8 256
	dd if=/dev/urandom of="$mnt/direct" bs=64k count=4 oflag=direct status=none
	sync
	echo "seen $s0 -> $(seen), redirected $r0 -> $(redirected low)" >&2
	# Ours redirects the device's writes, the other hook still sees them.
	(($(redirected low) > r0 + 8))
	(($(seen) > s0 + 8))
	# Detach: the other hook goes on seeing the device's bios, ours none.
	lower_reload low "$dev"
	[[ $(status_field low 3) == passthrough ]]
	p1=$(passed low)
	s0=$(seen)
	write_files "$mnt" post 4 256
	sync
	(($(seen) > s0))
	[[ $(passed low) == "$p1" ]]
	# And a second attach while the other hook stays.
	lower_reload low "$dev" attach no_direct
	r0=$(redirected low)
	write_files "$mnt" again 4 256
	sync
	(($(redirected low) > r0))
	for f in pre during post again; do verify_files "$mnt" "$f"; done
	umount "$mnt"
	fsck_clean "$dev" ext4
	mount "$dev" "$mnt"
	for f in pre during post again; do verify_files "$mnt" "$f"; done
	umount "$mnt"
}

@test "another product's IPMODIFY hook loaded first: attach works, both hooks see the bios" {
	coexist other-first
}

@test "another product's IPMODIFY hook loaded while we redirect: it loads, both hooks work" {
	coexist ours-first
}

@test "the other hook unloads while we redirect, and the redirect goes on" {
	local dev=$DMI_WDISK mnt r0
	mnt=$(mkfs_mount "$dev" xfs coun)
	load_other_hook "$dev"
	lower_create low "$dev" attach no_direct
	write_files "$mnt" a 4 256
	sync
	rmmod dmi_ipmodify
	r0=$(redirected low)
	write_files "$mnt" b 4 256
	sync
	(($(redirected low) > r0 + 4))
	verify_files "$mnt" a
	verify_files "$mnt" b
	lower_reload low "$dev"
	umount "$mnt"
	fsck_clean "$dev" xfs
}
