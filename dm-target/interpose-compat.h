/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-interpose: the kernel interfaces that differ between the kernels the
 * module is built for, in one place.  The target calls these helpers; each
 * is the current interface, and on an older kernel its equivalent.
 *
 * The kernel version is read once, below, into INTERPOSE_OLD_* macros, one
 * per change; everything else depends on those.  The in-tree copy
 * (scripts/gen-dm-patch) is this file with the version block cut and the
 * macros resolved for the kernel the series applies to, by unifdef.
 *
 * Kernels covered (scripts/pins.sh): 6.1, 6.12 and 7.3, Debian's builds.
 * The boundaries are those of the mainline changes; releases between the
 * pinned ones are untested (6.5 to 6.8 are refused: their block device
 * handles are a third interface).
 */
#ifndef DM_INTERPOSE_COMPAT_H
#define DM_INTERPOSE_COMPAT_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/fs.h>

/* out-of-tree: kernel versions */
#include <linux/version.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0) && LINUX_VERSION_CODE < KERNEL_VERSION(6, 9, 0)
#error "dm-interpose supports 6.1 to 6.4 and 6.9 or later (see interpose-compat.h)"
#endif
/* blkdev_get_by_dev(), no holder freeze/thaw, no dm_devt_from_path() */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 9, 0)
#define INTERPOSE_OLD_BDEV_OPEN 1
#endif
/* bd_inode->i_mapping, not bd_mapping */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 10, 0)
#define INTERPOSE_OLD_BD_INODE 1
#endif
/* blk_mq_freeze_queue() without memflags */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 14, 0)
#define INTERPOSE_OLD_QUEUE_FREEZE 1
#endif
/* prepare_ioctl(ti, bdev) */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
#define INTERPOSE_OLD_PREPARE_IOCTL 1
#endif
/* kzalloc_obj() came with 7.0: before, kzalloc() with the size */
#ifndef kzalloc_obj
#define kzalloc_obj(p) kzalloc(sizeof(p), GFP_KERNEL)
#endif
/* end out-of-tree */

/**
 * struct interpose_bdev - an open block device
 * @bdev: the device
 * @file: the open file (6.9 and later)
 * @mode: the open mode (before 6.9)
 */
struct interpose_bdev {
	struct block_device *bdev;
#ifndef INTERPOSE_OLD_BDEV_OPEN
	struct file *file;
#else
	fmode_t mode;
#endif
};

#ifndef INTERPOSE_OLD_BDEV_OPEN
/**
 * interpose_bdev_open - open a block device by number
 * @b: filled in on success
 * @devt: the device
 * @write: open for writing too
 * @holder: exclusive holder, or NULL for a shared open
 * @hops: holder operations (only with @holder)
 *
 * Return: 0 or a negative errno.
 */
static inline int interpose_bdev_open(struct interpose_bdev *b, dev_t devt,
				      bool write, void *holder,
				      const struct blk_holder_ops *hops)
{
	struct file *f;

	f = bdev_file_open_by_dev(devt, BLK_OPEN_READ |
				  (write ? BLK_OPEN_WRITE : 0), holder, hops);
	if (IS_ERR(f))
		return PTR_ERR(f);
	b->file = f;
	b->bdev = file_bdev(f);
	return 0;
}

static inline void interpose_bdev_close(struct interpose_bdev *b)
{
	bdev_fput(b->file);
}

static inline int interpose_devt_from_path(const char *path, dev_t *devt)
{
	return dm_devt_from_path(path, devt);
}
#else
/*
 * No holder operations: a freeze of a redirect destination is not forwarded
 * to the original device (Documentation/dm-interpose.rst, "Kernels").
 */
struct blk_holder_ops;

static inline int interpose_bdev_open(struct interpose_bdev *b, dev_t devt,
				      bool write, void *holder,
				      const struct blk_holder_ops *hops)
{
	struct block_device *bdev;
	fmode_t mode = FMODE_READ | (write ? FMODE_WRITE : 0) |
		       (holder ? FMODE_EXCL : 0);

	bdev = blkdev_get_by_dev(devt, mode, holder);
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	b->bdev = bdev;
	b->mode = mode;
	return 0;
}

static inline void interpose_bdev_close(struct interpose_bdev *b)
{
	blkdev_put(b->bdev, b->mode);
}

