/*
 * replay.c: a main() for fuzz targets in ordinary builds. It runs every
 * file under tests/fuzz/corpus/<target>/ and tests/fuzz/regress/<target>/
 * through LLVMFuzzerTestOneInput, then a bounded, seeded batch of mutations
 * of them, and reports TAP. A crash or sanitizer report fails the test.
 * With --enable-fuzzers (FUZZING_BUILD) libFuzzer supplies main() instead.
 */
#ifndef FUZZING_BUILD
#include "config.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_FILE (1 << 20)	/* corpus files are small by design */
#define REPLAY_MUTATIONS 3000		/* bounded: the test must end quickly */

static unsigned char *seeds[4096];
static size_t seed_len[4096], nseeds;
static int ntests;

static void
run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		unsigned char *data;
		size_t n;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		f = fopen(path, "rb");
		if (!f)
			continue;
		data = malloc(REPLAY_MAX_FILE);
		n = fread(data, 1, REPLAY_MAX_FILE, f);
		fclose(f);
		LLVMFuzzerTestOneInput(data, n);
		printf("ok %d - %s\n", ++ntests, path);
		if (nseeds < sizeof(seeds) / sizeof(seeds[0])) {
			seeds[nseeds] = data;
			seed_len[nseeds++] = n;
		} else {
			free(data);
		}
	}
	closedir(d);
}

/* xorshift: deterministic, so a failure can be replayed by its index */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int
main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');
	const char *top = getenv("top_srcdir");
	char dir[4096];
	unsigned char buf[8192];
	int i;

	(void)argc;
	name = name ? name + 1 : argv[0];
	if (strncmp(name, "fuzz_", 5) == 0)
		name += 5;
	if (!top)
		top = ".";
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", top, name);
	run_dir(dir);
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/regress/%s", top, name);
	run_dir(dir);

	for (i = 0; i < REPLAY_MUTATIONS; i++) {
		size_t n = 0, k;
		if (nseeds) {
			size_t s = next() % nseeds;
			n = seed_len[s] < sizeof(buf) ? seed_len[s] : sizeof(buf);
			memcpy(buf, seeds[s], n);
		}
		for (k = next() % 8 + 1; k > 0; k--) {
			uint64_t r = next();
			switch (r % 4) {
			case 0:	/* flip a byte */
				if (n)
					buf[r / 4 % n] ^= (unsigned char)(r >> 32);
				break;
			case 1:	/* insert an interesting byte */
				if (n < sizeof(buf)) {
					static const unsigned char hot[] = { '\r', '\n', '.', 0, ' ', ':', '<', '>', '@', '"', 0xff };
					size_t at = n ? r / 4 % (n + 1) : 0;
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = hot[(r >> 40) % sizeof(hot)];
					n++;
				}
				break;
			case 2:	/* truncate */
				if (n)
					n = r / 4 % n;
				break;
			default:	/* duplicate a tail */
				if (n && n < sizeof(buf) / 2) {
					size_t at = r / 4 % n;
					memcpy(buf + n, buf + at, n - at);
					n += n - at;
				}
				break;
			}
		}
		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("ok %d - %d seeded mutations\n", ++ntests, REPLAY_MUTATIONS);
	printf("1..%d\n", ntests);
	for (i = 0; i < (int)nseeds; i++)
		free(seeds[i]);
	return 0;
}
#endif
