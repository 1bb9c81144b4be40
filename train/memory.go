package train

import (
	"fmt"

	"mqa/models"
)

// ShapeSource is a Source that knows every batch shape it yields, so that a GPU executor can
// set aside memory for the largest before the first step.
type ShapeSource interface {
	Shapes() []models.Shape
}

// MemoryPlanner is an Executor that holds device memory. Reserve sets aside what the largest
// of the given training and evaluation batch shapes needs, and fails (saying what would help)
// when that cannot fit; PeakMemory is the most device memory it has held at once, in bytes.
type MemoryPlanner interface {
	Reserve(train, eval []models.Shape) error
	PeakMemory() int64
}

// Reserve sets device memory aside for the given batch shapes (nothing on the CPU).
func (t *Trainer) Reserve(train, eval []models.Shape) error {
	if mp, ok := t.exec.(MemoryPlanner); ok {
		return mp.Reserve(train, eval)
	}
	return nil
}

// GiB writes a byte count in GiB, as peak memory is reported.
func GiB(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }

// PeakMemory returns the most device memory the executor has held, in bytes; ok is false
// where the executor holds none of its own (the CPU).
func (t *Trainer) PeakMemory() (bytes int64, ok bool) {
	if mp, ok := t.exec.(MemoryPlanner); ok {
		return mp.PeakMemory(), true
	}
	return 0, false
}

// Shapes lists the stream's one batch shape.
func (s LMSource) Shapes() []models.Shape {
	b, n := s.LMStream.Shape()
	return []models.Shape{{Batch: b, TgtLen: n}}
}

// Shapes lists the batcher's batch shapes.
func (s TranslationSource) Shapes() []models.Shape {
	var out []models.Shape
	for _, sh := range s.TranslationBatcher.Shapes() {
		out = append(out, models.Shape{Batch: sh[0], SrcLen: sh[1], TgtLen: sh[2]})
	}
	return out
}

// batchShapes lists the distinct shapes of batches.
func batchShapes(batches []Batch) []models.Shape {
	seen := map[models.Shape]bool{}
	var out []models.Shape
	for _, b := range batches {
		if !seen[b.Shape] {
			seen[b.Shape] = true
			out = append(out, b.Shape)
		}
	}
	return out
}
