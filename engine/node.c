/* SPDX-License-Identifier: MIT */
/* Node identity, status lifecycle, metadata and health; see node.h.
 *
 * The transition table is a bit matrix indexed by status: row @from has bit @to set when
 * the move is allowed. Keeping it as data makes the lifecycle easy to read and to test
 * exhaustively. */
#include "engine/node.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

#define BIT(s) (1u << (s))

/* Allowed moves, indexed by enum aegis_node_status (slot 0 unused). */
static const uint32_t node_transitions[AEGIS_NODE_LEFT + 1] = {
    [AEGIS_NODE_STARTING] = BIT(AEGIS_NODE_STARTING) | BIT(AEGIS_NODE_HEALTHY) |
                            BIT(AEGIS_NODE_SUSPECT) | BIT(AEGIS_NODE_DOWN) |
                            BIT(AEGIS_NODE_LEAVING),
    [AEGIS_NODE_HEALTHY] = BIT(AEGIS_NODE_HEALTHY) | BIT(AEGIS_NODE_SUSPECT) |
                           BIT(AEGIS_NODE_DOWN) | BIT(AEGIS_NODE_LEAVING),
    [AEGIS_NODE_SUSPECT] = BIT(AEGIS_NODE_SUSPECT) | BIT(AEGIS_NODE_HEALTHY) |
                           BIT(AEGIS_NODE_DOWN) | BIT(AEGIS_NODE_LEAVING),
    [AEGIS_NODE_DOWN] = BIT(AEGIS_NODE_DOWN) | BIT(AEGIS_NODE_HEALTHY) | BIT(AEGIS_NODE_LEAVING),
    [AEGIS_NODE_LEAVING] = BIT(AEGIS_NODE_LEAVING) | BIT(AEGIS_NODE_LEFT),
    [AEGIS_NODE_LEFT] = BIT(AEGIS_NODE_LEFT),
};

static bool status_valid(int s)
{
    return s >= AEGIS_NODE_STARTING && s <= AEGIS_NODE_LEFT;
}

int aegis__node_strlcpy(char *dst, size_t cap, const char *src)
{
    size_t len;

    AEGIS_ASSERT(dst != NULL && cap > 0);
    if (src == NULL) {
        dst[0] = '\0';
        return 0;
    }
    len = strnlen(src, cap);
    if (len >= cap) {
        return AEGIS_ETOOBIG;
    }
    memcpy(dst, src, len + 1);
    return 0;
}

int aegis__node_info_init(struct aegis_node_info *n, aegis_node_id id, const char *address,
                          uint16_t port)
{
    AEGIS_ASSERT(n != NULL);
    if (id == AEGIS_NODE_NONE || address == NULL) {
        return AEGIS_EINVAL;
    }
    if (strnlen(address, AEGIS_NODE_ADDRESS_MAX) >= AEGIS_NODE_ADDRESS_MAX) {
        return AEGIS_ETOOBIG;
    }
    memset(n, 0, sizeof(*n));
    n->id = id;
    (void)aegis__node_strlcpy(n->address, sizeof(n->address), address);
    n->port = port;
    n->status = AEGIS_NODE_STARTING;
    n->role = AEGIS_NODE_FOLLOWER;
    return 0;
}

bool aegis__node_status_can_transition(enum aegis_node_status from, enum aegis_node_status to)
{
    if (!status_valid((int)from) || !status_valid((int)to)) {
        return false;
    }
    return (node_transitions[from] & BIT(to)) != 0;
}

int aegis__node_set_status(struct aegis_node_info *n, enum aegis_node_status to)
{
    AEGIS_ASSERT(n != NULL);
    if (!aegis__node_status_can_transition((enum aegis_node_status)n->status, to)) {
        return AEGIS_EINVAL;
    }
    n->status = (uint8_t)to;
    return 0;
}

bool aegis__node_status_is_live(enum aegis_node_status s)
{
    return s == AEGIS_NODE_HEALTHY || s == AEGIS_NODE_SUSPECT;
}

const char *aegis__node_status_name(enum aegis_node_status s)
{
    switch (s) {
    case AEGIS_NODE_STARTING:
        return "starting";
    case AEGIS_NODE_HEALTHY:
        return "healthy";
    case AEGIS_NODE_SUSPECT:
        return "suspect";
    case AEGIS_NODE_DOWN:
        return "down";
    case AEGIS_NODE_LEAVING:
        return "leaving";
    case AEGIS_NODE_LEFT:
        return "left";
    }
    return "unknown";
}

const char *aegis__node_role_name(enum aegis_node_role r)
{
    switch (r) {
    case AEGIS_NODE_FOLLOWER:
        return "follower";
    case AEGIS_NODE_CANDIDATE:
        return "candidate";
    case AEGIS_NODE_LEADER:
        return "leader";
    case AEGIS_NODE_LEARNER:
        return "learner";
    }
    return "unknown";
}

