package infer

import (
	"strings"
	"testing"

	"mqa/models"
)

// TestReferences: each non-empty line gives its ids, one logit row per id, and the greedy
// continuation that GenerateText makes; the greedy first token is the last row's argmax.
func TestReferences(t *testing.T) {
	m, err := Load(saveCheckpoint(t, with(smallLM, func(c *models.Config) { c.KVHeads = 2 })))
	if err != nil {
		t.Fatal(err)
	}
	refs, err := References(m, "prompts.txt", []string{"the cat", "", "a dog sat"}, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs[0].Text != "the cat" || refs[1].Text != "a dog sat" {
		t.Fatalf("references %+v, want the two non-empty lines", refs)
	}
	b, _ := NewCPU(m.Cfg, m.Params, false)
	for _, r := range refs {
		if len(r.Logits) != len(r.IDs) || len(r.Logits[0]) != m.Cfg.Vocab || len(r.Greedy) > 6 {
			t.Fatalf("%q: %d logit rows for %d ids, %d greedy tokens", r.Text, len(r.Logits), len(r.IDs), len(r.Greedy))
		}
		want, err := GenerateText(b, m.Tok, r.Text, 6, Sampling{})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Tok.Decode(r.Greedy); got != want {
			t.Errorf("%q: greedy continuation %q, GenerateText %q", r.Text, got, want)
		}
		last, best := r.Logits[len(r.Logits)-1], 0
		for j, x := range last {
			if x > last[best] {
				best = j
			}
		}
		if len(r.Greedy) > 0 && r.Greedy[0] != best {
			t.Errorf("%q: first greedy token %d, the last logits' argmax %d", r.Text, r.Greedy[0], best)
		}
	}
	long := strings.Repeat("x y ", 100)
	if _, err := References(m, "prompts.txt", []string{"the cat", long}, 6); err == nil || !strings.HasPrefix(err.Error(), "prompts.txt:2: the prompt has ") {
		t.Errorf("a prompt longer than max_len: %v, want an error naming prompts.txt:2", err)
	}
}
