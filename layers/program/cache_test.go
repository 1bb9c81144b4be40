package program

import (
	"errors"
	"slices"
	"testing"
)

// TestCacheBudget: entries of 10 bytes in a cache of 25: making room before the fourth drops
// the least recently used (a Get counts as a use), never more than it must, and an entry
// bigger than the budget alone is kept until the next one needs room.
func TestCacheBudget(t *testing.T) {
	c := NewCache[string](25, func(n int) int64 { return int64(n) })
	for _, k := range []string{"a", "b", "c"} {
		c.MakeRoom()
		c.Add(k, 10)
	}
	if _, ok := c.Get("a"); !ok {
		t.Fatal("a dropped before any room was made")
	}
	c.MakeRoom() // 30 > 25: drops b, the least recently used
	if got := keys(c); !slices.Equal(got, []string{"a", "c"}) || c.Bytes() != 20 {
		t.Errorf("after making room: %v holding %d bytes, want [a c] holding 20", got, c.Bytes())
	}
	c.Add("big", 100)
	c.MakeRoom()
	if c.Len() != 0 {
		t.Errorf("%d entries left after making room past an entry over budget, want 0", c.Len())
	}
	c.Add("d", 10)
	c.Clear()
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Errorf("after Clear: %d entries, %d bytes", c.Len(), c.Bytes())
	}
}

func keys(c *Cache[string, int]) []string { k := slices.Clone(c.recent); slices.Sort(k); return k }

// TestCacheGetOrBuild: an entry is built once and then found; building makes room first; a
// failed build is not kept, so the next call builds again.
func TestCacheGetOrBuild(t *testing.T) {
	c := NewCache[string](15, func(n int) int64 { return int64(n) })
	builds := 0
	build := func(n int, err error) func() (int, error) {
		return func() (int, error) { builds++; return n, err }
	}
	for range 2 {
		if v, err := c.GetOrBuild("a", build(10, nil)); v != 10 || err != nil {
			t.Fatalf("GetOrBuild(a) = %d, %v", v, err)
		}
	}
	if builds != 1 {
		t.Errorf("a built %d times, want once", builds)
	}
	if _, err := c.GetOrBuild("b", build(10, nil)); err != nil || !slices.Equal(keys(c), []string{"a", "b"}) {
		t.Errorf("after building b: %v (%v)", keys(c), err)
	}
	fail := errors.New("no graph")
	if _, err := c.GetOrBuild("c", build(10, fail)); !errors.Is(err, fail) || !slices.Equal(keys(c), []string{"b"}) {
		t.Errorf("a failed build: %v, kept %v; want its error and b only (a dropped to make room)", err, keys(c))
	}
	if _, err := c.GetOrBuild("c", build(10, nil)); err != nil || builds != 4 {
		t.Errorf("c after a failed build: %v, %d builds, want it built again (4)", err, builds)
	}
}
