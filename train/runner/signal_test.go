package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestSignalContext: the first SIGINT cancels the context and the process goes on; a second
// ends it at once with InterruptedStatus. The test runs itself as the child process.
func TestSignalContext(t *testing.T) {
	if os.Getenv("MQA_SIGNAL_CHILD") == "1" {
		ctx, stop := SignalContext()
		defer stop()
		fmt.Println("ready")
		<-ctx.Done()
		fmt.Println("cancelled")
		time.Sleep(time.Minute) // only the second signal ends this early
		return
	}
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to send on Windows")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSignalContext$")
	cmd.Env = append(os.Environ(), "MQA_SIGNAL_CHILD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	for _, want := range []string{"ready", "cancelled"} {
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("the child printed %q, want %q", lines.Text(), want)
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
	}
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != InterruptedStatus || ctx.Err() != nil {
		t.Fatalf("after a second SIGINT the child ended with %v (timed out: %v), want status %d", err, ctx.Err() != nil, InterruptedStatus)
	}
}
