package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mqa/checkpoints"
)

// TestSettingsBounds: an accumulation count that would allocate without bound (it used to
// panic in makeslice at 1e15, here the largest int) or a step count past MaxSteps is refused.
func TestSettingsBounds(t *testing.T) {
	for _, c := range []struct {
		edit func(*Settings)
		want string
	}{
		{func(s *Settings) { s.Accum = math.MaxInt }, fmt.Sprintf("accum = %d must be between 1 and 1024", math.MaxInt)},
		{func(s *Settings) { s.Accum = 1_000_000 }, "accum = 1000000 must be between 1 and 1024"},
		{func(s *Settings) { s.Steps = MaxSteps + 1 }, "must be between 1 and"},
		{func(s *Settings) { s.Schedule.Total = -1 }, "total ≥ 0"},
	} {
		s := DefaultSettings(10)
		c.edit(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
	s := DefaultSettings(10)
	s.Accum = MaxAccum
	if err := s.Validate(); err != nil {
		t.Errorf("accum %d refused: %v", MaxAccum, err)
	}
}

// TestResumeChecks: a tampered state.json is refused with its path and the field, steps
// not beyond the run's step are refused, and an extension keeps the schedule.
func TestResumeChecks(t *testing.T) {
	out := t.TempDir()
	tr, src, _ := newLMRun(t, 6)
	tr.Settings.Schedule.Kind = ScheduleCosine
	if _, err := tr.Run(context.Background(), src, RunOptions{Out: out, CheckpointEvery: 3}); err != nil {
		t.Fatal(err)
	}
	old := tr.Settings.Schedule

	for _, steps := range []int{3, 6} {
		if _, _, _, err := Resume(out, "cpu", steps); !errors.Is(err, ErrStepsTooFew) || !strings.Contains(err.Error(), "at step 6") {
			t.Errorf("Resume with %d steps at step 6: %v", steps, err)
		}
	}
	tr2, _, _, err := Resume(out, "cpu", 10)
	if err != nil {
		t.Fatal(err)
	}
	if tr2.Settings.Steps != 10 || tr2.Settings.Schedule != old {
		t.Errorf("extended run: %d steps, schedule %+v; want 10 steps and the schedule kept, %+v", tr2.Settings.Steps, tr2.Settings.Schedule, old)
	}
	tr2.Close()

	latest, err := checkpoints.Manager{Root: out}.Latest()
	if err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(latest, checkpoints.StateFile)
	for _, c := range []struct {
		edit func(*State)
		want string
	}{
		{func(s *State) { s.Settings.Accum = math.MaxInt }, fmt.Sprintf("accum = %d", math.MaxInt)},
		{func(s *State) { s.Step = 12 }, "step 12 is outside 0..6"},
		{func(s *State) { s.OptSteps = -1 }, "optimizer_steps -1"},
		{func(s *State) { s.Data.Pos = -3 }, "pos -3"},
	} {
		var st State
		if err := checkpoints.ReadJSON(statePath, &st, 1<<20); err != nil {
			t.Fatal(err)
		}
		good := st
		c.edit(&st)
		if err := checkpoints.WriteJSON(statePath, st); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := Resume(out, "cpu", 0); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), statePath) {
			t.Errorf("tampered state: %v, want %q and the path", err, c.want)
		}
		if err := checkpoints.WriteJSON(statePath, good); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunRemovesStaleLogCopies: a temporary copy of train.jsonl that a crash left beside it
// is removed when the run starts; a user's similarly named file is not.
func TestRunRemovesStaleLogCopies(t *testing.T) {
	out := t.TempDir()
	stale := filepath.Join(out, ".tmp-"+checkpoints.LogFile+"-123456")
	mine := filepath.Join(out, ".tmp-"+checkpoints.LogFile+"-notes")
	for _, p := range []string{stale, mine} {
		if err := os.WriteFile(p, []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, src, _ := newLMRun(t, 1)
	if _, err := tr.Run(context.Background(), src, RunOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale copy %s: %v", stale, err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("the user's %s: %v", mine, err)
	}
}

// TestSummarizeLog: the summary of a train.jsonl counts its step lines (not its validation
// lines), sums each step's tokens and time (tokens over tokens/s), keeps the last loss and
// validation loss and the peak GPU memory, and counts a step logged without tokens (before the
// log recorded them) but no time for it.
func TestSummarizeLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), checkpoints.LogFile)
	log := `{"step":1,"loss":5.5,"lr":0.001,"tokens_per_s":100,"peak_gpu_bytes":7,"elapsed_s":1,"time":""}
{"step":2,"loss":5.0,"lr":0.001,"tokens_per_s":200,"tokens":400,"peak_gpu_bytes":9,"elapsed_s":3,"time":""}
{"step":2,"val_loss":4.5,"val_ppl":90,"elapsed_s":3.5,"time":""}
{"step":3,"loss":4.75,"lr":0.001,"tokens_per_s":300,"tokens":150,"peak_gpu_bytes":8,"elapsed_s":4,"time":""}
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := SummarizeLog(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Steps: 3, FinalLoss: 4.75, ValLoss: 4.5, Tokens: 550, Seconds: 2.5, PeakGPUBytes: 9}
	if got != want {
		t.Errorf("summary %+v, want %+v", got, want)
	}
}
