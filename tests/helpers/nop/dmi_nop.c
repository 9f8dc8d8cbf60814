// SPDX-License-Identifier: GPL-2.0-only
/*
 * dmi_nop: a module that does nothing.  The torture suites load and unload
 * it between attach/detach cycles: a module load waits for ftrace's lock,
 * which the ftrace hook's unregistration holds across RCU grace periods.
 */
#include <linux/module.h>

static int __init dmi_nop_init(void)
{
	return 0;
}

static void __exit dmi_nop_exit(void)
{
}

module_init(dmi_nop_init);
module_exit(dmi_nop_exit);

MODULE_DESCRIPTION("dm-interpose test helper that does nothing");
MODULE_LICENSE("GPL");