/* dm_devt_from_path() (6.9): "major:minor" or a path to a device node. */
static inline int interpose_devt_from_path(const char *path, dev_t *devt)
{
	unsigned int major, minor;
	char dummy;

	if (sscanf(path, "%u:%u%c", &major, &minor, &dummy) == 2) {
		*devt = MKDEV(major, minor);
		if (MAJOR(*devt) != major || MINOR(*devt) != minor)
			return -EOVERFLOW;
		return 0;
	}
	return lookup_bdev(path, devt);
}
#endif

/* A dm_dev for iterate_devices, describing a device the target opened. */
static inline void interpose_fill_dm_dev(struct dm_dev *d,
					 struct interpose_bdev *b)
{
	d->bdev = b->bdev;
#ifndef INTERPOSE_OLD_BDEV_OPEN
	d->bdev_file = b->file;
	d->mode = BLK_OPEN_READ;
#else
	d->mode = FMODE_READ;
#endif
	format_dev_t(d->name, b->bdev->bd_dev);
}

/* Freeze and thaw a block device's filesystem: bdev_freeze() since 6.8. */
static inline int interpose_bdev_freeze(struct block_device *bdev)
{
#ifndef INTERPOSE_OLD_BDEV_OPEN
	return bdev_freeze(bdev);
#else
	return freeze_bdev(bdev);
#endif
}

static inline int interpose_bdev_thaw(struct block_device *bdev)
{
#ifndef INTERPOSE_OLD_BDEV_OPEN
	return bdev_thaw(bdev);
#else
	return thaw_bdev(bdev);
#endif
}

/* The page cache of a block device: bd_mapping since 6.10. */
static inline struct address_space *interpose_bdev_mapping(struct block_device *bdev)
{
#ifndef INTERPOSE_OLD_BD_INODE
	return bdev->bd_mapping;
#else
	return bdev->bd_inode->i_mapping;
#endif
}

/*
 * The prepare_ioctl method gained the ioctl and a "forward" result in 6.17;
 * the target declares it with INTERPOSE_PREPARE_IOCTL_ARGS.
 */
#ifndef INTERPOSE_OLD_PREPARE_IOCTL
#define INTERPOSE_PREPARE_IOCTL_ARGS \
	struct dm_target *ti, struct block_device **bdev, unsigned int cmd, \
	unsigned long arg, bool *forward
#else
#define INTERPOSE_PREPARE_IOCTL_ARGS \
	struct dm_target *ti, struct block_device **bdev
#endif

/*
 * The block device interposer, <linux/blk-interposer.h>.  Built out of tree
 * for a kernel without CONFIG_BLK_INTERPOSER, the module brings its own
 * implementation of that interface, with a hook name of its own and five
 * calls that only it needs (taking and dropping its hook, unloading,
 * knowing the bios whose completion the target took over, which the block
 * layer knows by BIO_INTERPOSED, and whether it does); with the block
 * layer's they are empty or constant.
 */
#include <linux/blk-interposer.h>
#ifdef CONFIG_BLK_INTERPOSER
#define INTERPOSE_HOOK_NAME "native"

static inline int interposer_compat_get(void)
{
	return 0;
}

static inline void interposer_compat_put(void)
{
}

static inline void interposer_compat_exit(void)
{
}

static inline void interposer_compat_set_own_end_io(bio_end_io_t *end_io)
{
}

/*
 * Does the block layer know a bio that has been past an interposer
 * (BIO_INTERPOSED)?  Then ->redirect() may leave a bio on its device, or
 * send it to another interposed device, as it is: no interposer takes it
 * again, and its completion need not be taken over to mark it.
 */
static inline bool interposer_compat_knows_past(void)
{
	return true;
}
#endif

#ifndef CONFIG_BLK_INTERPOSER
/*
 * Out of tree: dm_read_arg_group() reads the count with sscanf(), which
 * wraps (4294967297 is read as 1).  A kernel with the interposer series has
 * the fix (kernel-patches/0002); on others the count is checked here first.
 */
static inline int interpose_read_arg_group(const struct dm_arg *arg,
					   struct dm_arg_set *arg_set,
					   unsigned int *num_args, char **error)
{
	unsigned int n;

	if (arg_set->argc && kstrtouint(arg_set->argv[0], 10, &n)) {
		*error = arg->error;
		return -EINVAL;
	}
	return dm_read_arg_group(arg, arg_set, num_args, error);
}

#define dm_read_arg_group interpose_read_arg_group
#endif

#endif /* DM_INTERPOSE_COMPAT_H */
