/* test-queue-schedule.c - the queue manager's lanes, windows and retry heap
 * (queue-schedule.h): a dead destination's backlog never takes the
 * workers from other mail, the heap gives retries back in time order. */
#include "queue/queue-schedule.h"

typedef struct {
  PstQueueSlot slot;
  guint number;
} Item;

static Item *items_new(PstQueueSchedule *schedule, guint count,
                       const char *destination) {
  Item *items = g_new0(Item, count);
  for (guint i = 0; i < count; i++) {
    items[i].number = i;
    pst_queue_schedule_add(schedule, &items[i].slot, &items[i]);
    pst_queue_schedule_set_destination(schedule, &items[i].slot, destination);
  }
  return items;
}

static void items_remove(PstQueueSchedule *schedule, Item *items,
                         guint count) {
  for (guint i = 0; i < count; i++) {
    if (items[i].slot.state == PST_QUEUE_SLOT_RUNNING)
      pst_queue_schedule_done(schedule, &items[i].slot, NULL,
                              PST_QUEUE_LANE_NO_NEWS);
    pst_queue_schedule_remove(schedule, &items[i].slot);
  }
  g_free(items);
}

static void test_lanes_take_turns(void) {
  PstQueueSchedule *schedule = pst_queue_schedule_new(4, 20);
  Item *far = items_new(schedule, 1000, "far.example");
  Item *local = items_new(schedule, 10, PST_QUEUE_LANE_LOCAL);
  for (guint i = 0; i < 1000; i++)
    pst_queue_schedule_ready(schedule, &far[i].slot);
  for (guint i = 0; i < 10; i++)
    pst_queue_schedule_ready(schedule, &local[i].slot);
  /* Four workers: two each, although the far backlog came first. */
  guint from_local = 0;
  Item *item;
  while ((item = pst_queue_schedule_next(schedule)) != NULL)
    from_local += item >= local && item < local + 10;
  g_assert_cmpuint(pst_queue_schedule_running(schedule), ==, 4);
  g_assert_cmpuint(from_local, ==, 2);
  /* The far attempts fail: that destination is dead, one at a time. */
  for (guint i = 0; i < 2; i++) {
    pst_queue_schedule_done(schedule, &far[i].slot, NULL,
                            PST_QUEUE_LANE_FAILED);
    pst_queue_schedule_wait(schedule, &far[i].slot, 1000);
  }
  g_assert_cmpuint(pst_queue_schedule_window(schedule, "far.example"), ==, 1);
  GHashTable *dead = pst_queue_schedule_dead(schedule);
  g_assert_true(g_hash_table_contains(dead, "far.example"));
  g_hash_table_unref(dead);
  /* Two free workers: one for local mail, one probes the dead lane. */
  from_local = 0;
  while ((item = pst_queue_schedule_next(schedule)) != NULL)
    from_local += item >= local && item < local + 10;
  g_assert_cmpuint(from_local, ==, 1);
  g_assert_cmpuint(pst_queue_schedule_running(schedule), ==, 4);
  /* Local mail finishes: local mail again, the dead lane no more. */
  for (guint i = 0; i < 3; i++)
    pst_queue_schedule_done(schedule, &local[i].slot, NULL,
                            PST_QUEUE_LANE_NO_NEWS);
  guint from_far = 0;
  while ((item = pst_queue_schedule_next(schedule)) != NULL)
    from_far += item >= far && item < far + 1000;
  g_assert_cmpuint(from_far, ==, 0);
  g_assert_cmpuint(pst_queue_schedule_running(schedule), ==, 4);
  /* It delivers: the window opens again. */
  pst_queue_schedule_done(schedule, &far[2].slot, NULL,
                          PST_QUEUE_LANE_DELIVERED);
  g_assert_cmpuint(pst_queue_schedule_window(schedule, "far.example"), ==, 2);
  dead = pst_queue_schedule_dead(schedule);
  g_assert_false(g_hash_table_contains(dead, "far.example"));
  g_hash_table_unref(dead);
  while ((item = pst_queue_schedule_next(schedule)) != NULL)
    pst_queue_schedule_done(schedule, &item->slot, NULL,
                            PST_QUEUE_LANE_NO_NEWS);
  items_remove(schedule, far, 1000);
  items_remove(schedule, local, 10);
  g_assert_cmpuint(pst_queue_schedule_lanes(schedule), ==, 0);
  pst_queue_schedule_free(schedule);
}

