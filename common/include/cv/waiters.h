/* Waiting on PostgreSQL notifications: a registry of waiters, each on a key with a deadline,
 * and one LISTEN connection with one thread that wakes the waiters of a key when a NOTIFY on the
 * channel carries that key as its payload, and every waiter at its deadline. A change made by
 * any process of the database (another replica's consumer) wakes the waiters of every replica.
 * The notification is a hint: a woken waiter reads the state again. */
#ifndef CV_WAITERS_H
#define CV_WAITERS_H

#include <stddef.h>
#include <stdint.h>

#define CV_WAITERS_MAX_KEY 127 /* longest key (and NOTIFY payload) waited on, in bytes */

struct cv_waiters;

enum cv_wake {
    CV_WAKE_NOTIFIED, /* a NOTIFY carried the key, or notifications may have been missed (the
                         LISTEN connection was re-established) */
    CV_WAKE_DEADLINE, /* the deadline passed */
    CV_WAKE_SHUTDOWN, /* cv_waiters_destroy */
};

/* Called once per registered waiter, on the registry's thread (or the destroying one), without
 * the registry's lock held: it must be quick and must not call back into the registry. */
typedef void (*cv_waiters_fn)(void *arg, enum cv_wake why);

/* Starts the registry: a thread with its own connection to conninfo that LISTENs on channel (an
 * identifier), holding at most cap waiters. The connection is made (and re-made, with backoff)
 * by the thread, so a database that is away now does not fail this. Returns NULL with errstr on
 * bad arguments or out of resources. */
struct cv_waiters *cv_waiters_new(const char *conninfo, const char *channel, size_t cap,
                                  char *errstr, size_t errstr_size);

/* Wakes every waiter still registered (CV_WAKE_SHUTDOWN) and stops the thread; cv_waiters_add
 * answers 1 from then on. NULL: no-op. */
void cv_waiters_stop(struct cv_waiters *w);
/* Stops (if not done yet), closes the connection and frees the registry. NULL: no-op. */
void cv_waiters_destroy(struct cv_waiters *w);

/* A mark to take before reading the state a caller may then decide to wait on; handed to
 * cv_waiters_add, it closes the window between the read and the registration. */
uint64_t cv_waiters_mark(struct cv_waiters *w);

/* Registers a waiter on key until deadline_ms (cv_monotonic_ms clock). Returns
 *   0  registered: fn(arg, why) will be called exactly once;
 *   1  not registered, read the state again now: key was notified after mark (or
 *      notifications may have been missed since, or the registry is stopping);
 *  -1  not registered: cap waiters are registered already;
 *  -2  not registered: key is empty or longer than CV_WAITERS_MAX_KEY. */
int cv_waiters_add(struct cv_waiters *w, const char *key, uint64_t mark, int64_t deadline_ms,
                   cv_waiters_fn fn, void *arg);

/* Waiters registered now. */
size_t cv_waiters_count(struct cv_waiters *w);

/* 1 while the LISTEN connection is up. */
int cv_waiters_listening(struct cv_waiters *w);

#endif
