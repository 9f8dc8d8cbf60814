#!/usr/bin/env bats
# Torture: a table fuzzer. Hostile interpose tables, generated from a fixed
# seed (DMI_FUZZ_SEED), are loaded by dmsetup create and reload, next to
# live interposers (an attached partition carrying a mounted fs under a
# write load, an attach_to stack on a whole disk, an attached whole loop disk
# with partitions): feature counts that do not match, are negative, huge or
# not numbers; huge and negative diskseqs and table lengths; overlong paths;
# paths that are no block device; missing major:minor; a device onto
# itself; a redirect to its own lower device; a partition of an interposed
# disk and the disk of an interposed partition; duplicate, unknown and
# conflicting features; attach_to a device that is not DM; wrong start and
# length; several targets; garbage mixed in. Every one must be refused with
# a kernel message naming the problem and leave nothing behind; valid
# tables, mixed in at random, must be accepted (then detached and removed).
# The live devices keep their redirect, the files of the mounted fs are
# verified after the fuzzing, and the module unloads at the end.
# Iterations: torture_n (DMI_TORTURE=long), or DMI_FUZZ_ITERATIONS.
# cost: 3

load lib

setup() {
	dmi_require_guest
	KLOG_PID=
}

teardown() {
	if [[ -n ${KLOG_PID:-} ]]; then
		kill "$KLOG_PID" 2>/dev/null || true
		wait "$KLOG_PID" 2>/dev/null || true
		KLOG_PID=
	fi
	dmi_cleanup_unload
}

# --- the kernel log, followed into a file and read on a descriptor: no
# process per table (a fork costs a lot in a TCG guest) ---

klog_start() {
	KLOG=$BATS_TEST_TMPDIR/kmsg
	: >"$KLOG"
	# dmesg -w survives an overwritten ring buffer (cat /dev/kmsg does not).
	stdbuf -oL dmesg -w >"$KLOG" 2>/dev/null 3>&- &
	KLOG_PID=$!
	exec {KFD}<"$KLOG"
	KPART='' KSINCE=''
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $KLOG ]] && break
		sleep 0.1
	done
	sleep 0.5
	klog_mark
}
# Read the lines logged since the last read into KSINCE.
klog_pull() {
	local line
	while IFS= read -r -u "$KFD" line; do
		KSINCE+=$KPART$line$'\n'
		KPART=''
	done
	# A line not complete yet.
	KPART+=$line
}
klog_mark() {
	klog_pull
	KSINCE=''
}
klog_since() {
	klog_pull
	printf '%s' "$KSINCE"
}

# Wait (up to 5 s) for a kernel message matching the ERE since the mark:
# klog_wait ERE
klog_wait() {
	local i
	for ((i = 0; i < 100; i++)); do
		klog_pull
		[[ $KSINCE =~ $1 ]] && return 0
		sleep 0.05
	done
	return 1
}

# Kernel problems: the patterns scripts/vm-run fails a run on.
SPLAT='Oops|BUG:|WARNING:|Call Trace|kernel BUG|general protection fault|Unable to handle|UBSAN:|KASAN|KFENCE|possible circular locking|inconsistent lock state|blocked for more than|soft lockup|refcount_t:|ODEBUG:|list_(add|del) corruption'

# --- a deterministic pseudo-random generator (not bash's RANDOM, whose ---
# --- sequence for a seed differs between bash versions) ---

