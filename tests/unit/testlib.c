/* testlib.c: temporary directories, files and reply checks for the tests (testlib.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testlib.h"
#include "core/compat.h"

bool
testlib_tmpdir(const char *name, char *dir_out, size_t cap)
{
	int n = snprintf(dir_out, cap, "/tmp/%s-XXXXXX", name);

	if (n < 0 || (size_t)n >= cap)
		return false;
	return mkdtemp(dir_out) != NULL;
}

void
testlib_rmtree(const char *dir)
{
	char cmd[TESTLIB_DIR_MAX + 16];
	int n;

	/* only ever our own mkdtemp names: no quote can be in them */
	n = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (n < 0 || (size_t)n >= sizeof(cmd) || strchr(dir, '\'') || system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

bool
testlib_vwrite_file(const char *path, int mode, const char *fmt, va_list ap)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = vfprintf(f, fmt, ap) >= 0;
	ok = fclose(f) == 0 && ok;
	return chmod(path, (mode_t)mode) == 0 && ok;
}

bool
testlib_write_file(const char *path, int mode, const char *fmt, ...)
{
	va_list ap;
	bool ok;

	va_start(ap, fmt);
	ok = testlib_vwrite_file(path, mode, fmt, ap);
	va_end(ap);
	return ok;
}

char *
testlib_read_file(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			text = realloc(text, cap);
			if (!text)
				break;
		}
		n = fread(text + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	if (text && ferror(f)) {
		free(text);
		text = NULL;
	}
	fclose(f);
	if (!text)
		return NULL;
	text[len] = '\0';
	if (len_out)
		*len_out = len;
	return text;
}

bool
testlib_file_contains(const char *path, const char *needle)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

bool
testlib_has(const char *out, const char *want)
{
	return out && strstr(out, want) != NULL;
}

int
testlib_count(const char *out, const char *what)
{
	int n = 0;

	while (out && (out = strstr(out, what)) != NULL) {
		n++;
		out += strlen(what);
	}
	return n;
}
