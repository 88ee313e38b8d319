#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "server/smtp/parse.h"
#include "storage/store.h"
#include "core/compat.h"

/* RFC 5322 atext, ASCII part */
static bool
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static bool
is_letdig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Length of a valid UTF-8 sequence at p (RFC 3629), 0 if invalid. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t need, i;
	uint32_t cp;

	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0;
	need = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	if (n < need)
		return 0;
	cp = p[0] & (0x7f >> need);
	for (i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;	/* overlong forms and surrogates */
	return need;
}

/* A domain: dot-separated labels of letters, digits and inner hyphens (or UTF-8). */
static bool
valid_domain(struct span d, bool *utf8)
{
	size_t i = 0, label = 0;

	if (d.len == 0 || d.len > SMTP_DOMAIN_MAX)
		return false;
	while (i < d.len) {
		unsigned char c = d.p[i];

		if (c == '.') {
			if (!label || d.p[i - 1] == '-')
				return false;
			label = 0;
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t k = utf8_len(d.p + i, d.len - i);
			if (!k)
				return false;
			*utf8 = true;
			i += k;
			label += k;
		} else {
			if (!is_letdig(c) && !(c == '-' && label))
				return false;
			i++;
			label++;
		}
		if (label > 63)
			return false;
	}
	return label && d.p[d.len - 1] != '-';
}

static bool
valid_literal(struct span d)
{
	char buf[64];
	unsigned char bin[16];

	if (d.len < 3 || d.len >= sizeof(buf) || d.p[0] != '[' || d.p[d.len - 1] != ']')
		return false;
	if (d.len > 7 && strncasecmp((const char *)d.p + 1, "IPv6:", 5) == 0) {
		memcpy(buf, d.p + 6, d.len - 7);
		buf[d.len - 7] = '\0';
		return inet_pton(AF_INET6, buf, bin) == 1;
	}
	memcpy(buf, d.p + 1, d.len - 2);
	buf[d.len - 2] = '\0';
	return inet_pton(AF_INET, buf, bin) == 1;
}

/* The closing '>' of a path starting at s.p[0] == '<', outside any quoted string. */
static bool
path_end(struct span s, size_t *end_out)
{
	size_t end;

	for (end = 1; end < s.len && s.p[end] != '>'; end++) {
		if (s.p[end] == '"') {
			for (end++; end < s.len && s.p[end] != '"'; end++)
				if (s.p[end] == '\\')
					end++;
			if (end >= s.len)
				return false;
		}
	}
	*end_out = end;
	return end < s.len;
}

/* A source route "@a,@b:" before the mailbox is parsed and dropped (RFC 5321 4.1.2, C.). */
static bool
skip_route(struct span *inner, bool *utf8)
{
	struct span route, hops, hop;
	long colon = span_find(*inner, ':');

	if (colon < 0)
		return false;
	route = span_head(*inner, (size_t)colon);
	for (hops = route; hops.len;) {
		span_split(hops, ',', &hop, &hops);
		if (hop.len < 2 || hop.p[0] != '@' || !valid_domain(span_tail(hop, 1), utf8))
			return false;
	}
	*inner = span_tail(*inner, (size_t)colon + 1);
	return true;
}

/* A quoted-string local part at the start of inner ("..."), quotes included. */
static bool
quoted_local(struct span inner, struct span *local_out, bool *utf8)
{
	size_t i;

	for (i = 1; i < inner.len && inner.p[i] != '"'; i++) {
		unsigned char c = inner.p[i];

		if (c == '\\') {
			if (++i >= inner.len || inner.p[i] < 32 || inner.p[i] > 126)
				return false;
		} else if (c >= 0x80) {
			size_t k = utf8_len(inner.p + i, inner.len - i);
			if (!k)
				return false;
			*utf8 = true;
			i += k - 1;
		} else if (c < 32 || c == 127) {
			return false;
		}
	}
	if (i >= inner.len)
		return false;
	*local_out = span_head(inner, i + 1);
	return true;
}

/* A dot-string local part: what precedes the last '@' of inner. */
static bool
dot_local(struct span inner, struct span *local_out, bool *utf8)
{
	struct span local;
	long at = -1;
	size_t i;

	for (i = 0; i < inner.len; i++)
		if (inner.p[i] == '@')
			at = (long)i;
	if (at <= 0)
		return false;
	local = span_head(inner, (size_t)at);
	for (i = 0; i < local.len; i++) {
		unsigned char c = local.p[i];

		if (c == '.') {
			if (i == 0 || i + 1 == local.len || local.p[i - 1] == '.')
				return false;
		} else if (c >= 0x80) {
			size_t k = utf8_len(local.p + i, local.len - i);
			if (!k)
				return false;
			*utf8 = true;
			i += k - 1;
		} else if (!is_atext(c)) {
			return false;
		}
	}
	*local_out = local;
	return true;
}

