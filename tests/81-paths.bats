#!/usr/bin/env bats
# Every way in: each path by which I/O reaches a block device must go through
# an attached interposer and return correct data. Buffered file I/O and mmap
# on a mounted ext4, O_DIRECT on a file and on the device node, io_uring with
# REQ_NOWAIT and with polled completions (a null_blk original with poll
# queues; virtio without them refuses REQ_POLLED alike), discard,
# write-zeroes, punch-hole and zero-range on the node, online discard and
# fstrim on ext4, fsync and O_SYNC (flush, FUA) on a file and on the node,
# and swap on an interposed partition under memory-cgroup pressure, detached
# while the swap is active.
# The redirect is busy throughout (attach no_direct: an attach table's is
# otherwise idle while resumed, and its bios take the kernel's own path).
# Each case checks that the redirected counter of the attached device grew by
# at least the number of bios the path must have submitted, verifies the data
# while attached and again through the original device after the detach (the
# pass-through counter then stays still), and ends with one figure line;
# bytes_verified counts the bytes compared in every verification pass.
# cost: 6

load lib

setup() {
	dmi_require_guest
	MIB=$((1 << 20))
	BYTES=0
}

teardown() {
	local rc=0 p
	if [[ -n ${SWAP_PID:-} ]]; then
		kill "$SWAP_PID" 2>/dev/null || true
		wait "$SWAP_PID" 2>/dev/null || true
	fi
	if [[ -n ${CG:-} && -d $CG ]]; then
		while read -r p; do kill -9 "$p" 2>/dev/null || true; done <"$CG/cgroup.procs"
		timeout 10 bash -c "while [[ -s $CG/cgroup.procs ]]; do sleep 0.2; done" || true
		rmdir "$CG" 2>/dev/null || true
	fi
	if [[ -n ${SWAP_DEV:-} ]]; then
		timeout 120 swapoff "$SWAP_DEV" 2>/dev/null || true
	fi
	dmi_cleanup_unload || rc=$?
	if lsmod | grep -q '^null_blk '; then
		rmmod null_blk || rc=1
	fi
	return "$rc"
}

# fio, bounded; its output on failure. FIO_READ: the bytes it read (the
# verifying reads of a verify run): pfio ARGS...
pfio() {
	local out=$BATS_TEST_TMPDIR/fio.out
	if ! timeout 240 fio --output-format=terse --terse-version=3 --output="$out" "$@"; then
		cat "$out" >&2
		die "fio $* failed"
	fi
	FIO_READ=$(awk -F';' '$1 == 3 { kb += $6 } END { print kb * 1024 }' "$out")
}

# A fio run that verifies: at least SIZE bytes read back and checked, added
# to BYTES: fverify SIZE ARGS...
fverify() {
	local size=$1
	shift
	pfio "$@"
	((FIO_READ >= size)) || die "fio verified $FIO_READ bytes, expected $size: fio $*"
	BYTES=$((BYTES + FIO_READ))
}

# Write and verify: crc32c with the block's offset in each block's header.
VERIFY=(--verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=1)

# The device NAME redirected at least N bios since its count was R0:
# grew NAME R0 N WHAT
grew() {
	local now
	now=$(redirected "$1")
	echo "$4: $1 redirected $((now - $2)) bios (expected >= $3)"
	((now - $2 >= $3)) || die "$4: $1 redirected $((now - $2)) bios, expected at least $3"
}

