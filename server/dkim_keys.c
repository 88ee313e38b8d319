/*
 * dkim_keys.c: DKIM keys on disk and the set in use (dkim_keys.h).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "server/dkim_keys.h"
#include "core/compat.h"

struct entry {
	struct dkim_key k;	/* points into the strings below */
	char *domain, *selector;
	struct tls_privkey *key;
};

struct dkim_keyset {
	atomic_int refs;
	struct entry *e;
	size_t n;
};

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dkim_keyset *current;

bool
dkim_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > max || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '-' || (c == '.' && s[i + 1] != '.')))
			return false;
	}
	return true;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir that pass keep(), sorted; at most DKIM_KEYS_MAX. */
static int
list_dir(const char *dir, bool (*keep)(const char *), char ***out, size_t *n_out)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	if (!d)
		return errno == ENOENT ? 0 : ERR_IO;
	while ((de = readdir(d))) {
		if (!keep(de->d_name))
			continue;
		if (n == DKIM_KEYS_MAX) {
			log_msg(LOG_LEVEL_WARN, "event=dkim_key dir=\"%s\" error=\"more than %d entries\"", dir, DKIM_KEYS_MAX);
			break;
		}
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	*out = names;
	*n_out = n;
	return 0;
}

static bool
keep_domain(const char *name)
{
	return dkim_name_ok(name, DKIM_DOMAIN_MAX);
}

static bool
keep_keyfile(const char *name)
{
	size_t n = strlen(name);
	char sel[DKIM_SELECTOR_MAX + 1];

	if (n <= 4 || n - 4 > DKIM_SELECTOR_MAX || strcmp(name + n - 4, ".key") != 0)
		return false;
	memcpy(sel, name, n - 4);
	sel[n - 4] = '\0';
	return dkim_name_ok(sel, DKIM_SELECTOR_MAX);
}

static void
free_names(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int
dkim_keys_scan(const char *dir,
    int (*fn)(void *arg, const char *domain, const char *selector, const char *path), void *arg)
{
	char **domains, **files, path[4096], sub[4096];
	size_t nd, nf, i, j;
	int rc, len;

	if ((rc = list_dir(dir, keep_domain, &domains, &nd)))
		return rc;
	for (i = 0; !rc && i < nd; i++) {
		len = snprintf(sub, sizeof(sub), "%s/%s", dir, domains[i]);
		if (len < 0 || (size_t)len >= sizeof(sub))
			continue;
		if (list_dir(sub, keep_keyfile, &files, &nf))
			continue;	/* not a directory, or unreadable: no keys there */
		for (j = 0; !rc && j < nf; j++) {
			len = snprintf(path, sizeof(path), "%s/%s", sub, files[j]);
			if (len < 0 || (size_t)len >= sizeof(path))
				continue;
			files[j][strlen(files[j]) - 4] = '\0';	/* the selector */
			rc = fn(arg, domains[i], files[j], path);
		}
		free_names(files, nf);
	}
	free_names(domains, nd);
	return rc;
}

static int
load_one(void *arg, const char *domain, const char *selector, const char *path)
{
	struct dkim_keyset *ks = arg;
	struct tls_privkey *key;
	struct entry *e;
	int rc = tls_privkey_load(path, &key);

	if (rc) {
		log_msg(LOG_LEVEL_ERR, "event=dkim_key file=\"%s\" error=\"%s\" action=skipped", path,
		    rc == ERR_PERM ? "not an Ed25519 or RSA 2048-4096 key" : rc == ERR_IO ? "unreadable" : "not a PEM private key");
		return 0;
	}
	ks->e = xrealloc(ks->e, (ks->n + 1) * sizeof(*ks->e));
	e = &ks->e[ks->n++];
	e->domain = xstrdup(domain);
	e->selector = xstrdup(selector);
	e->key = key;
	return 0;
}

int
dkim_keyset_load(const char *dir, struct dkim_keyset **out)
{
	struct dkim_keyset *ks = xcalloc(1, sizeof(*ks));
	size_t i;
	int rc;

	atomic_init(&ks->refs, 1);
	rc = dkim_keys_scan(dir, load_one, ks);
	if (rc)
		log_msg(LOG_LEVEL_ERR, "event=dkim_key dir=\"%s\" error=\"cannot read the directory\"", dir);
	for (i = 0; i < ks->n; i++) {	/* pointers last: the array moved while it grew */
		ks->e[i].k.domain = ks->e[i].domain;
		ks->e[i].k.selector = ks->e[i].selector;
		ks->e[i].k.key = ks->e[i].key;
	}
	*out = ks;
	return rc;
}

struct dkim_keyset *
dkim_keyset_ref(struct dkim_keyset *ks)
{
	if (ks)
		atomic_fetch_add(&ks->refs, 1);
	return ks;
}

void
dkim_keyset_unref(struct dkim_keyset *ks)
{
	size_t i;

	if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
		return;
	for (i = 0; i < ks->n; i++) {
		free(ks->e[i].domain);
		free(ks->e[i].selector);
		tls_privkey_free(ks->e[i].key);
	}
	free(ks->e);
	free(ks);
}

size_t
dkim_keyset_count(const struct dkim_keyset *ks)
{
	return ks ? ks->n : 0;
}

const struct dkim_key *
dkim_keyset_find(const struct dkim_keyset *ks, const char *domain, enum tls_key_alg alg)
{
	const struct dkim_key *best = NULL;
	size_t i;

	for (i = 0; ks && i < ks->n; i++) {
		const struct entry *e = &ks->e[i];

		/* sorted by selector within a domain: the last match is the greatest */
		if (strcmp(e->domain, domain) == 0 && tls_privkey_alg(e->key) == alg)
			best = &e->k;
	}
	return best;
}

struct dkim_keyset *
dkim_keys_current(void)
{
	struct dkim_keyset *ks;

	pthread_mutex_lock(&current_lock);
	ks = dkim_keyset_ref(current);
	pthread_mutex_unlock(&current_lock);
	return ks;
}

void
dkim_keys_set_current(struct dkim_keyset *ks)
{
	struct dkim_keyset *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = ks;
	pthread_mutex_unlock(&current_lock);
	dkim_keyset_unref(old);
}
