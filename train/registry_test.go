package train

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"mqa/models"
)

func TestRegisterExecutor(t *testing.T) {
	errFake := errors.New("fake executor")
	var got *Trainer
	RegisterExecutor("test-registry", func(t *Trainer) (Executor, error) {
		got = t
		return nil, errFake
	})
	if devs := Executors(); !slices.IsSorted(devs) || !slices.Contains(devs, "cpu") || !slices.Contains(devs, "test-registry") {
		t.Fatalf("Executors() = %v", devs)
	}
	if err := CheckDevice("test-registry"); err != nil {
		t.Fatalf("CheckDevice of a registered device: %v", err)
	}
	tr, err := NewTrainer(tinyCfg(models.TaskLM, 40, 2), nil, DefaultSettings(10), "test-registry")
	if !errors.Is(err, errFake) || tr != nil || got == nil || got.Cfg.Vocab != 40 {
		t.Fatalf("NewTrainer on the registered device: trainer %v, err %v, factory saw %v", tr, err, got)
	}
	for _, c := range []struct {
		name    string
		factory ExecutorFactory
	}{
		{"test-registry", func(*Trainer) (Executor, error) { return nil, nil }},
		{"cpu", func(*Trainer) (Executor, error) { return nil, nil }},
		{"test-nil", nil},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), c.name) {
					t.Errorf("RegisterExecutor(%q): panic %v, want one naming the device", c.name, r)
				}
			}()
			RegisterExecutor(c.name, c.factory)
		}()
	}
}
