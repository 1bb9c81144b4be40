package train

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"mqa/models"
)

func TestPlanBuckets(t *testing.T) {
	sizes := []int{100, 50, 400, 10, 30, 200}
	cases := []struct {
		name     string
		ready    []int
		capBytes int
		want     []Bucket
	}{
		{"one bucket holds all", []int{5, 4, 3, 2, 1, 0}, 4 * 790, []Bucket{{[]int{5, 4, 3, 2, 1, 0}, 790}}},
		{"filled in ready order", []int{5, 4, 3, 2, 1, 0}, 4 * 250, []Bucket{{[]int{5, 4, 3}, 240}, {[]int{2}, 400}, {[]int{1, 0}, 150}}},
		{"an exact fit closes no early bucket", []int{0, 1, 3, 4, 5, 2}, 4 * 190, []Bucket{{[]int{0, 1, 3, 4}, 190}, {[]int{5}, 200}, {[]int{2}, 400}}},
	}
	for _, c := range cases {
		got, err := PlanBuckets(c.ready, sizes, c.capBytes)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	for _, bad := range []struct {
		ready    []int
		capBytes int
	}{{[]int{0, 1, 2, 3, 4, 4}, 1000}, {[]int{0, 1, 2}, 1000}, {[]int{0, 1, 2, 3, 4, 6}, 1000}, {[]int{0, 1, 2, 3, 4, 5}, 3}} {
		if _, err := PlanBuckets(bad.ready, sizes, bad.capBytes); err == nil {
			t.Errorf("order %v, capacity %d: no error", bad.ready, bad.capBytes)
		}
	}
}

// TestGradientReadyOrder: the backward pass finishes the last layer's gradients first and
// the tied embedding's (used by the first and the last op) last.
func TestGradientReadyOrder(t *testing.T) {
	tr, err := NewTrainer(tinyCfg(models.TaskLM, 50, 2), nil, DefaultSettings(1), "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	g, grads, err := tr.Graph(models.Shape{Batch: 2, TgtLen: 8}, true)
	if err != nil {
		t.Fatal(err)
	}
	order, err := GradientReadyOrder(g, grads)
	if err != nil {
		t.Fatal(err)
	}
	names := tr.ParamNames()
	all := make([]int, len(names))
	for i := range all {
		all[i] = i
	}
	if !reflect.DeepEqual(slices.Sorted(slices.Values(order)), all) {
		t.Fatalf("order %v is not a permutation of %d parameters", order, len(names))
	}
	at := map[string]int{}
	for i, p := range order {
		at[names[p]] = i
	}
	if at["embed.weight"] != len(names)-1 {
		t.Errorf("tied embedding ready at %d of %d", at["embed.weight"], len(names))
	}
	for _, pair := range [][2]string{{"norm.weight", "layers.1.ffn.fc2.weight"}, {"layers.1.ffn.fc2.weight", "layers.1.ffn.fc1.weight"},
		{"layers.1.self_attn.q.weight", "layers.0.ffn.fc2.weight"}, {"layers.0.ffn.fc1.weight", "layers.0.self_attn.o.weight"}} {
		if at[pair[0]] >= at[pair[1]] {
			t.Errorf("%s ready at %d, not before %s at %d", pair[0], at[pair[0]], pair[1], at[pair[1]])
		}
	}
}

func TestLocalAllReducer(t *testing.T) {
	const ranks, rounds = 3, 4
	r := NewLocalAllReducer(ranks)
	got := make([][][]float32, ranks)
	var wg sync.WaitGroup
	for rank := range ranks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range rounds {
				buf := []float32{float32(rank + 1), float32(10 * k), float32(rank * k)}
				if err := r.AllReduce(rank, buf); err != nil {
					t.Error(err)
					return
				}
				got[rank] = append(got[rank], buf)
			}
		}()
	}
	wg.Wait()
	for rank := range ranks {
		for k := range rounds {
			want := []float32{6, float32(30 * k), float32(3 * k)}
			if !reflect.DeepEqual(got[rank][k], want) {
				t.Errorf("rank %d round %d: %v, want %v", rank, k, got[rank][k], want)
			}
		}
	}

	// A rank that fails releases the others.
	r = NewLocalAllReducer(ranks)
	errs := make(chan error, 2)
	for rank := range 2 {
		go func() { errs <- r.AllReduce(rank, []float32{1}) }()
	}
	failed := errors.New("rank 2 failed")
	r.Abort(failed)
	for range 2 {
		if err := <-errs; !errors.Is(err, failed) {
			t.Errorf("waiting rank got %v after an abort", err)
		}
	}
	if err := r.AllReduce(2, []float32{1}); !errors.Is(err, failed) {
		t.Errorf("all-reduce after an abort: %v", err)
	}

	// Buffers of different lengths are an error on every rank.
	r = NewLocalAllReducer(2)
	go func() { errs <- r.AllReduce(0, []float32{1, 2}) }()
	if err := r.AllReduce(1, []float32{1}); err == nil || !strings.Contains(err.Error(), "values") {
		t.Errorf("mismatched buffers: %v", err)
	}
	if err := <-errs; err == nil {
		t.Error("mismatched buffers: the waiting rank saw no error")
	}
}
