/*
 * smtp/parse.h: RFC 5321 paths and ESMTP parameters (SIZE RFC 1870, BODY
 * RFC 6152, SMTPUTF8 RFC 6531, RET/ENVID/NOTIFY/ORCPT RFC 3461, AUTH RFC
 * 4954). Pure functions over spans: no globals, no logging, nothing
 * allocated. The stored form of an address is the validated form.
 */
#ifndef POSTIE_SMTP_PARSE_H
#define POSTIE_SMTP_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/span.h"

#define SMTP_LOCAL_MAX 64	/* RFC 5321 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX 255	/* RFC 5321 4.5.3.1.2 */
#define SMTP_PATH_MAX 256	/* RFC 5321 4.5.3.1.3 */
#define SMTP_ENVID_MAX 100	/* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500	/* RFC 3461 4.2 */
/*
 * SIZE= (RFC 1870) and a BDAT chunk's size (RFC 3030): digits only, at
 * most 20 of them (leading zeros included) and at most 2^64 - 1; more is a
 * syntax error. The limit that matters, smtp.max_message_size, is the
 * caller's (552 after MAIL, and the DATA decoder counts every chunk).
 */
#define SMTP_SIZE_DIGITS_MAX 20
#define SMTP_SIZE_MAX UINT64_MAX

enum smtp_parse_result {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_SYNTAX,	/* 501 5.5.4 (path) / 501 5.5.4 (parameters) */
	SMTP_PARSE_PARAM,	/* 555 5.5.4: unknown, unsupported or repeated parameter */
	SMTP_PARSE_UTF8,	/* 553 5.6.7: non-ASCII address without SMTPUTF8 */
};

struct smtp_path {
	char addr[SMTP_PATH_MAX + 1];	/* "local@domain" (domain lower-cased if ASCII); "" for <> */
	size_t local_len;		/* bytes of the local part in addr */
	bool is_null;			/* <> */
	bool is_postmaster;		/* <postmaster> without a domain */
	bool has_utf8;
	bool domain_is_literal;		/* [192.0.2.1] or [IPv6:...] */
};

struct smtp_mail {
	struct smtp_path path;
	uint64_t size;			/* SIZE=, 0 when not given */
	bool body_8bit, smtputf8, ret_full, ret_hdrs;
	char envid[SMTP_ENVID_MAX + 1];
};

struct smtp_rcpt {
	struct smtp_path path;
	uint8_t notify;			/* STORE_NOTIFY_* bits, 0 when not given */
	char orcpt[SMTP_ORCPT_MAX + 1];
};

/* arg: what follows "MAIL FROM:" (one space before the path is tolerated). */
enum smtp_parse_result smtp_parse_mail(struct span arg, struct smtp_mail *out);
/* arg: what follows "RCPT TO:". */
enum smtp_parse_result smtp_parse_rcpt(struct span arg, struct smtp_rcpt *out);

/*
 * arg: what follows "BDAT" (RFC 3030 2): "size" or "size LAST", the size
 * digits only. SMTP_PARSE_OK with *size_out and *last_out, or
 * SMTP_PARSE_SYNTAX (then the chunk's length is unknown).
 */
enum smtp_parse_result smtp_parse_bdat(struct span arg, uint64_t *size_out, bool *last_out);

/* The local part contains '%', '!' or '@': source-routing tricks of open relays. */
bool smtp_path_has_routing(const struct smtp_path *p);

/* The domain part of a parsed address (empty for <> and <postmaster>). */
struct span smtp_path_domain(const struct smtp_path *p);

#endif