# After a detach nothing goes through NAME: still NAME P0 (its passed count).
still() {
	[[ $(passed "$1") == "$2" && $(redirected "$1") == "$3" ]] ||
		die "$1 saw I/O after the detach: passed $2 -> $(passed "$1"), redirected $3 -> $(redirected "$1")"
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# sha256 of LEN bytes at OFF (bytes, MiB-aligned) of DEV, read with FLAGS
# (iflag=direct, or nothing for the page cache): range_sum DEV OFF LEN [FLAGS]
range_sum() {
	dd if="$1" bs=1M skip=$(($2 / MIB)) count=$(($3 / MIB)) ${4:+"$4"} status=none | sha256sum | cut -d' ' -f1
}
file_sum() { sha256sum <"$1" | cut -d' ' -f1; }

qpoll() { cat "/sys/block/$(basename "$(realpath "$1")")/queue/io_poll"; }

# Run the fio job whose arguments are in the array NAME: job NAME [ARGS...]
job() {
	local -n _job=$1
	shift
	pfio "${_job[@]}" "$@"
}

# Verify what the fio job NAME wrote (SIZE bytes): reverify SIZE NAME
reverify() {
	local -n _job=$2
	fverify "$1" "${_job[@]}" --verify_only --do_verify=1
}

# A field of /sys/block/<dm>/stat of the DM device NAME (the block layer's
# accounting of the bios that entered it): dm_stat NAME FIELD
# (3 read sectors, 7 write sectors, 12 discard ios, 14 discard sectors).
dm_stat() {
	awk -v f="$2" '{ print $f }' "/sys/block/$(basename "$(realpath "/dev/mapper/$1")")/stat"
}

# The statistics that count what the interposer NAME takes, field FIELD:
# NAME's own when its bios pass through DM; on the direct path (attach
# mode, see "The direct path" in dm-interpose.rst) the bios stay on the
# original device, which counts them (grew shows they were redirected).
took_stat() {
	local f=$2 table
	table=$(dmsetup table "$1")
	if [[ $table == *" attach"* && $table != *no_direct* ]]; then
		awk -v f="$f" '{ print $f }' "/sys/dev/block/$(status_field "$1" 1)/stat"
	else
		dm_stat "$1" "$f"
	fi
}

# At least BYTES went into the interposer NAME since FIELD (took_stat) was
# S0: moved NAME FIELD S0 BYTES WHAT. Nothing but the redirect opens it.
moved() {
	local now
	now=$(took_stat "$1" "$2")
	echo "$5: $((now - $3)) sectors into $1 (expected >= $(($4 / 512)))"
	((now - $3 >= $4 / 512)) || die "$5: $((now - $3)) sectors into $1, expected at least $(($4 / 512))"
}

# A memory-backed null_blk disk with poll queues: /dev/nullb0.
nullb_load() {
	modprobe null_blk nr_devices=1 poll_queues=2 queue_mode=2 memory_backed=1 gb=1
	timeout 30 bash -c "until [[ -b /dev/nullb0 ]]; do sleep 0.1; done"
	[[ $(qpoll /dev/nullb0) == 1 ]]
}

@test "buffered file I/O and mmap on a mounted ext4: write-back and read-ahead go through" {
	local dev=${DMI_PDISK}1 mnt r0 s0 p0 sum
	local -a mm
	mnt=$(mkfs_mount "$dev" ext4 buf)
	lower_create low "$dev" attach no_direct
	head -c 16M /dev/urandom >"$BATS_TEST_TMPDIR/data"
	sum=$(file_sum "$BATS_TEST_TMPDIR/data")
	# Write-back (multi-page bvecs: a bio may carry several MiB), then
	# read-ahead from an empty page cache: every byte through the device.
	r0=$(redirected low) s0=$(took_stat low 7)
	cp "$BATS_TEST_TMPDIR/data" "$mnt/buf"
	sync
	grew low "$r0" 1 "write-back of 16 MiB"
	moved low 7 "$s0" $((16 * MIB)) "write-back of 16 MiB"
	drop_caches
	r0=$(redirected low) s0=$(took_stat low 3)
	[[ $(file_sum "$mnt/buf") == "$sum" ]]
	grew low "$r0" 1 "read-ahead of 16 MiB"
	moved low 3 "$s0" $((16 * MIB)) "read-ahead of 16 MiB"
	BYTES=$((BYTES + 16 * MIB))
	# Shared writable mapping: dirtied by stores, written back by sync,
	# read back by page faults after the cache is dropped.
	# shellcheck disable=SC2034 # run by job
	mm=(--name=mmap --directory="$mnt" --ioengine=mmap --rw=write --bs=64k --size=8M "${VERIFY[@]}")
	r0=$(redirected low) s0=$(took_stat low 7)
	job mm --do_verify=0
	sync
	grew low "$r0" 1 "mmap write-back of 8 MiB"
	moved low 7 "$s0" $((8 * MIB)) "mmap write-back of 8 MiB"
	drop_caches
	r0=$(redirected low) s0=$(took_stat low 3)
	reverify $((8 * MIB)) mm
	grew low "$r0" 1 "mmap faults of 8 MiB"
	moved low 3 "$s0" $((8 * MIB)) "mmap faults of 8 MiB"
	# Detached: the same data through the original device alone.
	lower_reload low "$dev"
	p0=$(passed low) r0=$(redirected low)
	drop_caches
	[[ $(file_sum "$mnt/buf") == "$sum" ]]
	BYTES=$((BYTES + 16 * MIB))
	reverify $((8 * MIB)) mm
	still low "$p0" "$r0"
	umount "$mnt"
	fsck_clean "$dev" ext4
	figure "buffered and mmap file I/O, ext4" bytes_verified=$BYTES lost=0
}

@test "O_DIRECT on a file (libaio, fio crc32c verify)" {
	local dev=${DMI_PDISK}1 mnt r0 p0
	local -a fj
	mnt=$(mkfs_mount "$dev" ext4 dio)
	lower_create low "$dev" attach no_direct
	fj=(--name=odirect --directory="$mnt" --direct=1 --ioengine=libaio --iodepth=16
		--rw=randwrite --bs=4k --size=4M "${VERIFY[@]}")
	r0=$(redirected low)
	fverify $((4 * MIB)) "${fj[@]}"
	# 1024 writes, 1024 verifying reads: one bio each.
	grew low "$r0" 2048 "O_DIRECT 4k on a file"
	lower_reload low "$dev"
	p0=$(passed low) r0=$(redirected low)
	reverify $((4 * MIB)) fj
	still low "$p0" "$r0"
	umount "$mnt"
	fsck_clean "$dev" ext4
	figure "O_DIRECT file, ext4" bytes_verified=$BYTES lost=0
}

@test "O_DIRECT and buffered I/O on the node of an interposed partition (fio, dd)" {
	local dev=${DMI_PDISK}2 r0 p0 sum
	local -a nj
	lower_create low "$dev" attach no_direct
	nj=(--name=node --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16
		--rw=randwrite --bs=4k --offset=0 --size=4M "${VERIFY[@]}")
	r0=$(redirected low)
	fverify $((4 * MIB)) "${nj[@]}"
	grew low "$r0" 2048 "O_DIRECT 4k on the node"
	# dd: 64 writes and 64 reads of 64k at 16 MiB.
	head -c 4M /dev/urandom >"$BATS_TEST_TMPDIR/data"
	sum=$(file_sum "$BATS_TEST_TMPDIR/data")
	r0=$(redirected low)
	dd if="$BATS_TEST_TMPDIR/data" of="$dev" bs=64k seek=256 oflag=direct status=none
	[[ $(dd if="$dev" bs=64k skip=256 count=64 iflag=direct status=none | sha256sum | cut -d' ' -f1) == "$sum" ]]
	grew low "$r0" 128 "dd O_DIRECT 64k on the node"
	# A plain read of the node: the block device's page cache, read-ahead.
	drop_caches
	r0=$(redirected low)
	[[ $(range_sum "$dev" $((16 * MIB)) $((4 * MIB))) == "$sum" ]]
	grew low "$r0" 4 "buffered read of the node"
	BYTES=$((BYTES + 8 * MIB))
	lower_reload low "$dev"
	p0=$(passed low) r0=$(redirected low)
	reverify $((4 * MIB)) nj
	[[ $(range_sum "$dev" $((16 * MIB)) $((4 * MIB)) iflag=direct) == "$sum" ]]
	drop_caches
	[[ $(range_sum "$dev" $((16 * MIB)) $((4 * MIB))) == "$sum" ]]
	BYTES=$((BYTES + 8 * MIB))
	still low "$p0" "$r0"
	figure "O_DIRECT and buffered node" bytes_verified=$BYTES lost=0
}

@test "io_uring with REQ_NOWAIT: node and file on virtio, RWF_NOWAIT on null_blk" {
	local dev=${DMI_PDISK}2 fdev=${DMI_PDISK}1 nb=/dev/nullb0 mnt r0 rf rn p0 pf pn
	local -a nj fj bj
	fio --enghelp=io_uring | grep -qw nowait || skip "fio has no io_uring nowait option"
	nullb_load
	lower_create low "$dev" attach no_direct
	mnt=$(mkfs_mount "$fdev" ext4 uring)
	lower_create lowf "$fdev" attach no_direct
	lower_create lown "$nb" attach no_direct
	# io_uring issues each I/O inline with IOCB_NOWAIT first (REQ_NOWAIT
	# bios; -EAGAIN is retried from a worker). With RWF_NOWAIT (fio
	# --nowait) -EAGAIN reaches the application: virtio behind mq-deadline
	# gives it now and then with or without an interposer, so that case
	# runs on null_blk.
	nj=(--name=uring --filename="$dev" --direct=1 --ioengine=io_uring
		--iodepth=16 --rw=randwrite --bs=4k --offset=0 --size=4M "${VERIFY[@]}")
	fj=(--name=uringf --directory="$mnt" --direct=1 --ioengine=io_uring
		--iodepth=16 --rw=randwrite --bs=4k --size=4M "${VERIFY[@]}")
	bj=(--name=nowait --filename="$nb" --direct=1 --ioengine=io_uring --nowait=1
		--iodepth=16 --rw=randwrite --bs=4k --offset=0 --size=8M "${VERIFY[@]}")
	r0=$(redirected low) rf=$(redirected lowf) rn=$(redirected lown)
	fverify $((4 * MIB)) "${nj[@]}"
	fverify $((4 * MIB)) "${fj[@]}"
	fverify $((8 * MIB)) "${bj[@]}"
	grew low "$r0" 2048 "io_uring on the node"
	grew lowf "$rf" 2048 "io_uring on a file"
	grew lown "$rn" 4096 "io_uring RWF_NOWAIT on null_blk"
	lower_reload low "$dev"
	lower_reload lowf "$fdev"
	lower_reload lown "$nb"
	p0=$(passed low) r0=$(redirected low) pf=$(passed lowf) rf=$(redirected lowf)
	pn=$(passed lown) rn=$(redirected lown)
	reverify $((4 * MIB)) nj
	reverify $((4 * MIB)) fj
	reverify $((8 * MIB)) bj
	still low "$p0" "$r0"
	still lowf "$pf" "$rf"
	still lown "$pn" "$rn"
	umount "$mnt"
	fsck_clean "$fdev" ext4
	figure "io_uring REQ_NOWAIT" bytes_verified=$BYTES lost=0
}

@test "io_uring polled I/O (hipri): null_blk with poll queues; virtio without refuses it alike" {
	local dev=${DMI_PDISK}2 nb=/dev/nullb0 rn pn r0 mode
	local -a pj pnj vj
	fio --enghelp=io_uring | grep -qw hipri || skip "fio has no io_uring hipri option"
	nullb_load
	lower_create lown "$nb" attach no_direct
	lower_create low "$dev" attach no_direct
	echo "io_poll: null_blk 1, dm on it $(qpoll /dev/mapper/lown)," \
		"virtio $(qpoll "$DMI_PDISK"), dm on it $(qpoll /dev/mapper/low)"
	pj=(--name=polled --filename="$nb" --direct=1 --ioengine=io_uring --hipri=1
		--iodepth=16 --rw=randwrite --bs=4k --offset=0 --size=8M "${VERIFY[@]}")
	# Polled and RWF_NOWAIT at once, another range.
	pnj=(--name=polled2 --filename="$nb" --direct=1 --ioengine=io_uring --hipri=1 --nowait=1
		--iodepth=16 --rw=randwrite --bs=4k --offset=32M --size=8M "${VERIFY[@]}")
	rn=$(redirected lown)
	fverify $((8 * MIB)) "${pj[@]}"
	fverify $((8 * MIB)) "${pnj[@]}"
	grew lown "$rn" $((4 * 2048)) "io_uring hipri on null_blk"
	# A REQ_POLLED bio for a queue that cannot poll fails (6.12: -EOPNOTSUPP,
	# no fallback to interrupts): through the interposer as without it,
	# promptly, with nothing written.
	vj=(--name=polledv --filename="$dev" --direct=1 --ioengine=io_uring --hipri=1
		--iodepth=4 --rw=write --bs=4k --offset=64M --size=64k)
	head -c 64k /dev/urandom >"$BATS_TEST_TMPDIR/keep"
	dd if="$BATS_TEST_TMPDIR/keep" of="$dev" bs=64k seek=1024 oflag=direct status=none
	for mode in attached detached; do
		[[ $mode == attached ]] || lower_reload low "$dev"
		r0=$(redirected low)
		fails timeout 60 fio --output="$BATS_TEST_TMPDIR/fio.out" "${vj[@]}"
		grep -q 'Operation not supported' "$BATS_TEST_TMPDIR/fio.out" ||
			die "hipri on virtio ($mode): $(cat "$BATS_TEST_TMPDIR/fio.out")"
		[[ $mode == detached ]] || grew low "$r0" 1 "refused hipri on virtio"
	done
	cmp "$BATS_TEST_TMPDIR/keep" <(dd if="$dev" bs=64k skip=1024 count=1 iflag=direct status=none)
	lower_reload lown "$nb"
	pn=$(passed lown) rn=$(redirected lown) r0=$(redirected low)
	reverify $((8 * MIB)) pj
	reverify $((8 * MIB)) pnj
	still lown "$pn" "$rn"
	[[ $(redirected low) == "$r0" ]]
	figure "io_uring polled (hipri)" bytes_verified=$BYTES lost=0
}

# The layout of the discard test, in MiB: data, discard, data,
# write-zeroes, data, punch hole, data, zero range, data.
# Zeroed ranges read zero, the data ranges are untouched; the discarded
# range (virtio, discard_zeroes_data=0) is only guaranteed to be readable:
# check_ranges DEV DATA [FLAGS]
check_ranges() {
	local dev=$1 data=$2 flags=${3:-} off len
	for off in 0:4 12:4 20:2 24:2 28:4; do
		len=${off#*:} off=${off%:*}
		cmp <(tail -c +$((off * MIB + 1)) "$data" | head -c $((len * MIB))) \
			<(dd if="$dev" bs=1M skip="$off" count="$len" ${flags:+"$flags"} status=none)
	done
	for off in 16:4 22:2 26:2; do
		len=${off#*:} off=${off%:*}
		cmp <(head -c $((len * MIB)) /dev/zero) \
			<(dd if="$dev" bs=1M skip="$off" count="$len" ${flags:+"$flags"} status=none)
	done
	dd if="$dev" of=/dev/null bs=1M skip=4 count=8 ${flags:+"$flags"} status=none
	BYTES=$((BYTES + 24 * MIB))
}

@test "discard, write-zeroes, punch-hole and zero-range on the node; online discard and fstrim on ext4" {
	local dev=${DMI_PDISK}2 fdev=${DMI_PDISK}1 data=$BATS_TEST_TMPDIR/data mnt r0 d0 s0 p0 pf rf
	lower_create low "$dev" attach no_direct
	head -c 32M /dev/urandom >"$data"
	dd if="$data" of="$dev" bs=1M oflag=direct status=none
	r0=$(redirected low) d0=$(took_stat low 12) s0=$(took_stat low 14)
	blkdiscard -o 4M -l 8M "$dev"     # discard (unmap)
	blkdiscard -z -o 16M -l 4M "$dev" # write-zeroes (BLKZEROOUT)
	fallocate -p -o 22M -l 2M "$dev"  # punch hole: write-zeroes, unmap allowed
	fallocate -z -o 26M -l 2M "$dev"  # zero range: write-zeroes, no unmap
	grew low "$r0" 4 "discard, write-zeroes, punch-hole, zero-range"
	# The discard was taken as a discard, all of it.
	(($(took_stat low 12) > d0 && $(took_stat low 14) - s0 >= 8 * 2048)) ||
		die "discard not accounted: ios $d0 -> $(took_stat low 12), sectors $s0 -> $(took_stat low 14)"
	check_ranges "$dev" "$data" iflag=direct
	# ext4 mounted with -o discard: freed extents are discarded at commit.
	mkfs.ext4 -q -F "$fdev"
	mnt=$DMI_MNT/odisc
	mkdir -p "$mnt"
	mount -o discard "$fdev" "$mnt"
	write_files "$mnt" f 16 256
	sync
	lower_create lowf "$fdev" attach no_direct
	rf=$(redirected lowf) d0=$(took_stat lowf 12) s0=$(took_stat lowf 14)
	rm "$mnt"/f.[0-7]
	sync
	# Issued by the journal commit; give its callback a moment.
	for _ in {1..50}; do
		(($(took_stat lowf 14) - s0 >= 8 * 512)) && break
		sleep 0.2
	done
	(($(took_stat lowf 12) > d0 && $(took_stat lowf 14) - s0 >= 8 * 512)) ||
		die "online discard not taken: ios $d0 -> $(took_stat lowf 12), sectors $s0 -> $(took_stat lowf 14)"
	grew lowf "$rf" 1 "online discard"
	# fstrim: the free space (most of the 512 MiB partition).
	rf=$(redirected lowf) s0=$(took_stat lowf 14)
	fstrim "$mnt"
	(($(took_stat lowf 14) - s0 >= 256 * 2048)) ||
		die "fstrim not taken: sectors $s0 -> $(took_stat lowf 14)"
	grew lowf "$rf" 1 "fstrim"
	sed -i '/f\.[0-7]$/d' "$BATS_TEST_TMPDIR/f.sums"
	drop_caches
	verify_files "$mnt" f
	BYTES=$((BYTES + 8 * 256 * 1024))
	lower_reload lowf "$fdev"
	lower_reload low "$dev"
	p0=$(passed low) r0=$(redirected low) pf=$(passed lowf) rf=$(redirected lowf)
	drop_caches
	verify_files "$mnt" f
	BYTES=$((BYTES + 8 * 256 * 1024))
	check_ranges "$dev" "$data" iflag=direct
	still low "$p0" "$r0"
	still lowf "$pf" "$rf"
	umount "$mnt"
	fsck_clean "$fdev" ext4
	figure "discard, write-zeroes, fstrim" bytes_verified=$BYTES lost=0
}

@test "fsync and O_SYNC (flush, FUA) on a file and on the node" {
	local dev=${DMI_PDISK}2 fdev=${DMI_PDISK}1 mnt r0 rf p0 pf j
	local -a fsync_f osync_f fsync_n osync_n all
	mnt=$(mkfs_mount "$fdev" ext4 sync)
	lower_create lowf "$fdev" attach no_direct
	lower_create low "$dev" attach no_direct
	# 128 writes of 4k each; each followed by a flush (fsync) or written
	# with O_SYNC: at least the write and a flush (or a FUA write) per I/O.
	fsync_f=(--name=fsyncf --directory="$mnt" --ioengine=psync --direct=0 --fsync=1
		--rw=randwrite --bs=4k --size=512k "${VERIFY[@]}")
	osync_f=(--name=osyncf --directory="$mnt" --ioengine=psync --direct=0 --sync=1
		--rw=randwrite --bs=4k --size=512k "${VERIFY[@]}")
	fsync_n=(--name=fsyncn --filename="$dev" --ioengine=psync --direct=0 --fsync=1
		--rw=randwrite --bs=4k --offset=0 --size=512k "${VERIFY[@]}")
	osync_n=(--name=osyncn --filename="$dev" --ioengine=psync --direct=1 --sync=1
		--rw=randwrite --bs=4k --offset=8M --size=512k "${VERIFY[@]}")
	for j in fsync_f osync_f; do
		rf=$(redirected lowf)
		job $j --do_verify=0
		grew lowf "$rf" 256 "$j"
	done
	for j in fsync_n osync_n; do
		r0=$(redirected low)
		job $j --do_verify=0
		grew low "$r0" 256 "$j"
	done
	# Read back from the devices (the page cache dropped), through the
	# interposer, then through the original devices alone: the four jobs
	# at once.
	all=("${fsync_f[@]}" "${osync_f[@]}" "${fsync_n[@]}" "${osync_n[@]}")
	drop_caches
	r0=$(redirected low) rf=$(redirected lowf)
	fverify $((2 * MIB)) --verify_only "${all[@]}"
	grew low "$r0" 128 "verifying reads of the node"
	grew lowf "$rf" 2 "verifying reads of the files"
	lower_reload lowf "$fdev"
	lower_reload low "$dev"
	p0=$(passed low) r0=$(redirected low) pf=$(passed lowf) rf=$(redirected lowf)
	drop_caches
	fverify $((2 * MIB)) --verify_only "${all[@]}"
	still low "$p0" "$r0"
	still lowf "$pf" "$rf"
	umount "$mnt"
	fsck_clean "$fdev" ext4
	figure "fsync and O_SYNC" bytes_verified=$BYTES lost=0
}

@test "swap on an interposed partition: paged out and in through it, detached while active" {
	local dev=${DMI_PDISK}2 r0 p0 in0 out0 din dout bad1 bad2
	local ctl=$BATS_TEST_TMPDIR/swapctl fill_mb=80
	command -v python3 >/dev/null || skip "no python3"
	mkdir -p "$ctl"
	# A process that fills anonymous memory with a pattern unique to each
	# page and this run, checks it (pass 1), waits for "go", checks again
	# (pass 2). No transparent huge pages: one swap bio per 4k page.
	cat >"$BATS_TEST_TMPDIR/swapper.py" <<'EOF'
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE
n = int(sys.argv[1]) * 256
ctl = sys.argv[2]
seed = os.urandom(8)
buf = bytearray(n * 4096)
mv = memoryview(buf)
def page(i):
    return (seed + i.to_bytes(8, "little")) * 256
for i in range(n):
    mv[i * 4096:(i + 1) * 4096] = page(i)
def check(name):
    bad = sum(1 for i in range(n) if mv[i * 4096:(i + 1) * 4096] != page(i))
    with open(ctl + "/" + name + ".tmp", "w") as f:
        f.write(str(bad))
    os.rename(ctl + "/" + name + ".tmp", ctl + "/" + name)
check("pass1")
while not os.path.exists(ctl + "/go"):
    time.sleep(0.1)
check("pass2")
EOF
	vmst() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
	wait_file() {
		timeout "$2" bash -c "until [[ -e $1 ]]; do sleep 0.2; done" ||
			die "no $1 after $2 s (swapper: $(kill -0 "$SWAP_PID" 2>&1 && echo running))"
	}
	mkswap -q "$dev" >/dev/null
	swapon "$dev"
	SWAP_DEV=$dev
	# Attach under the active swap (it holds the partition exclusively;
	# the target opens it non-exclusively).
	lower_create low "$dev" attach no_direct
	[[ $(status_field low 3) == attached ]]
	grep -qw +memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
		echo +memory >/sys/fs/cgroup/cgroup.subtree_control
	CG=/sys/fs/cgroup/dmi81-swap
	mkdir "$CG"
	echo 32M >"$CG/memory.max"
	echo max >"$CG/memory.swap.max"
	[[ ! -e $CG/memory.zswap.max ]] || echo 0 >"$CG/memory.zswap.max"
	r0=$(redirected low) in0=$(vmst pswpin) out0=$(vmst pswpout)
	timeout 600 bash -c 'echo $$ >"$1/cgroup.procs" && exec python3 "$2" "$3" "$4"' _ \
		"$CG" "$BATS_TEST_TMPDIR/swapper.py" "$fill_mb" "$ctl" &
	SWAP_PID=$!
	wait_file "$ctl/pass1" 300
	din=$(($(vmst pswpin) - in0)) dout=$(($(vmst pswpout) - out0))
	bad1=$(cat "$ctl/pass1")
	echo "# swap pass 1: $bad1 bad pages; swapped out $dout, in $din pages; redirected $(($(redirected low) - r0))" >&3
	((bad1 == 0)) || die "$bad1 pages came back wrong from the interposed swap"
	# More than the memory.max worth of pages went out and came back.
	((dout >= (fill_mb - 32) * 256 && din >= (fill_mb - 32) * 256)) ||
		die "too little swapping: out $dout, in $din pages"
	grew low "$r0" $((din + dout)) "swap-out and swap-in of 4k pages"
	# Detach with the swap active; pass 2 pages in through the original.
	lower_reload low "$dev"
	[[ $(status_field low 3) == passthrough ]]
	p0=$(passed low) r0=$(redirected low) in0=$(vmst pswpin)
	touch "$ctl/go"
	wait_file "$ctl/pass2" 300
	bad2=$(cat "$ctl/pass2")
	echo "pass 2 (detached): $bad2 bad pages; swapped in $(($(vmst pswpin) - in0)) pages"
	((bad2 == 0)) || die "$bad2 pages came back wrong after the detach"
	(($(vmst pswpin) - in0 >= (fill_mb - 32) * 256)) || die "pass 2 did not swap in"
	wait "$SWAP_PID" || die "the swapper failed" # bounded: timeout 600
	SWAP_PID=
	still low "$p0" "$r0"
	timeout 120 swapoff "$dev"
	SWAP_DEV=
	figure "swap" bytes_verified=$((2 * fill_mb * MIB)) lost=$((bad1 + bad2))
}
