package checkpoints

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Tensor is a named float32 tensor stored in row-major order.
// len(Data) must equal the product of Shape (1 for the scalar shape []).
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Limits enforced on safetensors files.
const (
	// MaxHeaderBytes is the largest JSON header accepted (the same limit
	// as the reference implementation).
	MaxHeaderBytes = 100 << 20
	// MaxTensorNameBytes is the longest tensor name accepted.
	MaxTensorNameBytes = 1024

	metadataKey = "__metadata__"
)

// ErrInvalidSafetensors is wrapped by every error that ParseSafetensors and
// ReadSafetensors return for a malformed or unsupported file (as opposed to
// an I/O error).
var ErrInvalidSafetensors = errors.New("invalid safetensors file")

// dtypeSize gives the element size in bytes of the dtypes we can convert to
// float32.
var dtypeSize = map[string]int64{
	"F32":  4,
	"F16":  2,
	"BF16": 2,
	"F64":  8,
}

// WriteSafetensors writes tensors and optional string metadata to w in the
// safetensors format. Tensors are stored as F32, sorted by name, laid out
// contiguously in that order; the header is compact JSON with
// "__metadata__" first (omitted when meta is empty), padded with spaces to a
// multiple of 8 bytes. The output is deterministic for given inputs.
func WriteSafetensors(w io.Writer, tensors []Tensor, meta map[string]string) error {
	header, sorted, err := buildHeader(tensors, meta)
	if err != nil {
		return err
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(header)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	buf := make([]byte, 0, 64<<10)
	for _, t := range sorted {
		for _, v := range t.Data {
			if len(buf)+4 > cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// SaveSafetensors writes a safetensors file at path atomically: the data is
// written to a temporary file in the same directory, synced, and renamed over
// path, and the directory is synced. An existing file at path is replaced
// only on success.
func SaveSafetensors(path string, tensors []Tensor, meta map[string]string) error {
	return WriteFileAtomic(path, 0o644, func(w io.Writer) error {
		return WriteSafetensors(w, tensors, meta)
	})
}

// buildHeader validates tensors and returns the padded JSON header and the
// tensors sorted by name.
func buildHeader(tensors []Tensor, meta map[string]string) ([]byte, []Tensor, error) {
	sorted := slices.Clone(tensors)
	slices.SortFunc(sorted, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	for i, t := range sorted {
		if err := checkName(t.Name); err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return nil, nil, fmt.Errorf("safetensors: duplicate tensor name %q", t.Name)
		}
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
			if d != 0 && n > math.MaxInt/4/d {
				return nil, nil, fmt.Errorf("safetensors: tensor %q: shape %v too large", t.Name, t.Shape)
			}
			n *= d
		}
		if n != len(t.Data) {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: shape %v needs %d values, have %d", t.Name, t.Shape, n, len(t.Data))
		}
	}

	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	comma := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	if len(meta) > 0 {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		comma()
		b.WriteString(`"` + metadataKey + `":{`)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, meta[k])
		}
		b.WriteByte('}')
	}
	var offset int64
	for _, t := range sorted {
		comma()
		writeJSONString(&b, t.Name)
		b.WriteString(`:{"dtype":"F32","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		end := offset + 4*int64(len(t.Data))
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderBytes {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds limit of %d", b.Len(), MaxHeaderBytes)
	}
	return b.Bytes(), sorted, nil
}

// writeJSONString writes s as a JSON string without HTML escaping.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // encoding a string into a bytes.Buffer cannot fail
	b.Truncate(b.Len() - 1) // drop the newline added by Encode
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty tensor name")
	case len(name) > MaxTensorNameBytes:
		return fmt.Errorf("tensor name of %d bytes exceeds limit of %d", len(name), MaxTensorNameBytes)
	case name == metadataKey:
		return fmt.Errorf("tensor name %q is reserved", metadataKey)
	}
	return nil
}

// ReadSafetensors reads and validates the safetensors file at path. See
// ParseSafetensors for the checks performed.
func ReadSafetensors(path string) ([]Tensor, map[string]string, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("read safetensors %s: %w", path, err)
	}
	return ParseSafetensors(f, st.Size(), path)
}

// entry is one tensor described by a safetensors header.
type entry struct {
	name       string
	dtype      string
	shape      []int
	begin, end int64 // relative to the start of the data buffer
	numel      int64
}

// ParseSafetensors reads a safetensors file of the given size from r.
// source names the file in error messages. Tensors are returned sorted by
// name and converted to float32 (F16, BF16 and F64 are converted; other
// dtypes are rejected). The returned metadata map is never nil.
//
// The whole header is validated before any tensor data is allocated or
// read: the header length must be at most MaxHeaderBytes and fit in the
// file; the header must be a single JSON object with no duplicate keys whose
// optional "__metadata__" maps strings to strings and whose other members
// each have exactly the fields dtype, shape and data_offsets; names must be
// non-empty and at most MaxTensorNameBytes long; dimensions must be
// non-negative with a product that does not overflow; each tensor's byte
// range must lie inside the data buffer, match its shape and dtype, and not
// overlap any other tensor. Format errors wrap ErrInvalidSafetensors.
func ParseSafetensors(r io.ReaderAt, size int64, source string) ([]Tensor, map[string]string, error) {
	entries, meta, bufStart, err := parseLayout(r, size, source)
	if err != nil {
		return nil, nil, err
	}
	tensors := make([]Tensor, len(entries))
	var scratch []byte
	for i, e := range entries {
		data, err := readTensorData(r, bufStart, e, &scratch)
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors %s: tensor %q: %w", source, e.name, err)
		}
		tensors[i] = Tensor{Name: e.name, Shape: e.shape, Data: data}
	}
	return tensors, meta, nil
}

// TensorInfo is a tensor's name and shape as a safetensors header gives them.
type TensorInfo struct {
	Name  string
	Shape []int
}

// Numel is the number of elements of the tensor (1 for the scalar shape []).
func (t TensorInfo) Numel() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// ReadSafetensorsHeader reads and validates the header of the safetensors
// file at path, as ReadSafetensors does, without reading any tensor data:
// memory use is bounded by the header's size. Tensors are sorted by name.
func ReadSafetensorsHeader(path string) ([]TensorInfo, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("read safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read safetensors %s: %w", path, err)
	}
	entries, _, _, err := parseLayout(f, st.Size(), path)
	if err != nil {
		return nil, err
	}
	infos := make([]TensorInfo, len(entries))
	for i, e := range entries {
		infos[i] = TensorInfo{Name: e.name, Shape: e.shape}
	}
	return infos, nil
}

// parseLayout reads and validates the header of a safetensors file (see
// ParseSafetensors) and returns its tensors sorted by name, its metadata and
// the offset of the data buffer.
func parseLayout(r io.ReaderAt, size int64, source string) ([]entry, map[string]string, int64, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("safetensors %s: %s: %w", source, fmt.Sprintf(format, args...), ErrInvalidSafetensors)
	}
	if size < 8 {
		return nil, nil, 0, fail("file of %d bytes is too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if err := readFullAt(r, lenBuf[:], 0); err != nil {
		return nil, nil, 0, fmt.Errorf("safetensors %s: read header length: %w", source, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderBytes {
		return nil, nil, 0, fail("header length %d exceeds limit of %d bytes", n, MaxHeaderBytes)
	}
	if n > uint64(size-8) {
		return nil, nil, 0, fail("header length %d exceeds file size %d minus 8", n, size)
	}
	if n < 2 {
		return nil, nil, 0, fail("header length %d is too short for a JSON object", n)
	}
	header := make([]byte, n)
	if err := readFullAt(r, header, 8); err != nil {
		return nil, nil, 0, fmt.Errorf("safetensors %s: read header: %w", source, err)
	}
	bufStart := 8 + int64(n)
	entries, meta, err := parseHeader(header)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("safetensors %s: %w: %w", source, err, ErrInvalidSafetensors)
	}
	if err := checkEntries(entries, size-bufStart); err != nil {
		return nil, nil, 0, fmt.Errorf("safetensors %s: %w: %w", source, err, ErrInvalidSafetensors)
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return entries, meta, bufStart, nil
}

// parseHeader walks the JSON header token by token so that duplicate keys,
// unknown fields and non-string metadata are detected.
func parseHeader(header []byte) ([]entry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	var entries []entry
	meta := map[string]string{}
	seen := map[string]bool{}
	for dec.More() {
		name, err := stringToken(dec)
		if err != nil {
			return nil, nil, fmt.Errorf("header: %w", err)
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("header: duplicate tensor name %q", name)
		}
		seen[name] = true
		if name == metadataKey {
			if meta, err = parseMetadata(dec); err != nil {
				return nil, nil, fmt.Errorf("header: %s: %w", metadataKey, err)
			}
			continue
		}
		if err := checkName(name); err != nil {
			return nil, nil, fmt.Errorf("header: tensor %q: %w", truncateName(name), err)
		}
		e, err := parseEntry(dec, name)
		if err != nil {
			return nil, nil, fmt.Errorf("header: tensor %q: %w", name, err)
		}
		entries = append(entries, e)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	// Only whitespace (the padding) may follow the object.
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, nil, fmt.Errorf("header: trailing data after JSON object: %w", err)
		}
		return nil, nil, fmt.Errorf("header: trailing data after JSON object: %v", tok)
	}
	return entries, meta, nil
}

// truncateName shortens over-long names for error messages.
func truncateName(name string) string {
	if len(name) > 64 {
		return name[:64] + "..."
	}
	return name
}

func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	meta := map[string]string{}
	for dec.More() {
		k, err := stringToken(dec)
		if err != nil {
			return nil, err
		}
		if _, dup := meta[k]; dup {
			return nil, fmt.Errorf("duplicate key %q", k)
		}
		v, err := stringToken(dec)
		if err != nil {
			return nil, fmt.Errorf("key %q: value must be a string: %w", k, err)
		}
		meta[k] = v
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	return meta, nil
}

func parseEntry(dec *json.Decoder, name string) (entry, error) {
	e := entry{name: name}
	if err := expectDelim(dec, '{'); err != nil {
		return e, err
	}
	var haveDtype, haveShape, haveOffsets bool
	for dec.More() {
		field, err := stringToken(dec)
		if err != nil {
			return e, err
		}
		switch field {
		case "dtype":
			if haveDtype {
				return e, errors.New("duplicate field dtype")
			}
			haveDtype = true
			if e.dtype, err = stringToken(dec); err != nil {
				return e, fmt.Errorf("dtype: %w", err)
			}
		case "shape":
			if haveShape {
				return e, errors.New("duplicate field shape")
			}
			haveShape = true
			dims, err := intArray(dec)
			if err != nil {
				return e, fmt.Errorf("shape: %w", err)
			}
			e.shape = make([]int, len(dims))
			for i, d := range dims {
				if d < 0 {
					return e, fmt.Errorf("shape: negative dimension %d", d)
				}
				if int64(int(d)) != d {
					return e, fmt.Errorf("shape: dimension %d too large", d)
				}
				e.shape[i] = int(d)
			}
		case "data_offsets":
			if haveOffsets {
				return e, errors.New("duplicate field data_offsets")
			}
			haveOffsets = true
			offs, err := intArray(dec)
			if err != nil {
				return e, fmt.Errorf("data_offsets: %w", err)
			}
			if len(offs) != 2 {
				return e, fmt.Errorf("data_offsets: need [begin,end], got %d values", len(offs))
			}
			e.begin, e.end = offs[0], offs[1]
		default:
			return e, fmt.Errorf("unknown field %q", truncateName(field))
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return e, err
	}
	switch {
	case !haveDtype:
		return e, errors.New("missing field dtype")
	case !haveShape:
		return e, errors.New("missing field shape")
	case !haveOffsets:
		return e, errors.New("missing field data_offsets")
	}
	size, ok := dtypeSize[e.dtype]
	if !ok {
		return e, fmt.Errorf("unsupported dtype %s for tensor %s", truncateName(e.dtype), name)
	}
	// Element count, with overflow detection. A zero dimension makes the
	// tensor empty regardless of the other dimensions.
	numel := int64(1)
	if !slices.Contains(e.shape, 0) {
		for _, d := range e.shape {
			if numel > math.MaxInt64/size/int64(d) {
				return e, fmt.Errorf("shape %v: element count overflows", e.shape)
			}
			numel *= int64(d)
		}
	} else {
		numel = 0
	}
	e.numel = numel
	if e.begin < 0 || e.end < e.begin {
		return e, fmt.Errorf("invalid data_offsets [%d,%d]", e.begin, e.end)
	}
	if want := numel * size; e.end-e.begin != want {
		return e, fmt.Errorf("data_offsets [%d,%d] span %d bytes, but shape %v of %s needs %d", e.begin, e.end, e.end-e.begin, e.shape, e.dtype, want)
	}
	return e, nil
}

// checkEntries checks that every tensor lies within the data buffer and that
// no two tensors overlap.
func checkEntries(entries []entry, bufLen int64) error {
	for _, e := range entries {
		if e.end > bufLen {
			return fmt.Errorf("tensor %q: data_offsets [%d,%d] extend past the %d-byte data buffer", e.name, e.begin, e.end, bufLen)
		}
	}
	byOffset := slices.Clone(entries)
	slices.SortFunc(byOffset, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end))
	})
	var prev *entry
	for i := range byOffset {
		e := &byOffset[i]
		if e.begin == e.end {
			continue // empty tensors occupy no bytes
		}
		if prev != nil && e.begin < prev.end {
			return fmt.Errorf("tensor %q: data_offsets [%d,%d] overlap tensor %q [%d,%d]", e.name, e.begin, e.end, prev.name, prev.begin, prev.end)
		}
		prev = e
	}
	// Implied by the checks above; kept as a direct guard on allocation.
	var total int64
	for _, e := range entries {
		total += e.end - e.begin // each term ≤ bufLen, so no overflow before the check
		if total > bufLen {
			return fmt.Errorf("tensor %q: total tensor data exceeds the %d-byte data buffer", e.name, bufLen)
		}
	}
	return nil
}

// readTensorData reads and converts one validated tensor. scratch is reused
// between calls to bound temporary memory.
func readTensorData(r io.ReaderAt, bufStart int64, e entry, scratch *[]byte) ([]float32, error) {
	out := make([]float32, e.numel)
	size := dtypeSize[e.dtype]
	const chunkElems = 1 << 16
	if cap(*scratch) < chunkElems*8 {
		*scratch = make([]byte, chunkElems*8)
	}
	for done := int64(0); done < e.numel; {
		k := min(e.numel-done, chunkElems)
		buf := (*scratch)[:k*size]
		if err := readFullAt(r, buf, bufStart+e.begin+done*size); err != nil {
			return nil, fmt.Errorf("read data: %w", err)
		}
		dst := out[done : done+k]
		switch e.dtype {
		case "F32":
			for i := range dst {
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
			}
		case "F64":
			for i := range dst {
				dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:])))
			}
		case "F16":
			for i := range dst {
				dst[i] = f16ToF32(binary.LittleEndian.Uint16(buf[2*i:]))
			}
		case "BF16":
			for i := range dst {
				dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(buf[2*i:])) << 16)
			}
		}
		done += k
	}
	return out, nil
}

// readFullAt fills buf from r at off. A full read that also reports io.EOF
// (allowed by the io.ReaderAt contract at the end of the input) succeeds; a
// short read is io.ErrUnexpectedEOF.
func readFullAt(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// f16ToF32 converts IEEE 754 half-precision bits to float32 exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf or NaN; keep the payload
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias exponent from 15 to 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	default: // subnormal: mant × 2^-24, exact in float32
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, found %v", want, describeToken(tok))
	}
	return nil
}

func stringToken(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("expected a string, found %v", describeToken(tok))
	}
	return s, nil
}

// intArray reads a JSON array of integers.
func intArray(dec *json.Decoder) ([]int64, error) {
	if err := expectDelim(dec, '['); err != nil {
		return nil, err
	}
	var out []int64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("expected an integer, found %v", describeToken(tok))
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("expected an integer, found %s", truncateName(string(num)))
		}
		out = append(out, v)
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, err
	}
	return out, nil
}

func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return strconv.Quote(t.String())
	case string:
		return "string " + strconv.Quote(truncateName(t))
	case nil:
		return "null"
	default:
		return truncateName(fmt.Sprint(t))
	}
}
