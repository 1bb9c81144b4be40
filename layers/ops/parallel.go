package ops

import (
	"runtime"
	"sync"
)

// minTaskWork is the least work (in elements touched) that parallelRows gives one goroutine:
// tens of microseconds, so that starting it costs little against it.
const minTaskWork = 1 << 15

// parallelRows calls f on contiguous ranges [lo, hi) that together cover the rows [0, rows),
// on up to GOMAXPROCS goroutines when rows × rowWork is large enough, else on the calling
// goroutine. f must compute each row on its own (no sums across rows), so the result is
// the same as one serial pass.
func parallelRows(rows, rowWork int, f func(lo, hi int)) {
	tasks := min(runtime.GOMAXPROCS(0), rows*rowWork/minTaskWork, rows)
	if tasks <= 1 {
		f(0, rows)
		return
	}
	var wg sync.WaitGroup
	for t := range tasks {
		lo, hi := rows*t/tasks, rows*(t+1)/tasks
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}