# rnd N: R = a number in [0, N)
rnd() {
	FZ_STATE=$(((FZ_STATE * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff))
	R=$(((FZ_STATE >> 33) % $1))
}
# pick WORD...: P = one of the words
pick() {
	rnd $#
	local a=("$@")
	P=${a[R]}
}

# --- the fixed devices ---

# The DM devices that must exist after every table, and nothing else.
FIXED="fz-lp fz-p1 fz-s fz-wl fz-wu"

fixture() {
	local f
	P1=${DMI_PDISK}1 P2=${DMI_PDISK}2 PD=$DMI_PDISK W=$DMI_WDISK
	SZ1=$(sectors "$P1") SZ2=$(sectors "$P2") SZPD=$(sectors "$PD") SZW=$(sectors "$W")
	# A loop disk with two partitions, interposed whole.
	f=$(mktemp /var/tmp/dmi-loop.XXXXXX)
	truncate -s 64M "$f"
	printf 'label: gpt\n,24M\n,\n' | sfdisk -q "$f" >/dev/null
	LP=$(losetup -f --show -P "$f")
	settle 60
	[[ -b ${LP}p1 && -b ${LP}p2 ]] || die "no partitions on $LP"
	SZLP=$(sectors "$LP") SZLP1=$(sectors "${LP}p1")
	# A free loop device for valid tables.
	L2=$(new_loop 32)
	SZL2=$(sectors "$L2")
	DEV_P2=$(devno "$P2") SEQ_P2=$(diskseq_of "$P2")
	DEV_L2=$(devno "$L2") SEQ_L2=$(diskseq_of "$L2")

	# The mounted fs on P1, attached (attach) under a write load.
	MNT=$(mkfs_mount "$P1" ext4 fuzz)
	write_files "$MNT/data" pre 8 256
	lower_create fz-p1 "$P1" attach
	start_load "$MNT"
	# An attach_to stack on the whole disk W.
	lower_create fz-wl "$W"
	dmsetup create fz-wu --table "0 $SZW linear /dev/mapper/fz-wl 0"
	lower_reload fz-wl "$W" attach_to /dev/mapper/fz-wu
	# The whole loop disk, attached.
	lower_create fz-lp "$LP" attach
	# A device without a table, the target of most reloads.
	dmsetup create --notable fz-s
	settle 60

	DMMAJ=$(dmdevno fz-s)
	DMMAJ=${DMMAJ%%:*}
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	touch "$BATS_TEST_TMPDIR/regular"
	ln -s "$BATS_TEST_TMPDIR/loop" "$BATS_TEST_TMPDIR/loop"
	LONG=/dev/$(printf 'x%.0s' {1..4200})
	LONGC=/dev/$(printf 'y%.0s' {1..300})/vdb
	LONGD=$(printf '/.%.0s' {1..2100})$P2
	check_fixed
}

# major:minor of a DM device, with or without a table (a device without
# one may have no node): dmdevno NAME
dmdevno() { dmsetup info -c --noheadings --separator : -o major,minor "$1"; }

# The live devices still hold their redirects, nothing else exists.
check_fixed() {
	local ls
	ls=$(dmsetup ls | awk '$1 != "No" { print $1 }' | sort | xargs)
	[[ $ls == "$FIXED" ]] || die "DM devices: '$ls', expected '$FIXED'"
	[[ $(status_field fz-p1 3) == attached ]] || die "fz-p1 lost its redirect"
	[[ $(status_field fz-wl 3) == attached ]] || die "fz-wl lost its redirect"
	[[ $(status_field fz-wl 4) == "$(devno /dev/mapper/fz-wu)" ]] || die "fz-wl redirects elsewhere"
	[[ $(status_field fz-lp 3) == attached ]] || die "fz-lp lost its redirect"
	kill -0 "$LOAD_PID" 2>/dev/null || die "the write load on the mounted fs stopped"
}

# --- one table ---

# A table that must be refused: bad DEV-OR-NEW ERE TABLE. DEV-OR-NEW: an
# existing device to reload, or "new" for dmsetup create fz-new.
bad() {
	local dev=$1 re=$2 table=$3 out=$BATS_TEST_TMPDIR/dmsetup.err
	FZ_TABLES=$((FZ_TABLES + 1))
	klog_mark
	if [[ $dev == new ]]; then
		if timeout -k 5 60 dmsetup create fz-new --table "$table" 2>"$out"; then
			fz_show "$table"
			die "bad table accepted by create (iteration $FZ_I)"
		fi
	else
		if timeout -k 5 60 dmsetup reload "$dev" --table "$table" 2>"$out"; then
			fz_show "$table"
			dmsetup clear "$dev" || true
			die "bad table accepted by reload of $dev (iteration $FZ_I)"
		fi
	fi
	FZ_REFUSED=$((FZ_REFUSED + 1))
	if ! klog_wait "device-mapper: .*($re)"; then
		fz_show "$table"
		echo "kernel log:" >&2
		klog_since >&2
		echo "dmsetup:" >&2
		cat "$out" >&2
		die "no kernel message matching '$re' (iteration $FZ_I, ${dev})"
	fi
	nothing_left
	fz_splat
}

# One dmsetup per table: only the fixed devices exist, none has an
# inactive table (the attr column: L live, I inactive).
nothing_left() {
	local name attr names=''
	while read -r name attr; do
		[[ $name != No ]] || continue
		names+=" $name"
		[[ $attr != ?I* ]] || die "a refused table left an inactive table in $name (iteration $FZ_I)"
	done < <(dmsetup info -c --noheadings --separator ' ' --sort name -o name,attr)
	[[ $names == " $FIXED" ]] || die "DM devices after iteration $FZ_I:$names, expected $FIXED"
}

fz_show() {
	local t=$1
	((${#t} < 600)) || t="${t:0:300}...(${#t} chars)...${t: -200}"
	echo "table (seed $FZ_SEED, iteration $FZ_I): $t" >&2
}

fz_splat() {
	klog_pull
	if [[ $KSINCE =~ $SPLAT ]]; then
		printf '%s' "$KSINCE" >&2
		die "kernel problem after iteration $FZ_I"
	fi
}

# A valid table, loaded into fz-s and cleared, or created as fz-new and
# removed: good DEV-OR-NEW TABLE [attached]
good() {
	local dev=$1 table=$2 want=${3:-}
	FZ_TABLES=$((FZ_TABLES + 1))
	klog_mark
	if [[ $dev == new ]]; then
		if ! timeout -k 5 60 dmsetup create fz-new --table "$table"; then
			fz_show "$table"
			klog_since >&2
			die "valid table refused by create (iteration $FZ_I)"
		fi
		if [[ $want == attached ]]; then
			[[ $(status_field fz-new 3) == attached ]] || die "fz-new not attached (iteration $FZ_I)"
			timeout -k 5 60 dmsetup reload fz-new --table "$(dmsetup table fz-new | awk '{ print $1, $2, $3, $4 }')"
			timeout -k 5 60 dmsetup resume fz-new
			[[ $(status_field fz-new 3) == passthrough ]] || die "fz-new not detached (iteration $FZ_I)"
		fi
		timeout -k 5 60 dmsetup remove fz-new
	else
		if ! timeout -k 5 60 dmsetup reload "$dev" --table "$table"; then
			fz_show "$table"
			klog_since >&2
			die "valid table refused by reload of $dev (iteration $FZ_I)"
		fi
		dmsetup clear "$dev"
	fi
	FZ_ACCEPTED=$((FZ_ACCEPTED + 1))
	fz_splat
}

# --- generators: each sets T (the table), RE (the refusal expected) ---

CTR='interpose: '
# A valid feature list for orig DEV, as "N f1 f2...", order and case random,
# in FEAT; FEAT_ATT=attached when it attaches: valid_features DISKSEQ
valid_features() {
	local seq=$1 f=()
	FEAT_ATT=
	rnd 2
	if ((R)); then
		pick attach Attach ATTACH attach
		f+=("$P")
		FEAT_ATT=attached
	fi
	rnd 3
	if ((R == 0)); then
		pick diskseq DiskSeq
		f+=("$P $seq")
	fi
	rnd 3
	((R)) || f+=(freeze)
	# Shuffle.
	local i j t n=${#f[@]}
	for ((i = n - 1; i > 0; i--)); do
		rnd $((i + 1))
		j=$R
		t=${f[i]}
		f[i]=${f[j]}
		f[j]=$t
	done
	local words=" ${f[*]}" ww
	# The number of words, each "diskseq N" counting two.
	read -r -a ww <<<"$words"
	n=${#ww[@]}
	if ((n == 0)); then
		rnd 2
		if ((R)); then FEAT=""; else FEAT=" 0"; fi
	else
		FEAT=" $n$words"
	fi
}

# The original device named in one of its ways: spell DEV MAJOR:MINOR
spell() {
	pick path devno link
	case $P in
	path) S=$1 ;;
	devno) S=$2 ;;
	link)
		S=$(find -L /dev/disk/by-path /dev/disk/by-id -samefile "$1" 2>/dev/null | head -1)
		[[ -n $S ]] || S=$1
		;;
	esac
}

# Pick a table class and generate one table; run it.
one_table() {
	local n o osz odev oseq s
	pick P2 L2
	if [[ $P == P2 ]]; then
		o=$P2 osz=$SZ2 odev=$DEV_P2 oseq=$SEQ_P2
	else
		o=$L2 osz=$SZL2 odev=$DEV_L2 oseq=$SEQ_L2
	fi
	# dmsetup create costs more (udev): one table in five.
	pick new fz-s fz-s fz-s fz-s
	local dev=$P
	rnd 26
	case $R in
	0 | 1 | 2 | 3)
		# Valid: pass-through, attach, diskseq, freeze, any order.
		valid_features "$oseq"
		spell "$o" "$odev"
		if [[ $dev == new ]]; then
			good new "0 $osz interpose $S$FEAT" "$FEAT_ATT"
		else
			good fz-s "0 $osz interpose $S$FEAT"
		fi
		;;
	4)
		# Valid: an attach_to stack built, attached, detached, removed;
		# or a live hand-over of the attached fz-p1 to itself.
		rnd 2
		if ((R)); then
			valid_stack "$o" "$osz" "$oseq"
		else
			FZ_TABLES=$((FZ_TABLES + 1))
			timeout -k 5 60 dmsetup reload fz-p1 --table "$(dmsetup table fz-p1)"
			timeout -k 5 60 dmsetup resume fz-p1
			[[ $(status_field fz-p1 3) == attached ]] || die "fz-p1 not attached after its reload"
			FZ_ACCEPTED=$((FZ_ACCEPTED + 1))
		fi
		;;
	5)
		# Feature counts out of range, not numbers, or more than given.
		pick -1 -0x1 4294967296 4294967297 18446744073709551616 18446744073709551617 \
			99999999999999999999999 6 7 255 1e3 0x1 abc 1.0 "" 3 4 5
		local c=$P
		pick "attach" "freeze" "diskseq 1" "attach freeze"
		if [[ -z $c ]]; then
			# No count: the first feature is read as one.
			bad "$dev" "Invalid number of feature arguments" "0 $osz interpose $o $P"
		else
			bad "$dev" "Invalid number of feature arguments" "0 $osz interpose $o $c $P"
		fi
		;;
	6)
		# Feature counts smaller than the features given.
		pick "0 attach" "1 attach freeze" "1 diskseq 5" "2 attach_to $P2 freeze" "0 freeze" "1 attach_to"
		bad "$dev" "Too many arguments|diskseq needs a number|attach_to needs a device" "0 $osz interpose $o $P"
		;;
	7)
		# Bad diskseqs.
		pick -1 0 18446744073709551616 18446744073709551617 99999999999999999999999 \
			abc 0x10 1.5 +-1 -0 " "
		bad "$dev" "Invalid diskseq|Invalid number of feature" "0 $osz interpose $o 2 diskseq $P"
		;;
	8)
		# A diskseq that is a number but not the device's.
		s=$oseq
		pick $((s + 1)) $((s - 1)) 18446744073709551615 1 $((s + 1000000))
		[[ $P != "$s" && $P != 0 ]] || P=$((s + 2))
		bad "$dev" "Disk sequence number mismatch" "0 $osz interpose $o 2 diskseq $P"
		;;
	9)
		# Wrong length.
		pick $((osz - 1)) $((osz + 1)) $((osz * 2)) $((osz / 2)) 1 8 $((osz - 8))
		bad "$dev" "Table must cover the whole original device" "0 $P interpose $o"
		;;
	10)
		# Wrong start, zero, huge or negative length.
		pick "8 $osz" "1 $((osz - 1))" "$osz $osz" "0 0" "0 -1" "0 18446744073709551615" \
			"0 18446744073709551616" "18446744073709551615 1" "-1 $osz" "0 9223372036854775807" \
			"0 36028797018963968"
		bad "$dev" "Gap in table|zero-length target|too large device|Table must cover" "$P interpose $o"
		;;
	11)
		# Several targets.
		pick "0 $osz interpose $o
