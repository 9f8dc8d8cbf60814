// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-interpose compat: the block device interposer on kernels without it.
 *
 * The block layer of kernel-patches/0001 gives each bio of an interposed
 * device to its interposer.  Stock kernels have no such thing, so this puts
 * a kprobe on the entry of submit_bio_noacct().  For a bio whose device has
 * an interposer the probe's handler replaces the call with
 * interposer_compat_submit(), which lets the interposer point the bio at
 * its destination and submits it again.  The probe is registered only while
 * at least one interposer may exist, and armed only while one of them is
 * not idle (BLK_INTERPOSER_IDLE); a device without an interposer then pays
 * one hash lookup per bio (a partition two, while a whole disk is
 * interposed), and nothing at all while every interposer is idle.  A read
 * that an interposer lets past (BLK_INTERPOSER_IDLE_READS) costs the same
 * lookup.
 *
 * Why a kprobe and not an ftrace callback with FTRACE_OPS_FL_IPMODIFY: ftrace
 * allows one IPMODIFY callback per function, and other products (backup
 * agents' block filters) hold one on submit_bio_noacct().  A kprobe without
 * a post_handler is armed through ftrace without IPMODIFY, and its
 * pre_handler may still change the instruction pointer: that is how function
 * error injection overrides a function.  Both hooks then run: when both pick
 * the same bio, the one that runs last wins, and the other sees the bio when
 * it is submitted again (ours to the original device, the other product's
 * from its own filter).  On kernels where kprobes cannot use ftrace the probe
 * is a breakpoint, slower but the same.
 *
 * The block layer's ->mark_dead() comes from return probes on del_gendisk()
 * and blk_mark_disk_dead(), the two ways a disk goes away: at their return
 * the disk is no longer live, or is marked dead, and the interposers of its
 * devices are told.  The target opens the original device non-exclusively,
 * so the block layer would tell it nothing else.
 *
 * Locking: hook_mutex serialises changes of the lookup table, of the idle
 * flags and the (un)registration and arming of the probes.  The lookup runs
 * in the kprobe handler (preemption disabled: an RCU read side; the owner
 * frees an interposer after an RCU grace period) and in
 * interposer_compat_submit(), inside interposer_srcu, which
 * bdev_interposer_detach() and bdev_interposer_sync() wait for.
 */
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/hashtable.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/srcu.h>
#include <linux/workqueue.h>
#include <linux/device-mapper.h>
#include <linux/blk-interposer.h>

#include "../interpose-compat.h"

#define DM_MSG_PREFIX "interpose"
#define HOOK_HASH_BITS 6

/* bio_set_interposed() points bi_private here. */
const char interposer_compat_own;
/* The completion an interposer gives the bios it passes on uncloned. */
bio_end_io_t *interposer_compat_own_end_io __read_mostly;

static DEFINE_HASHTABLE(hook_hash, HOOK_HASH_BITS);
static DEFINE_MUTEX(hook_mutex);
static unsigned int hook_users;
/* Interposers idle for every bio: the kprobe is disarmed when all are. */
static unsigned int hook_idle;
static bool hook_registered;
/* Whole disks with an interposer: their partitions' bios go to it too. */
static unsigned int hook_whole_disks;
DEFINE_STATIC_SRCU(interposer_srcu);

/* Freeze a queue (memflags since 6.14); returns what to unfreeze it with. */
static unsigned int hook_freeze_queue(struct request_queue *q)
{
#ifndef INTERPOSE_OLD_QUEUE_FREEZE
	return blk_mq_freeze_queue(q);
#else
	blk_mq_freeze_queue(q);
	return 0;
#endif
}

static void hook_unfreeze_queue(struct request_queue *q, unsigned int memflags)
{
#ifndef INTERPOSE_OLD_QUEUE_FREEZE
	blk_mq_unfreeze_queue(q, memflags);
#else
	blk_mq_unfreeze_queue(q);
#endif
}

static void hook_unregister_fn(struct work_struct *work);
static DECLARE_WORK(hook_unregister_work, hook_unregister_fn);

static __always_inline struct blk_interposer *hook_lookup(struct block_device *bdev)
{
	struct blk_interposer *bi;

	hash_for_each_possible_rcu(hook_hash, bi, hnode, (unsigned long)bdev,
				   srcu_read_lock_held(&interposer_srcu))
		if (bi->bdev == bdev)
			return bi;
	return NULL;
}

/* The interposer of a bio's device, or of the disk of its partition. */
static __always_inline struct blk_interposer *hook_lookup_bio(struct bio *bio)
{
	struct block_device *bdev = bio->bi_bdev;
	struct blk_interposer *bi;

	bi = hook_lookup(bdev);
	if (!bi && READ_ONCE(hook_whole_disks) && bdev_is_partition(bdev))
		bi = hook_lookup(bdev_whole(bdev));
	return bi;
}

/**
 * hook_wanted - may this bio be redirected?
 * @bi: the interposer of @bio's device, or of the disk of @bio's partition
 * @bio: a bio submitted to an interposed device
 *
 * The interposer's own bios to the device go past it, including what the
 * block layer resubmits of them after a split (the remainder is the bio
 * that was marked).  A bio already remapped to the whole disk (BIO_REMAPPED)
 * holds a disk sector, not a partition sector, and is past the interposer.
 * A bio of a partition of an interposed disk that does not fit the
 * partition is left to the block layer, which fails it.
 *
 * Return: true if the bio is to be redirected.
 */
static inline bool hook_wanted(struct blk_interposer *bi, struct bio *bio)
{
	enum blk_interposer_idle idle;

	if (interposer_compat_is_own(bio) || bio_flagged(bio, BIO_REMAPPED))
		return false;
	idle = READ_ONCE(bi->idle);
	if (idle == BLK_INTERPOSER_IDLE ||
	    (idle == BLK_INTERPOSER_IDLE_READS && bio_op(bio) == REQ_OP_READ))
		return false;
	return bio->bi_bdev == bi->bdev ||
	       bio_end_sector(bio) <= bdev_nr_sectors(bio->bi_bdev);
}

/*
 * Runs instead of submit_bio_noacct() for a bio the handler picked.  The
 * lookup is repeated: the interposer may have gone away in between, or it
 * may be another one now, e.g. of the whole disk where the handler found
 * the partition's, and a bio past the end of the partition must not reach
 * the disk.  The SRCU read section keeps the interposer and its destination
 * alive until the bio is submitted there.
 */
static void notrace interposer_compat_submit(struct bio *bio)
{
	struct blk_interposer *bi;
	int idx;

	idx = srcu_read_lock(&interposer_srcu);
	bi = hook_lookup_bio(bio);
	if (bi && hook_wanted(bi, bio))
		bi->ops->redirect(bi, bio);
	submit_bio_noacct(bio);
	srcu_read_unlock(&interposer_srcu, idx);
}

/*
 * Runs at the entry of every submit_bio_noacct() while the probe is
 * registered, so it does as little as it can: the interposers' own bios go
 * past without a lookup.  submit_bio_noacct() may sleep, so it is never
 * called in a context that interrupts another kprobe handler (which would
 * make kprobes skip this one).
 *
 * Return: 1 when the call is replaced (the kprobe API's "regs->ip changed").
 */
static int hook_pre(struct kprobe *p, struct pt_regs *regs)
{
	struct bio *bio = (struct bio *)regs_get_kernel_argument(regs, 0);
	struct blk_interposer *bi;

	if (interposer_compat_is_own(bio))
		return 0;
	bi = hook_lookup_bio(bio);
	if (!bi || !hook_wanted(bi, bio))
		return 0;
	instruction_pointer_set(regs, (unsigned long)interposer_compat_submit);
	return 1;
}

static struct kprobe hook_kprobe = {
	.symbol_name = "submit_bio_noacct",
	.pre_handler = hook_pre,
};

/* Has the disk of @bdev gone away (removed, or marked dead)? */
static bool hook_gone(struct block_device *bdev)
{
	return !disk_live(bdev->bd_disk) ||
	       test_bit(GD_DEAD, &bdev->bd_disk->state);
}

/* At the return of del_gendisk() or blk_mark_disk_dead(). */
static int hook_disk_gone(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct blk_interposer *bi;
	int bkt;

	/* Pairs with bdev_interposer_attach(). */
	smp_mb();
	rcu_read_lock();
	hash_for_each_rcu(hook_hash, bkt, bi, hnode)
		if (bi->ops->mark_dead && hook_gone(bi->bdev))
			bi->ops->mark_dead(bi);
	rcu_read_unlock();
	return 0;
}

static struct kretprobe hook_watch_del = {
	.kp.symbol_name = "del_gendisk",
	.handler = hook_disk_gone,
	.maxactive = 16,
};

static struct kretprobe hook_watch_dead = {
	.kp.symbol_name = "blk_mark_disk_dead",
	.handler = hook_disk_gone,
	.maxactive = 16,
};

/*
 * The end of an exclusive claim, for idle interposers: the block layer's
 * bdev_interposer_claim_ended().  A close of an exclusive open ends its
 * claim: bdev_fput() or bdev_release() (blkdev_put() before 6.9).  At its
 * entry the disk is noted when an interposer is idle and the open was
 * exclusive (its file holds the holder, or the mark of a claim yielded
 * already); at its return the idle interposers on that disk are marked
 * stale, and a work drops their clean pages.  It is a work because a
 * return probe must not sleep: the pages go moments after the close, not
 * before it returns, as they would in the block layer.
 */
static void hook_stale_fn(struct work_struct *work);
static DECLARE_WORK(hook_stale_work, hook_stale_fn);

static int hook_close_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct block_device *bdev;

	if (!READ_ONCE(hook_idle))
		return 1;
#ifndef INTERPOSE_OLD_BDEV_OPEN
	{
		struct file *file = (struct file *)regs_get_kernel_argument(regs, 0);

		if (!file->private_data)
			return 1;
		bdev = file_bdev(file);
	}
#else
	if (!(regs_get_kernel_argument(regs, 1) & FMODE_EXCL))
		return 1;
	bdev = (struct block_device *)regs_get_kernel_argument(regs, 0);
#endif
	*(struct gendisk **)ri->data = bdev->bd_disk;
	return 0;
}

