/*
 * pace.h: how fast a destination takes parcels, and when an entry that
 * found it full should come back from the store.
 */
#ifndef POSTIE_DELIVERY_PACE_H
#define POSTIE_DELIVERY_PACE_H

#include <stddef.h>

struct pace {
	double window_start;	/* monotonic seconds; 0 = nothing taken yet */
	unsigned window_taken;	/* parcels taken since window_start */
	double rate;		/* parcels/s over the last whole window; 0 = unknown */
	double next_slot;	/* the next deferred entry comes back no sooner */
};

/* A parcel was taken at time now (monotonic seconds). */
void pace_taken(struct pace *p, double now);

/*
 * Seconds an entry should wait in the store when ahead parcels are
 * waiting already: entries come back one by one at the pace parcels have
 * been taken, after those ahead, and never later than max_seconds (nor
 * sooner than 1 s). An unknown pace gives max_seconds.
 */
unsigned pace_defer(struct pace *p, size_t ahead, double now, unsigned max_seconds);

#endif
