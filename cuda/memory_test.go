package cuda

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"mqa/models"
)

func TestParseMemoryBudget(t *testing.T) {
	for _, tc := range []struct {
		spec     string
		bytes    int64
		fraction float64
		err      string
	}{
		{"", 0, 0, ""},
		{"20GiB", 20 << 30, 0, ""},
		{"512MiB", 512 << 20, 0, ""},
		{"1.5GiB", 3 << 29, 0, ""},
		{"2GB", 2e9, 0, ""},
		{"3000000000", 3e9, 0, ""},
		{"0.8", 0, 0.8, ""},
		{"1.0", 0, 1, ""},
		{"1.5", 0, 0, "fraction of the card in (0, 1]"},
		{"0", 0, 0, "want bytes"},
		{"-3GiB", 0, 0, "want bytes"},
		{"12 parsecs", 0, 0, "want bytes"},
		{"100KiB", 0, 0, "at least 1 MiB"},
	} {
		b, f, err := ParseMemoryBudget(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || b != tc.bytes || f != tc.fraction {
			t.Errorf("%q: %d, %g, %v; want %d, %g", tc.spec, b, f, err, tc.bytes, tc.fraction)
		}
	}
	if got := budgetBytes(0, 0.5, 80<<30); got != 40<<30 {
		t.Errorf("half of 80 GiB: %d", got)
	}
}

// fakeMemory hands out addresses in a private range and counts what is live, through the
// same meter the driver uses.
type fakeMemory struct {
	next  dptr
	meter memoryMeter
	peaks []int64 // live bytes after every allocation
}

func (m *fakeMemory) alloc(bytes int64, what string) (dptr, error) {
	if err := m.meter.admit(bytes, what); err != nil {
		return 0, err
	}
	m.next += 1 << 40
	m.meter.record(m.next, bytes)
	m.peaks = append(m.peaks, m.meter.used)
	return m.next, nil
}

func (m *fakeMemory) free(p dptr) {
	if _, ok := m.meter.sizes[p]; !ok {
		panic(fmt.Sprintf("free of %x, which is not allocated", p))
	}
	m.meter.forget(p)
}

// Blocks whose lifetimes overlap never share memory, and dead blocks' memory is reused.
func TestFirstFitKeepsLiveBlocksApart(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	f := firstFit{reuse: true}
	type live struct{ off, size int64 }
	var alive []live
	var total, liveBytes, maxLive int64
	for range 2000 {
		if len(alive) > 0 && rng.IntN(3) == 0 {
			k := rng.IntN(len(alive))
			f.release(alive[k].off, alive[k].size)
			liveBytes -= alive[k].size
			alive = append(alive[:k], alive[k+1:]...)
			continue
		}
		size := align(int64(1 + rng.IntN(5000)))
		off := f.alloc(size)
		if off%256 != 0 || off+size > f.top {
			t.Fatalf("block [%d, %d) outside the range of %d or unaligned", off, off+size, f.top)
		}
		for _, b := range alive {
			if off < b.off+b.size && b.off < off+size {
				t.Fatalf("block [%d, %d) overlaps live [%d, %d)", off, off+size, b.off, b.off+b.size)
			}
		}
		alive = append(alive, live{off, size})
		total += size
		liveBytes += size
		maxLive = max(maxLive, liveBytes)
	}
	if f.top >= total*3/4 || f.top > 2*maxLive {
		t.Errorf("range %d for %d bytes allocated in all, at most %d alive: dead memory is not reused", f.top, total, maxLive)
	}
}

// On a real training plan, values that are alive at the same time never share memory, and
// reuse makes the arena smaller than one block per value.
func TestPlanActivationsKeepsLiveValuesApart(t *testing.T) {
	for _, task := range []string{models.TaskLM, models.TaskTranslate} {
		cfg, err := models.Preset("tiny", task, 61)
		if err != nil {
			t.Fatal(err)
		}
		shape := models.Shape{Batch: 3, SrcLen: 7, TgtLen: 9}
		if task == models.TaskLM {
			shape.SrcLen = 0
		}
		plan := planFor(t, cfg, shape)
		mirrors, err := bf16MirrorUses(plan)
		if err != nil {
			t.Fatal(err)
		}
		for _, groups := range []map[int][]int{nil, plan.GEMMGroups} {
			lay := planActivations(plan, groups, mirrors, true)
			whole := planActivations(plan, groups, mirrors, false)
			if lay.top >= whole.top/2 {
				t.Errorf("%s: %d bytes with reuse, %d without", task, lay.top, whole.top)
			}
			checkLiveApart(t, plan, groups, lay)
		}
	}
}

// checkLiveApart checks that two computed values whose lifetimes (first computed to last
// read) overlap occupy disjoint memory.
func checkLiveApart(t *testing.T, plan *Plan, groups map[int][]int, lay activationLayout) {
	t.Helper()
	nodes := plan.Nodes
	born := make([]int, len(nodes))
	dies := make([]int, len(nodes))
	for i := range nodes {
		born[i], dies[i] = i, i
	}
	for f, g := range groups {
		for _, j := range g {
			born[j] = f
		}
	}
	for i, pn := range nodes {
		in := pn.In
		if a, ok := plan.AddNorm[i]; ok {
			in = append(append([]int{}, in...), nodes[a].In...)
		}
		for _, j := range in {
			dies[nodes[j].Alias] = max(dies[nodes[j].Alias], i)
		}
	}
	for _, k := range append(append([]int{plan.Loss}, plan.Keep...), plan.Grads...) {
		if k >= 0 {
			dies[nodes[k].Alias] = len(nodes)
		}
	}
	var roots []int
	for i, pn := range nodes {
		if pn.Alias == i && isComputed(pn.Kind) {
			roots = append(roots, i)
		}
	}
	for a, i := range roots {
		for _, j := range roots[a+1:] {
			if born[i] > dies[j] || born[j] > dies[i] {
				continue
			}
			si, sj := align(int64(4*nodes[i].Size)), align(int64(4*nodes[j].Size))
			if lay.value[i] < lay.value[j]+sj && lay.value[j] < lay.value[i]+si {
				t.Fatalf("nodes %d and %d are alive together and overlap: [%d,+%d) [%d,+%d)", i, j, lay.value[i], si, lay.value[j], sj)
			}
		}
	}
}

// An executor visiting 40 batch shapes, in a shuffled order and more than once, never holds
// more than the largest shape's activations plus a constant per cached program: the shared
// arena grows only when a larger shape comes, and the program cache stays within its bound.
func TestSharedArenaOverManyShapes(t *testing.T) {
	cfg, err := models.Preset("tiny", models.TaskTranslate, 50)
	if err != nil {
		t.Fatal(err)
	}
	var shapes []models.Shape
	for k := range 40 {
		l := 8 * (1 + k%10)
		shapes = append(shapes, models.Shape{Batch: 4 + k/10 + 64/l, SrcLen: l, TgtLen: l})
	}
	tops := map[models.Shape]int64{}
	var largest int64
	for _, s := range shapes {
		plan := planFor(t, cfg, s)
		tops[s] = planActivations(plan, nil, nil, true).top
		largest = max(largest, align(tops[s]))
	}
	const perProgram = 1 << 20 // a program's own memory: constants, inputs, counters
	const limit = 8
	mem := &fakeMemory{}
	cache := newLRU[models.Shape](limit, func(p dptr) { mem.free(p) })
	acts := arena{mem: mem, onMove: cache.clear}
	rng := rand.New(rand.NewPCG(3, 4))
	visits, moves := 0, 0
	for range 3 {
		for _, k := range rng.Perm(len(shapes)) {
			s := shapes[k]
			visits++
			if _, ok := cache.get(s); ok {
				continue
			}
			before := acts.base
			if err := acts.reserve(tops[s]); err != nil {
				t.Fatal(err)
			}
			if before != 0 && acts.base != before {
				moves++
			}
			cache.makeRoom()
			own, err := mem.alloc(perProgram, "program")
			if err != nil {
				t.Fatal(err)
			}
			cache.add(s, own)
			if cache.len() > limit {
				t.Fatalf("%d programs cached, limit %d", cache.len(), limit)
			}
		}
	}
	bound := largest + limit*perProgram
	if mem.meter.peak > bound {
		t.Errorf("peak %d bytes over %d visits, more than the largest arena %d + %d programs × %d", mem.meter.peak, visits, largest, limit, perProgram)
	}
	if acts.size != largest {
		t.Errorf("arena %d bytes, largest shape needs %d", acts.size, largest)
	}
	if moves > 10 {
		t.Errorf("the arena moved %d times for 40 shapes", moves)
	}
	// Reserving the largest up front (what Reserve does) means it never moves.
	mem2 := &fakeMemory{}
	acts2 := arena{mem: mem2, onMove: func() { t.Error("the arena moved after reserving the largest shape") }}
	var candidates []int64
	for _, s := range largestShapes(shapes) {
		candidates = append(candidates, tops[s])
	}
	var need int64
	for _, c := range candidates {
		need = max(need, c)
	}
	if err := acts2.reserve(need); err != nil {
		t.Fatal(err)
	}
	for _, s := range shapes {
		if err := acts2.reserve(tops[s]); err != nil {
			t.Fatal(err)
		}
	}
}

// A budget refuses what does not fit with the sizes, as errOutOfMemory, and the arena keeps
// nothing of a failed reservation.
func TestBudget(t *testing.T) {
	mem := &fakeMemory{meter: memoryMeter{budget: 10 << 20}}
	acts := arena{mem: mem, what: "activations"}
	if err := acts.reserve(6 << 20); err != nil {
		t.Fatal(err)
	}
	if err := acts.reserve(5 << 20); err != nil || acts.size != 6<<20 {
		t.Fatalf("a smaller reservation: %v, size %d", err, acts.size)
	}
	err := acts.reserve(12 << 20)
	if !errors.Is(err, errOutOfMemory) || !IsOutOfMemory(err) || !strings.Contains(err.Error(), "12.0 MiB needed") || !strings.Contains(err.Error(), "-gpu-memory") {
		t.Fatalf("over the budget: %v", err)
	}
	if mem.meter.used != 0 || acts.size != 0 {
		t.Errorf("after a failed move: %d bytes used, arena %d", mem.meter.used, acts.size)
	}
	if err := acts.reserve(9 << 20); err != nil {
		t.Fatal(err)
	}
	if mem.meter.peak != 9<<20 {
		t.Errorf("peak %d", mem.meter.peak)
	}
	acts.release()
	if mem.meter.used != 0 || acts.size != 0 || acts.base != 0 {
		t.Errorf("after release: %d bytes used, arena %d at %x", mem.meter.used, acts.size, acts.base)
	}
}

func TestLRU(t *testing.T) {
	var dropped []string
	c := newLRU[int](2, func(v string) { dropped = append(dropped, v) })
	c.add(1, "a")
	c.add(2, "b")
	if v, ok := c.get(1); !ok || v != "a" {
		t.Fatal("get 1")
	}
	c.add(3, "c") // drops 2, the least recently used
	if _, ok := c.get(2); ok {
		t.Error("2 still cached")
	}
	c.remove(1)
	c.clear()
	if want := []string{"b", "a", "c"}; strings.Join(dropped, "") != strings.Join(want, "") {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
}

func TestLargestShapes(t *testing.T) {
	shapes := []models.Shape{{Batch: 64, SrcLen: 16, TgtLen: 16}, {Batch: 10, SrcLen: 128, TgtLen: 128}, {Batch: 30, SrcLen: 40, TgtLen: 40}, {Batch: 1, SrcLen: 200, TgtLen: 200}}
	got := largestShapes(shapes)
	want := []models.Shape{shapes[1], shapes[3]} // most tokens and most scores: [1]; longest: [3]
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