/* The disk is only compared: the close may have dropped the last reference. */
static int hook_close_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct gendisk *disk = *(struct gendisk **)ri->data;
	struct blk_interposer *bi;
	bool stale = false;
	int bkt;

	rcu_read_lock();
	hash_for_each_rcu(hook_hash, bkt, bi, hnode) {
		if (READ_ONCE(bi->idle) == BLK_INTERPOSER_IDLE &&
		    bi->bdev->bd_disk == disk) {
			WRITE_ONCE(bi->stale, true);
			stale = true;
		}
	}
	rcu_read_unlock();
	if (stale)
		schedule_work(&hook_stale_work);
	return 0;
}

#ifndef INTERPOSE_OLD_BDEV_OPEN
static struct kretprobe hook_watch_fput = {
	.kp.symbol_name = "bdev_fput",
	.entry_handler = hook_close_entry,
	.handler = hook_close_ret,
	.data_size = sizeof(struct gendisk *),
	.maxactive = 64,
};

static struct kretprobe hook_watch_release = {
	.kp.symbol_name = "bdev_release",
	.entry_handler = hook_close_entry,
	.handler = hook_close_ret,
	.data_size = sizeof(struct gendisk *),
	.maxactive = 64,
};
#else
static struct kretprobe hook_watch_put = {
	.kp.symbol_name = "blkdev_put",
	.entry_handler = hook_close_entry,
	.handler = hook_close_ret,
	.data_size = sizeof(struct gendisk *),
	.maxactive = 64,
};
#endif