$osz 8 zero" "0 8 zero
8 $osz interpose $o" "0 $osz interpose $o
$osz $SZL2 interpose $L2" "0 $osz interpose $o
0 $osz interpose $o" "0 $osz interpose $o 1 attach
$osz $osz interpose $o 1 attach" "0 $osz interpose $o
$osz 8 error"
		bad "$dev" "must appear alone|Gap in table" "$P"
		;;
	12)
		# Paths that are not block devices, too long, odd.
		pick /dev/null /proc/self / "$BATS_TEST_TMPDIR" "$BATS_TEST_TMPDIR/regular" \
			"$BATS_TEST_TMPDIR/fifo" "$BATS_TEST_TMPDIR/loop" /dev/mapper/control \
			/sys/block/vdb "$LONG" "$LONGC" /dev/does-not-exist "/dev/%s%n%p" relative/vdb \
			/dev/../dev/null /dev/zero "/dev/\\ vdb" ../../dev/null /dev/vdb1/ /dev/tty
		bad "$dev" "Cannot find original device" "0 $osz interpose $P"
		;;
	13)
		# Overlong paths that do name the device.
		bad "$dev" "Cannot find original device" "0 $osz interpose $LONGD"
		;;
	14)
		# major:minor with no device, or out of range.
		pick 240:7 241:0 "$DMMAJ:1000" "$DMMAJ:1048575" 4095:1048575 4096:0 0:1048576 \
			4294967295:0 4294967296:1 0:0 -1:-1 7:250 "7:"
		bad "$dev" "Cannot find original device|Cannot open original device|Original device is empty" \
			"0 $osz interpose $P"
		;;
	15)
		# A DM device onto itself; a device without a table.
		pick fz-p1 fz-wl fz-wu fz-lp fz-s
		n=$P
		s=$(dmsetup table "$n" | awk 'NR == 1 { print $2 }')
		[[ -n $s ]] || s=8
		pick "/dev/mapper/$n" "$(dmdevno "$n")"
		if [[ $n == fz-s ]]; then
			bad fz-s "Original device is empty|Cannot find original device|Cannot open original device" \
				"0 $s interpose $P"
		else
			bad "$n" "Cannot interpose a device onto itself" "0 $s interpose $P"
		fi
		;;
	16)
		# A redirect to its own lower device.
		pick 1 2 3
		case $P in
		1) bad fz-wl "Cannot redirect a device to itself" "0 $SZW interpose $W 2 attach_to $W" ;;
		2) bad fz-wu "Cannot redirect a device to itself" \
			"0 $SZW interpose /dev/mapper/fz-wl 2 attach_to /dev/mapper/fz-wl" ;;
		3) bad "$dev" "Cannot redirect a device to itself" "0 $osz interpose $o 2 attach_to $odev" ;;
		esac
		;;
	17)
		# Cycles and redirect destinations.
		pick 1 2 3 4
		case $P in
		1) bad fz-wl "Interposing would create a cycle" "0 $SZW interpose /dev/mapper/fz-wu" ;;
		2) bad "$dev" "redirect destination of an interposer" "0 $SZW interpose /dev/mapper/fz-wu" ;;
		3) bad "$dev" "redirect destination of an interposer" "0 $SZ1 interpose /dev/mapper/fz-p1" ;;
		4) bad "$dev" "redirect destination of an interposer" "0 $SZLP interpose /dev/mapper/fz-lp" ;;
		esac
		;;
	18)
		# A partition of an interposed disk, the disk of an interposed
		# partition, a device already interposed.
		pick 1 2 3 4 5 6
		case $P in
		1) bad "$dev" "The disk of this partition has an interposer" "0 $SZLP1 interpose ${LP}p1" ;;
		2) bad "$dev" "The disk of this partition has an interposer" "0 $SZLP1 interpose ${LP}p1 1 attach" ;;
		3) bad "$dev" "A partition of this disk has an interposer" "0 $SZPD interpose $PD" ;;
		4) bad "$dev" "A partition of this disk has an interposer" "0 $SZPD interpose $PD 1 attach" ;;
		5) bad "$dev" "Device already has an interposer" "0 $SZ1 interpose $P1" ;;
		6) bad fz-wu "Device already has an interposer" "0 $SZW interpose $W" ;;
		esac
		;;
	19)
		# Duplicate and conflicting features.
		s=$oseq
		pick "2 attach attach" "3 attach attach_to /dev/mapper/fz-wu" "3 attach_to /dev/mapper/fz-wu attach" \
			"4 attach_to /dev/mapper/fz-wu attach_to /dev/mapper/fz-wu" "2 freeze freeze" \
			"4 diskseq $s diskseq $s" "5 diskseq $s attach diskseq $s" "3 attach freeze FREEZE" \
			"2 ATTACH attach"
		bad "$dev" "Duplicate or conflicting attach|Duplicate freeze|Duplicate diskseq" "0 $osz interpose $o $P"
		;;
	20)
		# Unknown features.
		pick bogus detach attach, nofreeze diskseq=1 "attach\\ " - 0 -1 attach_t attached \
			freeze=1 "%s%s%n" "attach_to=$P2"
		bad "$dev" "Unrecognised feature argument" "0 $osz interpose $o 1 $P"
		;;
	21)
		# attach_to: not DM, not a device, not the right size.
		pick 1 2 3 4
		case $P in
		1)
			pick "$W" "$PD" "${LP}p2" 7:250
			bad "$dev" "attach_to device is not a device-mapper device|Original device is empty" \
				"0 $osz interpose $o 2 attach_to $P"
			;;
		2)
			pick /dev/null / "$BATS_TEST_TMPDIR/fifo" "$LONG" 240:7x nope "$BATS_TEST_TMPDIR/loop"
			bad "$dev" "Cannot find attach_to device" "0 $osz interpose $o 2 attach_to $P"
			;;
		3)
			pick 240:7 "$DMMAJ:1000" 0:0
			bad "$dev" "attach_to device is not a device-mapper device" "0 $osz interpose $o 2 attach_to $P"
			;;
		4)
			pick fz-wu fz-p1 fz-lp fz-s
			bad "$dev" "attach_to device size differs" "0 $osz interpose $o 2 attach_to $(dmdevno "$P")"
			;;
		esac
		;;
	22)
		# Missing arguments, a bare target.
		pick "" " " "    "
		bad "$dev" "Missing original device" "0 $osz interpose$P"
		;;
	23 | 24 | 25)
		# Garbage: valid and invalid words in any order, at least one
		# invalid word among the features.
		local words=(attach attach_to /dev/mapper/fz-wu "$odev" diskseq "$oseq" freeze 1 2)
		local junk=(bogus -1 0 18446744073709551616 "%n%s" ":" "::" "0:0:0" "-" "9999999999999999999999")
		local f=() k
		rnd 6
		n=$R
		for ((k = 0; k < n; k++)); do
			pick "${words[@]}"
			f+=("$P")
		done
		pick "${junk[@]}"
		rnd $((n + 1))
		f=("${f[@]:0:R}" "$P" "${f[@]:R}")
		n=${#f[@]}
		pick $n $n $((n - 1)) $((n + 1)) 5
		bad "$dev" "$CTR" "0 $osz interpose $o $P ${f[*]}"
		;;
	esac
}

