package checkpoints

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzCorpus regenerates the committed seed corpora under
// testdata/fuzz. It only runs when CHECKPOINTS_WRITE_CORPUS=1:
//
//	CHECKPOINTS_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus ./checkpoints
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("CHECKPOINTS_WRITE_CORPUS") != "1" {
		t.Skip("set CHECKPOINTS_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	writeCorpus(t, "FuzzParseSafetensors", safetensorsSeeds(t))
	writeCorpus(t, "FuzzReadJSON", jsonSeeds())
}

func writeCorpus(t *testing.T, fuzzName string, seeds map[string][]byte) {
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func safetensorsSeeds(t *testing.T) map[string][]byte {
	var b bytes.Buffer
	err := WriteSafetensors(&b, []Tensor{
		{Name: "emb", Shape: []int{2, 3}, Data: []float32{1, -2, 3.5, 0, 1e-3, -7}},
		{Name: "scale", Shape: []int{}, Data: []float32{0.5}},
		{Name: "empty", Shape: []int{0, 4}},
	}, map[string]string{"format": "pt", "step": "10"})
	if err != nil {
		t.Fatal(err)
	}
	valid := b.Bytes()
	seeds := map[string][]byte{
		"valid":       valid,
		"empty":       {},
		"len-only":    valid[:8],
		"empty-obj":   rawFile("{}", nil),
		"half-floats": rawFile(`{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},"d":{"dtype":"F64","shape":[1],"data_offsets":[6,14]}}`, []byte{0, 0x3c, 0xff, 0x7b, 0x80, 0x3f, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f}),
		"i64":         rawFile(`{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)),
		"overlap":     rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)),
		"duplicate":   rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)),
		"huge-shape":  rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)),
		"huge-offset": rawFile(`{"w":{"dtype":"F32","shape":[268435456],"data_offsets":[0,1073741824]}}`, make([]byte, 4)),
	}
	// Truncations at several points: inside the length, header and data.
	for _, n := range []int{3, 12, len(valid) / 2, len(valid) - 1} {
		seeds[fmt.Sprintf("truncated-%d", n)] = valid[:n]
	}
	// Single bit flips in the length, the header and the data.
	for _, pos := range []int{0, 7, 9, 20, 40, 60, len(valid) - 3} {
		flipped := bytes.Clone(valid)
		flipped[pos] ^= 0x10
		seeds[fmt.Sprintf("bitflip-%d", pos)] = flipped
	}
	// Oversized or inconsistent header lengths.
	for _, n := range []uint64{MaxHeaderBytes + 1, 1 << 62, 1<<64 - 1, uint64(len(valid))} {
		bad := bytes.Clone(valid)
		binary.LittleEndian.PutUint64(bad, n)
		seeds[fmt.Sprintf("header-len-%d", n)] = bad
	}
	return seeds
}

func jsonSeeds() map[string][]byte {
	valid := []byte(`{"name":"tiny","layers":2,"lr":0.0003,"tags":["a","b"],"inner":{"heads":4}}`)
	seeds := map[string][]byte{
		"valid":          valid,
		"empty":          {},
		"unknown-field":  []byte(`{"name":"x","extra":{"deep":[1,2,3]}}`),
		"wrong-type":     []byte(`{"layers":"two"}`),
		"nested-type":    []byte(`{"inner":{"heads":1.5}}`),
		"trailing":       []byte(`{"name":"x"} trailing`),
		"two-values":     []byte("{}\n{}"),
		"null":           []byte(`null`),
		"array":          []byte(`[1,2]`),
		"big-number":     []byte(`{"layers":1e999}`),
		"escaped-string": []byte(`{"name":"\u00e9\ud800\n"}`),
		"long-string":    []byte(`{"name":"` + string(bytes.Repeat([]byte("x"), 4096)) + `"}`),
		"deep-nesting":   append(bytes.Repeat([]byte("["), 512), bytes.Repeat([]byte("]"), 512)...),
	}
	for _, n := range []int{1, 10, len(valid) - 1} {
		seeds[fmt.Sprintf("truncated-%d", n)] = valid[:n]
	}
	for _, pos := range []int{0, 2, 15, 30, len(valid) - 1} {
		flipped := bytes.Clone(valid)
		flipped[pos] ^= 0x04
		seeds[fmt.Sprintf("bitflip-%d", pos)] = flipped
	}
	return seeds
}