static struct kretprobe *hook_watches[] = {
	&hook_watch_del,
	&hook_watch_dead,
#ifndef INTERPOSE_OLD_BDEV_OPEN
	&hook_watch_fput,
	&hook_watch_release,
#else
	&hook_watch_put,
#endif
};

/* Drop the clean pages of the idle interposers marked stale. */
static void hook_stale_fn(struct work_struct *work)
{
	struct blk_interposer *bi;
	int bkt;

	mutex_lock(&hook_mutex);
	hash_for_each(hook_hash, bkt, bi, hnode) {
		if (READ_ONCE(bi->stale)) {
			WRITE_ONCE(bi->stale, false);
			invalidate_bdev(bi->bdev);
		}
	}
	mutex_unlock(&hook_mutex);
}

static int hook_register(void)
{
	int i, r;

	/* A probe is reset for each registration. */
	hook_kprobe.addr = NULL;
	hook_kprobe.flags = 0;
	for (i = 0; i < ARRAY_SIZE(hook_watches); i++) {
		hook_watches[i]->kp.addr = NULL;
		hook_watches[i]->kp.flags = 0;
	}
	r = register_kretprobes(hook_watches, ARRAY_SIZE(hook_watches));
	if (r) {
		DMERR("cannot probe the removal and the close of block devices: %d",
		      r);
		return r;
	}
	r = register_kprobe(&hook_kprobe);
	if (r) {
		DMERR("cannot register a kprobe on submit_bio_noacct: %d", r);
		unregister_kretprobes(hook_watches, ARRAY_SIZE(hook_watches));
	}
	return r;
}

/*
 * Unregisters the probes once no interposer is left, or disarms the kprobe
 * while every interposer is idle (the return probes stay: an idle
 * interposer is still told when its device goes away).  Asynchronous:
 * either waits for grace periods.
 */
