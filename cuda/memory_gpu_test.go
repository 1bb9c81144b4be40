//go:build mqacuda

package cuda

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"mqa/models"
	"mqa/train"
)

// Training over many batch shapes with the program cache cut to one program (every step
// compiles and captures again, and the shared arena grows as larger shapes come) gives the
// same losses as with the cache large enough for every shape, and as after reserving the
// largest shape up front. The embedding gradient's scatter-add and the gradient norm sum with
// float atomics, whose order varies between runs, so the losses are compared to 1e-5 and the
// log says how many were equal bit for bit (and whether two runs of the same setting are).
func TestProgramEvictionSameLosses(t *testing.T) {
	cfg := variants[2].config(t) // translation, MQA, dropout 0.1
	r := rand.New(rand.NewPCG(7, 7))
	var shapes []models.Shape
	for k := range 12 {
		l := 4 + 3*k
		shapes = append(shapes, models.Shape{Batch: 2 + (k*5)%7, SrcLen: l, TgtLen: l + k%3})
	}
	var batches, evals []train.Batch
	for step := range 40 {
		batches = append(batches, randomBatch(cfg, shapes[r.IntN(len(shapes))], r))
		if step%10 == 9 {
			evals = append(evals, randomBatch(cfg, shapes[r.IntN(len(shapes))], r))
		}
	}
	s := train.DefaultSettings(len(batches))
	s.Seed, s.LabelSmoothing = 3, 0.1
	t.Setenv("MQA_CUDA_MATH", "fp32")
	t.Setenv("MQA_CUDA_GRAPHS", "1")
	run := func(limit int, reserve bool) ([]float64, int64) {
		saved := maxTrainPrograms
		maxTrainPrograms = limit
		defer func() { maxTrainPrograms = saved }()
		tr, err := train.NewTrainer(cfg, nil, s, "cuda")
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if reserve {
			if err := tr.Reserve(shapes, shapes); err != nil {
				t.Fatal(err)
			}
		}
		var out []float64
		for i := range batches {
			st, err := tr.TrainStep(batches[i : i+1])
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, st.Loss)
			if i%10 == 9 {
				ev, err := tr.Evaluate(evals[i/10 : i/10+1])
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, ev.NLL)
			}
		}
		peak, _ := tr.PeakMemory()
		return out, peak
	}
	want, peakAll := run(len(shapes)*2, false)
	for _, c := range []struct {
		limit   int
		reserve bool
	}{{len(shapes) * 2, false}, {1, false}, {1, true}, {4, true}} {
		got, peak := run(c.limit, c.reserve)
		same := 0
		for i := range want {
			if got[i] == want[i] {
				same++
			} else if math.Abs(got[i]-want[i]) > 1e-5*math.Abs(want[i]) {
				t.Errorf("cache of %d, reserve %v: value %d is %v, with every program cached %v", c.limit, c.reserve, i, got[i], want[i])
			}
		}
		t.Logf("cache of %d programs, reserve %v: %d of %d losses equal bit for bit to the first run's; peak %s (first run: %s)",
			c.limit, c.reserve, same, len(want), mib(peak), mib(peakAll))
		if peak > peakAll {
			t.Errorf("peak %s with a cache of %d, above %s with every program cached", mib(peak), c.limit, mib(peakAll))
		}
	}
}

// A budget too small for the largest batch is an error from Reserve, before any step, that
// names the batch and the flags that help.
func TestReserveOverBudget(t *testing.T) {
	cfg := variants[2].config(t)
	t.Setenv(MemoryEnv, "40MiB")
	tr, err := train.NewTrainer(cfg, nil, train.DefaultSettings(10), "cuda")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	big := models.Shape{Batch: 256, SrcLen: 64, TgtLen: 64}
	err = tr.Reserve([]models.Shape{{Batch: 2, SrcLen: 8, TgtLen: 8}, big}, nil)
	if err == nil || !IsOutOfMemory(err) || !strings.Contains(err.Error(), "Batch:256") || !strings.Contains(err.Error(), "-max-tokens") {
		t.Fatalf("Reserve over budget: %v", err)
	}
	t.Log(err)
}
