/* Declarations shared by outbox.c and outbox_relay.c only. */
#ifndef CV_OUTBOX_INT_H
#define CV_OUTBOX_INT_H

/* The channel cv_outbox_add notifies and the relay listens on. */
#define NOTIFY_CHANNEL "cv_outbox"

#endif
