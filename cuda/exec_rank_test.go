//go:build mqacuda

package cuda

import (
	"math"
	"os"
	"strconv"
	"testing"

	"mqa/models"
	"mqa/train"
)

// testGPUs is the number of GPUs the multi-GPU tests use (MQA_TEST_GPUS, default 2); the test
// is skipped where fewer are visible or NCCL does not load.
func testGPUs(t *testing.T) int {
	t.Helper()
	gpus := 2
	if s := os.Getenv("MQA_TEST_GPUS"); s != "" {
		var err error
		if gpus, err = strconv.Atoi(s); err != nil {
			t.Fatalf("MQA_TEST_GPUS=%q: %v", s, err)
		}
	}
	if _, err := LoadNCCL(); err != nil {
		t.Skip(err)
	}
	if visible := deviceCount(); visible < gpus {
		t.Skipf("%d GPUs visible, the test needs %d", visible, gpus)
	}
	return gpus
}

// The tiny LM trained 30 steps on one GPU and data-parallel on several (NCCL all-reduce),
// with whole micro-batches dealt to the GPUs (-accum = GPUs) and with each batch's rows split
// among them (-accum 1): the loss curves and gradient norms agree to 1e-4 relative and the
// final weights (rank 0's, synced back) to 1e-4.
func TestDataParallelGPUs(t *testing.T) {
	gpus := testGPUs(t)
	cfg, err := models.Preset("tiny", models.TaskLM, 48)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("MQA_CUDA_MATH", "fp32")
	t.Setenv("MQA_CUDA_GRAPHS", "0")
	const steps = 30
	for _, accum := range []int{gpus, 1} {
		data := patternBatches(cfg, models.Shape{Batch: 4 * gpus, TgtLen: 32}, steps*accum, 3)
		s := train.DefaultSettings(steps)
		s.Seed, s.LabelSmoothing, s.Accum = 5, 0.1, accum
		run := func(ranks int) ([]train.StepStats, *train.Trainer) {
			tr, err := train.NewTrainerRanks(cfg, nil, s, "cuda", ranks)
			if err != nil {
				t.Fatal(err)
			}
			var stats []train.StepStats
			for i := range steps {
				st, err := tr.TrainStep(data[i*accum : (i+1)*accum])
				if err != nil {
					t.Fatal(err)
				}
				stats = append(stats, st)
			}
			if err := tr.Sync(); err != nil {
				t.Fatal(err)
			}
			return stats, tr
		}
		one, trOne := run(1)
		many, trMany := run(gpus)
		for i := range one {
			if r := math.Abs(many[i].Loss-one[i].Loss) / one[i].Loss; r > 1e-4 || math.Abs(many[i].GradNorm-one[i].GradNorm)/one[i].GradNorm > 1e-4 {
				t.Errorf("accum %d, step %d: %d GPUs loss %.6f norm %.5f; one GPU %.6f, %.5f", accum, i+1, gpus, many[i].Loss, many[i].GradNorm, one[i].Loss, one[i].GradNorm)
			}
		}
		var worst float64
		for _, name := range trOne.ParamNames() {
			a, b := trOne.Params.Get(name).Data().([]float32), trMany.Params.Get(name).Data().([]float32)
			for j := range a {
				worst = math.Max(worst, math.Abs(float64(a[j]-b[j])))
			}
		}
		if worst > 1e-4 {
			t.Errorf("accum %d: final weights differ by up to %g", accum, worst)
		}
		t.Logf("accum %d, %d GPUs: loss %.4f → %.4f (one GPU %.4f → %.4f), weights within %.2g", accum, gpus, many[0].Loss, many[steps-1].Loss, one[0].Loss, one[steps-1].Loss, worst)
		trOne.Close()
		trMany.Close()
	}
}
