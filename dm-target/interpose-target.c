// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-interpose: the "interpose" target.
 *
 * Takes over the I/O of a block device that is already in use (a mounted
 * partition, a whole disk) without unmounting it.  The target opens the
 * original device non-exclusively and passes every bio it receives down to
 * it; with "attach" or "attach_to <dev>" it also redirects every bio that
 * anybody submits to the original device into this device (or into a DM
 * device stacked on it) through the interposer hook.  Its own bios bypass
 * the hook.
 *
 * See Documentation/dm-interpose.rst.
 *
 * Locking, outermost first:
 *
 * interpose_mutex
 *	Every change of a redirect (attach, detach, hand-over, a new
 *	destination), the list of interposers and each table's ->ip.  Taken
 *	in the target's ctr, dtr, presuspend(_undo) and preresume, which DM
 *	calls under its own table and suspend locks, and by the reaper.  Held
 *	across freezes of the original's filesystem and queue and across
 *	bdev_interposer_detach() and bdev_interposer_sync(): nothing on the
 *	I/O path, and no holder operation, takes it.  Status does not take
 *	it: it reads ->ip under RCU.
 * destination's bd_holder_lock
 *	Held by the block layer when it calls our holder operations; they
 *	drop it first thing (interpose_holder_get(), as fs/super.c's
 *	bdev_super_lock()) and forward the freeze from interpose_wq.
 * original's bd_fsfreeze_mutex (bdev_freeze(), bdev_thaw())
 *	Taken in preresume, presuspend, the thaw work and the forwarding
 *	work; never while a destination's freeze mutex is held by the same
 *	task (interpose_forward()).
 * interposer->lock (spinlock)
 *	The freeze counters.  Innermost: nothing is taken under it.
 */
#include <linux/bio.h>
#include <linux/blk-interposer.h>
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/completion.h>
#include <linux/device-mapper.h>
#include <linux/kernfs.h>
#include <linux/kobject.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pagemap.h>
#include <linux/percpu.h>
#include <linux/percpu-refcount.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/workqueue.h>

#include "interpose-compat.h"

#define DM_MSG_PREFIX "interpose"

enum interpose_mode {
	IC_PASSTHROUGH,
	IC_ATTACH,
	IC_ATTACH_TO,
};

struct interpose_c;

/**
 * struct interposer - a live redirect of one block device's bios
 * @bi: the block layer's interposer, attached to @orig
 * @list: link on the list of interposers (interpose_mutex)
 * @kref: references: the owning table and a pending thaw work
 * @orig: the interposed device (partition or whole disk)
 * @orig_open: our own non-exclusive, read-only open of @orig
 * @dest: device the bios of @orig are redirected to (read in ->redirect(),
 *	changed with bdev_interposer_sync() after)
 * @dest_devt: @dest's device number, for status (read under RCU)
 * @dest_open: exclusive open of @dest, holder ops forward freeze to @orig
 * @owner: table target that owns the redirect (changed under
 *	interpose_mutex, then bdev_interposer_sync(): ->redirect() reads it)
 * @self: with attach_to, an interposer on the owner's own device while it
 *	is resumed: the bios the stack passes down to the owner go straight
 *	to @orig (the direct path)
 * @self_bdev: the device @self is attached to, or NULL (interpose_mutex)
 * @redirected: per-cpu count of bios redirected
 * @dead: @orig is going away (->mark_dead()); the reaper detaches it
 * @lock: protects the freeze counters below
 * @holder_freezes: freezes of @orig done for a freeze of @dest
 * @holder_gen: changes when @dest_open is closed: a forwarded freeze that
 *	ends after the close it raced with thaws @orig again by itself
 * @suspend_freezes: freezes of @orig done by the owner's presuspend
 * @deferred_thaws: thaws of @orig queued to @thaw_work
 * @thaw_work: thaws @orig from a context that can wait for the stack
 * @rcu: frees the structure after an RCU grace period
 */
struct interposer {
	struct blk_interposer bi;
	struct list_head list;
	struct kref kref;
	struct block_device *orig;
	struct interpose_bdev orig_open;
	struct block_device *dest;
	dev_t dest_devt;
	struct interpose_bdev dest_open;
	struct interpose_c *owner;
	struct blk_interposer self;
	struct block_device *self_bdev;
	u64 __percpu *redirected;
	bool dead;
	spinlock_t lock;		/* protects the freeze counters */
	unsigned int holder_freezes;
	unsigned int holder_gen;
	unsigned int suspend_freezes;
	unsigned int deferred_thaws;
	struct work_struct thaw_work;
	struct rcu_head rcu;
};

/**
 * struct interpose_c - one "interpose" target (one table)
 * @ti: the target
 * @md: the mapped device the table belongs to
 * @orig_open: non-exclusive, read-only open of the original device
 * @orig: the original device
 * @orig_dev: a dm_dev describing @orig, for iterate_devices only
 * @mode: pass-through, attach or attach_to
 * @dest_devt: the attach_to device (equal to the own device for attach)
 * @has_diskseq: a diskseq was given
 * @diskseq: the diskseq given
 * @freeze: freeze the filesystem on @orig across attach and detach
 * @no_direct: every bio passes through DM: no direct path
 * @reads_direct: with attach_to, reads of @orig go to it straight, past
 *	the stack (while the device is resumed)
 * @direct_live: @direct_ref is live: the device is resumed (changed in
 *	presuspend, presuspend_undo and resume, which DM serialises)
 * @direct_ref: held by each bio on the direct path (struct interpose_dio)
 * @direct_drained: completed when @direct_ref drops to zero once killed
 * @passed: per-cpu count of bios passed down to @orig
 * @ip: the redirect this table owns, or NULL (changed under interpose_mutex,
 *	read under it or under RCU: an interposer is freed after a grace
 *	period)
 */
struct interpose_c {
	struct dm_target *ti;
	struct mapped_device *md;
	struct interpose_bdev orig_open;
	struct block_device *orig;
	struct dm_dev orig_dev;
	enum interpose_mode mode;
	dev_t dest_devt;
	bool has_diskseq;
	u64 diskseq;
	bool freeze;
	bool no_direct;
	bool reads_direct;
	bool direct_live;
	struct percpu_ref direct_ref;
	struct completion direct_drained;
	u64 __percpu *passed;
	struct interposer __rcu *ip;
};

/* Serialises every change of a redirect: attach, detach, hand-over. */
static DEFINE_MUTEX(interpose_mutex);
static LIST_HEAD(interposers);
static struct workqueue_struct *interpose_wq;
/* Completes writes after dropping the stale pages they left behind. */
static struct workqueue_struct *interpose_cache_wq;
/* The per-bio state of the direct path. */
static struct kmem_cache *interpose_dio_cache;
static mempool_t interpose_dio_pool;

static void interposer_reap_fn(struct work_struct *work);
static DECLARE_WORK(interposer_reap_work, interposer_reap_fn);

/* The redirect @ic owns, or NULL; the caller holds interpose_mutex. */
static struct interposer *ic_ip(struct interpose_c *ic)
{
	return rcu_dereference_protected(ic->ip,
					 lockdep_is_held(&interpose_mutex));
}

static u64 percpu_sum(u64 __percpu *counter)
{
	u64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += *per_cpu_ptr(counter, cpu);
	return sum;
}

static dev_t ic_own_devt(struct interpose_c *ic)
{
	return disk_devt(dm_disk(ic->md));
}

/* The device the table wants the original's bios redirected to, or 0. */
static dev_t ic_wanted_dest(struct interpose_c *ic)
{
	return ic->mode == IC_PASSTHROUGH ? 0 : ic->dest_devt;
}

static struct interposer *interposer_find(struct block_device *orig)
{
	struct interposer *ip;

	lockdep_assert_held(&interpose_mutex);
	list_for_each_entry(ip, &interposers, list)
		if (ip->orig == orig)
			return ip;
	return NULL;
}

static bool interposer_of_partition(struct block_device *disk)
{
	struct interposer *ip;

	lockdep_assert_held(&interpose_mutex);
	list_for_each_entry(ip, &interposers, list)
		if (ip->orig != disk && bdev_whole(ip->orig) == disk)
			return true;
	return false;
}

/*
 * A whole disk and one of its partitions cannot both be interposed: the
 * bios of an interposed disk's partitions are redirected to it too.
 */
