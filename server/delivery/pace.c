/*
 * pace.c: a destination's rate, measured over windows of a second, and the
 * pacing of what waits for it in the store (destination.c calls it under the runner's lock).
 */
#include "config.h"

#include "server/delivery/pace.h"
#include "core/compat.h"

void
pace_taken(struct pace *p, double now)
{
	if (!p->window_start)
		p->window_start = now;
	p->window_taken++;
	if (now - p->window_start >= 1.0) {
		p->rate = p->window_taken / (now - p->window_start);
		p->window_taken = 0;
		p->window_start = now;
	}
}

unsigned
pace_defer(struct pace *p, size_t ahead, double now, unsigned max_seconds)
{
	double rate = p->rate, slot;

	if (rate <= 0 && p->window_taken && now - p->window_start >= 0.05)
		rate = p->window_taken / (now - p->window_start);	/* a first window, not yet whole */
	if (rate <= 0)
		return max_seconds;
	slot = now + ahead / rate;
	if (p->next_slot > slot)
		slot = p->next_slot;
	p->next_slot = slot + 1.0 / rate;
	if (slot - now >= max_seconds)
		return max_seconds;
	return (unsigned)(slot - now) + 1;
}
