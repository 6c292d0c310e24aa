/* queue-schedule.c - lanes, windows and the due heap (see queue-schedule.h).
 *
 * Invariants: a lane is in the round exactly when it has ready slots and
 * runs fewer than its window; `running` is the sum of the lanes'; a
 * slot's lane counts it in `slots` whatever its state, and a named lane
 * with no slots and nothing running is freed (its dead mark with it: a
 * destination with nothing queued has nothing to protect).
 */
#include <string.h>

#include "queue/queue-schedule.h"

struct _PstQueueLane {
  char *destination; /* owned; NULL for the unsorted lane */
  GQueue ready;      /* of PstQueueSlot.link */
  GList round_link;  /* in schedule->round; data: this lane */
  gboolean in_round;
  guint running;
  guint window; /* 1 .. its limit */
  guint slots;  /* slots in this lane, any state */
  gboolean dead;
};

struct _PstQueueSchedule {
  guint parallel;
  guint destination_limit;
  guint running;
  guint ready; /* slots READY, in any lane */
  PstQueueLane unsorted;
  GHashTable *lanes; /* owned: destination -> PstQueueLane* (owned) */
  GQueue round;      /* of PstQueueLane.round_link */
  GPtrArray *heap;   /* of PstQueueSlot*; [0] unused */
  GHashTable *dead;  /* owned, nullable: the snapshot; NULL when stale */
};

/* --- Lanes ----------------------------------------------------------------- */

static gboolean lane_is_remote(const PstQueueLane *lane) {
  return lane->destination != NULL &&
         strcmp(lane->destination, PST_QUEUE_LANE_LOCAL) != 0;
}

static guint lane_limit(const PstQueueSchedule *schedule,
                        const PstQueueLane *lane) {
  if (!lane_is_remote(lane))
    return schedule->parallel;
  return MAX(1, MIN(schedule->destination_limit, schedule->parallel));
}

static void lane_free(gpointer data) {
  PstQueueLane *lane = data;
  g_free(lane->destination);
  g_free(lane);
}

/* Puts the lane in the round or takes it out, as its state says. */
static void lane_update_round(PstQueueSchedule *schedule, PstQueueLane *lane) {
  gboolean eligible =
      !g_queue_is_empty(&lane->ready) && lane->running < lane->window;
  if (eligible && !lane->in_round)
    g_queue_push_tail_link(&schedule->round, &lane->round_link);
  else if (!eligible && lane->in_round)
    g_queue_unlink(&schedule->round, &lane->round_link);
  lane->in_round = eligible;
}

static PstQueueLane *lane_get(PstQueueSchedule *schedule,
                              const char *destination) {
  if (destination == NULL)
    return &schedule->unsorted;
  PstQueueLane *lane = g_hash_table_lookup(schedule->lanes, destination);
  if (lane == NULL) {
    lane = g_new0(PstQueueLane, 1);
    lane->destination = g_strdup(destination);
    lane->round_link.data = lane;
    lane->window = lane_limit(schedule, lane);
    g_hash_table_insert(schedule->lanes, lane->destination, lane);
  }
  return lane;
}

static void lane_release(PstQueueSchedule *schedule, PstQueueLane *lane) {
  if (lane == &schedule->unsorted || lane->slots > 0 || lane->running > 0)
    return;
  if (lane->dead)
    g_clear_pointer(&schedule->dead, g_hash_table_unref);
  if (lane->in_round)
    g_queue_unlink(&schedule->round, &lane->round_link);
  g_hash_table_remove(schedule->lanes, lane->destination);
}

static void lane_set_dead(PstQueueSchedule *schedule, PstQueueLane *lane,
                          gboolean dead) {
  if (lane->dead != dead)
    g_clear_pointer(&schedule->dead, g_hash_table_unref);
  lane->dead = dead;
  lane->window = dead ? 1 : MIN(lane->window + 1, lane_limit(schedule, lane));
  lane_update_round(schedule, lane);
}

/* --- The due heap ------------------------------------------------------------ */

static PstQueueSlot *heap_at(PstQueueSchedule *schedule, guint i) {
  return schedule->heap->pdata[i];
}

static void heap_put(PstQueueSchedule *schedule, guint i, PstQueueSlot *slot) {
  schedule->heap->pdata[i] = slot;
  slot->heap_index = i;
}

static void heap_sift_up(PstQueueSchedule *schedule, guint i) {
  PstQueueSlot *slot = heap_at(schedule, i);
  while (i > 1 && heap_at(schedule, i / 2)->due > slot->due) {
    heap_put(schedule, i, heap_at(schedule, i / 2));
    i /= 2;
  }
  heap_put(schedule, i, slot);
}

