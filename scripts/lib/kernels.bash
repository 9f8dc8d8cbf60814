# shellcheck shell=bash
# kernels.bash - the kernel matrix of scripts/pins.sh (KERNELS), for the
# scripts that take --kver. Sourced after pins.sh.

# kernel_field KVER N: field N (1-4) of KVER's line in KERNELS; fails with a
# message when KVER is not pinned.
kernel_field() {
	local line f
	for line in "${KERNELS[@]}"; do
		read -r -a f <<<"$line"
		if [[ ${f[0]} == "$1" ]]; then
			echo "${f[$2 - 1]}"
			return 0
		fi
	done
	echo "kernel $1 is not in KERNELS (scripts/pins.sh); pinned: $(kernel_list)" >&2
	return 1
}

kernel_list() {
	local line
	for line in "${KERNELS[@]}"; do echo -n "${line%% *} "; done
}

# Where KVER's modules are built: "host", or the name of a Debian release.
kernel_toolchain() { kernel_field "$1" 4; }

# The chroot of a Debian release, for kernels built with its toolchain.
kernel_chroot_dir() { echo "$KCACHE/chroot/$1"; }

# The extracted image package of a kernel: boot/ and lib/modules/ under it.
kernel_image_root() { echo "$KCACHE/kernels/$1"; }

# Output of the out-of-tree builds for a kernel other than the primary one:
# a copy of each module directory, built there (build-module --kver).
kernel_build_dir() { echo "$BUILD/kernels/$1"; }

# in_kernel_env KVER CMD...: run CMD where KVER's modules are built: on the
# host, or in its release's chroot, which sees the repository at the same
# path (bind mount) and has /proc (objtool needs it).
in_kernel_env() {
	local kver=$1 tc root
	shift
	tc=$(kernel_toolchain "$kver") || return 1
	if [[ $tc == host ]]; then
		"$@"
		return
	fi
	root=$(kernel_chroot_dir "$tc")
	[[ -x $root/usr/bin/make ]] || {
		echo "no $tc chroot at $root: run scripts/get-kernel $kver" >&2
		return 1
	}
	mkdir -p "$root$TOP"
	mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
	# A bind mount left from a checkout that was removed and made again at
	# the same path shows the old, deleted directory: mount the current one.
	if mountpoint -q "$root$TOP" &&
		[[ $(stat -c %d:%i "$root$TOP" 2>/dev/null) != "$(stat -c %d:%i "$TOP")" ]]; then
		umount -l "$root$TOP"
	fi
	mountpoint -q "$root$TOP" || mount --bind "$TOP" "$root$TOP"
	local dir=$PWD
	[[ $dir == "$TOP" || $dir == "$TOP"/* ]] || dir=$TOP
	chroot "$root" env -C "$dir" "$@"
}

# kernel_chroot_umount ROOT: unmount what in_kernel_env() leaves mounted
# under the chroot ROOT (its /proc, bind mounts of checkouts), deepest
# first, so that a removal of the chroot cannot reach into them.
kernel_chroot_umount() {
	local m
	findmnt -rn -o TARGET | awk -v p="$1/" 'index($0, p) == 1' | sort -r |
		while read -r m; do umount -l "$m"; done
}

# The modules directory and the image of an unpacked kernel (7.x packages
# are usr-merged and keep the image beside the modules).
kernel_moddir() {
	local root
	root=$(kernel_image_root "$1")
	if [[ -d $root/usr/lib/modules/$1 ]]; then
		echo "$root/usr/lib/modules/$1"
	else
		echo "$root/lib/modules/$1"
	fi
}

kernel_vmlinuz() {
	local root
	root=$(kernel_image_root "$1")
	if [[ -f $root/boot/vmlinuz-$1 ]]; then
		echo "$root/boot/vmlinuz-$1"
	else
		echo "$(kernel_moddir "$1")/vmlinuz"
	fi
}
