package main

import (
	"errors"
	"flag"
	"math"
	"mqa/checkpoints"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mqa/train"
)

func TestRanksFlags(t *testing.T) {
	cases := []struct {
		args   []string
		device string
		want   int
		usage  bool   // a command-line error (exit status 2)
		errHas string // words the error must contain
	}{
		{nil, "cpu", 1, false, ""},
		{[]string{"-ranks", "3"}, "cpu", 3, false, ""},
		{[]string{"-gpus", "0"}, "cuda", 0, true, "at least 1"},
		{[]string{"-ranks", "-2"}, "cpu", 0, true, "at least 1"},
		{[]string{"-gpus", "2"}, "cpu", 0, true, "-gpus 2 needs -device cuda (to run 2 data-parallel ranks on the CPU, use -ranks 2)"},
		{[]string{"-ranks", "2"}, "cuda", 0, true, "on GPUs use -gpus 2"},
		{[]string{"-gpus", "2", "-ranks", "2"}, "cuda", 0, true, "not both"},
		{[]string{"-ranks", "2"}, "tpu", 0, true, "-ranks is for -device cpu"},
		{[]string{"-ranks", "1"}, "tpu", 0, false, `unknown device "tpu"`},
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("train", flag.ContinueOnError)
		check := ranksFlags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		n, err := check(c.device)
		switch {
		case c.errHas == "" && (err != nil || n != c.want):
			t.Errorf("%v on %s: %d ranks, %v; want %d", c.args, c.device, n, err, c.want)
		case c.errHas != "" && (err == nil || !strings.Contains(err.Error(), c.errHas) || errors.Is(err, errUsage) != c.usage):
			t.Errorf("%v on %s: error %v; want one with %q (usage error: %v)", c.args, c.device, err, c.errHas, c.usage)
		}
	}
	if code, _ := capture(t, "train", "-device", "cpu", "-gpus", "2"); code != 2 {
		t.Errorf("train -device cpu -gpus 2 exited %d, want 2", code)
	}
	// Several GPUs without GPU support: the error says what is missing. (A build with
	// the mqacuda tag checks NCCL and the GPUs when it makes the trainer.)
	if slices.Contains(train.Executors(), "cuda") {
		return
	}
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	check := ranksFlags(fs)
	if err := fs.Parse([]string{"-gpus", "2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := check("cuda"); err == nil || !strings.Contains(err.Error(), "mqacuda") || !strings.Contains(err.Error(), "NCCL") {
		t.Errorf("-gpus 2 on a build without GPU support: %v", err)
	}
}

// TestTrainOnRanksResumesOnOthers trains a tiny LM on 2 CPU ranks, resumes it on 3, and
// compares its loss curve with a run on one rank.
func TestTrainOnRanksResumesOnOthers(t *testing.T) {
	tr, va, te := smallText(t)
	dir := t.TempDir()
	args := func(out, steps string, extra ...string) []string {
		a := trainArgs(out, tr, va, te, steps)
		// No dropout: ranks that split rows draw other dropout masks than one rank.
		a[slices.Index(a, "-dropout")+1] = "0"
		return append(a, extra...)
	}
	one, multi := filepath.Join(dir, "one"), filepath.Join(dir, "multi")
	if code, _ := capture(t, args(one, "5")...); code != 0 {
		t.Fatalf("train on one rank exited %d", code)
	}
	if code, _ := capture(t, args(multi, "3", "-ranks", "2")...); code != 0 {
		t.Fatalf("train -ranks 2 exited %d", code)
	}
	if code, _ := capture(t, "train", "-resume", multi, "-steps", "5", "-ranks", "3"); code != 0 {
		t.Fatalf("train -resume -ranks 3 exited %d", code)
	}
	a, err := train.ReadLog(filepath.Join(one, checkpoints.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := train.ReadLog(filepath.Join(multi, checkpoints.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	losses := func(log []train.LogEntry) map[int]float64 {
		m := map[int]float64{}
		for _, e := range log {
			if e.Loss != nil {
				m[e.Step] = *e.Loss
			}
		}
		return m
	}
	la, lb := losses(a), losses(b)
	if len(la) != 5 || len(lb) != 5 {
		t.Fatalf("logged %d and %d training steps, want 5", len(la), len(lb))
	}
	for step, l := range la {
		if math.Abs(lb[step]-l) > 1e-5*math.Max(1, l) {
			t.Errorf("step %d: loss %.7f on one rank, %.7f on 2 then 3 ranks", step, l, lb[step])
		}
	}
}
