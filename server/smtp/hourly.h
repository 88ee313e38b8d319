/*
 * smtp/hourly.h: the hourly limits of the SMTP side, two tables of counts
 * per hour (wall-clock hours, unix time / 3600):
 *  - per authenticated login, messages and recipients accepted
 *    (smtp.max_messages_per_hour, smtp.max_recipients_per_hour): a stolen
 *    password's reach. A login's counts also go to the store with each
 *    delivery (its `rates` record, written in the delivery's commit), and a
 *    count is read back from there when first needed, so a restart resets
 *    nothing;
 *  - per client address (IPv6 by /64, throttle_address_key), success
 *    reports asked by sessions without AUTH
 *    (smtp.max_success_reports_per_hour): a reflection channel (STYLE 16).
 * A count is taken when the command is accepted, under the lock that
 * decides, so parallel sessions cannot all pass one check; a transaction
 * that ends without delivery gives its login's counts back.
 *
 * Threads: any worker. Each table has its own mutex inside, never held
 * across I/O (the store is read outside it). A struct hourly_taken
 * belongs to its transaction: owning worker only.
 */
#ifndef POSTIE_SMTP_HOURLY_H
#define POSTIE_SMTP_HOURLY_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/store.h"

enum hourly_what { HOURLY_MESSAGES, HOURLY_RECIPIENTS };

/* What one transaction took from its login's allowance: given back unless delivered. */
struct hourly_taken {
	char login[STORE_LOGIN_MAX + 1];	/* "" until something was taken */
	uint64_t hour;				/* the hour it counts in (the store record's) */
	unsigned messages, recipients;
};

/*
 * Take one of what from login's allowance of max this hour; taken
 * remembers it. max 0 = no limit (nothing taken). Returns 0, ERR_LIMIT
 * (spent), or the store's error reading the saved count (fail closed: the
 * caller gives a temporary reply).
 */
int hourly_take(struct hourly_taken *taken, struct store *st, const char *login, enum hourly_what what,
    unsigned max);

/* The transaction ends without delivery: what it took is given back. No error. */
void hourly_give_back(struct hourly_taken *taken);

/* The message was delivered: what it took stays taken. No error. */
void hourly_keep(struct hourly_taken *taken);

/*
 * One more success report for the client at ip (numeric) this hour; false
 * when max are spent. max 0 = no limit. No error.
 */
bool hourly_report_take(const char *ip, unsigned max);

#endif