static void hook_unregister_fn(struct work_struct *work)
{
	mutex_lock(&hook_mutex);
	if (!hook_users && hook_registered) {
		unregister_kprobe(&hook_kprobe);
		unregister_kretprobes(hook_watches, ARRAY_SIZE(hook_watches));
		hook_registered = false;
	} else if (hook_registered && hook_users == hook_idle &&
		   !kprobe_disabled(&hook_kprobe)) {
		disable_kprobe(&hook_kprobe);
	}
	mutex_unlock(&hook_mutex);
}

/* Arm the kprobe again if it was disarmed; the caller holds hook_mutex. */
static int hook_arm(void)
{
	int r;

	lockdep_assert_held(&hook_mutex);
	if (!kprobe_disabled(&hook_kprobe))
		return 0;
	r = enable_kprobe(&hook_kprobe);
	if (r)
		DMERR("cannot arm the kprobe on submit_bio_noacct: %d", r);
	return r;
}

/**
 * interposer_compat_get - make the hook ready for one more interposer
 *
 * Registers the probes for the first user, and arms the kprobe if every
 * interposer was idle.  Called before the filesystem of the device to
 * interpose is frozen: registration patches kernel text, which takes a
 * while.
 *
 * Return: 0 or a negative errno from kprobes.
 */
int interposer_compat_get(void)
{
	int r = 0;

	mutex_lock(&hook_mutex);
	if (!hook_registered) {
		r = hook_register();
		hook_registered = !r;
	} else {
		r = hook_arm();
	}
	if (!r)
		hook_users++;
	mutex_unlock(&hook_mutex);
	return r;
}

/**
 * interposer_compat_put - drop a reference taken by interposer_compat_get()
 *
 * The probes are unregistered asynchronously when the last user goes (the
 * kprobe disarmed when the others are idle), so that a detach does not
 * wait for the grace periods that takes.
 */
void interposer_compat_put(void)
{
	mutex_lock(&hook_mutex);
	if (!--hook_users || hook_users == hook_idle)
		schedule_work(&hook_unregister_work);
	mutex_unlock(&hook_mutex);
}

/**
 * interposer_compat_exit - at module unload: no probe handler runs after
 */
void interposer_compat_exit(void)
{
	cancel_work_sync(&hook_unregister_work);
	hook_unregister_fn(NULL);
	flush_work(&hook_stale_work);
	/* No task may still be running interposer_compat_submit(). */
	synchronize_srcu(&interposer_srcu);
	synchronize_rcu_tasks();
}

/* Has @bdev, its whole disk or one of its partitions an interposer? */
static bool hook_busy(struct block_device *bdev)
{
	struct blk_interposer *bi;
	int bkt;

	lockdep_assert_held(&hook_mutex);
	hash_for_each(hook_hash, bkt, bi, hnode)
		if (bi->bdev == bdev || bi->bdev == bdev_whole(bdev) ||
		    bdev_whole(bi->bdev) == bdev)
			return true;
	return false;
}

/* Take @interposer out of the lookup table (hook_mutex held). */
static void hook_unhash(struct blk_interposer *interposer)
{
	lockdep_assert_held(&hook_mutex);
	hash_del_rcu(&interposer->hnode);
	if (!bdev_is_partition(interposer->bdev))
		WRITE_ONCE(hook_whole_disks, hook_whole_disks - 1);
}

/**
 * bdev_interposer_attach - attach an interposer to a block device
 * @bdev: the block device, a whole disk or a partition
 * @interposer: the interposer, with its operations set
 *
 * Needs a reference from interposer_compat_get().  The queue of @bdev is
 * frozen meanwhile, so bios already on their way to its driver get there
 * first; a bio whose submit_bio_noacct() starts after this returns is
 * redirected.
 *
 * Return: 0, -EBUSY if @bdev, its whole disk or one of its partitions has
 * an interposer already, or -ENODEV if its disk is being removed or is
 * dead (hook_disk_gone() would not tell the interposer).
 */
int bdev_interposer_attach(struct block_device *bdev,
			   struct blk_interposer *interposer)
{
	struct request_queue *q = bdev_get_queue(bdev);
	unsigned int memflags;
	int r = 0;

