/*
 * clock.h: the one clock every thread reads for deadlines and timers:
 * CLOCK_MONOTONIC in milliseconds, never moved by the wall clock.
 */
#ifndef POSTIE_CLOCK_H
#define POSTIE_CLOCK_H

#include <stdint.h>

uint64_t clock_now_ms(void);

#endif
