/*
 * backoff: when a crashed instance may be started again. Keepalived's rule:
 * 1 s after the first crash, doubling up to 60 s, so a crash loop (a bad
 * binary, a port taken by someone else) costs little CPU and log volume,
 * while a process that ran for a minute is considered healthy again.
 * The monotonic clock helpers live here too: both are dependency-free, so
 * the unit tests link them alone.
 */
#include <time.h>

#include "supervisor/sv.h"

int64_t sv_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sv_now_ms(void)
{
	return sv_now_us() / 1000;
}

void sv_backoff_init(struct sv_backoff *bo)
{
	bo->next_ms = SV_BACKOFF_MIN;
}

uint32_t sv_backoff_next(struct sv_backoff *bo, uint64_t uptime_ms)
{
	uint32_t delay;

	if (uptime_ms >= SV_BACKOFF_RESET || bo->next_ms < SV_BACKOFF_MIN)
		bo->next_ms = SV_BACKOFF_MIN;
	delay = bo->next_ms;
	bo->next_ms = bo->next_ms >= SV_BACKOFF_MAX / 2 ? SV_BACKOFF_MAX : bo->next_ms * 2;
	return delay;
}