static bool interposer_nested(struct block_device *orig, char **error)
{
	if (bdev_is_partition(orig) && interposer_find(bdev_whole(orig))) {
		DMERR("the disk of %pg, %pg, is interposed", orig, bdev_whole(orig));
		*error = "The disk of this partition has an interposer";
		return true;
	}
	if (!bdev_is_partition(orig) && interposer_of_partition(orig)) {
		DMERR("a partition of %pg is interposed", orig);
		*error = "A partition of this disk has an interposer";
		return true;
	}
	return false;
}

static bool interposer_is_dest(struct block_device *bdev)
{
	struct interposer *ip;

	lockdep_assert_held(&interpose_mutex);
	list_for_each_entry(ip, &interposers, list)
		if (ip->dest == bdev)
			return true;
	return false;
}

static void interposer_free_rcu(struct rcu_head *rcu)
{
	struct interposer *ip = container_of(rcu, struct interposer, rcu);

	free_percpu(ip->redirected);
	kfree(ip);
}

static void interposer_release(struct kref *kref)
{
	struct interposer *ip = container_of(kref, struct interposer, kref);

	interpose_bdev_close(&ip->orig_open);
	/* The interposer's lookup may still see @ip until a grace period ends. */
	call_rcu(&ip->rcu, interposer_free_rcu);
}

static void interposer_put(struct interposer *ip)
{
	kref_put(&ip->kref, interposer_release);
}

static void interposer_thaw_fn(struct work_struct *work)
{
	struct interposer *ip = container_of(work, struct interposer, thaw_work);
	unsigned int n;

	spin_lock(&ip->lock);
	n = ip->deferred_thaws;
	ip->deferred_thaws = 0;
	spin_unlock(&ip->lock);
	while (n--)
		interpose_bdev_thaw(ip->orig);
	interposer_put(ip);
}

/*
 * Thaw the original device @n times from a worker.  A thaw writes (ext4
 * commits its superblock), and when the writes are redirected into a device
 * that is still suspended the thaw must not hold up its resume.
 */
static void interposer_thaw_later(struct interposer *ip, unsigned int n)
{
	if (!n)
		return;
	spin_lock(&ip->lock);
	ip->deferred_thaws += n;
	spin_unlock(&ip->lock);
	kref_get(&ip->kref);
	if (!queue_work(interpose_wq, &ip->thaw_work))
		interposer_put(ip);
}

/* Take the freezes owed by a suspend of the owner, to be thawed. */
static unsigned int interposer_take_suspend_freezes(struct interposer *ip)
{
	unsigned int n;

	spin_lock(&ip->lock);
	n = ip->suspend_freezes;
	ip->suspend_freezes = 0;
	spin_unlock(&ip->lock);
	return n;
}

#ifndef INTERPOSE_OLD_BDEV_OPEN
/**
 * struct interpose_forward - a freeze or thaw of the original device
 * @work: runs it in interpose_wq
 * @done: completed when it is done
 * @ip: the interposer
 * @freeze: freeze, or thaw
 * @result: what the freeze or thaw returned
 */
struct interpose_forward {
	struct work_struct work;
	struct completion done;
	struct interposer *ip;
	bool freeze;
	int result;
};

static void interpose_forward_fn(struct work_struct *work)
{
	struct interpose_forward *f = container_of(work, struct interpose_forward, work);

	f->result = f->freeze ? interpose_bdev_freeze(f->ip->orig) :
				interpose_bdev_thaw(f->ip->orig);
	complete(&f->done);
}

/*
 * Freeze or thaw the original device of @ip from a worker and wait for it.
 * The caller, a holder operation of the destination, runs under the
 * destination's bd_fsfreeze_mutex, and bdev_freeze() of the original takes
 * the original's: a mutex of the same lock class, which lockdep reports as
 * recursive locking, although the two belong to different devices and are
 * always taken in the same order (destination, then original; a stack that
 * loops is refused when its table is loaded).  A completion, not
 * flush_work(), so that lockdep does not see the same class nested either.
 */
static int interpose_forward(struct interposer *ip, bool freeze)
{
	struct interpose_forward f = { .ip = ip, .freeze = freeze };

	INIT_WORK_ONSTACK(&f.work, interpose_forward_fn);
	init_completion(&f.done);
	queue_work(interpose_wq, &f.work);
	wait_for_completion(&f.done);
	destroy_work_on_stack(&f.work);
	return f.result;
}

/*
 * Holder operations of the redirect destination: DM freezes the filesystem
 * on a device it suspends (lock_fs), but the filesystem whose I/O goes
 * through the destination is mounted on the original device.  Forward the
 * freeze there, so that suspending the top of an interposed stack (as LVM
 * does to take a snapshot) freezes the filesystem like on any DM device.
 */

/**
 * interpose_holder_get - common prologue of the holder operations
 * @bdev: the redirect destination; the block layer holds its bd_holder_lock
 * @gen: the holder generation of the interposer, as of now
 *
 * Takes a reference to the interposer that holds @bdev, so that it stays
 * while the operation waits for the original's filesystem, and drops
 * @bdev->bd_holder_lock, as a holder operation must before it calls into a
 * filesystem (see bdev_super_lock() in fs/super.c).
 *
 * Return: the interposer, with a reference the caller drops.
 */
static struct interposer *interpose_holder_get(struct block_device *bdev,
					       unsigned int *gen)
	__releases(&bdev->bd_holder_lock)
{
	struct interposer *ip = bdev->bd_holder;

	lockdep_assert_held(&bdev->bd_holder_lock);
	kref_get(&ip->kref);
	spin_lock(&ip->lock);
	*gen = ip->holder_gen;
	spin_unlock(&ip->lock);
	mutex_unlock(&bdev->bd_holder_lock);
	return ip;
}

static int interpose_holder_freeze(struct block_device *bdev)
	__releases(&bdev->bd_holder_lock)
{
	unsigned int gen;
	struct interposer *ip = interpose_holder_get(bdev, &gen);
	bool closed;
	int r;

	r = interpose_forward(ip, true);
	if (!r) {
		/*
		 * The destination may have been closed meanwhile, its
		 * forwarded freezes collected for a thaw: then no thaw of it
		 * will reach us any more, and this freeze is undone here.
		 */
		spin_lock(&ip->lock);
		closed = gen != ip->holder_gen;
		if (!closed)
			ip->holder_freezes++;
		spin_unlock(&ip->lock);
		if (closed)
			interposer_thaw_later(ip, 1);
	}
	interposer_put(ip);
	return r;
}

static int interpose_holder_thaw(struct block_device *bdev)
	__releases(&bdev->bd_holder_lock)
{
	unsigned int gen;
	struct interposer *ip = interpose_holder_get(bdev, &gen);
	bool thaw;
	int r = 0;

	spin_lock(&ip->lock);
	thaw = gen == ip->holder_gen && ip->holder_freezes > 0;
	if (thaw)
		ip->holder_freezes--;
	spin_unlock(&ip->lock);
	if (thaw)
		r = interpose_forward(ip, false);
	interposer_put(ip);
	return r;
}

static const struct blk_holder_ops interpose_holder_ops = {
	.freeze = interpose_holder_freeze,
	.thaw = interpose_holder_thaw,
};

#define INTERPOSE_HOLDER_OPS (&interpose_holder_ops)
#else
/* Before 6.8 a holder learns nothing of a freeze (interpose-compat.h). */
#define INTERPOSE_HOLDER_OPS NULL
#endif

/*
 * Open the redirect destination exclusively, with @ip as holder.  Nothing
 * else may then claim it (stack on it, mount it), and it cannot be removed
 * while the redirect exists.
 */
static int interposer_open_dest(struct interposer *ip, dev_t devt,
				struct interpose_bdev *b)
{
	int r;

	r = interpose_bdev_open(b, devt, true, ip, INTERPOSE_HOLDER_OPS);
	if (r)
		DMERR("cannot claim redirect destination %u:%u: %d (in use?)",
		      MAJOR(devt), MINOR(devt), r);
	return r;
}

/* Close a destination; freezes forwarded through it are thawed later. */
static void interposer_close_dest(struct interposer *ip, struct interpose_bdev *b)
{
	unsigned int n;

	interpose_bdev_close(b);
	spin_lock(&ip->lock);
	n = ip->holder_freezes;
	ip->holder_freezes = 0;
	ip->holder_gen++;
	spin_unlock(&ip->lock);
	interposer_thaw_later(ip, n);
}

/*
 * Does @upper hold @lower directly, i.e. is @lower in upper's "slaves"?
 * DM links every device of a loaded table (live or inactive) as a holder, so
 * this is true once a table of @upper that uses @lower is loaded.
 */
