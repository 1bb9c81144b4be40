package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"mqa/checkpoints"
)

// embedded holds gzip copies of the shared corpora; see corpora/NOTE.md.
//
//go:embed corpora/*.gz
var embedded embed.FS

// MaxLineBytes is the longest line (without its newline) that ReadTextLines
// and ReadTSV accept. Longer lines are reported as an error instead of
// being read into memory without bound.
const MaxLineBytes = 4 << 20

// corpusInfo describes one embedded corpus.
type corpusInfo struct {
	name string
	ext  string // "txt" for one-document-per-line text, "tsv" for pairs
}

// corpora lists the embedded corpora in the order Corpora reports them.
var corpora = []corpusInfo{
	{name: "lm-en", ext: "txt"},
	{name: "bible.en-es", ext: "tsv"},
	{name: "lohelp.en-de", ext: "tsv"},
}

// splits lists the split names every embedded corpus has.
var splits = []string{"train", "valid", "test"}

// Corpora returns the names of the embedded corpora: "lm-en" (English text,
// one paragraph a line) and the translation corpora "bible.en-es" and
// "lohelp.en-de" (source<TAB>target lines).
func Corpora() []string {
	names := make([]string, len(corpora))
	for i, c := range corpora {
		names[i] = c.name
	}
	return names
}

// lookupCorpus finds the embedded corpus called name and checks split.
func lookupCorpus(name, split string) (corpusInfo, error) {
	i := slices.IndexFunc(corpora, func(c corpusInfo) bool { return c.name == name })
	if i < 0 {
		return corpusInfo{}, fmt.Errorf("data: unknown embedded corpus %q (allowed: %s)",
			name, strings.Join(Corpora(), ", "))
	}
	if !slices.Contains(splits, split) {
		return corpusInfo{}, fmt.Errorf("data: unknown split %q for corpus %q (allowed: %s)",
			split, name, strings.Join(splits, ", "))
	}
	return corpora[i], nil
}

// fileName is the name of split of the corpus (without the ".gz").
func (c corpusInfo) fileName(split string) string {
	return c.name + "." + split + "." + c.ext
}

// gzipFile closes both the gzip stream and the file beneath it.
type gzipFile struct {
	*gzip.Reader
	file fs.File
}

// Close closes the gzip reader and the underlying embedded file.
func (g gzipFile) Close() error {
	err := g.Reader.Close()
	if ferr := g.file.Close(); err == nil {
		err = ferr
	}
	return err
}

// OpenEmbedded opens the decompressed text of split ("train", "valid" or
// "test") of the embedded corpus name (one of Corpora()). The caller must
// close the returned reader. An unknown name or split is an error that
// lists the allowed values.
func OpenEmbedded(name, split string) (io.ReadCloser, error) {
	info, err := lookupCorpus(name, split)
	if err != nil {
		return nil, err
	}
	return openEmbedded(info, split)
}

// openEmbedded opens split of the embedded corpus info.
func openEmbedded(info corpusInfo, split string) (io.ReadCloser, error) {
	path := "corpora/" + info.fileName(split) + ".gz"
	f, err := embedded.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: open embedded %s: %w", path, err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: open embedded %s: %w", path, err)
	}
	return gzipFile{Reader: zr, file: f}, nil
}

// lineReader reads newline-terminated lines without a fixed line-length
// limit below MaxLineBytes, keeping track of the line number.
type lineReader struct {
	r      *bufio.Reader
	source string
	line   int
	buf    []byte
}

func newLineReader(r io.Reader, source string) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), source: source}
}