static void test_sorted_into_a_lane(void) {
  PstQueueSchedule *schedule = pst_queue_schedule_new(2, 20);
  Item *items = items_new(schedule, 3, NULL);
  for (guint i = 0; i < 3; i++)
    pst_queue_schedule_ready(schedule, &items[i].slot);
  Item *item = pst_queue_schedule_next(schedule);
  g_assert_true(item == &items[0]);
  g_assert_null(pst_queue_slot_get_destination(&item->slot));
  pst_queue_schedule_done(schedule, &item->slot, "far.example",
                          PST_QUEUE_LANE_FAILED);
  g_assert_cmpstr(pst_queue_slot_get_destination(&item->slot), ==,
                  "far.example");
  g_assert_cmpuint(pst_queue_schedule_window(schedule, "far.example"), ==, 1);
  /* Local news never makes "local" dead. */
  item = pst_queue_schedule_next(schedule);
  pst_queue_schedule_done(schedule, &item->slot, PST_QUEUE_LANE_LOCAL,
                          PST_QUEUE_LANE_FAILED);
  g_assert_cmpuint(pst_queue_schedule_window(schedule, PST_QUEUE_LANE_LOCAL),
                   ==, 2);
  items_remove(schedule, items, 3);
  g_assert_cmpuint(pst_queue_schedule_lanes(schedule), ==, 0);
  pst_queue_schedule_free(schedule);
}

/* Ready slots are counted through every way in and out of a lane. */
static void test_has_ready(void) {
  PstQueueSchedule *schedule = pst_queue_schedule_new(1, 20);
  Item *items = items_new(schedule, 2, NULL);
  g_assert_false(pst_queue_schedule_has_ready(schedule));
  pst_queue_schedule_ready(schedule, &items[0].slot);
  pst_queue_schedule_ready(schedule, &items[1].slot);
  g_assert_true(pst_queue_schedule_has_ready(schedule));
  Item *item = pst_queue_schedule_next(schedule);
  g_assert_true(item == &items[0]);
  /* One worker: the second waits for the first to end. */
  g_assert_null(pst_queue_schedule_next(schedule));
  g_assert_true(pst_queue_schedule_has_ready(schedule));
  pst_queue_schedule_done(schedule, &item->slot, NULL, PST_QUEUE_LANE_NO_NEWS);
  g_assert_true(pst_queue_schedule_next(schedule) == &items[1]);
  g_assert_false(pst_queue_schedule_has_ready(schedule));
  pst_queue_schedule_done(schedule, &items[1].slot, NULL,
                          PST_QUEUE_LANE_NO_NEWS);
  /* Moved to another lane while ready, then waiting, then removed. */
  pst_queue_schedule_ready(schedule, &items[0].slot);
  pst_queue_schedule_set_destination(schedule, &items[0].slot, "far.example");
  g_assert_true(pst_queue_schedule_has_ready(schedule));
  pst_queue_schedule_wait(schedule, &items[0].slot, 1000);
  g_assert_false(pst_queue_schedule_has_ready(schedule));
  pst_queue_schedule_ready(schedule, &items[1].slot);
  pst_queue_schedule_remove(schedule, &items[1].slot);
  g_assert_false(pst_queue_schedule_has_ready(schedule));
  items_remove(schedule, items, 2);
  pst_queue_schedule_free(schedule);
}

static void test_heap_order(void) {
  PstQueueSchedule *schedule = pst_queue_schedule_new(1000, 20);
  enum { N = 5000 };
  Item *items = items_new(schedule, N, "far.example");
  GRand *rand = g_rand_new_with_seed(42);
  for (guint i = 0; i < N; i++)
    pst_queue_schedule_wait(schedule, &items[i].slot,
                            g_rand_int_range(rand, 1, 100000));
  /* Some are flushed before their time: out of the heap. */
  for (guint i = 0; i < N; i += 7)
    pst_queue_schedule_ready(schedule, &items[i].slot);
  g_assert_cmpuint(pst_queue_schedule_waiting(schedule), ==, N - (N + 6) / 7);
  gint64 last = 0;
  while (pst_queue_schedule_waiting(schedule) > 0) {
    gint64 due = pst_queue_schedule_next_due(schedule);
    g_assert_cmpint(due, >=, last);
    last = due;
    g_assert_cmpuint(pst_queue_schedule_wake(schedule, due), >=, 1);
  }
  g_assert_cmpint(pst_queue_schedule_next_due(schedule), ==, G_MAXINT64);
  g_rand_free(rand);
  items_remove(schedule, items, N);
  pst_queue_schedule_free(schedule);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/queue/schedule/lanes-take-turns", test_lanes_take_turns);
  g_test_add_func("/queue/schedule/sorted-into-a-lane",
                  test_sorted_into_a_lane);
  g_test_add_func("/queue/schedule/has-ready", test_has_ready);
  g_test_add_func("/queue/schedule/heap-order", test_heap_order);
  return g_test_run();
}