static bool interpose_holds(struct gendisk *upper, struct block_device *lower)
{
	struct kernfs_node *kn;

	if (!lower->bd_holder_dir)
		return false;
	kn = kernfs_find_and_get(lower->bd_holder_dir->sd, upper->disk_name);
	kernfs_put(kn);
	return kn;
}

#define INTERPOSE_MAX_DEPTH 8

struct stack_walk {
	struct gendisk *upper;
	struct block_device *lower;
	const struct device_type *disk_type;
	int depth;
};

static int interpose_walk_holder(struct device *dev, void *data);

/* Is @w->upper stacked on @w->lower, through up to @w->depth devices? */
static bool interpose_stacked(struct stack_walk *w)
{
	if (interpose_holds(w->upper, w->lower))
		return true;
	if (!w->depth)
		return false;
	return class_for_each_device(disk_to_dev(w->upper)->class, NULL, w,
				     interpose_walk_holder) > 0;
}

/* For each disk holding @w->lower: is @w->upper stacked on it? */
static int interpose_walk_holder(struct device *dev, void *data)
{
	struct stack_walk *w = data, up;
	struct gendisk *disk;

	if (dev->type != w->disk_type)
		return 0;
	disk = dev_to_disk(dev);
	if (disk == w->upper || !interpose_holds(disk, w->lower))
		return 0;
	up = *w;
	up.lower = disk->part0;
	up.depth--;
	return interpose_stacked(&up);
}

/**
 * interpose_stacked_on - is @upper stacked on @lower?
 * @upper: a disk
 * @lower: a block device
 *
 * Follows the holder links that DM (and MD) make from each device of a
 * loaded table to the device that holds it, through up to
 * INTERPOSE_MAX_DEPTH devices in between.
 *
 * Return: true if @lower is a slave of @upper, directly or not.
 */
static bool interpose_stacked_on(struct gendisk *upper,
				 struct block_device *lower)
{
	struct stack_walk w = {
		.upper = upper,
		.lower = lower,
		.disk_type = disk_to_dev(upper)->type,
		.depth = INTERPOSE_MAX_DEPTH,
	};

	return interpose_stacked(&w);
}

/* Checks of an attach_to destination that do not depend on timing. */
static int interpose_check_dest(struct interpose_c *ic, dev_t devt)
{
	struct mapped_device *dest_md;
	sector_t size;

	if (devt == ic->orig->bd_dev) {
		ic->ti->error = "Cannot redirect a device to itself";
		return -EINVAL;
	}
	if (devt == ic_own_devt(ic))
		return 0;
	dest_md = dm_get_md(devt);
	if (!dest_md) {
		DMERR("attach_to %u:%u is not a device-mapper device",
		      MAJOR(devt), MINOR(devt));
		ic->ti->error = "attach_to device is not a device-mapper device";
		return -EINVAL;
	}
	size = get_capacity(dm_disk(dest_md));
	dm_put(dest_md);
	if (size != ic->ti->len) {
		DMERR("attach_to %u:%u has %llu sectors, the original device %llu",
		      MAJOR(devt), MINOR(devt), (unsigned long long)size,
		      (unsigned long long)ic->ti->len);
		ic->ti->error = "attach_to device size differs from the original device";
		return -EINVAL;
	}
	return 0;
}

/* The destination must be stacked on this device. */
static int interpose_check_stacked(struct interpose_c *ic, dev_t devt)
{
	struct mapped_device *dest_md;
	bool held;

	if (devt == ic_own_devt(ic))
		return 0;
	dest_md = dm_get_md(devt);
	if (!dest_md) {
		DMERR("attach_to %u:%u is gone", MAJOR(devt), MINOR(devt));
		return -ENODEV;
	}
	held = interpose_stacked_on(dm_disk(dest_md), dm_disk(ic->md)->part0);
	dm_put(dest_md);
	if (!held) {
		DMERR("%s: attach_to %u:%u is not stacked on this device (no table of it uses %s)",
		      dm_device_name(ic->md), MAJOR(devt), MINOR(devt),
		      dm_device_name(ic->md));
		return -EINVAL;
	}
	return 0;
}

/**
 * interposer_uevent - tell userspace which device interposes a device now
 * @ic: the table that holds the redirect of its original device, or held it
 * @dest: the device the original's bios are redirected to, or 0 when the
 *	redirect is gone
 *
 * Sends a change uevent for the original device with
 * DM_INTERPOSE_EVENT=attach, the DM name and major:minor of the device that
 * holds the redirect (DM_INTERPOSER, DM_INTERPOSER_DEV) and the major:minor
 * of the destination (DM_INTERPOSE_DEST); or with DM_INTERPOSE_EVENT=detach.
 * The udev rules keep these as properties of the original device until the
 * next such event, so that "udevadm info" on it names its interposer.
 * Called without interpose_mutex for an attach: the DM name is looked up
 * under DM's own lock.
 */
static void interposer_uevent(struct interpose_c *ic, dev_t dest)
{
	char *envp[5] = { "DM_INTERPOSE_EVENT=detach" };
	char name[DM_NAME_LEN];
	dev_t own = ic_own_devt(ic);
	int i, r;

	if (dest) {
		if (dm_copy_name_and_uuid(ic->md, name, NULL))
			strscpy(name, dm_device_name(ic->md), sizeof(name));
		envp[0] = "DM_INTERPOSE_EVENT=attach";
		envp[1] = kasprintf(GFP_KERNEL, "DM_INTERPOSER=%s", name);
		envp[2] = kasprintf(GFP_KERNEL, "DM_INTERPOSER_DEV=%u:%u",
				    MAJOR(own), MINOR(own));
		envp[3] = kasprintf(GFP_KERNEL, "DM_INTERPOSE_DEST=%u:%u",
				    MAJOR(dest), MINOR(dest));
		r = -ENOMEM;
		if (!envp[1] || !envp[2] || !envp[3])
			goto out;
	}
	r = kobject_uevent_env(bdev_kobj(ic->orig), KOBJ_CHANGE, envp);
out:
	if (r)
		DMWARN("%s: cannot send a uevent for %pg: %d",
		       dm_device_name(ic->md), ic->orig, r);
	for (i = 1; i < 4; i++)
		kfree(envp[i]);
}

static const struct blk_interposer_ops interpose_bi_ops;
static const struct blk_interposer_ops interpose_self_ops;

/**
 * interposer_set_idle - let the original's bios pass the redirect, or not
 * @ip: the redirect
 * @idle: the bios to let pass: all, the reads, or none (redirect them again)
 *
 * A table in attach mode passes every bio back to the original device, so
 * while its device is resumed the original's bios need not be redirected
 * at all: the redirect is idle and they take the kernel's own path,
 * untouched and uncounted.  With reads_direct the stack passes the reads
 * back unchanged, so the reads pass the same way.  A suspend makes it busy
 * again first, so that the suspended device holds them
 * (interpose_direct_stop()).  The switch freezes the original's queue
 * (bdev_interposer_set_idle()), which on a request-based device waits for
 * every request in flight to complete, as a suspend must; a bio-based
 * original keeps the direct path of interpose_direct() instead, whose bios
 * the suspend counts and waits for.
 */
static void interposer_set_idle(struct interposer *ip,
				enum blk_interposer_idle idle)
{
	int r;

	lockdep_assert_held(&interpose_mutex);
	r = bdev_interposer_set_idle(ip->orig, &ip->bi, idle);
	if (r)
		DMERR("%s: cannot redirect the bios of %pg again: %d",
		      dm_device_name(ip->owner->md), ip->orig, r);
}

/* Which bios of the original can pass the redirect of resumed @ic? */
static enum blk_interposer_idle interpose_resumed_idle(struct interpose_c *ic)
{
	if (!queue_is_mq(bdev_get_queue(ic->orig)))
		return BLK_INTERPOSER_BUSY;
	if (ic->mode == IC_ATTACH)
		return BLK_INTERPOSER_IDLE;
	if (ic->reads_direct)
		return BLK_INTERPOSER_IDLE_READS;
	return BLK_INTERPOSER_BUSY;
}

/* Detach the direct path of a stack's lower device. */
static void interposer_detach_self(struct interposer *ip)
{
	lockdep_assert_held(&interpose_mutex);
	if (!ip->self_bdev)
		return;
	bdev_interposer_detach(ip->self_bdev, &ip->self);
	ip->self_bdev = NULL;
}

