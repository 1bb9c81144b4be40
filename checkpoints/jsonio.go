package checkpoints

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ReadJSON decodes the JSON file at path into v strictly: the file must be
// at most maxBytes long (checked before reading), must hold exactly one JSON
// value (trailing non-whitespace data is an error), and objects decoded into
// structs must not contain unknown fields. Errors include the path; type
// errors name the offending field and syntax errors give the line and
// column.
func ReadJSON(path string, v any, maxBytes int64) error {
	if maxBytes <= 0 {
		return fmt.Errorf("read %s: maxBytes must be positive, got %d", path, maxBytes)
	}
	f, err := OpenRegular(path)
	if err != nil {
		return fmt.Errorf("read json: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if st.Size() > maxBytes {
		return fmt.Errorf("read %s: file is %d bytes, limit is %d", path, st.Size(), maxBytes)
	}
	// Guard against the file growing after Stat.
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > maxBytes {
		return fmt.Errorf("read %s: file exceeds limit of %d bytes", path, maxBytes)
	}
	return DecodeJSON(data, v, path)
}

// DecodeJSON decodes exactly one JSON value from data into v, as ReadJSON
// does: unknown fields and trailing data are errors. source names the input
// in errors.
func DecodeJSON(data []byte, v any, source string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", source, describeJSONError(data, err))
	}
	// Anything but whitespace after the value is an error. Decode on a
	// fresh empty value reports EOF only if nothing follows.
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
		return nil
	case err != nil:
		return fmt.Errorf("decode %s: trailing data after JSON value at %s", source, position(data, dec.InputOffset()))
	default:
		return fmt.Errorf("decode %s: trailing data after JSON value at %s", source, position(data, dec.InputOffset()-int64(len(extra))))
	}
}

// describeJSONError rewrites decoder errors to name fields and positions.
func describeJSONError(data []byte, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("syntax error at %s: %w", position(data, syntax.Offset), err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("field %s: cannot use JSON %s as %s (at %s): %w", field, typ.Value, typ.Type, position(data, typ.Offset), err)
	case errors.Is(err, io.EOF):
		return errors.New("empty input")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("unexpected end of input")
	}
	return err
}

// position converts a byte offset into a "line L, column C" string.
func position(data []byte, offset int64) string {
	offset = max(0, min(offset, int64(len(data))))
	line, col := 1, 1
	for _, c := range data[:offset] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d", line, col)
}

// WriteJSON writes v as indented JSON (followed by a newline) to path
// atomically: a temporary file in the same directory is written, synced and
// renamed over path, and the directory is synced.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	data = append(data, '\n')
	return WriteFileAtomic(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