static bool fits(const char *s, size_t cap)
{
    return s == NULL || strnlen(s, cap) < cap;
}

int aegis__node_metadata_set_location(struct aegis_node_metadata *md, const char *datacenter,
                                      const char *rack, const char *zone)
{
    AEGIS_ASSERT(md != NULL);
    /* Check all three first so that a failure changes nothing. */
    if (!fits(datacenter, sizeof(md->datacenter)) || !fits(rack, sizeof(md->rack)) ||
        !fits(zone, sizeof(md->zone))) {
        return AEGIS_ETOOBIG;
    }
    if (datacenter != NULL) {
        (void)aegis__node_strlcpy(md->datacenter, sizeof(md->datacenter), datacenter);
    }
    if (rack != NULL) {
        (void)aegis__node_strlcpy(md->rack, sizeof(md->rack), rack);
    }
    if (zone != NULL) {
        (void)aegis__node_strlcpy(md->zone, sizeof(md->zone), zone);
    }
    return 0;
}

static int find_tag(const struct aegis_node_metadata *md, const char *key)
{
    AEGIS_ASSERT(md->tags_count <= AEGIS_NODE_TAGS_MAX);
    for (uint32_t i = 0; i < md->tags_count; i++) {
        if (strncmp(md->tags[i].key, key, AEGIS_NODE_TAG_KEY_MAX) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int aegis__node_metadata_set_tag(struct aegis_node_metadata *md, const char *key,
                                 const char *value)
{
    struct aegis_node_tag *t;
    int i;

    AEGIS_ASSERT(md != NULL);
    if (key == NULL || key[0] == '\0') {
        return AEGIS_EINVAL;
    }
    if (!fits(key, AEGIS_NODE_TAG_KEY_MAX) || !fits(value, AEGIS_NODE_TAG_VALUE_MAX)) {
        return AEGIS_ETOOBIG;
    }
    i = find_tag(md, key);
    if (i < 0) {
        if (md->tags_count == AEGIS_NODE_TAGS_MAX) {
            return AEGIS_EFULL;
        }
        i = (int)md->tags_count++;
    }
    t = &md->tags[i];
    (void)aegis__node_strlcpy(t->key, sizeof(t->key), key);
    (void)aegis__node_strlcpy(t->value, sizeof(t->value), value);
    return 0;
}

const char *aegis__node_metadata_tag(const struct aegis_node_metadata *md, const char *key)
{
    int i;

    AEGIS_ASSERT(md != NULL);
    if (key == NULL) {
        return NULL;
    }
    i = find_tag(md, key);
    return i < 0 ? NULL : md->tags[i].value;
}

int aegis__node_metadata_remove_tag(struct aegis_node_metadata *md, const char *key)
{
    int i;

    AEGIS_ASSERT(md != NULL);
    if (key == NULL) {
        return AEGIS_ENOTFOUND;
    }
    i = find_tag(md, key);
    if (i < 0) {
        return AEGIS_ENOTFOUND;
    }
    /* Keep the used slots dense: move the last tag into the hole. */
    md->tags_count--;
    if ((uint32_t)i != md->tags_count) {
        md->tags[i] = md->tags[md->tags_count];
    }
    memset(&md->tags[md->tags_count], 0, sizeof(md->tags[0]));
    return 0;
}

void aegis__node_health_init(struct aegis_node_health *h, uint64_t now_ms)
{
    AEGIS_ASSERT(h != NULL);
    memset(h, 0, sizeof(*h));
    h->last_heartbeat_ms = now_ms;
}

void aegis__node_health_heard(struct aegis_node_health *h, uint64_t now_ms)
{
    AEGIS_ASSERT(h != NULL);
    h->healthy = true;
    h->heard = true;
    /* Time never runs backwards for a node: a late-delivered heartbeat stamped earlier
     * than one already seen does not rewind the clock. */
    if (now_ms > h->last_heartbeat_ms) {
        h->last_heartbeat_ms = now_ms;
    }
    h->error[0] = '\0';
}

void aegis__node_health_failed(struct aegis_node_health *h, const char *error)
{
    size_t len;

    AEGIS_ASSERT(h != NULL);
    h->healthy = false;
    if (error == NULL) {
        h->error[0] = '\0';
        return;
    }
    len = strnlen(error, sizeof(h->error) - 1);
    memcpy(h->error, error, len);
    h->error[len] = '\0';
}

uint64_t aegis__node_health_silence_ms(const struct aegis_node_health *h, uint64_t now_ms)
{
    AEGIS_ASSERT(h != NULL);
    return now_ms > h->last_heartbeat_ms ? now_ms - h->last_heartbeat_ms : 0;
}