/*
 * Redirect the original device of @ic to @devt: the queue is drained, and
 * with the freeze feature the filesystem is frozen across the change.
 */
static int interposer_create(struct interpose_c *ic, dev_t devt)
{
	struct interposer *ip;
	int r;

	lockdep_assert_held(&interpose_mutex);
	ip = kzalloc_obj(*ip);
	if (!ip)
		return -ENOMEM;
	ip->redirected = alloc_percpu(u64);
	if (!ip->redirected) {
		r = -ENOMEM;
		goto bad_free;
	}
	kref_init(&ip->kref);
	spin_lock_init(&ip->lock);
	INIT_WORK(&ip->thaw_work, interposer_thaw_fn);
	INIT_LIST_HEAD(&ip->list);
	ip->orig = ic->orig;
	ip->bi.ops = &interpose_bi_ops;
	ip->self.ops = &interpose_self_ops;
	r = interpose_bdev_open(&ip->orig_open, ic->orig->bd_dev, false, NULL,
				NULL);
	if (r) {
		DMERR("%s: cannot open %pg: %d", dm_device_name(ic->md),
		      ic->orig, r);
		goto bad_free;
	}
	r = interposer_open_dest(ip, devt, &ip->dest_open);
	if (r)
		goto bad_close_orig;
	ip->dest = ip->dest_open.bdev;
	ip->dest_devt = ip->dest->bd_dev;
	r = interposer_compat_get();
	if (r)
		goto bad_close_dest;
	if (ic->freeze) {
		r = interpose_bdev_freeze(ic->orig);
		if (r) {
			DMERR("%s: cannot freeze %pg: %d", dm_device_name(ic->md),
			      ic->orig, r);
			goto bad_compat;
		}
	}
	ip->owner = ic;
	r = bdev_interposer_attach(ip->orig, &ip->bi);
	if (r == -ENODEV) {
		DMERR("%s: %pg has gone away, cannot attach",
		      dm_device_name(ic->md), ic->orig);
		goto bad_thaw;
	} else if (r) {
		DMERR("%s: cannot attach to %pg: %d", dm_device_name(ic->md),
		      ic->orig, r);
		goto bad_thaw;
	}
	rcu_assign_pointer(ic->ip, ip);
	list_add(&ip->list, &interposers);
	/* Thaw writes; they are redirected into a device not yet resumed. */
	if (ic->freeze)
		interposer_thaw_later(ip, 1);
	DMINFO("%s: attached %pg, bios now redirected to %pg",
	       dm_device_name(ic->md), ic->orig, ip->dest);
	return 0;

bad_thaw:
	if (ic->freeze)
		interpose_bdev_thaw(ic->orig);
bad_compat:
	interposer_compat_put();
bad_close_dest:
	interpose_bdev_close(&ip->dest_open);
bad_close_orig:
	interpose_bdev_close(&ip->orig_open);
bad_free:
	free_percpu(ip->redirected);
	kfree(ip);
	return r;
}

/* Remove a redirect. The caller owns it. */
static void interposer_destroy(struct interposer *ip)
{
	struct interpose_c *ic;

	lockdep_assert_held(&interpose_mutex);
	interposer_detach_self(ip);
	bdev_interposer_detach(ip->orig, &ip->bi);
	interposer_compat_put();
	list_del_init(&ip->list);
	ic = ip->owner;
	RCU_INIT_POINTER(ic->ip, NULL);
	ip->owner = NULL;
	DMINFO("detached %pg from %pg", ip->orig, ip->dest);
	interposer_uevent(ic, 0);
	interposer_close_dest(ip, &ip->dest_open);
	interposer_thaw_later(ip, interposer_take_suspend_freezes(ip));
	interposer_put(ip);
}

/* Point an existing redirect at another destination. */
static int interposer_switch_dest(struct interposer *ip, dev_t devt)
{
	struct interpose_bdev old = ip->dest_open, b;
	int r;

	r = interposer_open_dest(ip, devt, &b);
	if (r)
		return r;
	ip->dest_open = b;
	WRITE_ONCE(ip->dest, b.bdev);
	WRITE_ONCE(ip->dest_devt, b.bdev->bd_dev);
	bdev_interposer_sync(ip->orig);
	interposer_close_dest(ip, &old);
	DMINFO("%pg now redirected to %pg", ip->orig, ip->dest);
	return 0;
}

/* Has the disk of @bdev gone away (removed, or marked dead)? */
static bool interpose_gone(struct block_device *bdev)
{
	return !disk_live(bdev->bd_disk) ||
	       test_bit(GD_DEAD, &bdev->bd_disk->state);
}

/*
 * Detach every redirect whose original device has gone away: its bios fail
 * anyway, and the redirect holds the destination open, which would keep an
 * attached device from being removed.
 */
static void interposer_reap_fn(struct work_struct *work)
{
	struct interposer *ip, *next;

	mutex_lock(&interpose_mutex);
	list_for_each_entry_safe(ip, next, &interposers, list) {
		if (!READ_ONCE(ip->dead))
			continue;
		DMWARN("%s: %pg has gone away, detaching",
		       dm_device_name(ip->owner->md), ip->orig);
		interposer_destroy(ip);
	}
	mutex_unlock(&interpose_mutex);
}

/**
 * interpose_mark_dead - the original device is going away
 * @bi: the interposer of the device
 *
 * The block layer's ->mark_dead(), which must not sleep: queues the detach.
 */
static void interpose_mark_dead(struct blk_interposer *bi)
{
	struct interposer *ip = container_of(bi, struct interposer, bi);

	WRITE_ONCE(ip->dead, true);
	queue_work(interpose_wq, &interposer_reap_work);
}

/*
 * Hand the redirect over to the table @ic.  The previous owner's direct
 * path, if its device is still resumed, ends here; once ->redirect() no
 * longer runs for it, the previous owner may go (its bios on the direct
 * path hold it until they complete).
 */
static void interposer_set_owner(struct interposer *ip, struct interpose_c *ic)
{
	lockdep_assert_held(&interpose_mutex);
	if (ip->owner == ic)
		return;
	interposer_detach_self(ip);
	/* A previous owner, resumed, may have it idle. */
	interposer_set_idle(ip, BLK_INTERPOSER_BUSY);
	RCU_INIT_POINTER(ip->owner->ip, NULL);
	WRITE_ONCE(ip->owner, ic);
	rcu_assign_pointer(ic->ip, ip);
	bdev_interposer_sync(ip->orig);
}

/*
 * Point @bio at @bdev, as a stacking driver does; a device that cannot take
 * REQ_NOWAIT bios gets the bio without the flag.
 */
static void interpose_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
	if ((bio->bi_opf & REQ_NOWAIT) && !bdev_nowait(bdev))
		bio->bi_opf &= ~REQ_NOWAIT;
}

/*
 * Does @bdev's page cache hold a page over [@start, @end] (bytes)?  Called
 * at the completion of a write that went around it; cheap when it is empty.
 */
static bool interpose_cache_has_range(struct block_device *bdev, loff_t start,
				      loff_t end)
{
	struct address_space *mapping = interpose_bdev_mapping(bdev);

	return READ_ONCE(mapping->nrpages) &&
	       filemap_range_has_page(mapping, start, end);
}

/*
 * Does @bio change data of the original device behind its page cache?  The
 * original's own writeback (its pages) does not; anything else does: the
 * writes of a filesystem's files, of a device stacked on the original, of
 * O_DIRECT, discards and write-zeroes.
 */
static bool interpose_bypasses_cache(struct interpose_c *ic, struct bio *bio)
{
	if (!op_is_write(bio_op(bio)) || !bio_sectors(bio))
		return false;
	if (bio_has_data(bio) &&
	    page_folio(bio_page(bio))->mapping == interpose_bdev_mapping(ic->orig))
		return false;
	return true;
}

/*
 * Drop the clean pages of @bdev's page cache over [@start, @end]: they may
 * hold data older than what a write that went around them has just put on
 * the disk.  A page still there after the ranged pass may be pinned by a
 * per-CPU LRU batch or buffer_head LRU: invalidate_bdev() empties those
 * first (and drops every clean page of the device).  Nothing here waits for
 * a page lock or for writeback, as invalidate_inode_pages2_range() would: a
 * page locked for a read that a suspended device in the stack holds back
 * would hold up this write's completion, and with it the suspend.  Dirty
 * pages are kept.
 */
