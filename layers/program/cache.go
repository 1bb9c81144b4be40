package program

import "slices"

// DefaultBudget is the memory the CPU's training and decoding keep in compiled graphs (their
// programs' values) before they drop the least recently used. A corpus of many sentence
// lengths has a batch shape per length bucket: on such data the small translation model's
// training grew to 12.7 GB in 60 steps with every graph kept, and stays at 1.8 GB within this
// budget, faster too (BENCHMARKS.md, "CPU training speed": rebuilding a graph costs less than
// the page faults of memory kept beyond it).
const DefaultBudget = 512 << 20

// Cache keeps compiled graphs (a Program and whatever the caller built with it) by key within
// a budget of bytes that their programs keep between runs: before a new entry is added the
// least recently used ones are dropped while those kept hold more than the budget, so a
// caller that meets many shapes (a corpus of many sentence lengths) holds the recent ones
// only and builds the others again when they come back. A dropped entry stays usable by
// whoever still holds it; the cache only forgets it.
type Cache[K comparable, V any] struct {
	budget int64
	bytes  func(V) int64 // what an entry's program keeps (Program.Bytes)
	items  map[K]V
	recent []K // least recently used first
}

// NewCache returns an empty cache of the given budget; bytes gives an entry's kept memory.
func NewCache[K comparable, V any](budget int64, bytes func(V) int64) *Cache[K, V] {
	return &Cache[K, V]{budget: budget, bytes: bytes, items: map[K]V{}}
}

// Get returns the entry of k and marks it the most recently used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	v, ok := c.items[k]
	if ok {
		i := slices.Index(c.recent, k)
		c.recent = append(slices.Delete(c.recent, i, i+1), k)
	}
	return v, ok
}

// MakeRoom drops the least recently used entries while those kept hold more than the budget:
// call it before building an entry, so that the memory it drops is free for the new one.
func (c *Cache[K, V]) MakeRoom() {
	for len(c.recent) > 0 && c.Bytes() > c.budget {
		delete(c.items, c.recent[0])
		c.recent = slices.Delete(c.recent, 0, 1)
	}
}

// Add stores v under k (which must be absent) as the most recently used entry.
func (c *Cache[K, V]) Add(k K, v V) {
	c.items[k] = v
	c.recent = append(c.recent, k)
}

// GetOrBuild returns the entry of k, building it with build when it is not kept: it first
// makes room (MakeRoom), so that the memory dropped is free for the new entry, then adds what
// build returns. A failed build adds nothing.
func (c *Cache[K, V]) GetOrBuild(k K, build func() (V, error)) (V, error) {
	if v, ok := c.Get(k); ok {
		return v, nil
	}
	c.MakeRoom()
	v, err := build()
	if err != nil {
		return v, err
	}
	c.Add(k, v)
	return v, nil
}

// Len is the number of entries kept.
func (c *Cache[K, V]) Len() int { return len(c.recent) }

// Bytes is the memory the kept entries' programs hold.
func (c *Cache[K, V]) Bytes() int64 {
	var n int64
	for _, v := range c.items {
		n += c.bytes(v)
	}
	return n
}

// Clear forgets every entry.
func (c *Cache[K, V]) Clear() {
	clear(c.items)
	c.recent = nil
}
