package checkpoints

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// rawFile assembles a safetensors file from a header (unpadded) and data.
func rawFile(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func parseBytes(data []byte) ([]Tensor, map[string]string, error) {
	return ParseSafetensors(bytes.NewReader(data), int64(len(data)), "mem.safetensors")
}

// sameBits reports whether a and b hold the same float32 bit patterns (so
// NaNs compare equal to themselves and -0 differs from +0).
func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestSafetensorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := map[string][]int{
		"scalar":       {},
		"empty":        {0},
		"empty3d":      {3, 0, 2},
		"vec":          {7},
		"mat":          {5, 3},
		"layers.0.w":   {2, 3, 4},
		"one":          {1},
		"unicode.ü/名前": {2},
	}
	var in []Tensor
	for name, shape := range shapes {
		n := 1
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.NormFloat64())
		}
		in = append(in, Tensor{Name: name, Shape: shape, Data: data})
	}
	// Special values must survive bit for bit.
	in = append(in, Tensor{Name: "special", Shape: []int{5}, Data: []float32{
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32,
	}})
	meta := map[string]string{"format": "pt", "step": "100", "quote\"key": "<&>"}

	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := SaveSafetensors(path, in, meta); err != nil {
		t.Fatal(err)
	}
	out, gotMeta, err := ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d tensors, want %d", len(out), len(in))
	}
	byName := map[string]Tensor{}
	for _, tt := range in {
		byName[tt.Name] = tt
	}
	for i, got := range out {
		if i > 0 && out[i-1].Name >= got.Name {
			t.Errorf("tensors not sorted: %q before %q", out[i-1].Name, got.Name)
		}
		want := byName[got.Name]
		if !slices.Equal(got.Shape, want.Shape) || !sameBits(got.Data, want.Data) {
			t.Errorf("tensor %q: got shape %v data %v, want shape %v data %v", got.Name, got.Shape, got.Data, want.Shape, want.Data)
		}
	}
	if !maps.Equal(gotMeta, meta) {
		t.Errorf("metadata: got %v, want %v", gotMeta, meta)
	}

	// Header is padded to a multiple of 8 and writing is deterministic.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(raw); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	var again bytes.Buffer
	shuffled := append([]Tensor(nil), in...)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if err := WriteSafetensors(&again, shuffled, meta); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), raw) {
		t.Error("writing the same tensors in another order gave different bytes")
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestSafetensorsNilMetadata(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSafetensors(&b, []Tensor{{Name: "x", Shape: []int{1}, Data: []float32{3}}}, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "__metadata__") {
		t.Error("empty metadata should be omitted")
	}
	_, meta, err := parseBytes(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if meta == nil || len(meta) != 0 {
		t.Errorf("metadata: got %#v, want empty non-nil map", meta)
	}
}

// TestSafetensorsGolden pins the exact byte layout of a tiny file against a
// hand-computed header.
func TestSafetensorsGolden(t *testing.T) {
	var b bytes.Buffer
	err := WriteSafetensors(&b, []Tensor{
		{Name: "b", Shape: []int{}, Data: []float32{-0.5}},
		{Name: "a", Shape: []int{2}, Data: []float32{1, 2}},
	}, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	// 132 bytes of JSON, padded with 4 spaces to 136.
	header := `{"__metadata__":{"k":"v"},` +
		`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
		`"b":{"dtype":"F32","shape":[],"data_offsets":[8,12]}}    `
	want := []byte{136, 0, 0, 0, 0, 0, 0, 0}
	want = append(want, header...)
	want = append(want,
		0x00, 0x00, 0x80, 0x3f, // 1.0
		0x00, 0x00, 0x00, 0x40, // 2.0
		0x00, 0x00, 0x00, 0xbf, // -0.5
	)
	if len(header) != 136 {
		t.Fatalf("test header is %d bytes, want 136", len(header))
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("got\n%q\nwant\n%q", b.Bytes(), want)
	}
}

func TestWriteSafetensorsRejects(t *testing.T) {
	cases := []struct {
		name    string
		tensors []Tensor
		want    string
	}{
		{"duplicate", []Tensor{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}}, `duplicate tensor name "a"`},
		{"empty name", []Tensor{{Name: "", Shape: []int{}, Data: []float32{1}}}, "empty tensor name"},
		{"reserved name", []Tensor{{Name: "__metadata__", Shape: []int{}, Data: []float32{1}}}, "reserved"},
		{"shape mismatch", []Tensor{{Name: "w", Shape: []int{2, 2}, Data: []float32{1}}}, `tensor "w": shape [2 2] needs 4 values, have 1`},
		{"negative dim", []Tensor{{Name: "w", Shape: []int{-1}}}, `tensor "w": negative dimension`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteSafetensors(&bytes.Buffer{}, tc.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseSafetensorsRejects(t *testing.T) {
	f32 := func(name, shape, offs string) string {
		return `"` + name + `":{"dtype":"F32","shape":` + shape + `,"data_offsets":` + offs + `}`
	}
	eight := make([]byte, 8)
	hugeLen := make([]byte, 16)
	binary.LittleEndian.PutUint64(hugeLen, 1<<62)
	tooLong := make([]byte, 16)
	binary.LittleEndian.PutUint64(tooLong, 9)
	longName := strings.Repeat("n", MaxTensorNameBytes+1)

	cases := []struct {
		name string
		file []byte
		want []string // every string must appear in the error
	}{
		{"short file", []byte{1, 2, 3}, []string{"too short"}},
		{"header over limit", hugeLen, []string{"exceeds limit"}},
		{"header past end", tooLong, []string{"exceeds file size"}},
		{"header too short", rawFile("{", nil), []string{"too short"}},
		{"not json", rawFile("not json", nil), []string{"header"}},
		{"not object", rawFile("[1,2]", nil), []string{`expected "{"`}},
		{"truncated json", rawFile(`{"w":{"dtype":"F32"`, nil), []string{"header"}},
		{"trailing data", rawFile(`{}{}`, nil), []string{"trailing data"}},
		{"unsupported dtype", rawFile(`{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, eight), []string{"unsupported dtype I64 for tensor x"}},
		{"dtype not string", rawFile(`{"x":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, eight), []string{`tensor "x"`, "dtype"}},
		{"negative dim", rawFile(`{`+f32("w", "[-1]", "[0,4]")+`}`, eight), []string{`tensor "w"`, "negative dimension"}},
		{"fractional dim", rawFile(`{`+f32("w", "[1.5]", "[0,4]")+`}`, eight), []string{`tensor "w"`, "expected an integer"}},
		{"huge dim", rawFile(`{`+f32("w", "[99999999999999999999]", "[0,4]")+`}`, eight), []string{`tensor "w"`, "expected an integer"}},
		{"shape overflow", rawFile(`{`+f32("w", "[4294967296,4294967296]", "[0,4]")+`}`, eight), []string{`tensor "w"`, "overflows"}},
		{"null shape", rawFile(`{`+f32("w", "null", "[0,4]")+`}`, eight), []string{`tensor "w"`, "shape"}},
		{"size mismatch", rawFile(`{`+f32("w", "[3]", "[0,8]")+`}`, eight), []string{`tensor "w"`, "needs 12"}},
		{"offsets reversed", rawFile(`{`+f32("w", "[0]", "[8,4]")+`}`, eight), []string{`tensor "w"`, "invalid data_offsets"}},
		{"negative offset", rawFile(`{`+f32("w", "[1]", "[-4,0]")+`}`, eight), []string{`tensor "w"`, "invalid data_offsets"}},
		{"three offsets", rawFile(`{`+f32("w", "[1]", "[0,4,8]")+`}`, eight), []string{`tensor "w"`, "need [begin,end]"}},
		{"past buffer", rawFile(`{`+f32("w", "[4]", "[0,16]")+`}`, eight), []string{`tensor "w"`, "extend past"}},
		{"overlap", rawFile(`{`+f32("a", "[2]", "[0,8]")+`,`+f32("b", "[1]", "[4,8]")+`}`, eight), []string{`tensor "b"`, `tensor "a"`, "overlap"}},
		{"duplicate name", rawFile(`{`+f32("a", "[1]", "[0,4]")+`,`+f32("a", "[1]", "[4,8]")+`}`, eight), []string{`duplicate tensor name "a"`}},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), []string{`duplicate tensor name "__metadata__"`}},
		{"empty name", rawFile(`{`+f32("", "[1]", "[0,4]")+`}`, eight), []string{"empty tensor name"}},
		{"long name", rawFile(`{`+f32(longName, "[1]", "[0,4]")+`}`, eight), []string{"tensor name of 1025 bytes exceeds limit"}},
		{"missing field", rawFile(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, eight), []string{`tensor "w"`, "missing field shape"}},
		{"unknown field", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}`, eight), []string{`tensor "w"`, `unknown field "extra"`}},
		{"duplicate field", rawFile(`{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, eight), []string{`tensor "w"`, "duplicate field dtype"}},
		{"entry not object", rawFile(`{"w":[1]}`, eight), []string{`tensor "w"`}},
		{"metadata not string", rawFile(`{"__metadata__":{"k":1}}`, nil), []string{"__metadata__", `key "k"`, "must be a string"}},
		{"metadata duplicate key", rawFile(`{"__metadata__":{"k":"a","k":"b"}}`, nil), []string{"__metadata__", `duplicate key "k"`}},
		{"metadata not object", rawFile(`{"__metadata__":"x"}`, nil), []string{"__metadata__"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseBytes(tc.file)
			if err == nil {
				t.Fatal("expected an error")
			}
			if !errors.Is(err, ErrInvalidSafetensors) {
				t.Errorf("error does not wrap ErrInvalidSafetensors: %v", err)
			}
			msg := err.Error()
			for _, w := range append(tc.want, "mem.safetensors") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestReadSafetensorsErrorNamesPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(path, rawFile(`{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := ReadSafetensors(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "unsupported dtype I64 for tensor w") {
		t.Errorf("got %v", err)
	}
	_, _, err = ReadSafetensors(filepath.Join(dir, "missing.safetensors"))
	if err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("got %v", err)
	}
	if _, _, err = ReadSafetensors(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("reading a directory: got %v", err)
	}
}

// TestParseSafetensorsNoLargeAllocation checks that headers claiming huge
// sizes are rejected from a small file without allocating for the claims.
func TestParseSafetensorsNoLargeAllocation(t *testing.T) {
	hugeLen := make([]byte, 16)
	binary.LittleEndian.PutUint64(hugeLen, MaxHeaderBytes) // within limit, past the file end
	files := [][]byte{
		hugeLen,
		rawFile(`{"w":{"dtype":"F32","shape":[268435456],"data_offsets":[0,1073741824]}}`, make([]byte, 8)),
		rawFile(`{"w":{"dtype":"F16","shape":[1073741824,1073741824],"data_offsets":[0,8]}}`, make([]byte, 8)),
	}
	for i, f := range files {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		if _, _, err := parseBytes(f); err == nil {
			t.Fatalf("file %d: expected an error", i)
		}
		runtime.ReadMemStats(&after)
		if d := time.Since(start); d > time.Second {
			t.Errorf("file %d: rejection took %v", i, d)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("file %d: allocated %d bytes to reject a %d-byte file", i, alloc, len(f))
		}
	}
}

func TestSafetensorsConversions(t *testing.T) {
	var data []byte
	le16 := func(vs ...uint16) {
		for _, v := range vs {
			data = binary.LittleEndian.AppendUint16(data, v)
		}
	}
	f16 := []uint16{0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x7C00, 0xFC00, 0x8000, 0x3555}
	le16(f16...)
	bf16 := []uint16{0x3F80, 0xC040, 0x7F80, 0x0001, 0x4049}
	le16(bf16...)
	for _, v := range []float64{1.5, -1e-3, 1e300} {
		data = binary.LittleEndian.AppendUint64(data, math.Float64bits(v))
	}
	nanOff := len(data)
	le16(0x7E00)
	header := `{"f16":{"dtype":"F16","shape":[10],"data_offsets":[0,20]},` +
		`"bf16":{"dtype":"BF16","shape":[5],"data_offsets":[20,30]},` +
		`"f64":{"dtype":"F64","shape":[3],"data_offsets":[30,54]},` +
		`"nan":{"dtype":"F16","shape":[],"data_offsets":[54,56]}}`
	if nanOff != 54 {
		t.Fatalf("layout: nan at %d", nanOff)
	}
	tensors, _, err := parseBytes(rawFile(header, data))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{}
	for _, tt := range tensors {
		got[tt.Name] = tt.Data
	}
	inf := float32(math.Inf(1))
	want := map[string][]float32{
		"f16": {1, -2, 65504, 1.0 / (1 << 24), 1023.0 / (1 << 24), 1.0 / (1 << 14), inf, -inf, float32(math.Copysign(0, -1)), 0.333251953125},
		// 0x0001 in BF16 is the float32 with bits 0x00010000.
		"bf16": {1, -3, inf, math.Float32frombits(0x00010000), 3.140625},
		"f64":  {1.5, float32(-1e-3), inf},
	}
	for name, w := range want {
		if !sameBits(got[name], w) {
			t.Errorf("%s: got %v, want %v", name, got[name], w)
		}
	}
	if n := got["nan"]; len(n) != 1 || !math.IsNaN(float64(n[0])) {
		t.Errorf("nan: got %v", n)
	}
	// Exhaustive check: every finite F16 value converts exactly.
	for h := 0; h < 1<<16; h++ {
		v := f16ToF32(uint16(h))
		exp := (h >> 10) & 0x1f
		mant := float64(h & 0x3ff)
		var ref float64
		switch exp {
		case 0x1f:
			continue
		case 0:
			ref = mant * math.Pow(2, -24)
		default:
			ref = (1 + mant/1024) * math.Pow(2, float64(exp-15))
		}
		if h&0x8000 != 0 {
			ref = -ref
		}
		if float64(v) != ref || math.Signbit(float64(v)) != (h&0x8000 != 0) {
			t.Fatalf("f16 %#04x: got %v, want %v", h, v, ref)
		}
	}
}

func TestParseSafetensorsAcceptsGapsAndPadding(t *testing.T) {
	// Gaps in the buffer are allowed; header padding is whitespace.
	data := make([]byte, 12)
	binary.LittleEndian.PutUint32(data[8:], math.Float32bits(7))
	tensors, _, err := parseBytes(rawFile(`{"w":{"dtype":"F32","shape":[],"data_offsets":[8,12]}}      `, data))
	if err != nil {
		t.Fatal(err)
	}
	if len(tensors) != 1 || tensors[0].Data[0] != 7 {
		t.Errorf("got %+v", tensors)
	}
}

func FuzzParseSafetensors(f *testing.F) {
	var b bytes.Buffer
	if err := WriteSafetensors(&b, []Tensor{
		{Name: "a", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		{Name: "s", Shape: []int{}, Data: []float32{5}},
		{Name: "z", Shape: []int{0, 3}},
	}, map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add(rawFile(`{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]}}`, []byte{0, 0x3c, 0, 0xc0, 0x80, 0x3f}))
	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, meta, err := parseBytes(data)
		if err != nil {
			if !strings.Contains(err.Error(), "mem.safetensors") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		// Anything accepted must round-trip through the writer exactly.
		var out bytes.Buffer
		if err := WriteSafetensors(&out, tensors, meta); err != nil {
			t.Fatalf("accepted file cannot be rewritten: %v", err)
		}
		again, meta2, err := parseBytes(out.Bytes())
		if err != nil {
			t.Fatalf("rewritten file rejected: %v", err)
		}
		if len(again) != len(tensors) || len(meta2) != len(meta) {
			t.Fatalf("round trip changed counts")
		}
		for i := range again {
			if again[i].Name != tensors[i].Name || !slices.Equal(again[i].Shape, tensors[i].Shape) || !sameBits(again[i].Data, tensors[i].Data) {
				t.Fatalf("round trip changed tensor %q", tensors[i].Name)
			}
		}
		if !maps.Equal(meta2, meta) {
			t.Fatalf("round trip changed metadata %q to %q", meta, meta2)
		}
	})
}

// eofReaderAt returns io.EOF together with a full read at the end of the
// data, which the io.ReaderAt contract allows.
type eofReaderAt struct{ data []byte }

func (r eofReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if off+int64(n) == int64(len(r.data)) {
		return n, io.EOF
	}
	return n, nil
}

func TestParseSafetensorsReaderEdgeCases(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSafetensors(&b, []Tensor{{Name: "w", Shape: []int{2}, Data: []float32{1, 2}}}, nil); err != nil {
		t.Fatal(err)
	}
	file := b.Bytes()
	tensors, _, err := ParseSafetensors(eofReaderAt{file}, int64(len(file)), "eof")
	if err != nil || len(tensors) != 1 || tensors[0].Data[1] != 2 {
		t.Errorf("full read with io.EOF: %v, %v", tensors, err)
	}
	// A size larger than the data is a read error, not a panic.
	_, _, err = ParseSafetensors(bytes.NewReader(file[:len(file)-4]), int64(len(file)), "short")
	if err == nil || !strings.Contains(err.Error(), "short") || !strings.Contains(err.Error(), `tensor "w"`) {
		t.Errorf("short reader: %v", err)
	}
}

// TestReadSafetensorsHeader reads names and shapes, sorted by name, without the data, and
// rejects what ReadSafetensors rejects.
func TestReadSafetensorsHeader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	tensors := []Tensor{
		{Name: "b", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "a", Shape: []int{}, Data: []float32{7}},
	}
	if err := SaveSafetensors(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	infos, err := ReadSafetensorsHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Name != "a" || len(infos[0].Shape) != 0 || infos[0].Numel() != 1 ||
		infos[1].Name != "b" || !slices.Equal(infos[1].Shape, []int{2, 3}) || infos[1].Numel() != 6 {
		t.Errorf("header %+v, want a [] and b [2 3]", infos)
	}
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, rawFile(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, make([]byte, 8)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSafetensorsHeader(bad); !errors.Is(err, ErrInvalidSafetensors) || !strings.Contains(err.Error(), bad) {
		t.Errorf("a tensor past the end of the file: %v", err)
	}
}
