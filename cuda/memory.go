package cuda

// GPU memory discipline, in plain Go (no build tag) so that CI tests it without a GPU:
//
//   - a memory meter that counts live device bytes against a budget and keeps the high-water
//     mark (the driver's alloc and free go through it);
//   - the first-fit planner that places a program's values in its activation memory, reusing
//     the memory of values that are dead;
//   - one activation arena shared by all the programs of an executor (they run one at a time on
//     one stream), grown when a larger program comes and never held twice;
//   - a bounded least-recently-used cache of compiled programs.
//
// Memory therefore grows with the largest batch shape, not with the number of shapes.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"mqa/models"
)

// dptr is a device address.
type dptr uint64

func align(n int64) int64 { return (n + 255) &^ 255 }

// errOutOfMemory is what an allocation's error wraps when the GPU, or the memory budget, has
// too little room left.
var errOutOfMemory = errors.New("out of GPU memory")

// IsOutOfMemory reports whether err is a GPU allocation that did not fit.
func IsOutOfMemory(err error) bool { return errors.Is(err, errOutOfMemory) }

// memoryMeter counts the device bytes an executor holds, refuses allocations beyond its
// budget and remembers the peak.
type memoryMeter struct {
	budget int64 // 0: no budget of our own (the card's free memory is the limit)
	used   int64
	peak   int64
	sizes  map[dptr]int64
}

// admit checks that bytes more fit in the budget.
func (m *memoryMeter) admit(bytes int64, what string) error {
	if m.budget > 0 && m.used+bytes > m.budget {
		return fmt.Errorf("cuda: %w allocating %s: %s needed, %s of the %s budget (-gpu-memory) in use",
			errOutOfMemory, what, mib(bytes), mib(m.used), mib(m.budget))
	}
	return nil
}

// record counts a new allocation.
func (m *memoryMeter) record(p dptr, bytes int64) {
	if m.sizes == nil {
		m.sizes = map[dptr]int64{}
	}
	m.sizes[p] = bytes
	m.used += bytes
	m.peak = max(m.peak, m.used)
}

