package main

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/models"
)

// buildMQA compiles the command once for the process tests.
func buildMQA(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the mqa binary")
	}
	bin := filepath.Join(t.TempDir(), "mqa")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// smallText writes a few hundred lines of real text as train/valid/test files.
func smallText(t *testing.T) (trainPath, validPath, testPath string) {
	t.Helper()
	lines, err := data.LoadText("", "lm-en", "valid")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return writeLines(t, dir, "train.txt", lines[:120]), writeLines(t, dir, "valid.txt", lines[120:130]), writeLines(t, dir, "test.txt", lines[130:140])
}

// writeLines writes lines, each ended by a newline, to dir/name and returns its path.
func writeLines(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runMQA runs the binary to the end and fails the test, with its output, if it fails.
func runMQA(t *testing.T, bin, what string, args ...string) {
	t.Helper()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, out)
	}
}

func trainArgs(out, trainPath, validPath, testPath string, steps string) []string {
	return []string{"train", "-preset", "tiny", "-steps", steps, "-vocab", "300", "-seq", "16", "-batch", "4",
		"-train", trainPath, "-valid", validPath, "-test", testPath, "-ckpt-every", "1", "-eval-every", "5",
		"-keep", "2", "-dropout", "0.1", "-out", out}
}

// finalWeights reads the model weights of the newest checkpoint.
func finalWeights(t *testing.T, run string) []byte {
	t.Helper()
	dir, err := checkpoints.Resolve(run)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, checkpoints.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKillAndResume kills a training process with SIGKILL at random moments (many of them
// during checkpoint writes, as it checkpoints every step), checks after every kill that the
// newest complete checkpoint loads, resumes, and finally compares the weights with an
// uninterrupted run: they must be bit-identical.
func TestKillAndResume(t *testing.T) {
	bin := buildMQA(t)
	tr, va, te := smallText(t)
	const steps = "30"
	ref := filepath.Join(t.TempDir(), "ref")
	runMQA(t, bin, "uninterrupted run", trainArgs(ref, tr, va, te, steps)...)
	run := filepath.Join(t.TempDir(), "run")
	// args resume the run from its newest complete checkpoint, or start it when it has none.
	args := func() []string {
		if _, err := checkpoints.Resolve(run); err == nil {
			return []string{"train", "-resume", run}
		}
		return trainArgs(run, tr, va, te, steps)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	kills := 0
	for attempt := 0; attempt < 60 && kills < 20; attempt++ {
		cmd := exec.Command(bin, args()...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run ended with %v\n%s", err, stderr.String())
			}
			// it finished before the kill: start over from scratch for more kills
			if err := os.RemoveAll(run); err != nil {
				t.Fatal(err)
			}
			continue
		case <-time.After(time.Duration(50+rng.IntN(900)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		}
		// Whatever the moment, the newest complete checkpoint must load.
		if dir, err := checkpoints.Resolve(run); err == nil {
			if _, _, err := models.LoadModel(dir); err != nil {
				t.Fatalf("after kill %d the newest checkpoint %s does not load: %v", kills, dir, err)
			}
		}
	}
	if kills < 20 {
		t.Fatalf("only %d kills landed", kills)
	}
	// Finish the run and compare.
	runMQA(t, bin, "finishing", args()...)
	if !bytes.Equal(finalWeights(t, ref), finalWeights(t, run)) {
		t.Fatal("after kills and resumes the final weights differ from the uninterrupted run's")
	}
	t.Logf("%d kills", kills)
}

// TestSIGINTSavesAndResumes interrupts a run with SIGINT: it must write a checkpoint, exit
// with status 130 and say how to resume; resuming finishes with the uninterrupted weights.
func TestSIGINTSavesAndResumes(t *testing.T) {
	bin := buildMQA(t)
	tr, va, te := smallText(t)
	ref := filepath.Join(t.TempDir(), "ref")
	runMQA(t, bin, "uninterrupted run", trainArgs(ref, tr, va, te, "150")...)
	run := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(bin, trainArgs(run, tr, va, te, "150")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the first checkpoint, then interrupt.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := checkpoints.Resolve(run); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("interrupted run ended with %v, want exit status 130\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "resume with: mqa train -resume "+run) {
		t.Errorf("no resume hint in:\n%s", stderr.String())
	}
	dir, err := checkpoints.Resolve(run)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(dir, "step-00000150") {
		t.Fatal("the run finished before the interrupt; nothing was tested")
	}
	runMQA(t, bin, "resume", "train", "-resume", run)
	if !bytes.Equal(finalWeights(t, ref), finalWeights(t, run)) {
		t.Fatal("the resumed run's final weights differ from the uninterrupted run's")
	}
}

// TestKillDuringPruning kills a run that prunes at every step (-keep 1, a checkpoint every
// step) a few times: after every kill each checkpoint that says complete has all its files
// and loads, the next start removes what the kill left, and the finished run matches an
// uninterrupted one with nothing left over.
func TestKillDuringPruning(t *testing.T) {
	bin := buildMQA(t)
	tr, va, te := smallText(t)
	args := func(out string) []string {
		return []string{"train", "-preset", "tiny", "-steps", "16", "-vocab", "280", "-seq", "8", "-batch", "2",
			"-train", tr, "-valid", va, "-test", te, "-ckpt-every", "1", "-eval-every", "4", "-keep", "1", "-out", out}
	}
	ref := filepath.Join(t.TempDir(), "ref")
	runMQA(t, bin, "uninterrupted run", args(ref)...)
	run := filepath.Join(t.TempDir(), "run")
	next := func() []string {
		if _, err := checkpoints.Resolve(run); err == nil {
			return []string{"train", "-resume", run}
		}
		return args(run)
	}
	files := []string{checkpoints.ConfigFile, checkpoints.WeightsFile, checkpoints.OptimizerFile, checkpoints.StateFile, checkpoints.RunFile, checkpoints.TokenizerFile}
	rng := rand.New(rand.NewPCG(3, 5))
	kills := 0
	for attempt := 0; attempt < 20 && kills < 6; attempt++ {
		cmd := exec.Command(bin, next()...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%v ended with %v\n%s", cmd.Args, err, stderr.String())
			}
			if err := os.RemoveAll(run); err != nil { // finished before the kill: start again
				t.Fatal(err)
			}
			continue
		case <-time.After(time.Duration(100+rng.IntN(500)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		}
		infos, err := checkpoints.Manager{Root: run}.List()
		if err != nil {
			continue // killed before the run directory existed
		}
		for _, in := range infos {
			for _, f := range files {
				if _, err := os.Stat(filepath.Join(in.Dir, f)); err != nil {
					t.Fatalf("after kill %d, %s says complete but %s is missing", kills, in.Dir, f)
				}
			}
			if _, _, err := models.LoadModel(in.Dir); err != nil {
				t.Fatalf("after kill %d, %s does not load: %v", kills, in.Dir, err)
			}
		}
	}
	if kills < 3 {
		t.Fatalf("only %d kills landed", kills)
	}
	runMQA(t, bin, "finishing", next()...)
	if !bytes.Equal(finalWeights(t, ref), finalWeights(t, run)) {
		t.Error("after kills during pruning the final weights differ from the uninterrupted run's")
	}
	ents, err := os.ReadDir(run)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("the finished run still holds %s", e.Name())
		}
	}
	t.Logf("%d kills", kills)
}