/* The stored form: local part as given, '@', the domain lower-cased (ASCII). */
static void
path_store(struct smtp_path *out, struct span local, struct span domain, bool utf8)
{
	size_t i;

	memcpy(out->addr, local.p, local.len);
	out->addr[local.len] = '@';
	for (i = 0; i < domain.len; i++) {
		unsigned char c = domain.p[i];
		out->addr[local.len + 1 + i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out->addr[local.len + 1 + domain.len] = '\0';
	out->local_len = local.len;
	out->has_utf8 = utf8;
}

/* Parse "<...>" at the start of s; *rest is what follows. */
static enum smtp_parse_result
parse_path(struct span s, struct smtp_path *out, struct span *rest, bool allow_null)
{
	struct span inner, local, domain;
	size_t end;
	bool utf8 = false;

	memset(out, 0, sizeof(*out));
	if (!s.len || s.p[0] != '<' || !path_end(s, &end) || end - 1 > SMTP_PATH_MAX)
		return SMTP_PARSE_SYNTAX;
	inner = span_make(s.p + 1, end - 1);
	*rest = span_tail(s, end + 1);
	if (!inner.len) {
		if (!allow_null)
			return SMTP_PARSE_SYNTAX;
		out->is_null = true;
		return SMTP_PARSE_OK;
	}
	if (span_ieq(inner, "postmaster")) {
		out->is_postmaster = true;
		memcpy(out->addr, "postmaster", 10);
		out->local_len = 10;
		return SMTP_PARSE_OK;
	}
	if (inner.p[0] == '@' && !skip_route(&inner, &utf8))
		return SMTP_PARSE_SYNTAX;
	if (!(inner.len && inner.p[0] == '"' ? quoted_local(inner, &local, &utf8) : dot_local(inner, &local, &utf8)))
		return SMTP_PARSE_SYNTAX;
	if (local.len == 0 || local.len > SMTP_LOCAL_MAX || local.len >= inner.len ||
	    inner.p[local.len] != '@')
		return SMTP_PARSE_SYNTAX;
	domain = span_tail(inner, local.len + 1);
	if (domain.len && domain.p[0] == '[') {
		if (!valid_literal(domain))
			return SMTP_PARSE_SYNTAX;
		out->domain_is_literal = true;
	} else if (!valid_domain(domain, &utf8)) {
		return SMTP_PARSE_SYNTAX;
	}
	if (local.len + 1 + domain.len > SMTP_PATH_MAX)
		return SMTP_PARSE_SYNTAX;
	path_store(out, local, domain, utf8);
	return SMTP_PARSE_OK;
}

/* esmtp-value (RFC 5321 4.1.2): 1*(%d33-60 / %d62-126) */
static bool
valid_value(struct span v)
{
	size_t i;

	if (!v.len)
		return false;
	for (i = 0; i < v.len; i++)
		if (v.p[i] < 33 || v.p[i] > 126 || v.p[i] == '=')
			return false;
	return true;
}

/* xtext (RFC 3461 4): printable ASCII with "+HH" for the rest; returns validity. */
static bool
valid_xtext(struct span v)
{
	size_t i;

	for (i = 0; i < v.len; i++) {
		if (v.p[i] == '+') {
			/* "+" then two upper-case hex digits */
			if (i + 2 >= v.len || !v.p[i + 1] || !v.p[i + 2] ||
			    !strchr("0123456789ABCDEF", v.p[i + 1]) || !strchr("0123456789ABCDEF", v.p[i + 2]))
				return false;
			i += 2;
		} else if (v.p[i] < 33 || v.p[i] > 126 || v.p[i] == '=') {
			return false;
		}
	}
	return true;
}

/* SIZE= and BDAT's size: digits only, within SMTP_SIZE_DIGITS_MAX and SMTP_SIZE_MAX. */
static bool
parse_size(struct span v, uint64_t *out)
{
	return v.len <= SMTP_SIZE_DIGITS_MAX && span_to_u64(v, SMTP_SIZE_MAX, out);
}

enum smtp_parse_result
smtp_parse_bdat(struct span arg, uint64_t *size_out, bool *last_out)
{
	struct span num, rest;
	bool has_rest;

	span_split(arg, ' ', &num, &rest);
	has_rest = num.len < arg.len;	/* a space, even with nothing after it */
	if (!parse_size(num, size_out) || (has_rest && !span_ieq(rest, "LAST")))
		return SMTP_PARSE_SYNTAX;
	*last_out = has_rest;
	return SMTP_PARSE_OK;
}

/* Split the next " KEY[=VALUE]" off rest. Returns false at the end. */
static bool
next_param(struct span *rest, struct span *key, struct span *value, bool *has_value, bool *bad)
{
	struct span p, after;

	*bad = false;
	if (!rest->len)
		return false;
	if (rest->p[0] != ' ') {
		*bad = true;
		return false;
	}
	span_split(span_tail(*rest, 1), ' ', &p, &after);
	*rest = span_tail(*rest, 1 + p.len);	/* from the next space on: checked next time */
	span_split(p, '=', key, value);
	*has_value = key->len < p.len;
	if (!key->len || (*has_value && !valid_value(*value)))
		*bad = true;
	return !*bad;
}

enum smtp_parse_result
smtp_parse_mail(struct span arg, struct smtp_mail *out)
{
	struct span rest, key, value;
	enum smtp_parse_result r;
	unsigned seen = 0;
	bool has_value, bad;

	memset(out, 0, sizeof(*out));
	if (arg.len && arg.p[0] == ' ')
		arg = span_tail(arg, 1);	/* "MAIL FROM: <a@b>" is common; tolerate it */
	if ((r = parse_path(arg, &out->path, &rest, true)))
		return r;
	if (out->path.is_postmaster)
		return SMTP_PARSE_SYNTAX;	/* a reverse-path needs a domain */
	while (next_param(&rest, &key, &value, &has_value, &bad)) {
		unsigned bit;

		if (span_ieq(key, "SIZE") && has_value) {
			bit = 1;
			if (!parse_size(value, &out->size))
				return SMTP_PARSE_SYNTAX;
		} else if (span_ieq(key, "BODY") && has_value) {
			bit = 2;
			if (span_ieq(value, "8BITMIME"))
				out->body_8bit = true;
			else if (!span_ieq(value, "7BIT"))
				return SMTP_PARSE_PARAM;	/* BINARYMIME is not offered */
		} else if (span_ieq(key, "SMTPUTF8") && !has_value) {
			bit = 4;
			out->smtputf8 = true;
		} else if (span_ieq(key, "RET") && has_value) {
			bit = 8;
			if (span_ieq(value, "FULL"))
				out->ret_full = true;
			else if (span_ieq(value, "HDRS"))
				out->ret_hdrs = true;
			else
				return SMTP_PARSE_SYNTAX;
		} else if (span_ieq(key, "ENVID") && has_value) {
			bit = 16;
			if (value.len > SMTP_ENVID_MAX || !valid_xtext(value))
				return SMTP_PARSE_SYNTAX;
			memcpy(out->envid, value.p, value.len);
			out->envid[value.len] = '\0';
		} else if (span_ieq(key, "AUTH") && has_value) {
			bit = 32;	/* RFC 4954 5: accepted; we do not act on it */
		} else {
			return SMTP_PARSE_PARAM;
		}
		if (seen & bit)
			return SMTP_PARSE_PARAM;	/* repeated */
		seen |= bit;
	}
	if (bad)
		return SMTP_PARSE_SYNTAX;
	if (out->path.has_utf8 && !out->smtputf8)
		return SMTP_PARSE_UTF8;
	return SMTP_PARSE_OK;
}

enum smtp_parse_result
smtp_parse_rcpt(struct span arg, struct smtp_rcpt *out)
{
	struct span rest, key, value;
	enum smtp_parse_result r;
	unsigned seen = 0;
	bool has_value, bad;

	memset(out, 0, sizeof(*out));
	if (arg.len && arg.p[0] == ' ')
		arg = span_tail(arg, 1);
	if ((r = parse_path(arg, &out->path, &rest, false)))
		return r;
	while (next_param(&rest, &key, &value, &has_value, &bad)) {
		unsigned bit;

		if (span_ieq(key, "NOTIFY") && has_value) {
			struct span v = value;

			bit = 1;
			if (span_ieq(v, "NEVER")) {
				out->notify = STORE_NOTIFY_NEVER;
			} else {
				while (v.len) {
					struct span item, next;

					span_split(v, ',', &item, &next);
					if (span_ieq(item, "SUCCESS"))
						out->notify |= STORE_NOTIFY_SUCCESS;
					else if (span_ieq(item, "FAILURE"))
						out->notify |= STORE_NOTIFY_FAILURE;
					else if (span_ieq(item, "DELAY"))
						out->notify |= STORE_NOTIFY_DELAY;
					else
						return SMTP_PARSE_SYNTAX;	/* NEVER mixed, or unknown */
					if (item.len < v.len && !next.len)
						return SMTP_PARSE_SYNTAX;	/* a comma with nothing after it */
					v = next;
				}
			}
		} else if (span_ieq(key, "ORCPT") && has_value) {
			long semi = span_find(value, ';');

			bit = 2;
			if (semi <= 0 || value.len > SMTP_ORCPT_MAX || !valid_xtext(span_tail(value, (size_t)semi + 1)))
				return SMTP_PARSE_SYNTAX;
			memcpy(out->orcpt, value.p, value.len);
			out->orcpt[value.len] = '\0';
		} else {
			return SMTP_PARSE_PARAM;
		}
		if (seen & bit)
			return SMTP_PARSE_PARAM;
		seen |= bit;
	}
	return bad ? SMTP_PARSE_SYNTAX : SMTP_PARSE_OK;
}

bool
smtp_path_has_routing(const struct smtp_path *p)
{
	size_t i;

	for (i = 0; i < p->local_len; i++)
		if (p->addr[i] == '%' || p->addr[i] == '!' || p->addr[i] == '@')
			return true;
	return false;
}

struct span
smtp_path_domain(const struct smtp_path *p)
{
	if (p->is_null || p->is_postmaster)
		return span_make(p->addr, 0);
	return span_cstr(p->addr + p->local_len + 1);
}
