#include "config.h"

#include <string.h>

#include "server/delivery/pace.h"
#include "tap.h"

/* A destination taking rate parcels/s for secs seconds, from t = 100. */
static void
run_at(struct pace *p, double rate, double secs)
{
	double t;

	memset(p, 0, sizeof(*p));
	for (t = 100; t < 100 + secs; t += 1.0 / rate)
		pace_taken(p, t);
}

int
main(void)
{
	struct pace p;
	unsigned first, last = 0, s;
	int i, rising = 1;

	/* nothing taken yet: the pace is unknown, wait the longest */
	memset(&p, 0, sizeof(p));
	CHECK(pace_defer(&p, 1000, 50, 60) == 60);

	/* 100/s with 1000 ahead: about ten seconds, then one by one, a second per hundred */
	run_at(&p, 100, 3);
	CHECK(p.rate > 95 && p.rate < 105);
	first = pace_defer(&p, 1000, 103, 60);
	CHECK(first >= 10 && first <= 12);
	for (i = 0; i < 300; i++) {
		s = pace_defer(&p, 1000, 103, 60);
		rising &= s >= last;
		last = s;
	}
	CHECK_MSG(rising, "entries come back in order, none before the one deferred earlier");
	CHECK(last >= first + 2 && last <= first + 4);

	/* 5/s with 1000 ahead: 200 s of work, so the longest wait (no rereading the backlog) */
	run_at(&p, 5, 3);
	CHECK(pace_defer(&p, 1000, 103, 60) == 60);

	/* a burst: an unfinished first window already gives the pace */
	run_at(&p, 2000, 0.5);
	s = pace_defer(&p, 1000, 100.5, 60);
	CHECK(p.rate == 0 && s >= 1 && s <= 2);

	/* nothing ahead and a fast pace: at least a second (the runner looks once a second) */
	run_at(&p, 100000, 2);
	CHECK(pace_defer(&p, 0, 102, 60) == 1);
	return tap_done();
}