static void interpose_invalidate_range(struct block_device *bdev,
				       loff_t start, loff_t end)
{
	struct address_space *mapping = interpose_bdev_mapping(bdev);

	invalidate_mapping_pages(mapping, start >> PAGE_SHIFT, end >> PAGE_SHIFT);
	if (filemap_range_has_page(mapping, start, end))
		invalidate_bdev(bdev);
}

/**
 * struct interpose_dio - a bio on the direct path
 * @ic: the table whose device the bio goes past; the bio holds a reference
 *	on its @direct_ref until it completes
 * @bio: the bio
 * @end_io: the bio's own completion, put back before it completes
 * @private: the bio's own bi_private
 * @check: as interpose_pb's: the page cache of @ic->orig is checked over
 *	[@start, @end] when the bio completes
 * @start: first byte of the original device the bio changes
 * @end: last byte it changes
 * @work: drops the stale pages, then completes the bio
 */
struct interpose_dio {
	struct interpose_c *ic;
	struct bio *bio;
	bio_end_io_t *end_io;
	void *private;
	bool check;
	loff_t start;
	loff_t end;
	struct work_struct work;
};

static void interpose_dio_complete(struct interpose_dio *dio)
{
	struct interpose_c *ic = dio->ic;
	struct bio *bio = dio->bio;

	bio->bi_end_io = dio->end_io;
	bio->bi_private = dio->private;
	mempool_free(dio, &interpose_dio_pool);
	bio_endio(bio);
	percpu_ref_put(&ic->direct_ref);
}

static void interpose_dio_invalidate_fn(struct work_struct *work)
{
	struct interpose_dio *dio = container_of(work, struct interpose_dio,
						 work);

	interpose_invalidate_range(dio->ic->orig, dio->start, dio->end);
	interpose_dio_complete(dio);
}

/*
 * The completion of a bio on the direct path: the page cache check of
 * interpose_end_io(), then the bio's own completion, completed again with
 * its own bi_end_io put back (as blk-crypto-fallback does).
 */
static void interpose_dio_end_io(struct bio *bio)
{
	struct interpose_dio *dio = bio->bi_private;

	if (dio->check &&
	    interpose_cache_has_range(dio->ic->orig, dio->start, dio->end)) {
		INIT_WORK(&dio->work, interpose_dio_invalidate_fn);
		queue_work(interpose_cache_wq, &dio->work);
		return;
	}
	interpose_dio_complete(dio);
}

/**
 * interpose_direct - pass a bio to the original device past DM
 * @ic: the table whose device the bio would pass through
 * @bio: the bio, on the original device or on a partition of it
 * @gfp: the allocation mode: may the caller wait for the mempool?
 *
 * What the table does to a bio (interpose_map()), without the DM device:
 * the bio keeps its device, and its completion is taken over so that a
 * suspend of @ic's device waits for it (interpose_direct_stop()).  The
 * caller points it at the original device, or leaves it there, and the
 * block layer sends it on.  It is past the interposer: the block layer
 * knows it by BIO_INTERPOSED, the compat hook by its bi_end_io.
 *
 * Return: true if @bio is on the direct path; false, with @bio untouched,
 * if the device of @ic is not resumed or no memory was free.
 */
static bool interpose_direct(struct interpose_c *ic, struct bio *bio,
			     gfp_t gfp)
{
	struct interpose_dio *dio;

	if (!percpu_ref_tryget_live(&ic->direct_ref))
		return false;
	dio = mempool_alloc(&interpose_dio_pool, gfp);
	if (unlikely(!dio)) {
		percpu_ref_put(&ic->direct_ref);
		return false;
	}
	dio->ic = ic;
	dio->bio = bio;
	dio->end_io = bio->bi_end_io;
	dio->private = bio->bi_private;
	dio->check = interpose_bypasses_cache(ic, bio);
	if (dio->check) {
		dio->start = (loff_t)bio->bi_iter.bi_sector << SECTOR_SHIFT;
		if (bio->bi_bdev != ic->orig)
			dio->start += (loff_t)bio->bi_bdev->bd_start_sect <<
				      SECTOR_SHIFT;
		dio->end = dio->start + bio->bi_iter.bi_size - 1;
	}
	bio->bi_end_io = interpose_dio_end_io;
	bio->bi_private = dio;
	this_cpu_inc(*ic->passed);
	return true;
}

/**
 * interpose_redirect - point a bio of an interposed device at the redirect
 * @bi: the interposer of @bio's device, or of the disk of @bio's partition
 * @bio: the bio, with the sector it was submitted with
 *
 * The block layer's ->redirect(); it then submits @bio to the destination.
 * A bio of a partition of an interposed disk is remapped to the disk's
 * sectors, as the block layer would.  In attach mode, while the device is
 * resumed, the bio stays on the original device instead, on the direct
 * path: the destination's table would only pass it back.  So does a read
 * with reads_direct.  (On a request-based original such bios do not come
 * here: the redirect lets them past, interposer_set_idle().)  Where the
 * block layer knows a bio past the interposer by itself
 * (interposer_compat_knows_past()), such a read is not tracked either: a
 * suspend need not wait for a read, which changes nothing it guards, and
 * its completion stays the submitter's own.
 */
static void interpose_redirect(struct blk_interposer *bi, struct bio *bio)
{
	struct interposer *ip = container_of(bi, struct interposer, bi);
	struct interpose_c *owner = READ_ONCE(ip->owner);
	struct block_device *dest = READ_ONCE(ip->dest);
	struct block_device *part = bio->bi_bdev;

	this_cpu_inc(*ip->redirected);
	if (owner->reads_direct && bio_op(bio) == REQ_OP_READ &&
	    interposer_compat_knows_past() &&
	    !percpu_ref_is_dying(&owner->direct_ref)) {
		/* Resumed: the direct path is open; a read needs no more. */
		this_cpu_inc(*owner->passed);
		return;
	}
	/*
	 * attach: the destination's table would pass the bio back here;
	 * reads_direct: the stack would pass a read down unchanged.
	 */
	if ((owner->mode == IC_ATTACH ||
	     (owner->reads_direct && bio_op(bio) == REQ_OP_READ)) &&
	    interpose_direct(owner, bio, GFP_NOWAIT | __GFP_NOWARN))
		return;
	if (part != ip->orig && bio_sectors(bio))
		bio->bi_iter.bi_sector += part->bd_start_sect;
	interpose_set_dev(bio, dest);
}

static const struct blk_interposer_ops interpose_bi_ops = {
	.redirect = interpose_redirect,
	.mark_dead = interpose_mark_dead,
};

/**
 * interpose_self_redirect - the direct path of a stack's lower device
 * @bi: the interposer on the device of the table that holds the redirect
 * @bio: a bio submitted to that device, by the stack on it
 *
 * The table passes every bio on to the original device: send the bio
 * there without a pass through DM.  @bi is attached only while the
 * device's direct path is live (interpose_direct_start() and _stop()), so
 * the bio is not refused; it may wait for the mempool.  A read goes
 * untracked where the block layer knows it is past the interposer, as in
 * interpose_redirect().
 */
static void interpose_self_redirect(struct blk_interposer *bi, struct bio *bio)
{
	struct interposer *ip = container_of(bi, struct interposer, self);
	struct interpose_c *ic = ip->owner;

	if (bio_op(bio) == REQ_OP_READ && interposer_compat_knows_past())
		this_cpu_inc(*ic->passed);
	else
		WARN_ON_ONCE(!interpose_direct(ic, bio, GFP_NOIO));
	interpose_set_dev(bio, ic->orig);
	bio_clear_polled(bio);
}

static const struct blk_interposer_ops interpose_self_ops = {
	.redirect = interpose_self_redirect,
};

/**
 * struct interpose_pb - per-bio data of a bio passed down to the original
 * @start: first byte of the original device the bio changes
 * @end: last byte it changes
 * @work: drops the original's cached pages over [@start, @end], then
 *	completes the bio
 * @orig: the original device
 * @check: the bio changes data without going through the original
 *	device's page cache
 */
struct interpose_pb {
	loff_t start;
	loff_t end;
	struct work_struct work;
	struct block_device *orig;
	bool check;
};

static void interpose_invalidate_fn(struct work_struct *work)
{
	struct interpose_pb *pb = container_of(work, struct interpose_pb, work);
	struct bio *bio = dm_bio_from_per_bio_data(pb, sizeof(*pb));

	interpose_invalidate_range(pb->orig, pb->start, pb->end);
	/* DM's completion again; interpose_end_io() lets it through now. */
	bio_endio(bio);
}

