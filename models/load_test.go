package models

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"mqa/checkpoints"
	"mqa/layers"
)

// savedModel saves a freshly initialised model of cfg into a new directory.
func savedModel(t testing.TB, cfg Config) (string, *layers.Params) {
	t.Helper()
	p, err := InitParams(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := SaveModel(dir, cfg, p); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

// allocatedBy returns the bytes f allocates.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileConfigsFailFast puts a config claiming a huge model beside a tiny weights
// file: loading must refuse it, naming what does not fit, without building the model (it
// used to allocate gigabytes, or run for minutes with layers = 16777216).
func TestHostileConfigsFailFast(t *testing.T) {
	const huge = 1 << 24
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"dim", func(c *Config) { c.Dim = huge }, "dim 16777216"},
		{"vocab", func(c *Config) { c.Vocab = huge }, "vocab 16777216"},
		{"ff_dim", func(c *Config) { c.FFDim = huge }, "ff_dim 16777216"},
		{"heads", func(c *Config) { c.Heads, c.KVHeads = huge, 1 }, "heads 16777216"},
		{"head_dim", func(c *Config) { c.HeadDim = huge }, "head_dim 16777216"},
		{"layers", func(c *Config) { c.Layers = huge }, "16777216 layers, more than the file's 13 tensors"},
		{"max_len sinusoidal", func(c *Config) { c.MaxLen = huge }, "sinusoidal position table of max_len 16777216"},
		{"max_len learned", func(c *Config) { c.MaxLen, c.Positions = huge, "learned" }, "learned positions of max_len 16777216"},
		{"a few more layers", func(c *Config) { c.Layers = 12 }, "attention weights of 12 layers"},
	}
	cfg := handLM
	cfg.Layers = 1
	dir, _ := savedModel(t, cfg)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := cfg
			c.edit(&bad)
			if err := bad.Validate(); err != nil {
				t.Fatalf("the hostile config must pass Validate to test loading: %v", err)
			}
			must(t, checkpoints.WriteJSON(filepath.Join(dir, checkpoints.ConfigFile), bad))
			var err error
			alloc := allocatedBy(func() { _, _, err = LoadModel(dir) })
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), checkpoints.WeightsFile) {
				t.Errorf("error %v, want it to name %s and mention %q", err, checkpoints.WeightsFile, c.want)
			}
			if alloc > 16<<20 {
				t.Errorf("allocated %d MiB to refuse a config beside a %d-parameter file", alloc>>20, cfg.ParamCount())
			}
		})
	}
}

// TestCheckSizeAcceptsEveryShape: the size checks pass for models of every kind built from
// their own configs, and the parameter count is the file's.
func TestCheckSizeAcceptsEveryShape(t *testing.T) {
	swiglu, rope, gqa := handLM, handMT, handMT
	swiglu.Activation, swiglu.TieEmbeddings = "swiglu", false
	rope.Positions = "rope"
	gqa.Heads, gqa.KVHeads, gqa.SrcVocab = 4, 2, 12
	for _, cfg := range []Config{handLM, handMT, swiglu, rope, gqa} {
		p, err := InitParams(cfg, 1)
		if err != nil {
			t.Fatal(err)
		}
		ts := Tensors(p, "")
		infos := make([]checkpoints.TensorInfo, len(ts))
		total := 0
		for i, x := range ts {
			infos[i] = checkpoints.TensorInfo{Name: x.Name, Shape: x.Shape}
			total += len(x.Data)
		}
		if err := CheckSize(cfg, infos, "m"); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
		if total != cfg.ParamCount() {
			t.Errorf("%+v: %d weights, ParamCount %d", cfg, total, cfg.ParamCount())
		}
	}
}

