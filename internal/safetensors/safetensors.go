// Package safetensors reads and writes the safetensors format used by
// HuggingFace: an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the raw little-endian data.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// maxHeader bounds the JSON header, as the reference implementation does,
// so that a corrupt length cannot make us allocate gigabytes.
const maxHeader = 100 << 20

// Tensor is one named tensor's dtype, shape and raw little-endian bytes.
type Tensor struct {
	DType string  // "F32", "F16", "BF16", "F64", "I64", "I32", …
	Shape []int64 // empty for a scalar
	Data  []byte
}

// File is a parsed safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  map[string]Tensor
}

type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

var dtypeSize = map[string]int64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// ReadFile reads and validates a safetensors file. The header is read and
// checked against the file's size before the data: a corrupt header or a
// device file (/dev/zero) costs no more memory than the file holds.
func ReadFile(path string) (*File, error) {
	return read(path, true)
}

// ReadHeader reads a safetensors file's header only: names, dtypes and
// shapes, checked against the file's size, with no Data. It lets a loader
// compare a file with what its config declares before allocating anything.
func ReadHeader(path string) (*File, error) {
	return read(path, false)
}

func read(path string, withData bool) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read safetensors: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read safetensors: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("read safetensors %s: not a regular file (%s)", path, info.Mode().Type())
	}
	size := info.Size()
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("read safetensors %s: file is %d bytes, shorter than the 8-byte header length", path, size)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxHeader || n > uint64(size-8) {
		return nil, fmt.Errorf("read safetensors %s: header length %d exceeds the file (%d bytes) or the %d-byte limit: not a safetensors file, or truncated", path, n, size, maxHeader)
	}
	header := make([]byte, 8+n)
	copy(header, lenBuf[:])
	if _, err := io.ReadFull(f, header[8:]); err != nil {
		return nil, fmt.Errorf("read safetensors %s: %w", path, err)
	}
	hdr, err := parse(header, size-8-int64(n))
	if err != nil || !withData {
		if err != nil {
			err = fmt.Errorf("read safetensors %s: %w", path, err)
		}
		return hdr, err
	}
	b := make([]byte, size)
	copy(b, header)
	if _, err := io.ReadFull(f, b[len(header):]); err != nil {
		return nil, fmt.Errorf("read safetensors %s: %w (the file changed while being read?)", path, err)
	}
	out, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("read safetensors %s: %w", path, err)
	}
	return out, nil
}

// Parse decodes a safetensors file held in memory. The tensors' Data slices
// point into b.
func Parse(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("file is %d bytes, shorter than the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("header length %d exceeds the file (%d bytes) or the %d-byte limit: not a safetensors file, or truncated", n, len(b), maxHeader)
	}
	return parse(b, int64(len(b))-8-int64(n))
}

// parse decodes the header in b and checks it against dataLen bytes of
// data. Tensors get Data only when b holds the data too.
func parse(b []byte, dataLen int64) (*File, error) {
	n := binary.LittleEndian.Uint64(b[:8])
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %w", err)
	}
	data := b[8+n:]
	hasData := int64(len(data)) == dataLen
	f := &File{Metadata: map[string]string{}, Tensors: map[string]Tensor{}}
	type span struct {
		name       string
		start, end int64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__ must map strings to strings: %w", err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: bad header entry: %w", name, err)
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %q: unknown dtype %q", name, e.DType)
		}
		want := size
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && want > math.MaxInt64/d) {
				return nil, fmt.Errorf("tensor %q: bad shape %v", name, e.Shape)
			}
			want *= d
		}
		start, end := e.DataOffsets[0], e.DataOffsets[1]
		if start < 0 || end < start || end > dataLen {
			return nil, fmt.Errorf("tensor %q: data offsets [%d, %d] fall outside the %d data bytes (truncated file?)", name, start, end, dataLen)
		}
		if end-start != want {
			return nil, fmt.Errorf("tensor %q: %s%v needs %d bytes but its offsets hold %d", name, e.DType, e.Shape, want, end-start)
		}
		t := Tensor{DType: e.DType, Shape: e.Shape}
		if hasData {
			t.Data = data[start:end:end]
		}
		f.Tensors[name] = t
		spans = append(spans, span{name, start, end})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return nil, fmt.Errorf("tensors %q and %q overlap", spans[i-1].name, spans[i].name)
		}
	}
	return f, nil
}