/**
 * interpose_end_io - keep the original's page cache coherent
 * @ti: the target
 * @bio: a bio passed down to the original device, completed
 * @error: its status
 *
 * A write that reached the original device other than through its page
 * cache leaves that cache stale over the range it wrote.  On a device
 * nobody else holds open the cache is dropped at the last close, but ours
 * is an open that lasts as long as the table: so drop the pages that
 * overlap such a write before the write completes, in process context, as
 * the kernel does after a direct write.  Nothing is deferred when the range
 * has no cached page.
 *
 * Return: DM_ENDIO_DONE, or DM_ENDIO_INCOMPLETE when the completion is
 * finished by interpose_invalidate_fn().
 */
static int interpose_end_io(struct dm_target *ti, struct bio *bio,
			    blk_status_t *error)
{
	struct interpose_c *ic = ti->private;
	struct interpose_pb *pb = dm_per_bio_data(bio, sizeof(*pb));

	if (!pb->check)
		return DM_ENDIO_DONE;
	pb->check = false;
	if (!interpose_cache_has_range(ic->orig, pb->start, pb->end))
		return DM_ENDIO_DONE;
	pb->orig = ic->orig;
	INIT_WORK(&pb->work, interpose_invalidate_fn);
	queue_work(interpose_cache_wq, &pb->work);
	return DM_ENDIO_INCOMPLETE;
}

/*
 * Pass a bio down to the original device: DM's clone is remapped there, as
 * dm-linear does, and marked so that it (and any remainder the block
 * layer resubmits after a split) goes past the interposer.
 */
static int interpose_map(struct dm_target *ti, struct bio *bio)
{
	struct interpose_c *ic = ti->private;
	struct interpose_pb *pb = dm_per_bio_data(bio, sizeof(*pb));

	pb->check = interpose_bypasses_cache(ic, bio);
	if (pb->check) {
		pb->start = (loff_t)bio->bi_iter.bi_sector << SECTOR_SHIFT;
		pb->end = pb->start + bio->bi_iter.bi_size - 1;
	}
	interpose_set_dev(bio, ic->orig);
	bio_set_interposed(bio);
	/* Completions of the original's poll queues would go unnoticed. */
	bio_clear_polled(bio);
	this_cpu_inc(*ic->passed);
	return DM_MAPIO_REMAPPED;
}

/*
 * The feature arguments, in dm-flakey's shape: one block per feature.
 * <#feature args> [attach | attach_to <dev>] [diskseq <N>] [freeze]
 *	[no_direct] [reads_direct]
 */
static int interpose_parse_features(struct interpose_c *ic,
				    struct dm_arg_set *as)
{
	static const struct dm_arg _args[] = {
		{0, 7, "Invalid number of feature arguments"},
	};
	struct dm_target *ti = ic->ti;
	unsigned int argc = 0;
	const char *arg_name, *arg;
	int r;

	if (!as->argc)
		return 0;
	r = dm_read_arg_group(_args, as, &argc, &ti->error);
	if (r)
		return r;

	while (argc) {
		arg_name = dm_shift_arg(as);
		argc--;

		/*
		 * attach: redirect the original's bios into this device
		 */
		if (!strcasecmp(arg_name, "attach")) {
			if (ic->mode != IC_PASSTHROUGH) {
				ti->error = "Duplicate or conflicting attach arguments";
				return -EINVAL;
			}
			ic->mode = IC_ATTACH;
			ic->dest_devt = ic_own_devt(ic);
			continue;
		}

		/*
		 * attach_to <dev>: redirect them into a DM device stacked on
		 * this one
		 */
		if (!strcasecmp(arg_name, "attach_to")) {
			if (ic->mode != IC_PASSTHROUGH) {
				ti->error = "Duplicate or conflicting attach arguments";
				return -EINVAL;
			}
			if (!argc) {
				ti->error = "attach_to needs a device";
				return -EINVAL;
			}
			arg = dm_shift_arg(as);
			argc--;
			r = interpose_devt_from_path(arg, &ic->dest_devt);
			if (r) {
				DMERR("cannot find attach_to device %s: %d", arg, r);
				ti->error = "Cannot find attach_to device";
				return r;
			}
			ic->mode = IC_ATTACH_TO;
			continue;
		}

		/*
		 * diskseq <N>: the original's disk must have this sequence
		 * number
		 */
		if (!strcasecmp(arg_name, "diskseq")) {
			if (ic->has_diskseq) {
				ti->error = "Duplicate diskseq argument";
				return -EINVAL;
			}
			if (!argc) {
				ti->error = "diskseq needs a number";
				return -EINVAL;
			}
			arg = dm_shift_arg(as);
			argc--;
			if (kstrtou64(arg, 10, &ic->diskseq) || !ic->diskseq) {
				DMERR("invalid diskseq %s", arg);
				ti->error = "Invalid diskseq";
				return -EINVAL;
			}
			ic->has_diskseq = true;
			continue;
		}

		/*
		 * freeze: freeze the original's filesystem across attach,
		 * detach and a suspend of this device
		 */
		if (!strcasecmp(arg_name, "freeze")) {
			if (ic->freeze) {
				ti->error = "Duplicate freeze argument";
				return -EINVAL;
			}
			ic->freeze = true;
			continue;
		}

		/*
		 * no_direct: every bio passes through this device's table,
		 * none goes straight to the original device
		 */
		if (!strcasecmp(arg_name, "no_direct")) {
			if (ic->no_direct) {
				ti->error = "Duplicate no_direct argument";
				return -EINVAL;
			}
			ic->no_direct = true;
			continue;
		}

		/*
		 * reads_direct: the stack passes reads down unchanged (linear,
		 * era, snapshot-origin): reads go to the original straight
		 */
		if (!strcasecmp(arg_name, "reads_direct")) {
			if (ic->reads_direct) {
				ti->error = "Duplicate reads_direct argument";
				return -EINVAL;
			}
			ic->reads_direct = true;
			continue;
		}

		DMERR("unrecognised feature argument %s", arg_name);
		ti->error = "Unrecognised feature argument";
		return -EINVAL;
	}
	return 0;
}

/* Checks of the original device, on the table given. */
static int interpose_check_orig(struct interpose_c *ic)
{
	struct dm_target *ti = ic->ti;
	struct block_device *orig = ic->orig;
	struct interposer *ip;
	int r = 0;

	if (!bdev_nr_sectors(orig)) {
		DMERR("%pg has no media (0 sectors)", orig);
		ti->error = "Original device is empty";
		return -ENXIO;
	}
	if (bdev_is_zoned(orig)) {
		ti->error = "Zoned devices are not supported";
		return -EINVAL;
	}
	if (ti->begin || ti->len != bdev_nr_sectors(orig)) {
		DMERR("%pg has %llu sectors: the table must be \"0 %llu interpose ...\"",
		      orig, (unsigned long long)bdev_nr_sectors(orig),
		      (unsigned long long)bdev_nr_sectors(orig));
		ti->error = "Table must cover the whole original device";
		return -EINVAL;
	}
	if (ic->has_diskseq && orig->bd_disk->diskseq != ic->diskseq) {
		DMERR("%pg has diskseq %llu, the table expects %llu", orig,
		      orig->bd_disk->diskseq, ic->diskseq);
		ti->error = "Disk sequence number mismatch";
		return -ENXIO;
	}
	if (orig->bd_disk == dm_disk(ic->md)) {
		ti->error = "Cannot interpose a device onto itself";
		return -EINVAL;
	}
	if (interpose_stacked_on(orig->bd_disk, dm_disk(ic->md)->part0)) {
		DMERR("%pg is stacked on %s", orig, dm_device_name(ic->md));
		ti->error = "Interposing would create a cycle";
		return -EINVAL;
	}

	mutex_lock(&interpose_mutex);
	ip = interposer_find(orig);
	if (interposer_is_dest(orig)) {
		ti->error = "Device is the redirect destination of an interposer";
		r = -EINVAL;
	} else if (interposer_nested(orig, &ti->error)) {
		r = -EBUSY;
	} else if (ip && ip->owner->md != ic->md &&
		   ic_wanted_dest(ic) != ip->dest->bd_dev) {
		DMERR("%pg is already interposed by %s", orig,
		      dm_device_name(ip->owner->md));
		ti->error = "Device already has an interposer";
		r = -EBUSY;
	}
	mutex_unlock(&interpose_mutex);
	return r;
}

