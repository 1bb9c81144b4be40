package train

import (
	"reflect"
	"testing"

	"mqa/models"
)

// lmBatch is an LM batch of rows×cols whose token at (row, col) is 10·row+col+1, and whose
// targets are the tokens, with pads (0) where pad[row] says how many trail the row.
func lmBatch(rows, cols int, pad []int) Batch {
	b := Batch{Shape: models.Shape{Batch: rows, TgtLen: cols}}
	for r := range rows {
		for c := range cols {
			v := 10*r + c + 1
			b.Tokens = append(b.Tokens, v)
			if c >= cols-pad[r] {
				v = models.PadID
			}
			b.Targets = append(b.Targets, v)
		}
	}
	return b
}

func TestSplitGlobalBatch(t *testing.T) {
	a, b := lmBatch(4, 3, []int{0, 0, 0, 0}), lmBatch(4, 3, []int{1, 0, 2, 0})
	tr := Batch{Shape: models.Shape{Batch: 2, SrcLen: 2, TgtLen: 2}, Src: []int{5, 6, 7, 0}, SrcLens: []int{2, 1},
		Tokens: []int{1, 8, 1, 9}, Targets: []int{8, 2, 9, 0}}
	type part struct {
		rows   []int // first token of each row, identifying it
		weight float64
	}
	cases := []struct {
		name  string
		micro []Batch
		ranks int
		want  [][]part
	}{
		{"one rank keeps everything", []Batch{a, b}, 1, [][]part{{{[]int{1, 11, 21, 31}, 1}, {[]int{1, 11, 21, 31}, 1}}}},
		{"whole micro-batches dealt", []Batch{a, b, a, b}, 2, [][]part{
			{{[]int{1, 11, 21, 31}, 1}, {[]int{1, 11, 21, 31}, 1}}, {{[]int{1, 11, 21, 31}, 1}, {[]int{1, 11, 21, 31}, 1}}}},
		// b has 9 target tokens: rows 0..1 hold 2+3, rows 2..3 hold 1+3.
		{"rows split by target tokens", []Batch{b}, 2, [][]part{{{[]int{1, 11}, 5.0 / 9}}, {{[]int{21, 31}, 4.0 / 9}}}},
		{"uneven rows", []Batch{a}, 3, [][]part{{{[]int{1}, 0.25}}, {{[]int{11}, 0.25}}, {{[]int{21, 31}, 0.5}}}},
		{"more ranks than rows", []Batch{tr}, 3, [][]part{nil, {{[]int{1}, 2.0 / 3}}, {{[]int{1}, 1.0 / 3}}}},
	}
	for _, c := range cases {
		got, err := SplitGlobalBatch(c.micro, c.ranks)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(got) != c.ranks {
			t.Fatalf("%s: %d ranks, want %d", c.name, len(got), c.ranks)
		}
		for r, shards := range got {
			var parts []part
			for _, s := range shards {
				var rows []int
				for i := range s.Batch.Shape.Batch {
					rows = append(rows, s.Batch.Tokens[i*s.Batch.Shape.TgtLen])
				}
				parts = append(parts, part{rows, s.Weight})
			}
			if !reflect.DeepEqual(parts, c.want[r]) {
				t.Errorf("%s: rank %d got %v, want %v", c.name, r, parts, c.want[r])
			}
		}
	}
	// A translation slice carries its own source rows and lengths.
	got, err := SplitGlobalBatch([]Batch{tr}, 2)
	if err != nil {
		t.Fatal(err)
	}
	second := got[1][0].Batch
	want := Batch{Shape: models.Shape{Batch: 1, SrcLen: 2, TgtLen: 2}, Src: []int{7, 0}, SrcLens: []int{1}, Tokens: []int{1, 9}, Targets: []int{9, 0}}
	if !reflect.DeepEqual(second, want) {
		t.Errorf("second translation slice %+v, want %+v", second, want)
	}
	if _, err := SplitGlobalBatch([]Batch{{Shape: models.Shape{Batch: 2, TgtLen: 3}, Tokens: []int{1}}}, 2); err == nil {
		t.Error("a batch whose tokens disagree with its shape was split")
	}
	if _, err := SplitGlobalBatch([]Batch{a}, 0); err == nil {
		t.Error("0 ranks accepted")
	}
}

func TestRankShapes(t *testing.T) {
	shapes := []models.Shape{{Batch: 8, TgtLen: 16}, {Batch: 5, SrcLen: 7, TgtLen: 9}}
	cases := []struct {
		accum, ranks int
		want         []models.Shape
	}{
		{1, 1, shapes},
		{4, 2, shapes},
		{1, 2, []models.Shape{{Batch: 4, TgtLen: 16}, {Batch: 2, SrcLen: 7, TgtLen: 9}, {Batch: 3, SrcLen: 7, TgtLen: 9}}},
		{2, 3, []models.Shape{{Batch: 2, TgtLen: 16}, {Batch: 3, TgtLen: 16}, {Batch: 1, SrcLen: 7, TgtLen: 9}, {Batch: 2, SrcLen: 7, TgtLen: 9}}},
	}
	for _, c := range cases {
		if got := RankShapes(shapes, c.accum, c.ranks); !reflect.DeepEqual(got, c.want) {
			t.Errorf("accum %d, %d ranks: %v, want %v", c.accum, c.ranks, got, c.want)
		}
	}
}
