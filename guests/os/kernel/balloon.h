/* VMware balloon driver modeled on Linux drivers/misc/vmw_balloon.c. */
#ifndef BALLOON_H
#define BALLOON_H
#include "kernel.h"
extern int balloon_enabled;
void balloon_init(void);
void balloon_work(void);       /* one worker pass: reset if needed, GET_TARGET, inflate/deflate */
void balloon_doorbell(void);   /* doorbell interrupt: run a pass now */
void balloon_unload(void);     /* module exit: doorbell clean-up, START(0), pop */
void balloon_print_stats(void);
void balloon_touch(void);        /* test hook: read a ballooned page */
u64 balloon_size_frames(void);
#endif
