package ops

// WindowStart is the first key position that a query at position p sees under a local window
// of w keys (itself and the w−1 before it): p − w + 1, or 0 without a window (w = 0) or where
// the window reaches back past the first key. The CUDA kernels' window_start
// (cuda/kernels/kernels.cu) is the same rule.
func WindowStart(p, w int) int {
	if w > 0 && p-w+1 > 0 {
		return p - w + 1
	}
	return 0
}
