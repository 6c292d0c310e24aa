/* queue-schedule.h - which queued message the queue manager tries next.
 *
 * The queue manager's data structure, pure over time (no sources, no
 * threads): main thread only, unit-tested (test-queue-schedule.c).
 *
 * Every message the manager knows has a PstQueueSlot, embedded in its
 * entry.  A slot is idle, waiting (in one binary heap ordered by due time,
 * so 100,000 deferred messages cost one timer, not 100,000), ready (in its
 * lane's FIFO) or running.
 *
 * Lanes, as Postfix's qmgr keeps a queue per destination: a message not
 * yet sorted (new, or found at start) is in the unsorted lane; once a job
 * has seen it, it is in the lane of the destination it waits for
 * ("local", a domain, "[nexthop", or "[relayhost]").  pst_queue_schedule_next()
 * takes the lanes in turn (round robin), each up to its window, all of
 * them together up to `parallel`: a backlog for one destination never
 * holds the workers while other mail waits.
 *
 * Windows: the unsorted and "local" lanes may use every worker; a remote
 * destination at most `destination_limit`.  A remote destination whose
 * attempt delivered nothing is "dead": its window drops to one (one
 * attempt at a time probes it) until an attempt delivers, then it grows
 * by one per success.  pst_queue_schedule_dead() is the set of dead
 * destinations, for jobs sorting new messages.
 *
 * Memory: one slot per queued message (48 octets in the entry) plus one
 * pointer in the heap; a lane per destination with messages.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _PstQueueSchedule PstQueueSchedule;
typedef struct _PstQueueLane PstQueueLane;

typedef enum {
  PST_QUEUE_SLOT_IDLE = 0,
  PST_QUEUE_SLOT_WAITING, /* in the heap until `due` */
  PST_QUEUE_SLOT_READY,   /* in its lane's FIFO */
  PST_QUEUE_SLOT_RUNNING, /* taken by pst_queue_schedule_next() */
} PstQueueSlotState;

typedef struct {
  PstQueueLane *lane; /* nullable: NULL is the unsorted lane */
  GList link;         /* in the lane's FIFO while READY; data: the owner */
  gint64 due;         /* monotonic µs, while WAITING */
  guint heap_index;   /* 1-based index in the heap while WAITING */
  PstQueueSlotState state;
} PstQueueSlot;

/* What one attempt said about its lane's destination. */
typedef enum {
  PST_QUEUE_LANE_NO_NEWS = 0, /* nothing tried there */
  PST_QUEUE_LANE_DELIVERED,   /* something was delivered */
  PST_QUEUE_LANE_FAILED,      /* tried, nothing delivered */
} PstQueueLaneNews;

#define PST_QUEUE_LANE_LOCAL "local"

PstQueueSchedule *pst_queue_schedule_new(guint parallel,
                                         guint destination_limit);
/* Every slot must have been removed first. */
void pst_queue_schedule_free(PstQueueSchedule *schedule);
void pst_queue_schedule_set_limits(PstQueueSchedule *schedule, guint parallel,
                                   guint destination_limit);

/* A new slot, IDLE in the unsorted lane; `owner` is what
 * pst_queue_schedule_next() returns for it. */
void pst_queue_schedule_add(PstQueueSchedule *schedule, PstQueueSlot *slot,
                            gpointer owner);
/* Moves the slot to the lane of `destination` (NULL: unsorted); a ready
 * slot moves to the end of the new lane's FIFO. */
void pst_queue_schedule_set_destination(PstQueueSchedule *schedule,
                                        PstQueueSlot *slot,
                                        const char *destination);
/* The destination of the slot's lane, NULL when unsorted. */
const char *pst_queue_slot_get_destination(const PstQueueSlot *slot);

/* State changes; each takes the slot out of where it was first. */
void pst_queue_schedule_wait(PstQueueSchedule *schedule, PstQueueSlot *slot,
                             gint64 due);
void pst_queue_schedule_ready(PstQueueSchedule *schedule, PstQueueSlot *slot);
/* Idle, in its lane (out of the heap or the FIFO). */
void pst_queue_schedule_idle(PstQueueSchedule *schedule, PstQueueSlot *slot);
/* Idle; and out of its lane (freed when nothing uses it). */
void pst_queue_schedule_remove(PstQueueSchedule *schedule, PstQueueSlot *slot);

/* The owner of the next slot to run (now RUNNING), or NULL when nothing is
 * ready or every lane with ready slots is at its window. */
gpointer pst_queue_schedule_next(PstQueueSchedule *schedule);
/* TRUE when some slot is READY: after pst_queue_schedule_next() returned
 * NULL, ready slots that wait for a running one to end. */
gboolean pst_queue_schedule_has_ready(const PstQueueSchedule *schedule);
/* A running slot's attempt ended: the slot is IDLE, in the lane of
 * `destination` (NULL: the lane it ran in), and `news` is about that
 * lane's destination. */
void pst_queue_schedule_done(PstQueueSchedule *schedule, PstQueueSlot *slot,
                             const char *destination, PstQueueLaneNews news);

/* Moves every slot due at `now` to ready; how many. */
guint pst_queue_schedule_wake(PstQueueSchedule *schedule, gint64 now);
/* The earliest due time, or G_MAXINT64 when nothing waits. */
gint64 pst_queue_schedule_next_due(PstQueueSchedule *schedule);

/* The dead remote destinations (a set of names), a new reference to an
 * immutable table that a worker may keep. */
GHashTable *pst_queue_schedule_dead(PstQueueSchedule *schedule);
/* Counts, for logs and tests. */
guint pst_queue_schedule_running(PstQueueSchedule *schedule);
guint pst_queue_schedule_waiting(PstQueueSchedule *schedule);
guint pst_queue_schedule_lanes(PstQueueSchedule *schedule);
/* The window of `destination`'s lane now (0 when it has no lane). */
guint pst_queue_schedule_window(PstQueueSchedule *schedule,
                                const char *destination);

G_END_DECLS
