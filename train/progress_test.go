package train

import (
	"bytes"
	"strings"
	"testing"
)

// TestProgressPlainLines: on a writer that is not a terminal, progress is one plain line per
// tenth of the work (no carriage returns, no bar), and nothing at all without a writer.
func TestProgressPlainLines(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, 20, "train mha", "steps")
	for i := 1; i <= 20; i++ {
		p.Set(i)
	}
	p.Finish()
	out := b.String()
	if strings.ContainsRune(out, '\r') {
		t.Fatalf("carriage return in plain progress %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d lines, want one per tenth (10):\n%s", len(lines), out)
	}
	if !strings.HasPrefix(lines[0], "train mha: 2/20 steps (10 %)") || !strings.HasPrefix(lines[9], "train mha: 20/20 steps (100 %)") {
		t.Errorf("first and last lines %q, %q", lines[0], lines[9])
	}
	silent := NewProgress(nil, 5, "x", "steps")
	silent.Set(5)
	silent.Finish()
}
