package train

import (
	"testing"

	"mqa/layers/program"
	"mqa/models"
)

// TestCPUGraphBudget: batch shapes that come back in turn, trained by an executor that keeps
// every compiled graph and by one whose memory budget keeps only the last, give the same
// losses bit for bit; the bounded one holds one graph at the end, the other every shape.
func TestCPUGraphBudget(t *testing.T) {
	cfg := tinyCfg(models.TaskLM, 61, 4)
	shapes := [][2]int{{2, 5}, {3, 4}, {1, 6}}
	train := func(budget int64) ([]float64, *cpuExecutor) {
		tr, err := NewTrainer(cfg, nil, DefaultSettings(9), "cpu")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		e := tr.exec.(*cpuExecutor)
		e.compiled = program.NewCache[compiledKey](budget, func(c *compiled) int64 { return c.prog.Bytes() })
		var losses []float64
		for step := range 9 {
			sh := shapes[step%len(shapes)]
			st, err := tr.TrainStep([]Batch{lmBatch(sh[0], sh[1], make([]int, sh[0]))})
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, st.Loss)
		}
		return losses, e
	}
	all, kept := train(program.DefaultBudget)
	bounded, one := train(1)
	for i := range all {
		if all[i] != bounded[i] {
			t.Errorf("step %d: loss %v with every graph kept, %v with graphs rebuilt", i+1, all[i], bounded[i])
		}
	}
	if kept.compiled.Len() != len(shapes) || one.compiled.Len() != 1 {
		t.Errorf("kept %d graphs within the default budget (want %d) and %d within 1 byte (want 1)",
			kept.compiled.Len(), len(shapes), one.compiled.Len())
	}
	if kept.compiled.Bytes() <= one.compiled.Bytes() || one.compiled.Bytes() == 0 {
		t.Errorf("kept bytes: %d for every graph, %d for one", kept.compiled.Bytes(), one.compiled.Bytes())
	}
}