static void interpose_direct_release(struct percpu_ref *ref)
{
	struct interpose_c *ic = container_of(ref, struct interpose_c,
					      direct_ref);

	complete_all(&ic->direct_drained);
}

/**
 * interpose_direct_start - open the direct path of a resumed device
 * @ic: the table
 *
 * From here on the bios this table would pass down go to the original
 * device without DM: in attach mode the original's own bios are not
 * redirected at all, nor are its reads with reads_direct
 * (interposer_set_idle()), or, on a bio-based original, they go straight
 * back from the redirect (interpose_redirect()); with
 * attach_to the bios the stack on this device submits to it go there
 * (interpose_self_redirect(), attached here).  Without that interposer the
 * stack's bios take the way through DM: nothing is lost.
 */
static void interpose_direct_start(struct interpose_c *ic)
{
	struct block_device *self = dm_disk(ic->md)->part0;
	struct interposer *ip;
	int r;

	if (ic->no_direct || ic->direct_live)
		return;
	reinit_completion(&ic->direct_drained);
	percpu_ref_reinit(&ic->direct_ref);
	ic->direct_live = true;

	mutex_lock(&interpose_mutex);
	ip = ic_ip(ic);
	if (ip)
		interposer_set_idle(ip, interpose_resumed_idle(ic));
	if (ip && ic->mode == IC_ATTACH_TO && !ip->self_bdev) {
		r = bdev_interposer_attach(self, &ip->self);
		if (r)
			DMWARN("%s: no direct path from the stack: %d",
			       dm_device_name(ic->md), r);
		else
			ip->self_bdev = self;
	}
	mutex_unlock(&interpose_mutex);
}

/**
 * interpose_direct_stop - close the direct path
 * @ic: the table
 *
 * No bio takes the direct path of @ic after this returns; the bios that
 * did are waited for with @ic->direct_drained, and those that passed an
 * idle redirect have completed.  In presuspend: the bios that arrive from
 * here on pass through DM, which holds them as it suspends.
 */
static void interpose_direct_stop(struct interpose_c *ic)
{
	struct interposer *ip;

	mutex_lock(&interpose_mutex);
	ip = ic_ip(ic);
	if (ip) {
		interposer_detach_self(ip);
		interposer_set_idle(ip, BLK_INTERPOSER_BUSY);
	}
	mutex_unlock(&interpose_mutex);
	if (ic->direct_live) {
		ic->direct_live = false;
		percpu_ref_kill(&ic->direct_ref);
	}
}

/*
 * Construct an interpose mapping:
 * <orig_dev> [<#feature args> [attach | attach_to <dev>] [diskseq <N>]]
 */
static int interpose_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct interpose_c *ic;
	const char *path;
	dev_t devt;
	int r;

	ic = kzalloc_obj(*ic);
	if (!ic) {
		ti->error = "Cannot allocate context";
		return -ENOMEM;
	}
	ic->ti = ti;
	ic->md = dm_table_get_md(ti->table);
	ti->private = ic;

	path = dm_shift_arg(&as);
	if (!path) {
		ti->error = "Missing original device";
		r = -EINVAL;
		goto bad;
	}
	r = interpose_devt_from_path(path, &devt);
	if (r) {
		DMERR("cannot find original device %s: %d", path, r);
		ti->error = "Cannot find original device";
		goto bad;
	}
	r = interpose_parse_features(ic, &as);
	if (r)
		goto bad;
	if (as.argc) {
		ti->error = "Too many arguments";
		r = -EINVAL;
		goto bad;
	}
	if (ic->reads_direct && (ic->mode != IC_ATTACH_TO || ic->no_direct)) {
		ti->error = "reads_direct needs attach_to, and not no_direct";
		r = -EINVAL;
		goto bad;
	}

	/*
	 * Non-exclusive: a mounted filesystem holds the exclusive claim.  And
	 * read-only, whatever the table's mode: the target only submits bios,
	 * which the open mode does not govern, and a second writable open of a
	 * mounted device is refused where bdev_allow_write_mounted=0.
	 */
	r = interpose_bdev_open(&ic->orig_open, devt, false, NULL, NULL);
	if (r) {
		DMERR("cannot open original device %s: %d", path, r);
		ti->error = "Cannot open original device";
		goto bad;
	}
	ic->orig = ic->orig_open.bdev;
	interpose_fill_dm_dev(&ic->orig_dev, &ic->orig_open);

	r = interpose_check_orig(ic);
	if (r)
		goto bad;
	if (ic->mode == IC_ATTACH_TO) {
		r = interpose_check_dest(ic, ic->dest_devt);
		if (r)
			goto bad;
	}

	ic->passed = alloc_percpu(u64);
	if (!ic->passed) {
		ti->error = "Cannot allocate counters";
		r = -ENOMEM;
		goto bad;
	}
	/* Dead and drained: interpose_direct_start() makes it live. */
	r = percpu_ref_init(&ic->direct_ref, interpose_direct_release,
			    PERCPU_REF_INIT_DEAD, GFP_KERNEL);
	if (r) {
		ti->error = "Cannot allocate counters";
		goto bad;
	}
	init_completion(&ic->direct_drained);
	complete_all(&ic->direct_drained);

	ti->per_io_data_size = sizeof(struct interpose_pb);
	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->num_secure_erase_bios = 1;
	ti->num_write_zeroes_bios = 1;
	return 0;

bad:
	free_percpu(ic->passed);
	if (ic->orig)
		interpose_bdev_close(&ic->orig_open);
	kfree(ic);
	ti->private = NULL;
	return r;
}

static void interpose_dtr(struct dm_target *ti)
{
	struct interpose_c *ic = ti->private;
	struct interposer *ip;

	/* DM suspended the device before: this stops nothing. */
	interpose_direct_stop(ic);
	wait_for_completion(&ic->direct_drained);
	percpu_ref_exit(&ic->direct_ref);
	/* Still the owner: the table was replaced by one of another type. */
	mutex_lock(&interpose_mutex);
	ip = ic_ip(ic);
	if (ip)
		interposer_destroy(ip);
	mutex_unlock(&interpose_mutex);
	free_percpu(ic->passed);
	interpose_bdev_close(&ic->orig_open);
	kfree(ic);
}

/*
 * With the freeze feature, suspending the device that owns a redirect
 * freezes the original's filesystem while its I/O still flows; a detach or
 * hand-over in the next preresume then happens with the filesystem quiet.
 * (Without it, DM's own lock_fs of a suspend reaches the filesystem when
 * this device is the destination: see interpose_holder_freeze().)
 */
static void interpose_presuspend(struct dm_target *ti)
{
	struct interpose_c *ic = ti->private;
	struct interposer *ip;

	interpose_direct_stop(ic);
	if (!ic->freeze || dm_noflush_suspending(ti))
		return;
	mutex_lock(&interpose_mutex);
	ip = ic_ip(ic);
	if (ip)
		kref_get(&ip->kref);
	mutex_unlock(&interpose_mutex);
	if (!ip)
		return;
	if (!interpose_bdev_freeze(ip->orig)) {
		spin_lock(&ip->lock);
		ip->suspend_freezes++;
		spin_unlock(&ip->lock);
	} else {
		DMWARN("%s: cannot freeze %pg", dm_device_name(ic->md), ip->orig);
	}
	interposer_put(ip);
}

static void interpose_presuspend_undo(struct dm_target *ti)
{
	struct interpose_c *ic = ti->private;
	struct interposer *ip;

	mutex_lock(&interpose_mutex);
	ip = ic_ip(ic);
	if (ip)
		interposer_thaw_later(ip, interposer_take_suspend_freezes(ip));
	mutex_unlock(&interpose_mutex);
	wait_for_completion(&ic->direct_drained);
	interpose_direct_start(ic);
}

/*
 * A suspend returns once the bios on the direct path have completed, as DM
 * waits for its own: whatever the next table does (a snapshot, another
 * destination) sees none of them in flight.
 */
static void interpose_postsuspend(struct dm_target *ti)
{
	struct interpose_c *ic = ti->private;

	wait_for_completion(&ic->direct_drained);
}

static void interpose_resume(struct dm_target *ti)
{
	interpose_direct_start(ti->private);
}

/*
 * Make the redirect what this table asks for: attach, detach, hand the
 * redirect over from the previous table of this device or from another
 * device when the destination stays the same, or change the destination.
 */
