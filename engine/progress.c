/* SPDX-License-Identifier: MIT */
/* Per-follower replication progress; see progress.h for the state machine. */
#include "engine/progress.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/msg.h"

int aegis__progress_init(struct aegis_progress *p, uint32_t cap, const struct aegis_allocator *a)
{
    AEGIS_ASSERT(cap > 0);
    memset(p, 0, sizeof(*p));
    p->inflights = aegis__calloc(a, cap, sizeof(*p->inflights));
    if (p->inflights == NULL) {
        return AEGIS_ENOMEM;
    }
    p->inflights_cap = cap;
    return 0;
}

static void drop_snapshot(struct aegis_progress *p)
{
    memset(&p->snap_meta, 0, sizeof(p->snap_meta));
    p->snap_total = 0;
    p->snap_next = 0;
    p->snap_acked = 0;
    p->snap_done_sent = false;
    p->snap_waiting = false;
    p->snap_rewound = false;
    p->snap_idle_ticks = 0;
}

void aegis__progress_close(struct aegis_progress *p, const struct aegis_allocator *a)
{
    drop_snapshot(p);
    aegis__free(a, p->inflights);
    p->inflights = NULL;
}

static void clear_window(struct aegis_progress *p)
{
    p->inflights_start = 0;
    p->inflights_count = 0;
    p->inflights_bytes = 0;
}

void aegis__progress_reset(struct aegis_progress *p, aegis_node_id id, aegis_index last_index)
{
    drop_snapshot(p);
    clear_window(p);
    p->id = id;
    p->state = AEGIS_PROGRESS_PROBE;
    p->match = 0;
    p->next = last_index + 1;
    p->probe_sent = false;
    p->recent_active = false;
    p->read_acked = 0;
    p->catchup_index = 0;
    p->catchup_ticks = 0;
}

void aegis__progress_to_probe(struct aegis_progress *p)
{
    drop_snapshot(p);
    clear_window(p);
    p->state = AEGIS_PROGRESS_PROBE;
    p->probe_sent = false;
    p->next = p->match + 1;
}

void aegis__progress_to_replicate(struct aegis_progress *p)
{
    drop_snapshot(p);
    clear_window(p);
    p->state = AEGIS_PROGRESS_REPLICATE;
    p->probe_sent = false;
    p->next = p->match + 1;
}

void aegis__progress_to_snapshot(struct aegis_progress *p, const struct aegis_snapshot_meta *meta,
                                 uint64_t total_bytes)
{
    AEGIS_ASSERT(meta->index > 0);
    AEGIS_ASSERT(total_bytes <= AEGIS_SNAPSHOT_BYTES_MAX);
    drop_snapshot(p);
    clear_window(p);
    p->state = AEGIS_PROGRESS_SNAPSHOT;
    p->snap_meta = *meta;
    p->snap_total = total_bytes;
    p->probe_sent = false;
}

bool aegis__progress_window_open(const struct aegis_progress *p, uint64_t bytes_max)
{
    AEGIS_ASSERT(p->state == AEGIS_PROGRESS_REPLICATE);
    return p->inflights_count < p->inflights_cap && p->inflights_bytes < bytes_max;
}

void aegis__progress_sent(struct aegis_progress *p, aegis_index last, uint64_t bytes)
{
    uint32_t slot;

    AEGIS_ASSERT(p->state == AEGIS_PROGRESS_REPLICATE);
    AEGIS_ASSERT(p->inflights_count < p->inflights_cap);
    AEGIS_ASSERT(last >= p->next);
    slot = (p->inflights_start + p->inflights_count) % p->inflights_cap;
    p->inflights[slot] = (struct aegis_inflight){.last = last, .bytes = bytes};
    p->inflights_count++;
    p->inflights_bytes += bytes;
    p->next = last + 1;
}

void aegis__progress_free_first(struct aegis_progress *p)
{
    if (p->inflights_count == 0) {
        return;
    }
    AEGIS_ASSERT(p->inflights_bytes >= p->inflights[p->inflights_start].bytes);
    p->inflights_bytes -= p->inflights[p->inflights_start].bytes;
    p->inflights_start = (p->inflights_start + 1) % p->inflights_cap;
    p->inflights_count--;
}

bool aegis__progress_ack(struct aegis_progress *p, aegis_index match)
{
    bool moved = match > p->match;

    while (p->inflights_count > 0 && p->inflights[p->inflights_start].last <= match) {
        aegis__progress_free_first(p);
    }
    if (moved) {
        p->match = match;
    }
    if (p->next <= p->match) {
        p->next = p->match + 1;
    }
    return moved;
}