static void heap_sift_down(PstQueueSchedule *schedule, guint i) {
  guint n = schedule->heap->len - 1;
  PstQueueSlot *slot = heap_at(schedule, i);
  for (;;) {
    guint child = 2 * i;
    if (child > n)
      break;
    if (child < n && heap_at(schedule, child + 1)->due <
                         heap_at(schedule, child)->due)
      child++;
    if (heap_at(schedule, child)->due >= slot->due)
      break;
    heap_put(schedule, i, heap_at(schedule, child));
    i = child;
  }
  heap_put(schedule, i, slot);
}

static void heap_remove(PstQueueSchedule *schedule, PstQueueSlot *slot) {
  guint i = slot->heap_index;
  guint last = schedule->heap->len - 1;
  slot->heap_index = 0;
  if (i != last) {
    PstQueueSlot *moved = heap_at(schedule, last);
    g_ptr_array_set_size(schedule->heap, last);
    heap_put(schedule, i, moved);
    heap_sift_up(schedule, i);
    heap_sift_down(schedule, moved->heap_index);
  } else {
    g_ptr_array_set_size(schedule->heap, last);
  }
}

/* --- Slots ------------------------------------------------------------------ */

void pst_queue_schedule_add(PstQueueSchedule *schedule, PstQueueSlot *slot,
                            gpointer owner) {
  memset(slot, 0, sizeof *slot);
  slot->link.data = owner;
  schedule->unsorted.slots++;
}

/* Out of the heap or the lane's FIFO; the state is then IDLE. */
static void slot_detach(PstQueueSchedule *schedule, PstQueueSlot *slot) {
  PstQueueLane *lane = slot->lane != NULL ? slot->lane : &schedule->unsorted;
  if (slot->state == PST_QUEUE_SLOT_WAITING) {
    heap_remove(schedule, slot);
  } else if (slot->state == PST_QUEUE_SLOT_READY) {
    g_queue_unlink(&lane->ready, &slot->link);
    schedule->ready--;
    lane_update_round(schedule, lane);
  }
  g_return_if_fail(slot->state != PST_QUEUE_SLOT_RUNNING);
  slot->state = PST_QUEUE_SLOT_IDLE;
}

void pst_queue_schedule_set_destination(PstQueueSchedule *schedule,
                                        PstQueueSlot *slot,
                                        const char *destination) {
  PstQueueLane *old = slot->lane != NULL ? slot->lane : &schedule->unsorted;
  PstQueueLane *lane = lane_get(schedule, destination);
  if (lane == old)
    return;
  gboolean was_ready = slot->state == PST_QUEUE_SLOT_READY;
  if (was_ready)
    slot_detach(schedule, slot);
  lane->slots++;
  old->slots--;
  slot->lane = lane == &schedule->unsorted ? NULL : lane;
  lane_release(schedule, old);
  if (was_ready)
    pst_queue_schedule_ready(schedule, slot);
}

const char *pst_queue_slot_get_destination(const PstQueueSlot *slot) {
  return slot->lane != NULL ? slot->lane->destination : NULL;
}

void pst_queue_schedule_wait(PstQueueSchedule *schedule, PstQueueSlot *slot,
                             gint64 due) {
  slot_detach(schedule, slot);
  slot->due = due;
  slot->state = PST_QUEUE_SLOT_WAITING;
  g_ptr_array_add(schedule->heap, slot);
  heap_sift_up(schedule, schedule->heap->len - 1);
}

void pst_queue_schedule_ready(PstQueueSchedule *schedule, PstQueueSlot *slot) {
  if (slot->state == PST_QUEUE_SLOT_READY)
    return;
  slot_detach(schedule, slot);
  PstQueueLane *lane = slot->lane != NULL ? slot->lane : &schedule->unsorted;
  slot->state = PST_QUEUE_SLOT_READY;
  g_queue_push_tail_link(&lane->ready, &slot->link);
  schedule->ready++;
  lane_update_round(schedule, lane);
}

void pst_queue_schedule_idle(PstQueueSchedule *schedule, PstQueueSlot *slot) {
  slot_detach(schedule, slot);
}

void pst_queue_schedule_remove(PstQueueSchedule *schedule, PstQueueSlot *slot) {
  slot_detach(schedule, slot);
  PstQueueLane *lane = slot->lane != NULL ? slot->lane : &schedule->unsorted;
  lane->slots--;
  slot->lane = NULL;
  lane_release(schedule, lane);
}

/* --- Running ------------------------------------------------------------------ */

static PstQueueSlot *slot_of_link(GList *link) {
  return (PstQueueSlot *)((char *)link - G_STRUCT_OFFSET(PstQueueSlot, link));
}

gpointer pst_queue_schedule_next(PstQueueSchedule *schedule) {
  if (schedule->running >= schedule->parallel ||
      g_queue_is_empty(&schedule->round))
    return NULL;
  PstQueueLane *lane = g_queue_peek_head(&schedule->round);
  PstQueueSlot *slot = slot_of_link(g_queue_pop_head_link(&lane->ready));
  schedule->ready--;
  slot->state = PST_QUEUE_SLOT_RUNNING;
  lane->running++;
  schedule->running++;
  /* Its turn is over: to the end of the round. */
  g_queue_unlink(&schedule->round, &lane->round_link);
  lane->in_round = FALSE;
  lane_update_round(schedule, lane);
  return slot->link.data;
}

