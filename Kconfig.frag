# Kernel configuration fragment (scripts/kconfig/merge_config.sh) for a test
# kernel: device-mapper and the targets the tests use, the block devices and
# filesystems they run on, and what the guest harness needs. The native
# interposer hook and its debug options come with the kernel patch series.
CONFIG_BLK_DEV_DM=m
CONFIG_DM_SNAPSHOT=m
CONFIG_DM_ERA=m
CONFIG_DM_FLAKEY=m
CONFIG_DM_DELAY=m
CONFIG_DM_CRYPT=m
CONFIG_DM_INTEGRITY=m
CONFIG_BLK_DEV_LOOP=m
CONFIG_BLK_DEV_NULL_BLK=m
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=m
CONFIG_NET_9P=m
CONFIG_NET_9P_VIRTIO=m
CONFIG_9P_FS=m
CONFIG_EXT4_FS=y
CONFIG_XFS_FS=m
CONFIG_OVERLAY_FS=m
CONFIG_FUNCTION_TRACER=y
CONFIG_DYNAMIC_FTRACE=y