// TestNonFiniteWeightsRefused: a NaN or infinite weight is refused with the tensor's name
// unless the caller allows it.
func TestNonFiniteWeightsRefused(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		p, err := InitParams(handLM, 3)
		if err != nil {
			t.Fatal(err)
		}
		name := p.Names()[0]
		p.Get(name).Data().([]float32)[3] = bad
		dir := t.TempDir()
		must(t, SaveModel(dir, handLM, p))
		_, _, err = LoadModel(dir)
		if err == nil || !strings.Contains(err.Error(), "tensor "+name+" holds 1 NaN or infinite values (the first at index 3") {
			t.Errorf("weight %g: %v", bad, err)
		}
		_, got, err := LoadModelWith(dir, LoadOptions{AllowNonFinite: true})
		if err != nil {
			t.Fatalf("with AllowNonFinite: %v", err)
		}
		if v := got.Get(name).Data().([]float32)[3]; v == v && !math.IsInf(float64(v), 0) {
			t.Errorf("loaded %g, want %g", v, bad)
		}
	}
}

// TestIncompleteCheckpointDirRefused: a step-* directory given directly must hold a valid
// COMPLETE marker; a model directory saved on its own needs none.
func TestIncompleteCheckpointDirRefused(t *testing.T) {
	plain, p := savedModel(t, handLM)
	if _, _, err := LoadModel(plain); err != nil {
		t.Fatalf("a model saved on its own: %v", err)
	}
	step := filepath.Join(t.TempDir(), "step-00000012")
	must(t, os.Mkdir(step, 0o755))
	must(t, SaveModel(step, handLM, p))
	if _, _, err := LoadModel(step); err == nil || !strings.Contains(err.Error(), "not complete") {
		t.Errorf("step directory without COMPLETE: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(plain, checkpoints.CompleteFile), []byte("{"), 0o644))
	if _, _, err := LoadModel(plain); err == nil || !strings.Contains(err.Error(), "not complete") {
		t.Errorf("a torn COMPLETE file: %v", err)
	}
}

// FuzzLoadModel loads a config.json beside a safetensors file made of a fuzzed header and
// a small data buffer. Loading must never panic, must allocate little more than the files'
// size (a memory ceiling of 64 MiB for these kilobyte inputs), and whatever it accepts has
// exactly the config's parameters.
func FuzzLoadModel(f *testing.F) {
	cfg := handLM
	good, _ := json.Marshal(cfg)
	p, err := InitParams(cfg, 1)
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	if err := checkpoints.SaveSafetensors(filepath.Join(dir, "w"), Tensors(p, ""), nil); err != nil {
		f.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(dir, "w"))
	if err != nil {
		f.Fatal(err)
	}
	hlen := 8 + int(uint64(file[0])|uint64(file[1])<<8|uint64(file[2])<<16)
	header, data := file[8:hlen], file[hlen:]
	f.Add(good, header, uint16(len(data)))
	for _, field := range []string{"dim", "vocab", "ff_dim", "heads", "head_dim", "max_len", "layers"} {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			f.Fatal(err)
		}
		m[field] = 1 << 24
		if field == "heads" {
			m["kv_heads"] = 1
		}
		b, _ := json.Marshal(m)
		f.Add(b, header, uint16(len(data)))
	}
	f.Add(good, []byte(`{"embed.weight":{"dtype":"F32","shape":[16777216,4],"data_offsets":[0,268435456]}}`), uint16(64))
	f.Fuzz(func(t *testing.T, config, header []byte, dataLen uint16) {
		dir := t.TempDir()
		st := make([]byte, 8, 8+len(header)+int(dataLen))
		n := uint64(len(header))
		for i := range 8 {
			st[i] = byte(n >> (8 * i))
		}
		st = append(append(st, header...), make([]byte, dataLen)...)
		must(t, os.WriteFile(filepath.Join(dir, checkpoints.ConfigFile), config, 0o644))
		must(t, os.WriteFile(filepath.Join(dir, checkpoints.WeightsFile), st, 0o644))
		var got Config
		var params *layers.Params
		var err error
		alloc := allocatedBy(func() { got, params, err = LoadModel(dir) })
		if alloc > 64<<20 {
			t.Fatalf("allocated %d MiB for %d bytes of config and %d of weights", alloc>>20, len(config), len(st))
		}
		if err != nil {
			return
		}
		if params.Count() != got.ParamCount() || params.Dtype() != tensor.Float32 {
			t.Fatalf("accepted %d parameters for a config of %d", params.Count(), got.ParamCount())
		}
	})
}