gboolean pst_queue_schedule_has_ready(const PstQueueSchedule *schedule) {
  return schedule->ready > 0;
}

void pst_queue_schedule_done(PstQueueSchedule *schedule, PstQueueSlot *slot,
                             const char *destination, PstQueueLaneNews news) {
  g_return_if_fail(slot->state == PST_QUEUE_SLOT_RUNNING);
  PstQueueLane *ran = slot->lane != NULL ? slot->lane : &schedule->unsorted;
  ran->running--;
  schedule->running--;
  slot->state = PST_QUEUE_SLOT_IDLE;
  PstQueueLane *lane = destination != NULL ? lane_get(schedule, destination)
                                           : ran;
  if (lane != ran) {
    lane->slots++;
    ran->slots--;
    slot->lane = lane == &schedule->unsorted ? NULL : lane;
  }
  if (news != PST_QUEUE_LANE_NO_NEWS && lane_is_remote(lane))
    lane_set_dead(schedule, lane, news == PST_QUEUE_LANE_FAILED);
  lane_update_round(schedule, ran);
  if (lane != ran)
    lane_release(schedule, ran);
}

/* --- Time --------------------------------------------------------------------- */

guint pst_queue_schedule_wake(PstQueueSchedule *schedule, gint64 now) {
  guint woken = 0;
  while (schedule->heap->len > 1 && heap_at(schedule, 1)->due <= now) {
    pst_queue_schedule_ready(schedule, heap_at(schedule, 1));
    woken++;
  }
  return woken;
}

gint64 pst_queue_schedule_next_due(PstQueueSchedule *schedule) {
  return schedule->heap->len > 1 ? heap_at(schedule, 1)->due : G_MAXINT64;
}

/* --- Life cycle and counts ------------------------------------------------------- */

PstQueueSchedule *pst_queue_schedule_new(guint parallel,
                                         guint destination_limit) {
  PstQueueSchedule *schedule = g_new0(PstQueueSchedule, 1);
  schedule->parallel = MAX(parallel, 1);
  schedule->destination_limit = MAX(destination_limit, 1);
  schedule->unsorted.round_link.data = &schedule->unsorted;
  schedule->unsorted.window = schedule->parallel;
  schedule->lanes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                          lane_free);
  schedule->heap = g_ptr_array_new();
  g_ptr_array_add(schedule->heap, NULL);
  return schedule;
}

void pst_queue_schedule_free(PstQueueSchedule *schedule) {
  if (schedule == NULL)
    return;
  g_hash_table_unref(schedule->lanes);
  g_ptr_array_unref(schedule->heap);
  g_clear_pointer(&schedule->dead, g_hash_table_unref);
  g_free(schedule);
}

void pst_queue_schedule_set_limits(PstQueueSchedule *schedule, guint parallel,
                                   guint destination_limit) {
  schedule->parallel = MAX(parallel, 1);
  schedule->destination_limit = MAX(destination_limit, 1);
  schedule->unsorted.window = schedule->parallel;
  lane_update_round(schedule, &schedule->unsorted);
  GHashTableIter iter;
  PstQueueLane *lane;
  g_hash_table_iter_init(&iter, schedule->lanes);
  while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&lane)) {
    guint limit = lane_limit(schedule, lane);
    lane->window = lane->dead ? 1 : limit;
    lane_update_round(schedule, lane);
  }
}

GHashTable *pst_queue_schedule_dead(PstQueueSchedule *schedule) {
  if (schedule->dead == NULL) {
    schedule->dead = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                           NULL);
    GHashTableIter iter;
    PstQueueLane *lane;
    g_hash_table_iter_init(&iter, schedule->lanes);
    while (g_hash_table_iter_next(&iter, NULL, (gpointer *)&lane))
      if (lane->dead)
        g_hash_table_add(schedule->dead, g_strdup(lane->destination));
  }
  return g_hash_table_ref(schedule->dead);
}

guint pst_queue_schedule_running(PstQueueSchedule *schedule) {
  return schedule->running;
}

guint pst_queue_schedule_waiting(PstQueueSchedule *schedule) {
  return schedule->heap->len - 1;
}

guint pst_queue_schedule_lanes(PstQueueSchedule *schedule) {
  return g_hash_table_size(schedule->lanes);
}

guint pst_queue_schedule_window(PstQueueSchedule *schedule,
                                const char *destination) {
  PstQueueLane *lane =
      destination != NULL ? g_hash_table_lookup(schedule->lanes, destination)
                          : &schedule->unsorted;
  return lane != NULL ? lane->window : 0;
}
