package runner

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// InterruptedStatus is the exit status of a command stopped by SIGINT or SIGTERM.
const InterruptedStatus = 130

// SignalContext returns a context that the first SIGINT or SIGTERM cancels, so that a long
// command stops cleanly (a training after its next checkpoint); a second one ends the process
// at once with InterruptedStatus, for a user who will not wait (checkpoints are written to a
// temporary name and renamed, so none is left half-written). stop restores the default
// handling of both signals.
func SignalContext() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	signals, done := make(chan os.Signal, 2), make(chan struct{})
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-signals:
			fmt.Fprintln(os.Stderr, "mqa: stopping cleanly; interrupt again to quit at once")
			cancel()
		case <-done:
			return
		}
		select {
		case <-signals:
			os.Exit(InterruptedStatus)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(signals)
		close(done)
		cancel()
	}
}