// forget uncounts a freed allocation.
func (m *memoryMeter) forget(p dptr) {
	m.used -= m.sizes[p]
	delete(m.sizes, p)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// deviceMemory allocates and frees device memory: the driver, or a fake in tests.
type deviceMemory interface {
	alloc(bytes int64, what string) (dptr, error)
	free(p dptr)
}

// firstFit places blocks in one address range: each new block goes to the lowest free gap
// that holds it (with reuse on), else on top. Sizes are rounded up to 256 bytes.
type firstFit struct {
	reuse bool
	gaps  []block // free gaps, sorted by offset, neighbours merged
	top   int64   // the range's length so far
}

type block struct{ off, size int64 }

// alloc returns the offset of a new block of size bytes.
func (f *firstFit) alloc(size int64) int64 {
	size = align(size)
	if f.reuse {
		for k, b := range f.gaps {
			if b.size < size {
				continue
			}
			if b.size == size {
				f.gaps = append(f.gaps[:k], f.gaps[k+1:]...)
			} else {
				f.gaps[k] = block{b.off + size, b.size - size}
			}
			return b.off
		}
	}
	off := f.top
	f.top += size
	return off
}

// release returns a block to the free gaps.
func (f *firstFit) release(off, size int64) {
	if !f.reuse {
		return
	}
	size = align(size)
	f.gaps = append(f.gaps, block{off, size})
	for i := len(f.gaps) - 1; i > 0 && f.gaps[i].off < f.gaps[i-1].off; i-- {
		f.gaps[i], f.gaps[i-1] = f.gaps[i-1], f.gaps[i]
	}
	merged := f.gaps[:0]
	for _, b := range f.gaps {
		if n := len(merged); n > 0 && merged[n-1].off+merged[n-1].size == b.off {
			merged[n-1].size += b.size
			continue
		}
		merged = append(merged, b)
	}
	f.gaps = merged
}

// arena is one block of device memory that the programs of an executor share for their
// activations. Programs run one at a time on one stream, and no value outlives its program's
// run in the arena (what is read later is copied out first), so each program may use all of
// it. It only grows: to the largest program seen, or reserved for up front.
type arena struct {
	mem    deviceMemory
	what   string
	base   dptr
	size   int64
	onMove func() // drops (or lays out again) the programs that point into the arena
}

// reserve makes the arena at least bytes long. When it has to move, onMove drops the programs
// laid out in it, and the old memory is freed before the new is allocated (so the two need
// not fit together).
func (a *arena) reserve(bytes int64) error {
	bytes = align(max(bytes, 1))
	if bytes <= a.size {
		return nil
	}
	if a.base != 0 {
		if a.onMove != nil {
			a.onMove()
		}
		a.mem.free(a.base)
		a.base, a.size = 0, 0
	}
	base, err := a.mem.alloc(bytes, a.what)
	if err != nil {
		return err
	}
	a.base, a.size = base, bytes
	return nil
}

// release frees the arena.
func (a *arena) release() {
	if a.base != 0 {
		a.mem.free(a.base)
	}
	a.base, a.size = 0, 0
}

// lru is a bounded cache: adding to a full one drops the least recently used entry first.
type lru[K comparable, V any] struct {
	limit int
	order []K // least recently used first
	items map[K]V
	drop  func(V)
}

func newLRU[K comparable, V any](limit int, drop func(V)) *lru[K, V] {
	return &lru[K, V]{limit: max(limit, 1), items: map[K]V{}, drop: drop}
}

// get returns the entry of k and marks it used.
func (c *lru[K, V]) get(k K) (V, bool) {
	v, ok := c.items[k]
	if ok {
		c.touch(k)
	}
	return v, ok
}

func (c *lru[K, V]) touch(k K) {
	for i, o := range c.order {
		if o == k {
			copy(c.order[i:], c.order[i+1:])
			c.order[len(c.order)-1] = k
			return
		}
	}
}

// makeRoom drops least recently used entries until one more fits: call it before building an
// entry, so that the new one and the one it replaces are never held together.
func (c *lru[K, V]) makeRoom() {
	for len(c.order) >= c.limit {
		c.remove(c.order[0])
	}
}

// add stores v under k (which must be absent), making room first.
func (c *lru[K, V]) add(k K, v V) {
	c.makeRoom()
	c.items[k] = v
	c.order = append(c.order, k)
}

// remove drops the entry of k, if any.
func (c *lru[K, V]) remove(k K) {
	v, ok := c.items[k]
	if !ok {
		return
	}
	delete(c.items, k)
	for i, o := range c.order {
		if o == k {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	c.drop(v)
}

// clear drops every entry.
func (c *lru[K, V]) clear() {
	for len(c.order) > 0 {
		c.remove(c.order[0])
	}
}

func (c *lru[K, V]) len() int { return len(c.order) }

// MemoryEnv is the environment variable that carries the GPU memory budget (-gpu-memory) to
// the executors and decoders.
const MemoryEnv = "MQA_CUDA_MEMORY"

// ParseMemoryBudget reads a -gpu-memory value: bytes with an optional unit (KiB, MiB, GiB,
// KB, MB, GB; "20GiB", "512MiB", "2000000000"), or a fraction of the card in (0, 1] ("0.5").
// The empty string means no budget (both results zero).
func ParseMemoryBudget(spec string) (bytes int64, fraction float64, err error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return 0, 0, nil
	}
	bad := fmt.Errorf("GPU memory budget %q: want bytes with an optional unit (e.g. 20GiB, 512MiB) or a fraction of the card in (0, 1] (e.g. 0.8)", spec)
	if strings.Contains(s, ".") && strings.IndexFunc(s, func(r rune) bool { return r >= 'A' && r <= 'z' }) < 0 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(f > 0 && f <= 1) {
			return 0, 0, bad
		}
		return 0, f, nil
	}
	units := []struct {
		suffix string
		scale  float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	scale := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, scale = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.scale
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0) || f*scale > math.MaxInt64/2 {
		return 0, 0, bad
	}
	b := int64(f * scale)
	if b < 1<<20 {
		return 0, 0, fmt.Errorf("GPU memory budget %q: at least 1 MiB", spec)
	}
	return b, 0, nil
}

// budgetBytes resolves a parsed budget against the card: a fraction of its total memory, the
// bytes given, or (neither) 0 for "what the card has free".
func budgetBytes(bytes int64, fraction float64, total int64) int64 {
	if fraction > 0 {
		return int64(fraction * float64(total))
	}
	return bytes
}

// largestShapes picks, from a list of batch shapes, the few whose activation memory may be the
// largest: the most tokens, the most attention scores (tokens × length), and the longest.
func largestShapes(shapes []models.Shape) []models.Shape {
	if len(shapes) == 0 {
		return nil
	}
	measures := []func(s models.Shape) int64{
		func(s models.Shape) int64 { return int64(s.Batch) * int64(s.SrcLen+s.TgtLen) },
		func(s models.Shape) int64 {
			return int64(s.Batch) * (int64(s.SrcLen)*int64(s.SrcLen+s.TgtLen) + int64(s.TgtLen)*int64(s.TgtLen))
		},
		func(s models.Shape) int64 { return int64(s.SrcLen + s.TgtLen) },
	}
	var out []models.Shape
	for _, m := range measures {
		best := shapes[0]
		for _, s := range shapes[1:] {
			if m(s) > m(best) {
				best = s
			}
		}
		if !slices.Contains(out, best) {
			out = append(out, best)
		}
	}
	return out
}