// next returns the next line without its "\n" or "\r\n" ending, and with a
// UTF-8 byte order mark removed from the first line. It returns io.EOF
// after the last line. The returned slice is only valid until the next call.
func (lr *lineReader) next() ([]byte, error) {
	lr.buf = lr.buf[:0]
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if len(lr.buf)+len(chunk) > MaxLineBytes+2 {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", lr.source, lr.line+1, MaxLineBytes)
		}
		lr.buf = append(lr.buf, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(lr.buf) == 0 {
				return nil, io.EOF
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: read: %w", lr.source, lr.line+1, err)
		}
		break
	}
	lr.line++
	line := bytes.TrimSuffix(lr.buf, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if lr.line == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	if len(line) > MaxLineBytes {
		return nil, fmt.Errorf("%s:%d: line longer than %d bytes", lr.source, lr.line, MaxLineBytes)
	}
	return line, nil
}

// nextText returns the next line (see next) that is not only white space,
// after checking that it is valid UTF-8.
func (lr *lineReader) nextText() ([]byte, error) {
	for {
		line, err := lr.next()
		switch {
		case err != nil:
			return nil, err
		case isBlank(line):
			continue
		case !utf8.Valid(line):
			return nil, fmt.Errorf("%s:%d: invalid UTF-8", lr.source, lr.line)
		}
		return line, nil
	}
}

// isBlank reports whether b holds only white space.
func isBlank(b []byte) bool {
	return len(bytes.TrimSpace(b)) == 0
}

// ReadTextLines reads one document (paragraph) per line from r. Line
// endings "\n" and "\r\n" are accepted, a leading UTF-8 byte order mark is
// dropped, and lines holding only white space are skipped. A line that is
// not valid UTF-8 or longer than MaxLineBytes is an error of the form
// "source:line: ...". The lines are returned unchanged otherwise.
func ReadTextLines(r io.Reader, source string) ([]string, error) {
	lr := newLineReader(r, source)
	var docs []string
	for {
		line, err := lr.nextText()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, string(line))
	}
}

// Pair is one aligned translation pair: source text and target text.
type Pair struct {
	Src, Tgt string
}

// ReadTSV reads translation pairs, one "source<TAB>target" per line, from
// r. Line endings and blank lines are handled as in ReadTextLines. A line
// without exactly one tab, with invalid UTF-8, or with an empty (or
// all-white-space) side is an error naming source:line and what was
// expected. A file without any pair is an error "source: no pairs".
func ReadTSV(r io.Reader, source string) ([]Pair, error) {
	lr := newLineReader(r, source)
	var pairs []Pair
	for {
		line, err := lr.nextText()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch n := bytes.Count(line, []byte("\t")); n {
		case 1:
		case 0:
			return nil, fmt.Errorf("%s:%d: no tab; expected \"source<TAB>target\"", source, lr.line)
		default:
			return nil, fmt.Errorf("%s:%d: %d tabs; expected exactly one (\"source<TAB>target\")", source, lr.line, n)
		}
		src, tgt, _ := bytes.Cut(line, []byte("\t"))
		if isBlank(src) {
			return nil, fmt.Errorf("%s:%d: empty source side; expected \"source<TAB>target\"", source, lr.line)
		}
		if isBlank(tgt) {
			return nil, fmt.Errorf("%s:%d: empty target side; expected \"source<TAB>target\"", source, lr.line)
		}
		pairs = append(pairs, Pair{Src: string(src), Tgt: string(tgt)})
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%s: no pairs", source)
	}
	return pairs, nil
}

// gzipMagic starts every gzip stream.
var gzipMagic = []byte{0x1f, 0x8b}

// readCloser reads through r and closes c.
type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// OpenFile opens the file at path for reading its text: a gzip-compressed file (told by its
// first two bytes, whatever its name) is decompressed on the fly. The caller must close it.
func OpenFile(path string) (io.ReadCloser, error) {
	f, err := checkpoints.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	if head, _ := br.Peek(len(gzipMagic)); !bytes.Equal(head, gzipMagic) {
		return readCloser{Reader: br, c: f}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: %s: gzip: %w", path, err)
	}
	return gzipFile{Reader: zr, file: f}, nil
}

// SplitPair reads a "SRC,TGT" file argument: a source file and a target file, line-aligned,
// as fairseq and Moses keep parallel text. A path that names an existing file, or that does
// not hold exactly one comma, is not a pair.
func SplitPair(path string) (src, tgt string, ok bool) {
	if _, err := os.Stat(path); err == nil || strings.Count(path, ",") != 1 {
		return "", "", false
	}
	src, tgt, _ = strings.Cut(path, ",")
	return src, tgt, src != "" && tgt != ""
}

