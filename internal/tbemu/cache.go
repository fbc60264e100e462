package tbemu

import (
	"container/list"
	"time"
)

// claimData is ThingsBoard's ClaimData {secretKey, expirationTime} (docs/thingsboard.md §3.1). A nil
// SecretKey (possible only through the claimingData attribute) is Java's null.
type claimData struct {
	SecretKey      *string
	ExpirationTime int64 // epoch milliseconds
}

func (d claimData) secret() string {
	if d.SecretKey == nil {
		return ""
	}
	return *d.SecretKey
}

// claimCache is the "claimDevices" Caffeine cache (docs/thingsboard.md §3.1): keyed by device id, written
// with putIfAbsent, entries expire a fixed time after they were written, and at most maxSize
// entries are kept. When full, the oldest-written entry is evicted; Caffeine's W-TinyLFU policy may
// pick another victim (docs/tbemu.md). It is not safe for concurrent use; the state lock guards it.
type claimCache struct {
	ttl     time.Duration
	maxSize int // <= 0: the cache is disabled and stores nothing
	entries map[string]*list.Element
	order   *list.List // of *cacheEntry, oldest write first
}

type cacheEntry struct {
	deviceID  string
	data      claimData
	writtenAt time.Time
}

func newClaimCache(ttl time.Duration, maxSize int) *claimCache {
	return &claimCache{ttl: ttl, maxSize: maxSize, entries: map[string]*list.Element{}, order: list.New()}
}

// expired is Caffeine's expireAfterWrite test: an entry is gone once now - writeTime >= ttl.
func (c *claimCache) expired(e *cacheEntry, now time.Time) bool {
	return now.Sub(e.writtenAt) >= c.ttl
}

// get returns the live entry for deviceID.
func (c *claimCache) get(deviceID string, now time.Time) (claimData, bool) {
	el, ok := c.entries[deviceID]
	if !ok {
		return claimData{}, false
	}
	e := el.Value.(*cacheEntry)
	if c.expired(e, now) {
		c.remove(el)
		return claimData{}, false
	}
	return e.data, true
}

// putIfAbsent stores data unless a live entry exists, and reports whether it stored it. This is
// the trap of docs/thingsboard.md §3.1: while an entry lives, a new registration is silently ignored.
func (c *claimCache) putIfAbsent(deviceID string, data claimData, now time.Time) bool {
	if c.maxSize <= 0 {
		return false
	}
	if _, ok := c.get(deviceID, now); ok {
		return false
	}
	c.purge(now)
	for c.order.Len() >= c.maxSize {
		c.remove(c.order.Front())
	}
	c.entries[deviceID] = c.order.PushBack(&cacheEntry{deviceID: deviceID, data: data, writtenAt: now})
	return true
}

// evict removes deviceID's entry, if any.
func (c *claimCache) evict(deviceID string) {
	if el, ok := c.entries[deviceID]; ok {
		c.remove(el)
	}
}

// purge drops expired entries; they are at the front, as all entries share one TTL.
func (c *claimCache) purge(now time.Time) {
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		if !c.expired(el.Value.(*cacheEntry), now) {
			return
		}
		c.remove(el)
	}
}

func (c *claimCache) remove(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).deviceID)
	c.order.Remove(el)
}

// len returns the number of live entries.
func (c *claimCache) len(now time.Time) int {
	c.purge(now)
	return c.order.Len()
}
