// SPDX-License-Identifier: GPL-2.0-only
/*
 * dmi_ipmodify: a stand-in for another product's bio hook, such as Veeam's
 * bdevfilter.  It holds an IPMODIFY ftrace callback on submit_bio_noacct(),
 * the one such callback ftrace allows on a function, for as long as it is
 * loaded.  Bios of the device given by the parameters major and minor are
 * diverted through its own function, which counts them (the parameter
 * "seen") and submits them again; the callback lets its own resubmission
 * pass by its return address.
 *
 *	insmod dmi_ipmodify.ko major=253 minor=0
 *	cat /sys/module/dmi_ipmodify/parameters/seen
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/ftrace.h>
#include <linux/module.h>
#include <linux/version.h>

static uint major;
module_param(major, uint, 0444);
MODULE_PARM_DESC(major, "major number of the device whose bios are counted");
static uint minor;
module_param(minor, uint, 0444);
MODULE_PARM_DESC(minor, "minor number of that device");
static atomic_long_t seen_count;
static ulong seen;
module_param(seen, ulong, 0444);
MODULE_PARM_DESC(seen, "bios of that device seen (updated as they pass)");

static dev_t watched;

/*
 * Runs instead of submit_bio_noacct() for a bio of the watched device.  The
 * call must not be a tail call: the callback knows the resubmission by its
 * return address in this module.
 */
static void notrace dmi_ipmodify_submit(struct bio *bio)
{
	submit_bio_noacct(bio);
	WRITE_ONCE(seen, atomic_long_inc_return(&seen_count));
}

/* The ftrace_regs accessors came in 6.2; before, full registers are saved. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0) && \
	defined(CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS)
#define DMI_FTRACE_FLAGS 0

static struct bio *dmi_arg0(struct ftrace_regs *fregs)
{
	return (struct bio *)ftrace_regs_get_argument(fregs, 0);
}

static void dmi_set_ip(struct ftrace_regs *fregs, unsigned long ip)
{
	ftrace_regs_set_instruction_pointer(fregs, ip);
}
#else
#define DMI_FTRACE_FLAGS FTRACE_OPS_FL_SAVE_REGS

static struct bio *dmi_arg0(struct ftrace_regs *fregs)
{
	return (struct bio *)regs_get_kernel_argument(ftrace_get_regs(fregs), 0);
}

static void dmi_set_ip(struct ftrace_regs *fregs, unsigned long ip)
{
	instruction_pointer_set(ftrace_get_regs(fregs), ip);
}
#endif

static void notrace dmi_ipmodify_cb(unsigned long ip, unsigned long parent_ip,
				    struct ftrace_ops *ops,
				    struct ftrace_regs *fregs)
{
	struct bio *bio = dmi_arg0(fregs);

	if (within_module(parent_ip, THIS_MODULE))
		return;
	if (bio->bi_bdev->bd_dev != watched)
		return;
	dmi_set_ip(fregs, (unsigned long)dmi_ipmodify_submit);
}

static struct ftrace_ops dmi_ipmodify_ops = {
	.func = dmi_ipmodify_cb,
	.flags = FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_RECURSION |
		 DMI_FTRACE_FLAGS,
};

static int __init dmi_ipmodify_init(void)
{
	unsigned char func[] = "submit_bio_noacct";
	int r;

	watched = MKDEV(major, minor);
	r = ftrace_set_filter(&dmi_ipmodify_ops, func, strlen(func), 0);
	if (r)
		return r;
	r = register_ftrace_function(&dmi_ipmodify_ops);
	if (r) {
		pr_err("dmi_ipmodify: cannot hook submit_bio_noacct: %d\n", r);
		ftrace_free_filter(&dmi_ipmodify_ops);
		return r;
	}
	pr_info("dmi_ipmodify: IPMODIFY hook on submit_bio_noacct, watching %u:%u\n",
		major, minor);
	return 0;
}

static void __exit dmi_ipmodify_exit(void)
{
	unregister_ftrace_function(&dmi_ipmodify_ops);
	ftrace_free_filter(&dmi_ipmodify_ops);
	synchronize_rcu_tasks();
}

module_init(dmi_ipmodify_init);
module_exit(dmi_ipmodify_exit);

MODULE_DESCRIPTION("dm-interpose test helper: another product's IPMODIFY hook on submit_bio_noacct");
MODULE_LICENSE("GPL");
