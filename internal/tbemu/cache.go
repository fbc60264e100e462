package tbemu

import (
	"container/list"
	"math/rand/v2"
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

// Queues of the W-TinyLFU policy (Caffeine's BoundedLocalCache).
const (
	queueWindow = iota
	queueProbation
	queueProtected
)

// claimCache is the "claimDevices" cache (docs/thingsboard.md §3.1, §9): keyed by device id,
// written with putIfAbsent, entries expire a fixed time after they were written
// (expireAfterWrite), and the cache holds at most maxSize entries (maximumWeight with a weight of
// 1 per ClaimData). What happens when it is full depends on the policy; see CachePolicy and
// docs/tbemu.md "Cache admission". It is not safe for concurrent use; the state lock guards it.
type claimCache struct {
	ttl     time.Duration
	maxSize int // <= 0: the cache is disabled and stores nothing
	policy  CachePolicy
	nodes   map[string]*cacheNode
	written *list.List // of *cacheNode, oldest write first (all entries share one TTL)

	// W-TinyLFU (CacheTinyLFU) only.
	queues       [3]*list.List // of *cacheNode, least recently used first
	windowMax    int
	protectedMax int
	sketch       frequencySketch
	rng          *rand.Rand
}

type cacheNode struct {
	deviceID  string
	data      claimData
	writtenAt time.Time
	queue     int
	writeEl   *list.Element
	accessEl  *list.Element
}

func newClaimCache(ttl time.Duration, maxSize int, policy CachePolicy) *claimCache {
	c := &claimCache{ttl: ttl, maxSize: maxSize, policy: policy, nodes: map[string]*cacheNode{}, written: list.New(),
		rng: rand.New(rand.NewPCG(1, 2))} // fixed seed: the 1/128 random admission is reproducible
	for i := range c.queues {
		c.queues[i] = list.New()
	}
	if maxSize > 0 {
		// BoundedLocalCache.setMaximumSize: window = max - (long)(0.99 * max), protected 80% of main.
		c.windowMax = maxSize - int(0.99*float64(maxSize))
		c.protectedMax = int(0.80 * float64(maxSize-c.windowMax))
	}
	return c
}

// expired is Caffeine's expireAfterWrite test: an entry is gone once now - writeTime >= ttl.
func (c *claimCache) expired(n *cacheNode, now time.Time) bool {
	return now.Sub(n.writtenAt) >= c.ttl
}

// purge drops expired entries; they are at the front of the write order, as all share one TTL.
// Caffeine expires before it evicts, in every maintenance cycle.
func (c *claimCache) purge(now time.Time) {
	for el := c.written.Front(); el != nil; el = c.written.Front() {
		n := el.Value.(*cacheNode)
		if !c.expired(n, now) {
			return
		}
		c.remove(n)
	}
}

// peek returns the live entry for deviceID without counting it as an access.
func (c *claimCache) peek(deviceID string, now time.Time) (claimData, bool) {
	c.purge(now)
	n, ok := c.nodes[deviceID]
	if !ok {
		return claimData{}, false
	}
	return n.data, true
}

// get returns the live entry for deviceID; a hit is an access (Caffeine's afterRead/onAccess).
func (c *claimCache) get(deviceID string, now time.Time) (claimData, bool) {
	c.purge(now)
	n, ok := c.nodes[deviceID]
	if !ok {
		return claimData{}, false // a miss is not recorded in the frequency sketch
	}
	c.onAccess(n)
	return n.data, true
}

// putIfAbsent stores data unless a live entry exists, and reports whether it stored it. This is
// the trap of docs/thingsboard.md §3.1: while an entry lives, a new registration is silently
// ignored. A stored entry may still be dropped by a later write (CacheTinyLFU, CacheEvictOldest).
func (c *claimCache) putIfAbsent(deviceID string, data claimData, now time.Time) (stored bool, reason string) {
	if c.maxSize <= 0 {
		return false, "claim cache disabled"
	}
	c.purge(now)
	if n, ok := c.nodes[deviceID]; ok {
		c.onAccess(n) // ConcurrentMap.putIfAbsent on a present key reads it
		return false, "claim data already cached: ignored (putIfAbsent)"
	}
	switch c.policy {
	case CacheRefuseNew:
		if len(c.nodes) >= c.maxSize {
			return false, "claim cache full: new entry refused (policy refuse-new)"
		}
	case CacheEvictOldest:
		for len(c.nodes) >= c.maxSize {
			c.remove(c.written.Front().Value.(*cacheNode))
		}
	}
	n := &cacheNode{deviceID: deviceID, data: data, writtenAt: now, queue: queueWindow}
	n.writeEl = c.written.PushBack(n)
	c.nodes[deviceID] = n
	if c.policy == CacheTinyLFU {
		c.addTinyLFU(n)
	}
	if _, ok := c.nodes[deviceID]; !ok {
		return false, "claim cache full: new entry refused by W-TinyLFU admission"
	}
	return true, ""
}

// evict removes deviceID's entry, if any.
func (c *claimCache) evict(deviceID string) {
	if n, ok := c.nodes[deviceID]; ok {
		c.remove(n)
	}
}

func (c *claimCache) remove(n *cacheNode) {
	delete(c.nodes, n.deviceID)
	c.written.Remove(n.writeEl)
	if n.accessEl != nil {
		c.queues[n.queue].Remove(n.accessEl)
		n.accessEl = nil
	}
}

// len returns the number of live entries.
func (c *claimCache) len(now time.Time) int {
	c.purge(now)
	return len(c.nodes)
}

// --- W-TinyLFU -------------------------------------------------------------------------------------

// addTinyLFU is Caffeine's AddTask followed by a maintenance cycle's evictEntries: the new entry
// enters the admission window; once the sketch is initialised (the cache is half full) its key's
// frequency is counted; then the window's overflow moves to the probation queue and competes with
// probation's least recently used entry for the space.
func (c *claimCache) addTinyLFU(n *cacheNode) {
	n.accessEl = c.queues[queueWindow].PushBack(n)
	if len(c.nodes) >= c.maxSize/2 {
		c.sketch.ensureCapacity(len(c.nodes)) // Caffeine sizes the sketch by entry count when weighted
	}
	c.sketch.increment(n.deviceID)
	candidate := c.evictFromWindow()
	c.evictFromMain(candidate)
	c.demoteFromProtected()
}

// onAccess is BoundedLocalCache.onAccess: count the key, and move the entry to the most recently
// used end of its queue; a probation entry is promoted to protected.
func (c *claimCache) onAccess(n *cacheNode) {
	if c.policy != CacheTinyLFU {
		return
	}
	c.sketch.increment(n.deviceID)
	switch n.queue {
	case queueProbation:
		c.queues[queueProbation].Remove(n.accessEl)
		n.queue = queueProtected
		n.accessEl = c.queues[queueProtected].PushBack(n)
		c.demoteFromProtected()
	default:
		c.queues[n.queue].MoveToBack(n.accessEl)
	}
}

// demoteFromProtected moves protected's least recently used entries to probation while protected
// is over its share (done at the end of each maintenance cycle).
func (c *claimCache) demoteFromProtected() {
	for c.queues[queueProtected].Len() > c.protectedMax {
		n := c.queues[queueProtected].Front().Value.(*cacheNode)
		c.transfer(n, queueProbation)
	}
}

func (c *claimCache) transfer(n *cacheNode, to int) {
	c.queues[n.queue].Remove(n.accessEl)
	n.queue = to
	n.accessEl = c.queues[to].PushBack(n)
}

// evictFromWindow moves the window's least recently used entries to the end of probation while the
// window is over its share, and returns the first one moved: the first candidate for admission.
func (c *claimCache) evictFromWindow() *cacheNode {
	var first *cacheNode
	for c.queues[queueWindow].Len() > c.windowMax {
		n := c.queues[queueWindow].Front().Value.(*cacheNode)
		c.transfer(n, queueProbation)
		if first == nil {
			first = n
		}
	}
	return first
}

// next returns the entry after n in n's queue, or nil.
func next(n *cacheNode) *cacheNode {
	if el := n.accessEl.Next(); el != nil {
		return el.Value.(*cacheNode)
	}
	return nil
}

func front(l *list.List) *cacheNode {
	if el := l.Front(); el != nil {
		return el.Value.(*cacheNode)
	}
	return nil
}

// evictAndAdvance removes n and returns its successor in its queue.
func (c *claimCache) evictAndAdvance(n *cacheNode) *cacheNode {
	nx := next(n)
	c.remove(n)
	return nx
}

// evictFromMain is BoundedLocalCache.evictFromMain: while the cache is over its maximum, the
// candidates (window entries just moved to probation, in order) compete with the victims
// (probation's least recently used entries, then protected's, then the window's); the one with the
// lower frequency is evicted, and on a tie the candidate, i.e. the newer entry, loses.
func (c *claimCache) evictFromMain(candidate *cacheNode) {
	victimQueue, candidateQueue := queueProbation, queueProbation
	victim := front(c.queues[queueProbation])
	for len(c.nodes) > c.maxSize {
		if candidate == nil && candidateQueue == queueProbation {
			candidate = front(c.queues[queueWindow])
			candidateQueue = queueWindow
		}
		if candidate == nil && victim == nil {
			switch victimQueue {
			case queueProbation:
				victim, victimQueue = front(c.queues[queueProtected]), queueProtected
				continue
			case queueProtected:
				victim, victimQueue = front(c.queues[queueWindow]), queueWindow
				continue
			}
			return
		}
		switch {
		case victim == nil:
			candidate = c.evictAndAdvance(candidate)
		case candidate == nil:
			victim = c.evictAndAdvance(victim)
		case candidate == victim:
			victim = c.evictAndAdvance(victim)
			candidate = nil
		case c.admit(candidate.deviceID, victim.deviceID):
			victim = c.evictAndAdvance(victim)
			candidate = next(candidate)
		default:
			candidate = c.evictAndAdvance(candidate)
		}
	}
}

// admit is BoundedLocalCache.admit: the candidate wins if it is more frequent than the victim; a
// warm candidate (frequency >= 6) that is not wins with probability 1/128 (against hash flooding).
func (c *claimCache) admit(candidate, victim string) bool {
	cf, vf := c.sketch.frequency(candidate), c.sketch.frequency(victim)
	if cf > vf {
		return true
	}
	if cf >= 6 {
		return c.rng.IntN(128) == 0
	}
	return false
}

// frequencySketch stands in for Caffeine's FrequencySketch: 4-bit counters (0..15) per key, halved
// after sampleSize counted increments, created lazily once the cache is half full and re-created
// (all counts lost) when the number of entries outgrows it. Unlike Caffeine's count-min sketch it
// counts every key exactly: no hash collisions overestimate a frequency.
type frequencySketch struct {
	capacity   int // 0: not initialised; counts nothing and reports 0
	sampleSize int
	additions  int
	counts     map[string]uint8
}

// ensureCapacity is FrequencySketch.ensureCapacity (Caffeine 3.2): a table of ceil2(n) (at least 8)
// counters; a larger n replaces the table.
func (s *frequencySketch) ensureCapacity(n int) {
	if s.capacity > 0 && s.capacity >= n {
		return
	}
	s.capacity = max(8, ceilPow2(n))
	s.sampleSize = 10 * n
	if s.sampleSize <= 0 {
		s.sampleSize = 10
	}
	s.additions = 0
	s.counts = map[string]uint8{}
}

func ceilPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

func (s *frequencySketch) frequency(key string) int {
	if s.capacity == 0 {
		return 0
	}
	return int(s.counts[key])
}

func (s *frequencySketch) increment(key string) {
	if s.capacity == 0 {
		return
	}
	if s.counts[key] >= 15 {
		return // a saturated counter is not an addition
	}
	s.counts[key]++
	s.additions++
	if s.additions >= s.sampleSize {
		s.reset()
	}
}

// reset halves every counter, as Caffeine ages its history.
func (s *frequencySketch) reset() {
	for k, v := range s.counts {
		if v/2 == 0 {
			delete(s.counts, k)
		} else {
			s.counts[k] = v / 2
		}
	}
	s.additions /= 2
}