	if (WARN_ON_ONCE(!interposer->ops || !interposer->ops->redirect ||
			 !hook_users))
		return -EINVAL;
	memflags = hook_freeze_queue(q);
	mutex_lock(&hook_mutex);
	if (hook_busy(bdev)) {
		r = -EBUSY;
	} else {
		interposer->bdev = bdev;
		if (!bdev_is_partition(bdev))
			WRITE_ONCE(hook_whole_disks, hook_whole_disks + 1);
		hash_add_rcu(hook_hash, &interposer->hnode, (unsigned long)bdev);
		/*
		 * Pairs with hook_disk_gone(): either it finds the interposer
		 * in the hash, or this sees the disk gone.
		 */
		smp_mb();
		if (hook_gone(bdev)) {
			hook_unhash(interposer);
			r = -ENODEV;
		}
	}
	mutex_unlock(&hook_mutex);
	if (r == -ENODEV)
		synchronize_srcu_expedited(&interposer_srcu);
	hook_unfreeze_queue(q, memflags);
	return r;
}

/**
 * bdev_interposer_detach - detach the interposer of a block device
 * @bdev: the block device
 * @interposer: its interposer, attached by bdev_interposer_attach()
 *
 * On return no redirection through @interposer is in progress, and what was
 * submitted straight to @bdev meanwhile has completed.
 */
void bdev_interposer_detach(struct block_device *bdev,
			    struct blk_interposer *interposer)
{
	struct request_queue *q = bdev_get_queue(bdev);

	mutex_lock(&hook_mutex);
	if (WARN_ON_ONCE(interposer->bdev != bdev)) {
		mutex_unlock(&hook_mutex);
		return;
	}
	hook_unhash(interposer);
	if (interposer->idle == BLK_INTERPOSER_IDLE)
		hook_idle--;
	interposer->idle = BLK_INTERPOSER_BUSY;
	mutex_unlock(&hook_mutex);
	synchronize_srcu_expedited(&interposer_srcu);
	hook_unfreeze_queue(q, hook_freeze_queue(q));
}

/**
 * bdev_interposer_sync - wait for the redirections in progress
 * @bdev: an interposed block device
 *
 * After its owner changed an interposer's destination, waits until no bio
 * is being redirected to the previous one.
 */
void bdev_interposer_sync(struct block_device *bdev)
{
	synchronize_srcu_expedited(&interposer_srcu);
}

/**
 * bdev_interposer_set_idle - let the bios of a device pass its interposer
 * @bdev: an interposed block device
 * @interposer: its interposer
 * @idle: the bios that pass by without a call of ->redirect(): all
 *	(%BLK_INTERPOSER_IDLE), the reads (%BLK_INTERPOSER_IDLE_READS) or none
 *	(%BLK_INTERPOSER_BUSY: they are redirected again)
 *
 * An idle interposer keeps its device (another attach is refused) and is
 * still told when the device goes away.  The queue of @bdev is frozen for
 * the change, as for an attach or detach, which gives the same ordering
 * guarantees: after bios are let past no redirection of theirs through
 * @interposer is in progress; after they are redirected again, a bio whose
 * submit_bio_noacct() starts after the call returns is redirected.  While
 * every interposer is idle for all bios the kprobe is disarmed: the bios of
 * every device then take the kernel's own path.
 *
 * Return: 0, or a negative errno from kprobes when the probe cannot be
 * armed again (the interposer stays idle).
 */
int bdev_interposer_set_idle(struct block_device *bdev,
			     struct blk_interposer *interposer,
			     enum blk_interposer_idle idle)
{
	struct request_queue *q = bdev_get_queue(bdev);
	bool was_idle, now_idle = idle == BLK_INTERPOSER_IDLE;
	unsigned int memflags;
	int r;

	/* As in an attach: the probe is armed before the queue is frozen. */
	mutex_lock(&hook_mutex);
	if (WARN_ON_ONCE(interposer->bdev != bdev) || interposer->idle == idle) {
		mutex_unlock(&hook_mutex);
		return 0;
	}
	was_idle = interposer->idle == BLK_INTERPOSER_IDLE;
	if (was_idle && !now_idle) {
		r = hook_arm();
		if (r) {
			mutex_unlock(&hook_mutex);
			return r;
		}
		hook_idle--;
	} else if (!was_idle && now_idle) {
		hook_idle++;
	}
	mutex_unlock(&hook_mutex);

	memflags = hook_freeze_queue(q);
	WRITE_ONCE(interposer->idle, idle);
	hook_unfreeze_queue(q, memflags);
	if (idle != BLK_INTERPOSER_BUSY)
		synchronize_srcu_expedited(&interposer_srcu);
	if (now_idle && !was_idle) {
		mutex_lock(&hook_mutex);
		if (hook_idle == hook_users)
			schedule_work(&hook_unregister_work);
		mutex_unlock(&hook_mutex);
	}
	return 0;
}
