package ops

import "testing"

func TestWindowStart(t *testing.T) {
	for _, c := range []struct{ p, w, want int }{
		{0, 0, 0},  // no window
		{9, 0, 0},  // no window: every key
		{0, 3, 0},  // the first query sees only itself
		{2, 3, 0},  // the window reaches exactly the first key
		{3, 3, 1},  // keys 1, 2, 3
		{9, 3, 7},  // keys 7, 8, 9
		{9, 1, 9},  // itself only
		{5, 10, 0}, // a window wider than the sequence so far
	} {
		if got := WindowStart(c.p, c.w); got != c.want {
			t.Errorf("WindowStart(%d, %d) = %d, want %d", c.p, c.w, got, c.want)
		}
	}
}