// Float32 decodes a floating-point tensor into float32s (F32, F16, BF16 and
// F64 are accepted: checkpoints are often stored in half precision), or an
// I8 one, as model2vec's int8-quantised embeddings are stored.
func (t Tensor) Float32() ([]float32, error) {
	size, ok := dtypeSize[t.DType]
	if !ok {
		return nil, fmt.Errorf("unknown dtype %q", t.DType)
	}
	n := int64(len(t.Data)) / size
	out := make([]float32, n)
	le := binary.LittleEndian
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(t.Data[4*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(t.Data[8*i:])))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(le.Uint16(t.Data[2*i:])) << 16)
		}
	case "F16":
		for i := range out {
			out[i] = halfToFloat(le.Uint16(t.Data[2*i:]))
		}
	case "I8":
		for i := range out {
			out[i] = float32(int8(t.Data[i]))
		}
	default:
		return nil, fmt.Errorf("dtype %s is not floating point", t.DType)
	}
	// No model has a NaN or infinite weight on purpose: it is corruption,
	// and would surface later as NaN vectors or a diverging loss.
	for i, x := range out {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("value %d is %g: corrupt weights", i, x)
		}
	}
	return out, nil
}

// Int64 decodes an integer tensor (I64, I32, U32, I16, U16, I8 or U8)
// into int64s; U64 values above the int64 range are an error.
func (t Tensor) Int64() ([]int64, error) {
	size, ok := dtypeSize[t.DType]
	if !ok {
		return nil, fmt.Errorf("unknown dtype %q", t.DType)
	}
	out := make([]int64, int64(len(t.Data))/size)
	le := binary.LittleEndian
	for i := range out {
		b := t.Data[int64(i)*size:]
		switch t.DType {
		case "I64":
			out[i] = int64(le.Uint64(b))
		case "U64":
			u := le.Uint64(b)
			if u > math.MaxInt64 {
				return nil, fmt.Errorf("value %d is %d, beyond int64", i, u)
			}
			out[i] = int64(u)
		case "I32":
			out[i] = int64(int32(le.Uint32(b)))
		case "U32":
			out[i] = int64(le.Uint32(b))
		case "I16":
			out[i] = int64(int16(le.Uint16(b)))
		case "U16":
			out[i] = int64(le.Uint16(b))
		case "I8":
			out[i] = int64(int8(b[0]))
		case "U8":
			out[i] = int64(b[0])
		default:
			return nil, fmt.Errorf("dtype %s is not an integer type", t.DType)
		}
	}
	return out, nil
}

// FromFloat32 makes an F32 tensor.
func FromFloat32(shape []int64, v []float32) (Tensor, error) {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if n != int64(len(v)) {
		return Tensor{}, fmt.Errorf("shape %v holds %d values, got %d", shape, n, len(v))
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{DType: "F32", Shape: append([]int64(nil), shape...), Data: b}, nil
}

// WriteFile writes tensors and metadata atomically: to a temporary file in
// the same directory, then renamed over path.
func WriteFile(path string, tensors map[string]Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var offset int64
	for _, name := range names {
		t := tensors[name]
		size, ok := dtypeSize[t.DType]
		if !ok {
			return fmt.Errorf("write %s: tensor %q: unknown dtype %q", path, name, t.DType)
		}
		want := size
		for _, d := range t.Shape {
			want *= d
		}
		if want != int64(len(t.Data)) {
			return fmt.Errorf("write %s: tensor %q: %s%v needs %d bytes, has %d", path, name, t.DType, t.Shape, want, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		header[name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{offset, offset + want}}
		offset += want
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Pad the header with spaces so the data starts 8-byte aligned, as the
	// reference writer does.
	for (len(hj))%8 != 0 {
		hj = append(hj, ' ')
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600; a model is for other users too.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	werr := errors.Join(write(tmp, lenBuf[:]), write(tmp, hj))
	for _, name := range names {
		werr = errors.Join(werr, write(tmp, tensors[name].Data))
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if err := errors.Join(werr, tmp.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func write(f *os.File, b []byte) error {
	_, err := f.Write(b)
	return err
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: renormalise
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		frac &= 0x3ff
		return math.Float32frombits(sign | e<<23 | frac<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	}
}
