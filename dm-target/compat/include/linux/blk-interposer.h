/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-interpose compat: the block device interposer's interface
 * (<linux/blk-interposer.h> of kernel-patches/0001) for kernels that do not
 * have it (no CONFIG_BLK_INTERPOSER).  Kbuild puts this directory on the
 * include path only for them; the target is the same source either way.
 *
 * The interface is the block layer's, with its guarantees (see
 * Documentation/block/interposer.rst in the series); the implementation,
 * blk-interposer.c here, is a kprobe on submit_bio_noacct() and return
 * probes that notice a disk going away.  It needs CONFIG_KPROBES; without,
 * every attach is refused.
 *
 * Two needs of this implementation have no counterpart in the block layer;
 * the target calls them through interpose-compat.h, where in tree they are
 * empty: interposer_compat_get() before the filesystem is frozen (it may
 * patch kernel text), interposer_compat_put() after a detach,
 * interposer_compat_exit() at module unload, and
 * interposer_compat_set_own_end_io() at module load.
 */
#ifndef DM_INTERPOSE_COMPAT_BLK_INTERPOSER_H
#define DM_INTERPOSE_COMPAT_BLK_INTERPOSER_H

#include <linux/bio.h>
#include <linux/list.h>

struct block_device;
struct blk_interposer;

/**
 * struct blk_interposer_ops - operations of a block device interposer
 * @redirect: called for every bio submitted to the interposed device (and,
 *	for an interposed whole disk, to its partitions) that the interposer
 *	does not let past (enum blk_interposer_idle), with the sector the bio
 *	was submitted with.  Must point the bio at another block device with
 *	bio_set_dev(), remapping its sector if needed; the bio is then
 *	submitted to that device.  May run in any task that submits a bio.
 * @mark_dead: optional; the interposed device is going away.  Here called
 *	from a return probe of del_gendisk() or blk_mark_disk_dead(), with
 *	preemption disabled: it must not sleep.
 */
struct blk_interposer_ops {
	void (*redirect)(struct blk_interposer *interposer, struct bio *bio);
	void (*mark_dead)(struct blk_interposer *interposer);
};

/**
 * enum blk_interposer_idle - the bios that go past an interposer
 * @BLK_INTERPOSER_BUSY: none: every bio is given to ->redirect()
 * @BLK_INTERPOSER_IDLE: all of them go to the driver of the device
 * @BLK_INTERPOSER_IDLE_READS: reads go to the driver, the other bios to
 *	->redirect()
 */
enum blk_interposer_idle {
	BLK_INTERPOSER_BUSY,
	BLK_INTERPOSER_IDLE,
	BLK_INTERPOSER_IDLE_READS,
};

/**
 * struct blk_interposer - an interposer, embedded in its owner's structure
 * @ops: its operations
 * @idle: the bios that pass the interposer by (bdev_interposer_set_idle())
 * @hnode: compat only: link in the hook's lookup table (RCU)
 * @bdev: compat only: the interposed device
 * @stale: compat only: an exclusive claim on the disk of @bdev ended while
 *	the interposer was idle; its clean pages are to be dropped
 */
struct blk_interposer {
	const struct blk_interposer_ops *ops;
	enum blk_interposer_idle idle;
	struct hlist_node hnode;
	struct block_device *bdev;
	bool stale;
};

#ifdef DM_INTERPOSE_KPROBE
#define INTERPOSE_HOOK_NAME "kprobe"

int bdev_interposer_attach(struct block_device *bdev,
			   struct blk_interposer *interposer);
void bdev_interposer_detach(struct block_device *bdev,
			    struct blk_interposer *interposer);
void bdev_interposer_sync(struct block_device *bdev);
int bdev_interposer_set_idle(struct block_device *bdev,
			     struct blk_interposer *interposer,
			     enum blk_interposer_idle idle);

int interposer_compat_get(void);
void interposer_compat_put(void);
void interposer_compat_exit(void);

/*
 * The kprobe knows the interposer's own bios by their bi_private: they are
 * device-mapper's clones, which DM completes through their embedding and
 * whose bi_private it leaves unused; nothing else can point it at this
 * marker.  (A flag bit of the bio would need one the kernel does not use.)
 */
extern const char interposer_compat_own;

static inline void bio_set_interposed(struct bio *bio)
{
	bio->bi_private = (void *)&interposer_compat_own;
}

/*
 * A bio whose completion the interposer has taken over, to send it past
 * itself without a clone, keeps its bi_private for that: the interposer
 * marks it with the completion function it registered instead.
 */
extern bio_end_io_t *interposer_compat_own_end_io;

static inline void interposer_compat_set_own_end_io(bio_end_io_t *end_io)
{
	WRITE_ONCE(interposer_compat_own_end_io, end_io);
}

static inline bool interposer_compat_is_own(struct bio *bio)
{
	return bio->bi_private == &interposer_compat_own ||
	       bio->bi_end_io == READ_ONCE(interposer_compat_own_end_io);
}

/*
 * A bio that ->redirect() leaves on its device, or sends to another
 * interposed device, meets the probe again: unmarked, it would be
 * redirected again.  So it goes only with its completion taken over (the
 * mark above).
 */
static inline bool interposer_compat_knows_past(void)
{
	return false;
}
#else /* !DM_INTERPOSE_KPROBE: no way to hook bios, every attach refused */
#define INTERPOSE_HOOK_NAME "none"

static inline int bdev_interposer_attach(struct block_device *bdev,
					 struct blk_interposer *interposer)
{
	return -EOPNOTSUPP;
}

static inline void bdev_interposer_detach(struct block_device *bdev,
					  struct blk_interposer *interposer)
{
}

static inline void bdev_interposer_sync(struct block_device *bdev)
{
}

static inline int bdev_interposer_set_idle(struct block_device *bdev,
					   struct blk_interposer *interposer,
					   enum blk_interposer_idle idle)
{
	return -EOPNOTSUPP;
}

static inline int interposer_compat_get(void)
{
	pr_err("device-mapper: interpose: this kernel has neither the block interposer nor kprobes (CONFIG_KPROBES): cannot attach\n");
	return -EOPNOTSUPP;
}

static inline void interposer_compat_put(void)
{
}

static inline void interposer_compat_exit(void)
{
}

static inline void bio_set_interposed(struct bio *bio)
{
}

static inline void interposer_compat_set_own_end_io(bio_end_io_t *end_io)
{
}

static inline bool interposer_compat_knows_past(void)
{
	return false;
}
#endif /* DM_INTERPOSE_KPROBE */

#endif /* DM_INTERPOSE_COMPAT_BLK_INTERPOSER_H */
