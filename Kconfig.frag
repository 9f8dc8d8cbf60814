# Kernel configuration fragment for the dm-interpose test kernel ("make
# kernel"): scripts/kconfig/merge_config.sh -n merges it into allnoconfig, so
# everything the guest needs is listed here. Built-ins boot the guest without
# an initramfs module; what tests load with parameters (null_blk) or unload
# stays a module.

# --- the native interposer hook and the in-tree target --------------------
CONFIG_BLK_INTERPOSER=y
CONFIG_DM_INTERPOSE=m
# The target passes writes down to a device with a mounted filesystem.
CONFIG_BLK_DEV_WRITE_MOUNTED=y

# --- machine: 64-bit SMP guest under QEMU, booted through PVH -------------
CONFIG_64BIT=y
CONFIG_SMP=y
CONFIG_NR_CPUS=8
CONFIG_HYPERVISOR_GUEST=y
CONFIG_PARAVIRT=y
CONFIG_PVH=y
# An idle vCPU takes no timer tick (as Debian's kernel): under TCG every
# tick is emulated.
CONFIG_NO_HZ_IDLE=y
# High-resolution timers, as Debian's kernel: perf's cpu-clock samples
# (scripts/bench-profile) then fall where their period says, not on ticks.
CONFIG_HIGH_RES_TIMERS=y
CONFIG_ACPI=y
CONFIG_PCI=y
CONFIG_PCI_MSI=y
CONFIG_HOTPLUG_PCI=y
CONFIG_HOTPLUG_PCI_ACPI=y
CONFIG_PRINTK=y
CONFIG_PRINTK_TIME=y
CONFIG_BUG=y
CONFIG_KALLSYMS=y
CONFIG_KALLSYMS_ALL=y
CONFIG_MULTIUSER=y
CONFIG_FUTEX=y
CONFIG_EPOLL=y
CONFIG_SIGNALFD=y
CONFIG_TIMERFD=y
CONFIG_EVENTFD=y
CONFIG_SHMEM=y
CONFIG_AIO=y
CONFIG_IO_URING=y
CONFIG_ADVISE_SYSCALLS=y
CONFIG_FILE_LOCKING=y
CONFIG_FHANDLE=y
CONFIG_INOTIFY_USER=y
CONFIG_SYSVIPC=y
CONFIG_POSIX_TIMERS=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_MODULES=y
CONFIG_MODULE_UNLOAD=y
CONFIG_MODULE_FORCE_UNLOAD=y
CONFIG_SWAP=y
CONFIG_CGROUPS=y
CONFIG_MEMCG=y
CONFIG_BLK_CGROUP=y
CONFIG_MAGIC_SYSRQ=y
CONFIG_FAULT_INJECTION=y
CONFIG_FAILSLAB=y
CONFIG_FAIL_MAKE_REQUEST=y
CONFIG_FAULT_INJECTION_DEBUG_FS=y
CONFIG_SLUB=y

# --- console, devices, entropy ---------------------------------------------
CONFIG_TTY=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_UNIX98_PTYS=y
CONFIG_DEVTMPFS=y
CONFIG_DEVTMPFS_MOUNT=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
CONFIG_VIRTIO_MENU=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=y
CONFIG_VIRTIO_CONSOLE=y
CONFIG_HW_RANDOM=y
CONFIG_HW_RANDOM_VIRTIO=y
CONFIG_INPUT=y

# --- network: udev's netlink and unix sockets, 9p transport ----------------
CONFIG_NET=y
CONFIG_UNIX=y
CONFIG_NET_9P=y
CONFIG_NET_9P_VIRTIO=y

# --- filesystems -----------------------------------------------------------
CONFIG_PROC_FS=y
CONFIG_SYSFS=y
CONFIG_TMPFS=y
CONFIG_TMPFS_POSIX_ACL=y
CONFIG_DEBUG_FS=y
CONFIG_CONFIGFS_FS=y
CONFIG_SECURITYFS=y
CONFIG_NETWORK_FILESYSTEMS=y
CONFIG_9P_FS=y
CONFIG_9P_FS_POSIX_ACL=y
CONFIG_OVERLAY_FS=y
CONFIG_EXT4_FS=y
CONFIG_EXT4_FS_POSIX_ACL=y
CONFIG_XFS_FS=y
CONFIG_XFS_POSIX_ACL=y
CONFIG_CRYPTO_CRC32C=y

# --- block devices, device-mapper and the targets the tests use ------------
CONFIG_BLOCK=y
CONFIG_BLK_DEV=y
CONFIG_BLK_DEV_LOOP=m
CONFIG_BLK_DEV_NULL_BLK=m
CONFIG_BLK_DEV_ZONED=y
CONFIG_BLK_DEV_INTEGRITY=y
CONFIG_BLK_INLINE_ENCRYPTION=y
CONFIG_BLK_INLINE_ENCRYPTION_FALLBACK=y
CONFIG_MD=y
CONFIG_BLK_DEV_DM=y
CONFIG_DM_UEVENT=y
CONFIG_DM_SNAPSHOT=m
CONFIG_DM_ERA=m
CONFIG_DM_FLAKEY=m
CONFIG_DM_DELAY=m
CONFIG_DM_DUST=m
CONFIG_DM_ZERO=m
CONFIG_DM_CRYPT=m
CONFIG_DM_INTEGRITY=m
CONFIG_DM_MIRROR=m
# Not here: dm-raid (MD's raid0/1/10/456, the raid6 and xor libraries,
# async_tx), thin provisioning and cache: no suite that runs on this kernel
# uses them, and they are some 60 files of a debug build that CI waits for.
# The stock kernels have them.
CONFIG_CRYPTO_XTS=y
CONFIG_CRYPTO_AES=y
CONFIG_CRYPTO_SHA256=y
CONFIG_CRYPTO_HMAC=y
CONFIG_CRYPTO_USER_API_HASH=y
CONFIG_CRYPTO_USER_API_SKCIPHER=y

# --- tracing (tracefs, blktrace, the ftrace backend on this kernel too) ----
CONFIG_FTRACE=y
CONFIG_FUNCTION_TRACER=y
CONFIG_DYNAMIC_FTRACE=y
CONFIG_BLK_DEV_IO_TRACE=y

# --- debug set for the native test lane ------------------------------------
CONFIG_DEBUG_KERNEL=y
CONFIG_PROVE_LOCKING=y
CONFIG_DEBUG_ATOMIC_SLEEP=y
CONFIG_KASAN=y
CONFIG_KASAN_GENERIC=y
# Inline shadow checks: under TCG an out-of-line call per memory access
# costs several times more.
CONFIG_KASAN_INLINE=y
CONFIG_DEBUG_OBJECTS=y
CONFIG_DEBUG_OBJECTS_FREE=y
CONFIG_DEBUG_OBJECTS_TIMERS=y
CONFIG_DEBUG_OBJECTS_WORK=y
CONFIG_DEBUG_OBJECTS_RCU_HEAD=y
CONFIG_DEBUG_OBJECTS_PERCPU_COUNTER=y
CONFIG_DEBUG_KMEMLEAK=y
CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE=16000
# CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN is not set
CONFIG_DEBUG_LIST=y
CONFIG_DETECT_HUNG_TASK=y
CONFIG_DEFAULT_HUNG_TASK_TIMEOUT=120
CONFIG_DEBUG_INFO_NONE=y
# KASAN and kmemleak save a stack trace on every allocation: a profile of the
# guest put 15% of its time in ORC unwinding; frame pointers are walked for
# a fraction of that.
CONFIG_UNWINDER_FRAME_POINTER=y