static int interpose_preresume(struct dm_target *ti)
{
	struct interpose_c *ic = ti->private;
	dev_t want = ic_wanted_dest(ic);
	struct interposer *ip;
	bool changed = false;
	dev_t dest = 0;
	int r = 0;

	mutex_lock(&interpose_mutex);
	ip = interposer_find(ic->orig);
	if (!ip) {
		/*
		 * The block layer refuses the attach too, without a race, but
		 * our open of the original would fail first, with no word why.
		 */
		if (want && interpose_gone(ic->orig)) {
			DMERR("%s: %pg has gone away, cannot attach",
			      dm_device_name(ic->md), ic->orig);
			r = -ENODEV;
			goto out;
		}
		if (want && interposer_nested(ic->orig, &ti->error)) {
			r = -EBUSY;
			goto out;
		}
		if (want) {
			r = interpose_check_stacked(ic, want);
			if (!r)
				r = interposer_create(ic, want);
			changed = !r;
		}
		goto out;
	}
	if (ip->owner == ic)
		goto thaw;

	if (ip->owner->md == ic->md) {
		/* A new table of the device that holds the redirect. */
		if (!want) {
			interposer_destroy(ip);
			goto out;
		}
		if (want != ip->dest->bd_dev) {
			r = interpose_check_stacked(ic, want);
			if (!r)
				r = interposer_switch_dest(ip, want);
			if (r)
				goto out;
			changed = true;
		}
		interposer_set_owner(ip, ic);
		goto thaw;
	}

	/* Another device holds it: take over if the destination is ours. */
	if (want != ip->dest->bd_dev) {
		DMERR("%s: %pg is already interposed by %s",
		      dm_device_name(ic->md), ic->orig,
		      dm_device_name(ip->owner->md));
		r = -EBUSY;
		goto out;
	}
	r = interpose_check_stacked(ic, want);
	if (r)
		goto out;
	DMINFO("%s: takes over the redirect of %pg from %s",
	       dm_device_name(ic->md), ic->orig, dm_device_name(ip->owner->md));
	interposer_set_owner(ip, ic);
	changed = true;
thaw:
	interposer_thaw_later(ip, interposer_take_suspend_freezes(ip));
out:
	if (changed)
		dest = ic_ip(ic)->dest_devt;
	mutex_unlock(&interpose_mutex);
	/* The hash lock DM looks names up under nests outside ours. */
	if (changed)
		interposer_uevent(ic, dest);
	return r;
}

static void interpose_status(struct dm_target *ti, status_type_t type,
			     unsigned int status_flags, char *result,
			     unsigned int maxlen)
{
	struct interpose_c *ic = ti->private;
	static const char * const modes[] = {
		[IC_PASSTHROUGH] = "passthrough",
		[IC_ATTACH] = "attach",
		[IC_ATTACH_TO] = "attach_to",
	};
	struct interposer *ip;
	unsigned int sz = 0, nr;
	const char *state;
	u64 redirected = 0;
	dev_t dest = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		rcu_read_lock();
		ip = rcu_dereference(ic->ip);
		if (ip) {
			dest = READ_ONCE(ip->dest_devt);
			redirected = percpu_sum(ip->redirected);
		}
		rcu_read_unlock();
		if (dest)
			state = "attached";
		else if (interpose_gone(ic->orig))
			state = "gone";
		else if (ic->mode == IC_PASSTHROUGH)
			state = "passthrough";
		else
			state = "standby";
		DMEMIT("%s %llu %s ", ic->orig_dev.name,
		       ic->orig->bd_disk->diskseq, state);
		if (dest)
			DMEMIT("%u:%u", MAJOR(dest), MINOR(dest));
		else
			DMEMIT("-");
		DMEMIT(" %llu %llu %s", redirected, percpu_sum(ic->passed),
		       INTERPOSE_HOOK_NAME);
		break;

	case STATUSTYPE_TABLE:
		nr = (ic->mode == IC_ATTACH) + 2 * (ic->mode == IC_ATTACH_TO) +
		     2 * ic->has_diskseq + ic->freeze + ic->no_direct +
		     ic->reads_direct;
		DMEMIT("%s", ic->orig_dev.name);
		if (nr)
			DMEMIT(" %u", nr);
		if (ic->mode == IC_ATTACH)
			DMEMIT(" attach");
		else if (ic->mode == IC_ATTACH_TO)
			DMEMIT(" attach_to %u:%u", MAJOR(ic->dest_devt),
			       MINOR(ic->dest_devt));
		if (ic->has_diskseq)
			DMEMIT(" diskseq %llu", ic->diskseq);
		if (ic->freeze)
			DMEMIT(" freeze");
		if (ic->no_direct)
			DMEMIT(" no_direct");
		if (ic->reads_direct)
			DMEMIT(" reads_direct");
		break;

	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",orig_dev=%s,mode=%s", ic->orig_dev.name, modes[ic->mode]);
		if (ic->mode == IC_ATTACH_TO)
			DMEMIT(",attach_to=%u:%u", MAJOR(ic->dest_devt),
			       MINOR(ic->dest_devt));
		DMEMIT(",diskseq=%llu,freeze=%c,direct=%c,reads_direct=%c;",
		       ic->orig->bd_disk->diskseq, ic->freeze ? 'y' : 'n',
		       ic->no_direct ? 'n' : 'y', ic->reads_direct ? 'y' : 'n');
		break;
	}
}

static int interpose_prepare_ioctl(INTERPOSE_PREPARE_IOCTL_ARGS)
{
	struct interpose_c *ic = ti->private;

	*bdev = ic->orig;
	return 0;
}

static int interpose_iterate_devices(struct dm_target *ti,
				     iterate_devices_callout_fn fn, void *data)
{
	struct interpose_c *ic = ti->private;

	return fn(ti, &ic->orig_dev, 0, ti->len, data);
}

static struct target_type interpose_target = {
	.name = "interpose",
	.version = {1, 0, 0},
	.features = DM_TARGET_SINGLETON | DM_TARGET_NOWAIT |
		    DM_TARGET_PASSES_INTEGRITY | DM_TARGET_PASSES_CRYPTO,
	.module = THIS_MODULE,
	.ctr = interpose_ctr,
	.dtr = interpose_dtr,
	.map = interpose_map,
	.end_io = interpose_end_io,
	.presuspend = interpose_presuspend,
	.presuspend_undo = interpose_presuspend_undo,
	.postsuspend = interpose_postsuspend,
	.preresume = interpose_preresume,
	.resume = interpose_resume,
	.status = interpose_status,
	.prepare_ioctl = interpose_prepare_ioctl,
	.iterate_devices = interpose_iterate_devices,
};

static int __init dm_interpose_init(void)
{
	int r;

	interpose_wq = alloc_workqueue("dm-interpose",
				       WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	if (!interpose_wq)
		return -ENOMEM;
	interpose_cache_wq = alloc_workqueue("dm-interpose-cache",
					     WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	if (!interpose_cache_wq) {
		r = -ENOMEM;
		goto bad_wq;
	}
	interpose_dio_cache = KMEM_CACHE(interpose_dio, 0);
	if (!interpose_dio_cache) {
		r = -ENOMEM;
		goto bad_cache_wq;
	}
	r = mempool_init_slab_pool(&interpose_dio_pool, BIO_POOL_SIZE,
				   interpose_dio_cache);
	if (r)
		goto bad_dio_cache;
	interposer_compat_set_own_end_io(interpose_dio_end_io);
	r = dm_register_target(&interpose_target);
	if (r)
		goto bad_dio_pool;
	return 0;

bad_dio_pool:
	mempool_exit(&interpose_dio_pool);
bad_dio_cache:
	kmem_cache_destroy(interpose_dio_cache);
bad_cache_wq:
	destroy_workqueue(interpose_cache_wq);
bad_wq:
	destroy_workqueue(interpose_wq);
	return r;
}

static void __exit dm_interpose_exit(void)
{
	dm_unregister_target(&interpose_target);
	cancel_work_sync(&interposer_reap_work);
	interposer_compat_exit();
	destroy_workqueue(interpose_cache_wq);
	destroy_workqueue(interpose_wq);
	rcu_barrier();
	mempool_exit(&interpose_dio_pool);
	kmem_cache_destroy(interpose_dio_cache);
}

module_init(dm_interpose_init);
module_exit(dm_interpose_exit);

MODULE_DESCRIPTION(DM_NAME " target taking over the I/O of a block device in use");
MODULE_AUTHOR("dm-interpose developers");
MODULE_LICENSE("GPL");
MODULE_INFO(interpose_hook, INTERPOSE_HOOK_NAME);