# Build the attach_to stack fz-vl/fz-vu on DEV (SIZE sectors), attach it
# (with random extra features), check, detach, remove: valid_stack DEV SIZE
valid_stack() {
	local o=$1 osz=$2 seq=$3 feat
	FZ_TABLES=$((FZ_TABLES + 2))
	pick "" " freeze" " diskseq $seq" " freeze diskseq $seq"
	feat=$P
	timeout -k 5 60 dmsetup create fz-vl --table "0 $osz interpose $o"
	timeout -k 5 60 dmsetup create fz-vu --table "0 $osz linear /dev/mapper/fz-vl 0"
	pick "/dev/mapper/fz-vu" "$(devno /dev/mapper/fz-vu)"
	local n ww
	read -r -a ww <<<"attach_to $P$feat"
	n=${#ww[@]}
	timeout -k 5 60 dmsetup reload fz-vl --table "0 $osz interpose $o $n attach_to $P$feat" ||
		die "valid attach_to table refused (iteration $FZ_I)"
	timeout -k 5 60 dmsetup resume fz-vl
	[[ $(status_field fz-vl 3) == attached ]] || die "fz-vl not attached (iteration $FZ_I)"
	[[ $(status_field fz-vl 4) == "$(devno /dev/mapper/fz-vu)" ]] || die "fz-vl redirects elsewhere"
	timeout -k 5 60 dmsetup reload fz-vl --table "0 $osz interpose $o"
	timeout -k 5 60 dmsetup resume fz-vl
	timeout -k 5 60 dmsetup remove fz-vu
	timeout -k 5 60 dmsetup remove fz-vl
	FZ_ACCEPTED=$((FZ_ACCEPTED + 2))
}

@test "table fuzzer: hostile tables refused with a message, valid ones accepted, live devices intact" {
	local iters
	iters=${DMI_FUZZ_ITERATIONS:-$(torture_n 25 1000)}
	FZ_SEED=${DMI_FUZZ_SEED:-8585}
	FZ_STATE=$FZ_SEED
	FZ_TABLES=0 FZ_REFUSED=0 FZ_ACCEPTED=0
	klog_start
	fixture
	klog_mark
	for ((FZ_I = 1; FZ_I <= iters; FZ_I++)); do
		one_table
		if ((FZ_I % 25 == 0)); then
			check_fixed
			settle 60
		fi
		if ((FZ_I % 100 == 0)); then
			echo "# fuzz: $FZ_I/$iters tables=$FZ_TABLES refused=$FZ_REFUSED accepted=$FZ_ACCEPTED" >&3
		fi
	done
	check_fixed
	stop_load
	# The data of the mounted fs, written before the fuzzing, after a remount.
	verify_files "$MNT/data" pre
	write_files "$MNT/data" post 4 256
	lower_reload fz-p1 "$P1"
	umount "$MNT"
	fsck_clean "$P1" ext4 >/dev/null
	mount "$P1" "$MNT"
	verify_files "$MNT/data" pre
	verify_files "$MNT/data" post
	umount "$MNT"
	fz_splat
	figure "table fuzzer" "tables=$FZ_TABLES refused=$FZ_REFUSED accepted=$FZ_ACCEPTED seed=$FZ_SEED"
}
