/*
 * xmalloc.h: allocation that cannot fail. Every per-connection allocation
 * is capped elsewhere, so running out of memory means a bug or a broken
 * machine, not an attacker: log and abort. Any thread.
 */
#ifndef POSTIE_XMALLOC_H
#define POSTIE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);	/* overflow-checked, zeroed */
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);	/* always NUL-terminated */

#endif