// openSource opens path (decompressing gzip), or the embedded corpus when path is empty, and
// checks that the embedded corpus has the wanted kind ("txt" or "tsv").
func openSource(path, name, split, ext string) (io.ReadCloser, string, error) {
	if path != "" {
		rc, err := OpenFile(path)
		return rc, path, err
	}
	info, err := lookupCorpus(name, split)
	if err != nil {
		return nil, "", err
	}
	if info.ext != ext {
		kind := map[string]string{"txt": "text (one document a line)", "tsv": "TSV (source<TAB>target)"}
		return nil, "", fmt.Errorf("data: embedded corpus %q is %s, not %s", name, kind[info.ext], kind[ext])
	}
	rc, err := openEmbedded(info, split)
	return rc, "embedded:" + info.fileName(split), err
}

// LoadText returns the documents of the text file at path, or, when path is
// empty, of split of the embedded text corpus name (only "lm-en" is one).
// Errors name the file and line.
func LoadText(path, name, split string) ([]string, error) {
	docs, source, err := load(path, name, split, "txt", ReadTextLines)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: no documents", source)
	}
	return docs, nil
}

// LoadTSV returns the pairs of the TSV file at path, or of the source and
// target files of a "SRC,TGT" path (see SplitPair and LoadParallel), or,
// when path is empty, of split of the embedded translation corpus name.
// Files may be gzip-compressed. Errors name the file and line.
func LoadTSV(path, name, split string) ([]Pair, error) {
	if src, tgt, ok := SplitPair(path); ok {
		return LoadParallel(src, tgt)
	}
	pairs, _, err := load(path, name, split, "tsv", ReadTSV)
	if err != nil {
		return nil, err
	}
	return pairs, nil
}

// load reads the file at path, or split of the embedded corpus name, with read, and returns
// what it read and the source's name for messages.
func load[T any](path, name, split, ext string, read func(io.Reader, string) ([]T, error)) ([]T, string, error) {
	rc, source, err := openSource(path, name, split, ext)
	if err != nil {
		return nil, "", err
	}
	items, err := read(rc, source)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("%s: %w", source, cerr)
	}
	return items, source, err
}

// LoadParallel reads translation pairs from a source file and a target file
// (each possibly gzip-compressed) whose line i is the translation of each
// other. Lines that are blank on both sides are skipped; a line blank on one
// side only, invalid UTF-8, or files with different line counts are errors
// naming the files (and the line). Files without any pair are an error.
func LoadParallel(srcPath, tgtPath string) ([]Pair, error) {
	srcLines, err := loadLines(srcPath)
	if err != nil {
		return nil, err
	}
	tgtLines, err := loadLines(tgtPath)
	if err != nil {
		return nil, err
	}
	if len(srcLines) != len(tgtLines) {
		return nil, fmt.Errorf("data: %s has %d lines but %s has %d: a source/target pair of files must be line-aligned",
			srcPath, len(srcLines), tgtPath, len(tgtLines))
	}
	var pairs []Pair
	for i, src := range srcLines {
		tgt := tgtLines[i]
		srcBlank, tgtBlank := isBlank([]byte(src)), isBlank([]byte(tgt))
		switch {
		case srcBlank && tgtBlank:
			continue
		case srcBlank:
			return nil, fmt.Errorf("%s:%d: empty source line, but %s:%d is not empty", srcPath, i+1, tgtPath, i+1)
		case tgtBlank:
			return nil, fmt.Errorf("%s:%d: empty target line, but %s:%d is not empty", tgtPath, i+1, srcPath, i+1)
		}
		pairs = append(pairs, Pair{Src: src, Tgt: tgt})
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%s, %s: no pairs", srcPath, tgtPath)
	}
	return pairs, nil
}

// loadLines reads every line of the file at path (blank ones too), checking UTF-8.
func loadLines(path string) ([]string, error) {
	rc, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	lr := newLineReader(rc, path)
	var lines []string
	for {
		line, err := lr.next()
		if err == io.EOF {
			return lines, nil
		}
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(line) {
			return nil, fmt.Errorf("%s:%d: invalid UTF-8", path, lr.line)
		}
		lines = append(lines, string(line))
	}
}
